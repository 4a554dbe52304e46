"""The reminder scans. Each reads only one team's *due* rows through an index, records which facts it
has pushed (`Nudge` keys such as `overdue:<lead>:<due date>`), and writes one outbox message per person
per kind. Running a scan twice, or on two workers at once, pushes nothing twice: the first to insert
a nudge key owns it."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from commands import i18n
from commands.types import Button, Reply
from models import audit, outbox
from models.config import ROLE_RANK, TeamConfig
from models.quotes import approvers_for
from models.tables import ApprovalStep, Lead, Member, Nudge, Quote, Team
from models.teams import locale_of, managers_of
from reminders.timing import next_working_moment, working_hours_between

MAX_BUTTONS = 6
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
    messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, other: ScanReport) -> None:
        for name in ("overdue", "overdue_escalated", "stuck", "approvals_reminded", "approvals_escalated",
                     "pool_warned", "pool_returned", "messages"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class Line:
    """One fact in a batched nudge: its text and the buttons that act on it."""

    key: str
    text: str
    buttons: list[Button] = field(default_factory=list)


class Scan:
    """One team's scan at one moment, collecting lines per recipient before writing the outbox."""

    def __init__(self, session: Session, team: Team, now: datetime) -> None:
        self.session = session
        self.team = team
        self.now = now
        self.config = TeamConfig.model_validate(team.config or {})
        self.locale = locale_of(team)
        self.today = now.astimezone(self.config.tz).date()
        self.batches: dict[tuple[str, int], list[Line]] = defaultdict(list)
        self.people: dict[int, Member] = {}
        self.report = ScanReport()

    # --- wording -------------------------------------------------------------------------------
    def pick(self, en: str, zh: str, **params: Any) -> str:
        return (zh if self.locale == "zh" else en).format(**params)

    def money(self, minor: int) -> str:
        return i18n.money(minor, self.config.currency_for(self.locale), self.locale)

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
        follow, snooze = ("/跟进", "/线索 暂缓") if self.locale == "zh" else ("/follow", "/lead snooze")
        return [Button(label=self.pick("Log follow-up L{n}", "写跟进 L{n}", n=lead.number),
                       command=f"{follow} L{lead.number} ", style="primary"),
                Button(label=self.pick("Snooze 1d", "暂缓 1 天"), command=f"{snooze} L{lead.number} 1d")]

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
        """One message per person and kind, held until quiet hours end."""
        titles = {
            "overdue": ("⏰ Follow-ups overdue ({n})", "⏰ 逾期未跟进（{n}）"),
            "overdue-manager": ("⏰ Your team's follow-ups overdue past {sla} days ({n})",
                                "⏰ 团队逾期超过 {sla} 天的跟进（{n}）"),
            "stuck": ("🐢 Deals without progress ({n})", "🐢 长时间未推进的商机（{n}）"),
            "stuck-manager": ("🐢 Stuck deals in your team ({n})", "🐢 团队停滞商机（{n}）"),
            "approval-wait": ("🧾 Approvals waiting for you ({n})", "🧾 等待你审批（{n}）"),
            "approval-escalate": ("🧾 Approvals escalated to you ({n})", "🧾 升级给你的审批（{n}）"),
            "pool-warning": ("↩️ Back to the pool tomorrow unless you act ({n})", "↩️ 明天将退回公海（{n}）"),
            "pool-returned": ("↩️ Returned to the pool ({n})", "↩️ 已退回公海（{n}）"),
        }
        send_at = next_working_moment(self.now, self.config)
        for (kind, member_id), lines in sorted(self.batches.items()):
            member = self.people[member_id]
            title = self.pick(*titles[kind], n=len(lines), sla=self.config.followup_sla_days)
            shown = lines[:MAX_LINES]
            text = "\n".join([f"**{title}**", *(f"· {line.text}" for line in shown)])
            if len(lines) > len(shown):
                text += "\n" + self.pick("· … and {k} more", "· …… 另有 {k} 条", k=len(lines) - len(shown))
            buttons = [button for line in shown for button in line.buttons][:MAX_BUTTONS]
            digest = hashlib.sha1("|".join(sorted(line.key for line in lines)).encode()).hexdigest()[:16]
            written = outbox.enqueue(self.session, team=self.team, kind=kind, member=member,
                                     dedupe_key=f"nudge:{kind}:{member_id}:{digest}",
                                     payload=Reply(text=text, buttons=buttons).model_dump(mode="json"),
                                     now=self.now, not_before=send_at)
            self.report.messages += int(written)
        return self.report


def run_scans(session: Session, team: Team, now: datetime) -> ScanReport:
    """Every scan for one team, in one transaction."""
    scan = Scan(session, team, now)
    overdue_followups(scan)
    stuck_leads(scan)
    waiting_approvals(scan)
    pool_return(scan)
    return scan.flush()


def _not_snoozed(today: Any) -> Any:
    return or_(col(Lead.snoozed_until).is_(None), col(Lead.snoozed_until) < today)


def overdue_followups(scan: Scan) -> None:
    """Next follow-up date passed → the owner, once per due date; past the SLA → their manager."""
    query = select(Lead).where(Lead.team_id == scan.team.id, Lead.status == "open",
                               col(Lead.next_followup_on) < scan.today, col(Lead.owner_id).is_not(None),
                               _not_snoozed(scan.today)).order_by(col(Lead.next_followup_on), col(Lead.number))
    due = list(scan.session.exec(query))
    owner_keys = {f"overdue:{lead.id}:{lead.next_followup_on}": lead for lead in due}
    sla = scan.config.followup_sla_days
    late = [lead for lead in due if lead.next_followup_on and (scan.today - lead.next_followup_on).days > sla]
    manager_keys = {f"overdue-manager:{lead.id}:{lead.next_followup_on}": lead for lead in late}
    fresh = scan.fresh([*owner_keys, *manager_keys],
                       {key: lead.owner_id for key, lead in {**owner_keys, **manager_keys}.items()})
    for key, lead in owner_keys.items():
        owner = scan.member(lead.owner_id)
        if key in fresh and owner and lead.next_followup_on:
            days = (scan.today - lead.next_followup_on).days
            scan.push("overdue", owner, Line(key, scan.pick("L{n} {name} — due {day} ({d}d ago)",
                                                            "L{n} {name} — 应于 {day} 跟进（已过 {d} 天）",
                                                            n=lead.number, name=lead.name, d=days,
                                                            day=i18n.day(lead.next_followup_on, scan.locale)),
                                             scan.lead_buttons(lead)))
            scan.report.overdue += 1
    for key, lead in manager_keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None or not lead.next_followup_on:
            continue
        for manager in managers_of(scan.session, owner):
            days = (scan.today - lead.next_followup_on).days
            scan.push("overdue-manager", manager, Line(key, scan.pick(
                "L{n} {name} ({owner}) — {d}d overdue", "L{n} {name}（{owner}）— 逾期 {d} 天",
                n=lead.number, name=lead.name, owner=owner.name, d=days)))
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
                               col(Lead.owner_id).is_not(None), or_(*per_stage), _not_snoozed(scan.today)
                               ).order_by(col(Lead.stage_changed_at), col(Lead.number))
    due = list(scan.session.exec(query))
    keys = {}
    for lead in due:
        since = lead.stage_changed_at.astimezone(config.tz).date()
        keys[f"stuck:{lead.id}:{lead.stage}:{since}"] = lead
        keys[f"stuck-manager:{lead.id}:{lead.stage}:{since}"] = lead
    fresh = scan.fresh(keys, {key: lead.owner_id for key, lead in keys.items()})
    for key, lead in keys.items():
        owner = scan.member(lead.owner_id)
        if key not in fresh or owner is None:
            continue
        days = (scan.now - lead.stage_changed_at).days
        if key.startswith("stuck:"):
            scan.push("stuck", owner, Line(key, scan.pick("L{n} {name} — {d} days in {stage}",
                                                          "L{n} {name} — 停在“{stage}”{d} 天",
                                                          n=lead.number, name=lead.name, d=days,
                                                          stage=scan.stage(lead.stage)), scan.lead_buttons(lead)))
            scan.report.stuck += 1
        else:
            for manager in managers_of(scan.session, owner):
                scan.push("stuck-manager", manager, Line(key, scan.pick(
                    "L{n} {name} ({owner}) — {d} days in {stage}", "L{n} {name}（{owner}）— 停在“{stage}”{d} 天",
                    n=lead.number, name=lead.name, owner=owner.name, d=days, stage=scan.stage(lead.stage))))


def _approvers(scan: Scan, quote: Quote, role: str) -> list[Member]:
    needed = ROLE_RANK[role]
    people = list(scan.session.exec(select(Member).where(Member.team_id == scan.team.id).order_by(col(Member.id))))
    exact = [m for m in people if m.role == role and m.id != quote.requester_id]
    return exact or [m for m in people if ROLE_RANK.get(m.role, 0) >= needed and m.id != quote.requester_id]


def waiting_approvals(scan: Scan) -> None:
    """A step waiting longer than the limit (working hours) → remind its approvers; as long again →
    escalate to the next role up, recorded in the quote's history."""
    policy = scan.config.approval
    limit = policy.wait_hours
    query = (select(ApprovalStep, Quote).join(Quote, col(Quote.id) == ApprovalStep.quote_id)
             .where(Quote.team_id == scan.team.id, ApprovalStep.status == "waiting", Quote.status == "pending",
                    col(ApprovalStep.waiting_since) < scan.now - timedelta(hours=limit)))
    for step, quote in scan.session.exec(query).all():
        since = step.escalated_at or step.waiting_since
        if since is None or working_hours_between(since, scan.now, scan.config) < limit:
            continue
        lead = scan.session.get(Lead, quote.lead_id)
        hours = int(working_hours_between(step.waiting_since or scan.now, scan.now, scan.config))
        text = scan.pick("Q{q} · {name} · {amount} · by {who} — waiting {h}h", "Q{q} · {name} · {amount} · 申请人 {who} — 已等待 {h} 小时",
                         q=quote.number, name=lead.name if lead else "-", amount=scan.money(quote.amount),
                         who=scan.name(quote.requester_id), h=hours)
        approve, reject = ("/审批 同意", "/审批 驳回") if scan.locale == "zh" else ("/quote approve", "/quote reject")
        buttons = [Button(label=scan.pick("Approve Q{q}", "同意 Q{q}", q=quote.number), command=f"{approve} Q{quote.number}",
                          style="primary"),
                   Button(label=scan.pick("Reject Q{q}", "驳回 Q{q}", q=quote.number), command=f"{reject} Q{quote.number} ",
                          style="danger")]
        if step.escalations == 0:
            recipients, kind = approvers_for(scan.session, quote, step), "approval-wait"
        else:
            rank = min(ROLE_RANK[step.role] + step.escalations, ROLE_RANK["admin"])
            if ROLE_RANK[step.role] + step.escalations - 1 >= ROLE_RANK["admin"]:
                continue  # already at the top: no one left to escalate to
            role = next(name for name, value in ROLE_RANK.items() if value == rank)
            recipients, kind = _approvers(scan, quote, role), "approval-escalate"
        key = f"{kind}:{step.id}:{step.escalations}"
        if key not in scan.fresh([key], {key: None}):
            continue
        scan.session.execute(update(ApprovalStep).where(col(ApprovalStep.id) == step.id)
                             .values(escalations=step.escalations + 1, escalated_at=scan.now))
        audit.record_event(scan.session, team_id=scan.team.id or 0, actor_id=None, at=scan.now, entity="quote",
                           entity_id=quote.id or 0, action="remind" if kind == "approval-wait" else "escalate",
                           after={"level": step.level, "to": [m.name for m in recipients], "waited_hours": hours})
        for member in recipients:
            scan.push(kind, member, Line(key, text, buttons))
        if kind == "approval-wait":
            scan.report.approvals_reminded += 1
        else:
            scan.report.approvals_escalated += 1


def pool_return(scan: Scan) -> None:
    """Leads untouched for the team's pool-return days go back to the pool (公海); the owner is warned a
    day before and told when it happens."""
    days = scan.config.pool_return_days
    if not days:
        return
    warn_before = scan.now - timedelta(days=max(days - 1, 0))
    query = select(Lead).where(Lead.team_id == scan.team.id, Lead.status == "open",
                               col(Lead.last_activity_at) < warn_before, col(Lead.owner_id).is_not(None),
                               _not_snoozed(scan.today)).order_by(col(Lead.last_activity_at), col(Lead.number))
    due = list(scan.session.exec(query))
    cutoff = scan.now - timedelta(days=days)
    returning = [lead for lead in due if lead.last_activity_at < cutoff]
    warning = [lead for lead in due if lead.last_activity_at >= cutoff]
    warn_keys = {f"pool-warning:{lead.id}:{lead.last_activity_at.date()}": lead for lead in warning}
    fresh = scan.fresh(warn_keys, {key: lead.owner_id for key, lead in warn_keys.items()})
    for key, lead in warn_keys.items():
        owner = scan.member(lead.owner_id)
        if key in fresh and owner:
            scan.push("pool-warning", owner, Line(key, scan.pick("L{n} {name} — untouched {d} days",
                                                                 "L{n} {name} — {d} 天未跟进",
                                                                 n=lead.number, name=lead.name,
                                                                 d=(scan.now - lead.last_activity_at).days),
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
        key = f"pool-returned:{lead.id}:{lead.last_activity_at.date()}"
        claim = "/线索 领取" if scan.locale == "zh" else "/lead claim"
        scan.push("pool-returned", owner, Line(key, scan.pick("L{n} {name}", "L{n} {name}", n=lead.number, name=lead.name),
                                               [Button(label=scan.pick("Claim back L{n}", "领回 L{n}", n=lead.number),
                                                       command=f"{claim} L{lead.number}")]))
        scan.report.pool_returned += 1
