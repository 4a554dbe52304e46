"""The reminder scans. Each reads only one team's *due* rows through an index, records which facts it
has pushed (`Nudge` keys such as `overdue:<lead>:<due date>`), and writes one outbox message per person
and run, as each person's own settings say (`/me notify`, `/me quiet`, `/me lang`). Running a scan twice, or on two workers at once, pushes nothing twice: the first to insert
a nudge key owns it."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

import wording
from commands import cards
from commands.teamwork import APPROVE, REJECT
from commands.types import Button, Reply
from commands.words import command, spelling
from models import audit, outbox, teamwork
from models.config import ROLE_RANK, TeamConfig
from models.leads import not_snoozed
from models.quotes import asked_for, settle_lead, settled_now
from models.tables import ApprovalStep, Lead, Member, Nudge, Quote, Team
from models.teams import locale_of, managers_of
from models.timing import is_quiet, next_working_moment, waiting_hours, working_hours_between
from reminders import aftersale as aftersale_reminders  # a module import: it imports this one too
from wording import N_

MAX_BUTTONS = 6
MAX_ROWS = 10  # a realtime message: each fact's buttons on a row of their own, this many facts
MAX_LINES = 15


@dataclass
class ScanReport:
    overdue: int = 0
    overdue_escalated: int = 0
    stuck: int = 0
    approvals_reminded: int = 0
    approvals_escalated: int = 0
    pool_warned: int = 0
    pool_returned: int = 0
    transfers_escalated: int = 0
    messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, other: ScanReport) -> None:
        for name in ("overdue", "overdue_escalated", "stuck", "approvals_reminded", "approvals_escalated",
                     "pool_warned", "pool_returned", "transfers_escalated", "messages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Line:
    """One fact in a batched nudge: its text and the buttons that act on it."""

    key: str
    text: str
    buttons: list[Button] = field(default_factory=list)
    about: tuple[str, ...] = ()  # the decisions it asks for: their outcome is edited in later


class Scan:
    """One team's scan at one moment, collecting lines per recipient before writing the outbox."""

    def __init__(self, session: Session, team: Team, now: datetime) -> None:
        self.session = session
        self.team = team
        self.now = now
        self.config = TeamConfig.model_validate(team.config or {})
        self.locale = locale_of(team)
        self.team_locale = self.locale
        self.today = now.astimezone(self.config.tz).date()
        self.batches: dict[tuple[str, int], list[Line]] = defaultdict(list)
        self.people: dict[int, Member] = {}
        self.settings: dict[int, teamwork.Prefs] = {}
        self.report = ScanReport()

    # --- each person's own settings ----------------------------------------------------------------
    def prefs(self, member_id: int) -> teamwork.Prefs:
        if member_id not in self.settings:
            self.settings[member_id] = teamwork.prefs_of(self.session, member_id)
        return self.settings[member_id]

    def voice(self, member: Member | None) -> cards.Voice:
        """How `member` (None: a channel) reads what a scan words for them now."""
        prefs = self.prefs(member.id or 0) if member is not None else teamwork.DEFAULT_PREFS
        return cards.voice_of(prefs.lang or self.team_locale, prefs.tz or self.config.tz, self.now)

    @contextmanager
    def reading(self, member: Member | None) -> Iterator[None]:
        """Word what is built inside for `member`: in their own language, else the team's."""
        saved = self.locale
        if member is not None:
            self.locale = self.prefs(member.id or 0).lang or self.team_locale
        try:
            yield
        finally:
            self.locale = saved

    # --- the moment a push is read ----------------------------------------------------------------
    def delivered_at(self, member: Member) -> datetime:
        """When a push to `member` written now goes out: now, or when their quiet hours end.
        Relative times ("2d ago", "in 3d", "waiting 5h") are worded for that moment, not the
        scan's, so a push held overnight is still true when it arrives."""
        return next_working_moment(self.now, self.prefs(member.id or 0).quiet_config(self.config))

    def delivered_on(self, member: Member) -> date:
        """The team's date on the day a push to `member` written now goes out."""
        return self.delivered_at(member).astimezone(self.config.tz).date()

    # --- wording -------------------------------------------------------------------------------
    def say(self, msgid: str, /, **params: Any) -> str:
        return wording.say(self.locale, msgid, **params)

    def say_n(self, singular: str, plural: str, n: int, /, **params: Any) -> str:
        return wording.say_n(self.locale, singular, plural, n, **params)

    def money(self, minor: int) -> str:
        return wording.money(minor, self.config.currency_for(self.locale), self.locale)

    def name(self, member_id: int | None) -> str:
        member = self.member(member_id)
        return member.name if member else "-"

    def member(self, member_id: int | None) -> Member | None:
        if member_id is None:
            return None
        if member_id not in self.people:
            found = self.session.get(Member, member_id)
            if found is None:
                return None
            self.people[member_id] = found
        return self.people[member_id]

    def stage(self, key: str) -> str:
        stage = self.config.stage(key)
        return stage.label(self.locale) if stage else key

    def lead_buttons(self, lead: Lead) -> list[Button]:
        follow, snooze = command(self.locale, "follow"), command(self.locale, "lead", "snooze")
        return [Button(label=self.say("Log follow-up L{n}", n=lead.number),
                       command=f"{follow} L{lead.number} ", style="primary"),
                Button(label=self.say(
                    "Snooze 1d",
                ), command=f"{snooze} L{lead.number} {self.say('1d')}")]

    # --- the nudge ledger ------------------------------------------------------------------------
    def fresh(self, keys: Iterable[str], member_ids: dict[str, int | None]) -> set[str]:
        """Record nudge keys; return only those nobody recorded before (the ones to push now)."""
        rows = [{"team_id": self.team.id, "key": key[:200], "member_id": member_ids.get(key), "created_at": self.now}
                for key in dict.fromkeys(keys)]
        if not rows:
            return set()
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # One statement executed with many parameter sets: built and cached once, batched by
        # SQLAlchemy; RETURNING names only the keys this scan inserted.
        statement = insert(Nudge).on_conflict_do_nothing(index_elements=["key"]).returning(Nudge.key)
        inserted: set[str] = set(self.session.execute(statement, rows).scalars())
        return inserted

    def push(self, kind: str, member: Member, line: Line) -> None:
        self.people[member.id or 0] = member
        self.batches[(kind, member.id or 0)].append(line)

    # --- writing the outbox ----------------------------------------------------------------------
    def flush(self) -> ScanReport:
        """For each person: one message per run with everything they read as a digest (by default
        their nudges), one more with the nudges they want in realtime (each fact with its own row
        of buttons), nothing for what they turned off. Held through their quiet hours (their own, else the team's), except the
        approvals people asked of them, which are never held."""
        for notice in teamwork.take_held(self.session, team_id=self.team.id or 0, now=self.now):
            member = self.member(notice.member_id)
            if member is not None:
                held = Reply.model_validate(notice.payload)
                self.push(notice.kind, member, Line(f"held:{notice.id}", held.text, held.buttons,
                                                    tuple(notice.payload.get("about") or ())))
        by_member: dict[int, list[tuple[str, list[Line]]]] = defaultdict(list)
        for (kind, member_id), lines in sorted(self.batches.items()):
            by_member[member_id].append((kind, lines))
        for member_id, groups in by_member.items():
            member = self.people[member_id]
            prefs = self.prefs(member_id)
            send_at = next_working_moment(self.now, prefs.quiet_config(self.config))
            asked: list[tuple[str, list[Line]]] = []
            digest: list[tuple[str, list[Line]]] = []
            realtime: list[tuple[str, list[Line]]] = []
            with self.reading(member):
                for kind, lines in groups:
                    mode = prefs.mode(kind)
                    if mode == "off":
                        continue
                    if mode == "digest":
                        (asked if kind in teamwork.ASKED_BY_A_PERSON else digest).append((kind, lines))
                    elif teamwork.category_of(kind) == "nudges":
                        realtime.append((kind, lines))
                    else:
                        self._write(member, [(kind, lines)], send_at)
                self._write(member, realtime, send_at, rows=True)
                self._write(member, asked, self.now)
                self._write(member, digest, send_at)
        return self.report

    def _write(self, member: Member, groups: list[tuple[str, list[Line]]], send_at: datetime,
               *, rows: bool = False) -> None:
        """One outbox message holding each group of lines under its title; with `rows`, each
        line's buttons on a row of their own."""
        if not groups:
            return
        parts: list[str] = []
        buttons: list[Button] = []
        keys: list[str] = []
        about: list[str] = []
        for kind, lines in groups:
            title = TITLES.get(kind, TITLES["updates"])
            parts.append(f"**{self.say(title, n=len(lines), sla=self.config.followup_sla_days)}**")
            shown = lines[:MAX_LINES]
            parts += [f"· {line.text}" for line in shown]
            if len(lines) > len(shown):
                parts.append(self.say("· … and {k} more", k=len(lines) - len(shown)))
            if rows:
                buttons += [button.model_copy(update={"row": len(keys) + index})
                            for index, line in enumerate(shown) for button in line.buttons]
            else:
                buttons += [button for line in shown for button in line.buttons]
            keys += [line.key for line in lines]
            about += [subject for line in shown for subject in line.about]
        digest = hashlib.sha1("|".join(sorted(keys)).encode()).hexdigest()[:16]
        kind = groups[0][0] if len(groups) == 1 else "digest"
        if rows:  # a lead both overdue and stuck gets its row once
            by_row: dict[int, list[Button]] = defaultdict(list)
            for button in buttons:
                by_row[button.row].append(button)
            seen: set[tuple[str, ...]] = set()
            kept: list[list[Button]] = []
            for row in by_row.values():
                commands = tuple(button.command for button in row)
                if commands not in seen:
                    seen.add(commands)
                    kept.append(row)
            buttons = [button for row in kept[:MAX_ROWS] for button in row]
        else:  # a lead both overdue and stuck gets its buttons once here too
            unique: dict[str, Button] = {}
            for button in buttons:
                unique.setdefault(button.command, button)
            buttons = list(unique.values())[:MAX_BUTTONS]
        reply = Reply(text="\n".join(parts), buttons=buttons)
        written = outbox.enqueue(self.session, team=self.team, kind=kind, member=member,
                                 dedupe_key=f"nudge:{kind}:{member.id}:{digest}",
                                 payload=reply.model_dump(mode="json"), now=self.now,
                                 not_before=send_at, about=about)
        self.report.messages += int(written)


# The title of each kind of line in a batched message.
TITLES: dict[str, str] = {
    "overdue": N_("⏰ Follow-ups overdue ({n})"),
    "overdue-manager": N_("⏰ Your team's follow-ups overdue past {sla} days ({n})"),
    "stuck": N_("🐢 Deals without progress ({n})"),
    "stuck-manager": N_("🐢 Stuck deals in your team ({n})"),
    "approval-wait": N_("🧾 Approvals waiting for you ({n})"),
    "approval-escalate": N_("🧾 Approvals escalated to you ({n})"),
    "pool-warning": N_("↩️ Back to the pool tomorrow unless you act ({n})"),
    "pool-returned": N_("↩️ Returned to the pool ({n})"),
    "instalment-due": N_("📅 Payments due soon ({n})"),
    "receivable-overdue": N_("💸 Payments overdue ({n})"),
    "receivable-overdue-manager": N_("💸 Your team's payments overdue past {sla} days ({n})"),
    "renewal": N_("🔁 Contracts up for renewal ({n})"),
    "care": N_("🤝 After-sales care due ({n})"),
    "transfer-escalate": N_("🔁 Transfer requests waiting for you ({n})"),
    # Pushes people caused, kept for someone who reads them as a digest.
    "approval": N_("🧾 Approvals asked of you ({n})"),
    "transfer": N_("🔁 Requests for your leads ({n})"),
    "decision": N_("📬 Decisions on your quotes ({n})"),
    "quote-withdrawn": N_("🧾 Quotes withdrawn ({n})"),
    "transfer-closed": N_("🔁 Transfer requests closed ({n})"),
    "assigned": N_("📥 Leads given to you ({n})"),
    "updates": N_("📬 Updates ({n})"),
}


def run_scans(session: Session, team: Team, now: datetime) -> ScanReport:
    """Every scan for one team, in one transaction."""
    scan = Scan(session, team, now)
    pool_return(scan)  # first: what it withdraws is reminded of by none of the others
    overdue_followups(scan)
    stuck_leads(scan)
    waiting_approvals(scan)
    transfer_requests(scan)
    aftersale_reminders.aftersale_scans(scan)
    return scan.flush()


def _after_snooze(lead: Lead) -> str:
    """A nudge key's suffix that makes a fact nudged before a snooze new again once it ended."""
    return f":after:{lead.snoozed_until}" if lead.snoozed_until else ""


def overdue_followups(scan: Scan) -> None:
    """Next follow-up date passed → the owner, once per due date; past the SLA → their manager."""
    query = select(Lead).where(Lead.team_id == scan.team.id, Lead.status == "open",
                               col(Lead.next_followup_on) < scan.today, col(Lead.owner_id).is_not(None),
                               not_snoozed(scan.today)
                               ).order_by(col(Lead.next_followup_on), col(Lead.number))
    due = list(scan.session.exec(query))
    owner_keys = {f"overdue:{lead.id}:{lead.next_followup_on}{_after_snooze(lead)}": lead
                  for lead in due}
    sla = scan.config.followup_sla_days
    late = [lead for lead in due if lead.next_followup_on and (scan.today - lead.next_followup_on).days > sla]
    manager_keys = {f"overdue-manager:{lead.id}:{lead.next_followup_on}{_after_snooze(lead)}": lead
                    for lead in late}
    fresh = scan.fresh([*owner_keys, *manager_keys],
                       {key: lead.owner_id for key, lead in {**owner_keys, **manager_keys}.items()})
    for key, lead in owner_keys.items():
        owner = scan.member(lead.owner_id)
        if key in fresh and owner and lead.next_followup_on:
            days = (scan.delivered_on(owner) - lead.next_followup_on).days
            with scan.reading(owner):
                scan.push("overdue", owner, Line(key, scan.say(
                    "L{n} {name} — due {day} ({d}d ago)",
                    n=lead.number,
                    name=lead.name,
                    d=days,
                    day=wording.day(lead.next_followup_on, scan.locale, scan.today),
                ),
                                                 scan.lead_buttons(lead)))
            scan.report.overdue += 1
    for key, lead in manager_keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None or not lead.next_followup_on:
            continue
        for manager in managers_of(scan.session, owner):
            days = (scan.delivered_on(manager) - lead.next_followup_on).days
            with scan.reading(manager):
                scan.push("overdue-manager", manager, Line(key, scan.say(
                    "L{n} {name} ({owner}) — {d}d overdue",
                    n=lead.number,
                    name=lead.name,
                    owner=owner.name,
                    d=days,
                )))
            scan.report.overdue_escalated += 1


def stuck_leads(scan: Scan) -> None:
    """No stage change for the stage's stale-days → the owner, and a line per lead to their manager."""
    config = scan.config
    shortest = min(config.stale_days_for(stage.key) for stage in config.stages)
    per_stage = [and_(Lead.stage == stage.key,
                      col(Lead.stage_changed_at) < scan.now - timedelta(days=config.stale_days_for(stage.key)))
                 for stage in config.stages]
    query = select(Lead).where(Lead.team_id == scan.team.id, Lead.status == "open",
                               col(Lead.stage_changed_at) < scan.now - timedelta(days=shortest),
                               col(Lead.owner_id).is_not(None), or_(*per_stage),
                               not_snoozed(scan.today)
                               ).order_by(col(Lead.stage_changed_at), col(Lead.number))
    due = list(scan.session.exec(query))
    keys = {}
    for lead in due:
        since = lead.stage_changed_at.astimezone(config.tz).date()
        keys[f"stuck:{lead.id}:{lead.stage}:{since}{_after_snooze(lead)}"] = lead
        keys[f"stuck-manager:{lead.id}:{lead.stage}:{since}{_after_snooze(lead)}"] = lead
    fresh = scan.fresh(keys, {key: lead.owner_id for key, lead in keys.items()})
    for key, lead in keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None:
            continue
        days = (scan.delivered_at(owner) - lead.stage_changed_at).days
        if key.startswith("stuck:"):
            with scan.reading(owner):
                scan.push("stuck", owner, Line(key, scan.say(
                    "L{n} {name} — {d} days in {stage}",
                    n=lead.number,
                    name=lead.name,
                    d=days,
                    stage=scan.stage(lead.stage),
                ), scan.lead_buttons(lead)))
            scan.report.stuck += 1
        else:
            for manager in managers_of(scan.session, owner):
                with scan.reading(manager):
                    scan.push("stuck-manager", manager, Line(key, scan.say(
                        "L{n} {name} ({owner}) — {d} days in {stage}",
                        n=lead.number,
                        name=lead.name,
                        owner=owner.name,
                        stage=scan.stage(lead.stage),
                        d=(scan.delivered_at(manager) - lead.stage_changed_at).days,
                    )))


def _approvers(scan: Scan, quote: Quote, role: str) -> list[teamwork.Asked]:
    """Who an approval escalates to: that role's members (silent ones only if all are), each routed
    to their delegate while one is set."""
    needed = ROLE_RANK[role]
    people = list(scan.session.exec(select(Member).where(Member.team_id == scan.team.id).order_by(col(Member.id))))
    exact = [m for m in people if m.role == role and m.id != quote.requester_id]
    found = exact or [m for m in people if ROLE_RANK.get(m.role, 0) >= needed and m.id != quote.requester_id]
    found = [m for m in found if not scan.prefs(m.id or 0).silent] or found
    return teamwork.route(scan.session, found, scan.today, never={quote.requester_id})


def _approval_line(scan: Scan, key: str, quote: Quote, lead: Lead | None, since: datetime,
                   asked: teamwork.Asked) -> Line:
    hours = waiting_hours(since, scan.delivered_at(asked.member), scan.config)
    text = scan.say(
        "Q{q} · {name} · {amount} · by {who} — waiting {h} working h",
        q=quote.number,
        name=lead.name if lead else "-",
        amount=wording.quote_amount(quote.amount, quote.discount_bp,
                                    scan.config.currency_for(scan.locale), scan.locale),
        who=scan.name(quote.requester_id),
        h=hours,
    )
    if asked.delegated:
        text += scan.say(" — for {p}", p=asked.principal.name)
    approve, reject = (command(scan.locale, "quote", verb) for verb in ("approve", "reject"))
    buttons = [Button(label=scan.say("Approve Q{q}", q=quote.number), command=f"{approve} Q{quote.number}",
                      style="primary"),
               Button(label=scan.say("Reject Q{q}", q=quote.number), command=f"{reject} Q{quote.number} ",
                      style="danger")]
    return Line(key, text, buttons, (cards.quote_subject(quote),))


def waiting_approvals(scan: Scan) -> None:
    """A step waiting longer than the limit (working hours) → remind its approvers (or their
    delegates); as long again → escalate to the next role up, recorded in the quote's history.
    Once reminded, its approvers are reminded again each later day it still waits, once a day,
    at the first run inside the team's working hours."""
    policy = scan.config.approval
    limit = policy.wait_hours
    query = (select(ApprovalStep, Quote).join(Quote, col(Quote.id) == ApprovalStep.quote_id)
             .where(Quote.team_id == scan.team.id, ApprovalStep.status == "waiting",
                    Quote.status == "pending",
                    col(ApprovalStep.waiting_since) < scan.now - timedelta(hours=limit)))
    for step, quote in scan.session.exec(query).all():
        since = step.escalated_at or step.waiting_since
        if since is None:
            continue
        lead = scan.session.get(Lead, quote.lead_id)
        if working_hours_between(since, scan.now, scan.config) >= limit and _remind_or_escalate(
                scan, step, quote, lead):
            continue
        if step.escalations > 0:
            _remind_again(scan, step, quote, lead)


def _day_key(scan: Scan, step: ApprovalStep) -> str:
    return f"approval-wait:{step.id}:day:{scan.today}"


def _remind_or_escalate(scan: Scan, step: ApprovalStep, quote: Quote, lead: Lead | None) -> bool:
    """The step's first reminder, or its next escalation; False when neither is due."""
    if step.escalations == 0:
        recipients, kind = asked_for(scan.session, quote, step, scan.today), "approval-wait"
    else:
        rank = min(ROLE_RANK[step.role] + step.escalations, ROLE_RANK["admin"])
        if ROLE_RANK[step.role] + step.escalations - 1 >= ROLE_RANK["admin"]:
            return False  # already at the top: no one left to escalate to
        role = next(name for name, value in ROLE_RANK.items() if value == rank)
        recipients, kind = _approvers(scan, quote, role), "approval-escalate"
    key = f"{kind}:{step.id}:{step.escalations}"
    if key not in scan.fresh([key], {key: None}):
        return False
    if kind == "approval-wait":  # today's reminder is this one
        scan.fresh([_day_key(scan, step)], {})
    scan.session.execute(update(ApprovalStep).where(col(ApprovalStep.id) == step.id)
                         .values(escalations=step.escalations + 1, escalated_at=scan.now))
    _record(scan, quote, step, "remind" if kind == "approval-wait" else "escalate", recipients)
    for asked in recipients:
        with scan.reading(asked.member):
            line = _approval_line(scan, key, quote, lead, step.waiting_since or scan.now, asked)
            scan.push(kind, asked.member, line)
    if kind == "approval-wait":
        scan.report.approvals_reminded += 1
    else:
        scan.report.approvals_escalated += 1
    return True


def _remind_again(scan: Scan, step: ApprovalStep, quote: Quote, lead: Lead | None) -> None:
    """A later day's reminder to those who decide the step now; never while the team sleeps (a
    night's run would otherwise take the day's one reminder before anyone is at work)."""
    if is_quiet(scan.now, scan.config):
        return
    key = _day_key(scan, step)
    if key not in scan.fresh([key], {key: None}):
        return
    recipients = asked_for(scan.session, quote, step, scan.today)
    _record(scan, quote, step, "remind", recipients)
    for asked in recipients:
        with scan.reading(asked.member):
            line = _approval_line(scan, key, quote, lead, step.waiting_since or scan.now, asked)
            scan.push("approval-wait", asked.member, line)
    scan.report.approvals_reminded += 1


def _record(scan: Scan, quote: Quote, step: ApprovalStep, action: str,
            recipients: list[teamwork.Asked]) -> None:
    """The reminder or escalation in the quote's history: whom it went to, how long it waited."""
    hours = waiting_hours(step.waiting_since or scan.now, scan.now, scan.config)
    audit.record_event(scan.session, team_id=scan.team.id or 0, actor_id=None, at=scan.now,
                       entity="quote", entity_id=quote.id or 0, action=action,
                       after={"level": step.level, "to": [a.member.name for a in recipients],
                              "waited_hours": hours})


def transfer_requests(scan: Scan) -> None:
    """A transfer request the owner left unanswered for the team's limit (working hours) goes to the
    owner's manager (or their delegate), once, with the buttons to decide it."""
    hours = scan.config.transfer_wait_hours
    for request in teamwork.transfers_due(scan.session, scan.team.id or 0, scan.now - timedelta(hours=hours)):
        waited = working_hours_between(request.created_at, scan.now, scan.config)
        if waited < hours:
            continue
        managers = teamwork.escalate_transfer(scan.session, request, scan.now)
        lead = scan.session.get(Lead, request.lead_id)
        if not managers or lead is None:
            continue
        asked = teamwork.route(scan.session, managers, scan.today, never={request.requester_id})
        audit.record_event(scan.session, team_id=scan.team.id or 0, actor_id=None, at=scan.now, entity="lead",
                           entity_id=lead.id or 0, action="transfer_escalate",
                           after={"request": request.id, "to": [a.member.name for a in asked], "waited_hours": int(waited)})
        key = f"transfer-escalate:{request.id}"
        for one in asked:
            with scan.reading(one.member):
                text = scan.say(
                    "L{n} {name} — {req} asks for it; {owner} hasn't answered in {h}h: {why}",
                    n=lead.number,
                    name=lead.name,
                    req=scan.name(request.requester_id),
                    owner=scan.name(request.owner_id),
                    why=request.reason,
                    h=int(working_hours_between(request.created_at,
                                                             scan.delivered_at(one.member),
                                                             scan.config)),
                )
                if one.delegated:
                    text += scan.say(" — for {p}", p=one.principal.name)
                word = command(scan.locale, "lead", "transfer")
                approve, reject = (spelling(scan.locale, w) for w in (APPROVE, REJECT))
                buttons = [Button(label=scan.say("Approve L{n}", n=lead.number),
                                  command=f"{word} {approve} L{lead.number}", style="primary"),
                           Button(label=scan.say("Reject L{n}", n=lead.number),
                                  command=f"{word} {reject} L{lead.number} ", style="danger")]
            about = (cards.transfer_subject(request),)
            scan.push("transfer-escalate", one.member, Line(key, text, buttons, about))
        scan.report.transfers_escalated += 1


def _tell_settled(scan: Scan, lead: Lead) -> None:
    """What handing `lead` to the pool withdrew: its quotes to those asked and their requester, its
    transfer request to whoever asked for the lead (who may now claim it)."""
    for quote, people in settled_now(scan.session, lead, scan.now, scan.today):
        cards.revise(scan.session, scan.team, cards.quote_subject(quote), voice_for=scan.voice,
                     day=scan.today, now=scan.now)
        for member in people:
            key = f"quote-withdrawn:{quote.id}:{member.id}"
            with scan.reading(member):
                text = wording.message(scan.locale, "push.quote_withdrawn", quote=quote.number,
                                      lead=f"L{lead.number} {lead.name}",
                                      why=wording.message(scan.locale, "withdrawn.pool"))
            scan.push("quote-withdrawn", member, Line(key, text))
    for request in teamwork.closed_now(scan.session, lead, scan.now):
        cards.revise(scan.session, scan.team, cards.transfer_subject(request), voice_for=scan.voice,
                     day=scan.today, now=scan.now)
        asker = scan.member(request.requester_id)
        if asker is None:
            continue
        with scan.reading(asker):
            text = wording.message(scan.locale, "push.transfer_closed",
                                  lead=f"L{lead.number} {lead.name}",
                                  why=wording.message(scan.locale, "withdrawn.pool"))
            word = command(scan.locale, "lead", "claim")
            claim = Button(label=scan.say("Claim L{n}", n=lead.number),
                           command=f"{word} L{lead.number}")
        scan.push("transfer-closed", asker, Line(f"transfer-closed:{request.id}", text, [claim]))


def pool_return(scan: Scan) -> None:
    """Leads untouched for the team's pool-return days go back to the pool (公海); the owner is warned a
    day before and told when it happens."""
    days = scan.config.pool_return_days
    if not days:
        return
    warn_before = scan.now - timedelta(days=max(days - 1, 0))
    query = select(Lead).where(Lead.team_id == scan.team.id, Lead.status == "open",
                               col(Lead.last_activity_at) < warn_before, col(Lead.owner_id).is_not(None),
                               not_snoozed(scan.today)
                               ).order_by(col(Lead.last_activity_at), col(Lead.number))
    due = list(scan.session.exec(query))
    cutoff = scan.now - timedelta(days=days)
    returning = [lead for lead in due if lead.last_activity_at < cutoff]
    warning = [lead for lead in due if lead.last_activity_at >= cutoff]
    warn_keys = {f"pool-warning:{lead.id}:{lead.last_activity_at.date()}{_after_snooze(lead)}": lead
                 for lead in warning}
    fresh = scan.fresh(warn_keys, {key: lead.owner_id for key, lead in warn_keys.items()})
    for key, lead in warn_keys.items():
        owner = scan.member(lead.owner_id)
        if key in fresh and owner:
            with scan.reading(owner):
                untouched = (scan.delivered_at(owner) - lead.last_activity_at).days
                scan.push("pool-warning", owner, Line(key, scan.say(
                    "L{n} {name} — untouched {d} days",
                    n=lead.number,
                    name=lead.name,
                    d=untouched,
                ),
                                                      scan.lead_buttons(lead)))
            scan.report.pool_warned += 1
    for lead in returning:
        owner = scan.member(lead.owner_id)
        result = scan.session.execute(
            update(Lead).where(col(Lead.id) == lead.id, Lead.version == lead.version)
            .values(owner_id=None, next_followup_on=None, version=lead.version + 1)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1 or owner is None:
            continue
        audit.record_event(scan.session, team_id=scan.team.id or 0, actor_id=None, at=scan.now, entity="lead",
                           entity_id=lead.id or 0, action="pool_return", before={"owner_id": owner.id},
                           after={"owner_id": None, "untouched_days": days})
        settle_lead(scan.session, lead, because="pool", now=scan.now, actor_id=None)
        _tell_settled(scan, lead)
        key = f"pool-returned:{lead.id}:{lead.last_activity_at.date()}"
        with scan.reading(owner):
            claim = command(scan.locale, "lead", "claim")
            scan.push("pool-returned", owner, Line(key, scan.say(
                "L{n} {name}",
                n=lead.number,
                name=lead.name,
            ),
                                                   [Button(label=scan.say(
                                                       "Claim back L{n}",
                                                       n=lead.number,
                                                   ),
                                                           command=f"{claim} L{lead.number}")]))
        scan.report.pool_returned += 1
