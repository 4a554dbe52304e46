"""Nudges after the signature: instalments coming due and overdue (回款), contracts up for renewal,
and customers due an after-sales care contact (回访). Each reads only due rows through an index and
goes through `Scan`: the nudge ledger, one message per person, quiet hours."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

import wording
from commands.types import Button
from models import aftersale
from models.aftersale import CarePlan, Contract, Instalment
from models.tables import Lead
from models.teams import managers_of
from models.timing import next_working_moment
from reminders import scans  # a module import: reminders.scans imports this module in turn


def aftersale_scans(scan: scans.Scan) -> None:
    """Every after-sales scan of one team."""
    instalments(scan)
    renewals(scan)
    care(scan)


def _count(scan: scans.Scan, kind: str) -> None:
    scan.report.counts[kind] = scan.report.counts.get(kind, 0) + 1



def _pay_button(scan: scans.Scan, contract: Contract) -> Button:
    return Button(label=scan.say("Record payment C{c}", c=contract.number),
                  command=f"{scan.say('/paid')} C{contract.number} ",
                  style="primary")


def instalments(scan: scans.Scan) -> None:
    """Due within the team's days → the owner, once; overdue → the owner every day until paid or
    snoozed, and once to their manager when it is later than the team's SLA."""
    today, sla = scan.today, scan.config.followup_sla_days
    # A nudge written in quiet hours goes out the next morning: it is that morning's, not another.
    send_day = next_working_moment(scan.now, scan.config).astimezone(scan.config.tz).date()
    horizon = today + timedelta(days=scan.config.instalment_due_days)
    query = (select(Instalment, Contract, Lead)
             .join(Contract, col(Contract.id) == Instalment.contract_id)
             .join(Lead, col(Lead.id) == Contract.lead_id)
             .where(Instalment.team_id == scan.team.id, Instalment.status == "open",
                    col(Instalment.due_on) <= horizon, col(Lead.owner_id).is_not(None))
             .order_by(col(Instalment.due_on), col(Contract.number), col(Instalment.seq)))
    keys: dict[str, tuple[str, Instalment, Contract, Lead]] = {}
    for instalment, contract, lead in scan.session.exec(query).all():
        due = instalment.due_on
        if due is None:
            continue
        if due >= today:
            keys[f"instalment-due:{instalment.id}:{due}"] = ("instalment-due", instalment, contract,
                                                            lead)
        elif contract.snoozed_until is None or contract.snoozed_until <= today:
            keys[f"receivable-overdue:{instalment.id}:{send_day}"] = (
                "receivable-overdue", instalment, contract, lead)
            if (today - due).days > sla:
                keys[f"receivable-overdue-manager:{instalment.id}:{due}"] = (
                    "receivable-overdue-manager", instalment, contract, lead)
    fresh = scan.fresh(keys, {key: lead.owner_id for key, (_k, _i, _c, lead) in keys.items()})
    offered: set[tuple[str, int | None]] = set()  # one set of buttons per contract in a message
    for key, (kind, instalment, contract, lead) in keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None or instalment.due_on is None:
            continue
        first = (kind, contract.id) not in offered
        offered.add((kind, contract.id))
        # Worded for the day the push is read (quiet hours may hold it overnight).
        ahead = (instalment.due_on - scan.delivered_on(owner)).days
        days = abs(ahead)
        params = {"c": contract.number, "k": instalment.seq, "name": lead.name, "d": days,
                  "owed": scan.money(instalment.amount - instalment.paid),
                  "day": wording.day(instalment.due_on, scan.locale, scan.today)}
        if kind == "instalment-due":
            when = (scan.say("in {d}d", d=days) if ahead > 0
                    else scan.say("today") if ahead == 0
                    else scan.say("{d}d ago", d=days))
            text = scan.say("C{c} #{k} {name} — {owed} due {day} ({when})", when=when, **params)
            buttons = [_pay_button(scan, contract)] if first else []
            scan.push(kind, owner, scans.Line(key, text, buttons))
        elif kind == "receivable-overdue":
            text = scan.say("C{c} #{k} {name} — {owed} overdue since {day} ({d}d)", **params)
            snooze = Button(label=scan.say("Snooze C{c} 3d", c=contract.number),
                            command=f"{scan.say('/receivables snooze')} "
                                    f"C{contract.number} {scan.say('3d')}")
            buttons = [_pay_button(scan, contract), snooze] if first else []
            scan.push(kind, owner, scans.Line(key, text, buttons))
        else:
            for manager in managers_of(scan.session, owner):
                late = (scan.delivered_on(manager) - instalment.due_on).days
                text = scan.say(
                    "C{c} #{k} {name} ({owner}) — {owed}, {d}d overdue",
                    owner=owner.name,
                    **params | {"d": late},
                )
                scan.push(kind, manager, scans.Line(key, text))
        _count(scan, kind)


def renewals(scan: scans.Scan) -> None:
    """A contract ending within the team's renewal days and not renewed → its owner, once per end
    date."""
    if not scan.config.renewal_days:
        return
    due = aftersale.renewals_due(scan.session, team_id=scan.team.id or 0, today=scan.today,
                       days=scan.config.renewal_days, lead_filter=col(Lead.owner_id).is_not(None))
    keys = {f"renewal:{contract.id}:{contract.end_on}": (contract, lead) for contract, lead in due}
    fresh = scan.fresh(keys, {key: lead.owner_id for key, (_contract, lead) in keys.items()})
    for key, (contract, lead) in keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None or contract.end_on is None:
            continue
        text = scan.say(
            "C{c} {name} — ends {day} (in {d}d)",
            c=contract.number,
            name=lead.name,
            d=(contract.end_on - scan.delivered_on(owner)).days,
            day=wording.day(contract.end_on, scan.locale, scan.today),
        )
        renew = Button(label=scan.say("Renewal contract L{n}", n=lead.number),
                       command=f"{scan.say('/contract')} L{lead.number} ")
        scan.push("renewal", owner, scans.Line(key, text, [renew]))
        _count(scan, "renewal")


def care(scan: scans.Scan) -> None:
    """Customers whose care contact (回访) is due → their owner, once per due date."""
    session, team_id = scan.session, scan.team.id or 0
    query = (select(CarePlan, Lead).join(Lead, col(Lead.id) == CarePlan.lead_id)
             .where(CarePlan.team_id == team_id, col(CarePlan.next_due_on) <= scan.today,
                    Lead.status == "won", col(Lead.owner_id).is_not(None))
             .order_by(col(CarePlan.next_due_on), col(Lead.number)))
    keys = {f"care:{lead.id}:{plan.next_due_on}": (plan, lead)
            for plan, lead in session.exec(query).all()}
    fresh = scan.fresh(keys, {key: lead.owner_id for key, (_plan, lead) in keys.items()})
    for key, (plan, lead) in keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None:
            continue
        text = scan.say(
            "L{n} {name} — grade {g} (every {k} days), due {day}",
            n=lead.number,
            name=lead.name,
            g=lead.grade or scan.config.care_default_grade,
            k=aftersale.care_interval(scan.config, lead.grade),
            day=wording.day(plan.next_due_on, scan.locale, scan.today),
        )
        log = Button(label=scan.say("Log care L{n}", n=lead.number),
                     command=f"{scan.say('/care')} L{lead.number} ")
        scan.push("care", owner, scans.Line(key, text, [log]))
        _count(scan, "care")
