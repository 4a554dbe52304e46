"""The numbers behind `/report` and the scheduled digests, computed in a handful of queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, case, or_
from sqlmodel import Session, col, func, select

from models.aftersale import AftersaleDigest, aftersale_digest
from models.config import Stage, TeamConfig
from models.leads import not_snoozed
from models.points import PointsLine, ranking
from models.tables import ApprovalStep, AuditEvent, FollowUp, Lead, Member, Quote
from models.targets import progress


@dataclass
class Period:
    kind: str  # today | week | month
    first_day: date
    last_day: date  # inclusive
    start: datetime  # UTC
    end: datetime  # UTC, exclusive


def period_of(kind: str, today: date, config: TeamConfig) -> Period:
    """The calendar day, Monday-based week or month containing `today`, in the team's timezone."""
    if kind == "week":
        first = today - timedelta(days=today.weekday())
        last = first + timedelta(days=6)
    elif kind == "month":
        first = today.replace(day=1)
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    else:
        kind, first, last = "today", today, today
    tz = config.tz
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return Period(kind=kind, first_day=first, last_day=last, start=start, end=end)


@dataclass
class RepLine:
    member: Member
    new_leads: int = 0
    followups: int = 0
    won: int = 0
    target: int | None = None
    month_won: int = 0  # won in the target's month: what the target is measured against, whatever the period


WON_STEP = Stage(key="won", zh="赢单", en="Won")


@dataclass
class FunnelStep:
    """Leads that reached at least this stage (or, last, were won), and the percent of those that
    reached the step before that went on to this one; None where the step before had none."""

    stage: Stage
    count: int
    conversion: int | None


@dataclass
class LateLead:
    lead: Lead
    owner: str
    days: int


@dataclass
class WaitingApproval:
    quote: Quote
    role: str
    since: datetime  # when its step began to wait; worded in working hours (models/timing.py)


@dataclass
class Digest:
    period: Period
    now: datetime  # the one moment every "late" and "waiting" figure is measured at
    new_leads: int = 0
    followups: int = 0
    quotes_requested: int = 0  # asked for in the period
    quotes_approved: int = 0  # decided in the period, whenever asked for
    quotes_rejected: int = 0
    won_count: int = 0
    won_amount: int = 0
    target_total: int = 0
    reps: list[RepLine] = field(default_factory=list)
    funnel: list[FunnelStep] = field(default_factory=list)
    overdue: list[LateLead] = field(default_factory=list)
    overdue_total: int = 0
    stuck: list[LateLead] = field(default_factory=list)
    stuck_total: int = 0
    waiting: list[WaitingApproval] = field(default_factory=list)  # the oldest first
    waiting_total: int = 0
    points: list[PointsLine] = field(default_factory=list)  # the week's process points
    aftersale: AftersaleDigest | None = None  # money collected, receivables, renewals, care


def build_digest(session: Session, *, team_id: int, config: TeamConfig, period: Period, now: datetime,
                 lead_filter: Any = None, member_ids: list[int] | None = None, top: int = 5) -> Digest:
    """Everything the digest shows; `lead_filter` narrows it to what a person may see or one rep.

    Activity (new leads, follow-ups, quotes asked) counts by who did it, so a rep's own report and
    the rep's line in the team's digest agree after leads change hands; with `member_ids` it
    counts only what those members did. Won deals count for their owner at the close.
    """
    today = now.astimezone(config.tz).date()
    scope_leads = [Lead.team_id == team_id] + ([lead_filter] if lead_filter is not None else [])
    digest = Digest(period=period, now=now)
    members = {m.id: m for m in session.exec(select(Member).where(Member.team_id == team_id))}

    def in_period(column: Any) -> Any:
        return and_(column >= period.start, column < period.end)

    creator = func.coalesce(Lead.created_by_id, Lead.owner_id)
    new_leads = (select(creator, func.count())
                 .where(Lead.team_id == team_id, in_period(Lead.created_at)))
    if member_ids is not None:
        new_leads = new_leads.where(creator.in_(member_ids))
    elif lead_filter is not None:
        new_leads = new_leads.where(lead_filter)
    new_by_owner = dict(session.exec(new_leads.group_by(creator)).all())
    digest.new_leads = sum(new_by_owner.values())
    # Rows carry their team: the period is read through the (team, time) indexes, and the leads
    # are consulted only when the digest is narrowed to some of them.
    followups = (select(FollowUp.author_id, func.count())
                 .where(FollowUp.team_id == team_id, in_period(FollowUp.created_at)))
    if member_ids is not None:
        followups = followups.where(col(FollowUp.author_id).in_(member_ids))
    elif lead_filter is not None:
        followups = followups.join(Lead, col(Lead.id) == FollowUp.lead_id).where(*scope_leads)
    followups_by_author = dict(session.exec(followups.group_by(col(FollowUp.author_id))).all())
    digest.followups = sum(followups_by_author.values())

    quote_scope = [Quote.team_id == team_id]
    if member_ids is not None:
        quote_scope.append(col(Quote.requester_id).in_(member_ids))
    elif lead_filter is not None:
        quote_scope.append(col(Quote.lead_id).in_(select(Lead.id).where(*scope_leads)))
    digest.quotes_requested = int(session.exec(select(func.count()).select_from(Quote)
                                               .where(*quote_scope, in_period(Quote.created_at))).one())
    decided = dict(session.exec(select(Quote.status, func.count()).where(*quote_scope, in_period(Quote.decided_at))
                                .group_by(col(Quote.status))).all())
    digest.quotes_approved = int(decided.get("approved", 0))
    digest.quotes_rejected = int(decided.get("rejected", 0))

    won_rows = session.exec(select(Lead.owner_id, func.count(), func.coalesce(func.sum(Lead.won_amount), 0))
                            .where(*scope_leads, Lead.status == "won", in_period(Lead.closed_at))
                            .group_by(col(Lead.owner_id))).all()
    won_by_owner = {owner: int(amount) for owner, _count, amount in won_rows}
    digest.won_count = sum(int(count) for _owner, count, _amount in won_rows)
    digest.won_amount = sum(won_by_owner.values())

    month = period.first_day.strftime("%Y-%m")
    month_rows = progress(session, team_id=team_id, month=month, tz=config.tz, member_ids=member_ids)
    targets = {p.member.id: p.target for p in month_rows}
    month_won = {p.member.id: p.won for p in month_rows}
    digest.target_total = sum(t for t in targets.values() if t) if period.kind == "month" else 0
    rep_ids = {i for i in (*new_by_owner, *followups_by_author, *won_by_owner, *targets) if i in members}
    if member_ids is not None:
        rep_ids &= set(member_ids)
    digest.reps = sorted(
        (RepLine(member=members[i], new_leads=int(new_by_owner.get(i, 0)),
                 followups=int(followups_by_author.get(i, 0)), won=won_by_owner.get(i, 0),
                 target=targets.get(i), month_won=month_won.get(i, 0)) for i in rep_ids),
        key=lambda r: (-r.won, -r.followups, r.member.name))

    digest.funnel = _funnel(session, scope_leads, config)
    _late_lists(session, digest, scope_leads, config, now, today, members, top)
    _waiting(session, digest, quote_scope, top)
    digest.aftersale = aftersale_digest(session, team_id=team_id, config=config, period=period,
                                        today=today, lead_filter=and_(*scope_leads), top=top)
    if period.kind == "week":  # the weekly digest ranks process points (models/points.py)
        digest.points = ranking(session, team_id=team_id, config=config, start=period.start,
                                end=period.end, member_ids=member_ids)
    return digest


def _funnel(session: Session, scope_leads: list[Any], config: TeamConfig) -> list[FunnelStep]:
    """How many of the leads in scope reached at least each stage, then how many were won.

    A lead reached its current stage and every stage it was ever in (its stage history), so a
    lead moved back still counts where it had been; a won deal counts as having passed every stage.
    """
    stages = config.stages
    index_of = {stage.key: index for index, stage in enumerate(stages)}
    furthest = dict.fromkeys(range(len(stages)), 0)  # leads whose furthest stage is this one
    won = 0
    rows = session.exec(select(Lead.stage, Lead.status, func.count()).where(*scope_leads)
                        .group_by(col(Lead.stage), col(Lead.status))).all()
    for stage_key, status, count in rows:
        if status == "won":
            won += int(count)
            furthest[len(stages) - 1] += int(count)
        else:
            furthest[index_of.get(stage_key, 0)] += int(count)
    # Only a move back leaves a lead short of where it had been: those few leads are looked up in
    # the stage history and counted at the furthest stage they left.
    before, after = AuditEvent.before["stage"].as_string(), AuditEvent.after["stage"].as_string()
    rank_before = case(index_of, value=before, else_=-1)
    rank_after = case(index_of, value=after, else_=-1)
    moved_back = session.exec(
        select(Lead.stage, func.max(rank_before))
        .join(AuditEvent, and_(AuditEvent.team_id == Lead.team_id, AuditEvent.entity == "lead",
                               AuditEvent.entity_id == Lead.id))
        .where(*scope_leads, Lead.status != "won", AuditEvent.action == "stage",
               rank_before > rank_after)
        .group_by(col(Lead.id), col(Lead.stage))).all()
    for stage_key, been in moved_back:
        now_at = index_of.get(stage_key, 0)
        if been is not None and int(been) > now_at:
            furthest[now_at] -= 1
            furthest[int(been)] += 1
    funnel: list[FunnelStep] = []
    reached = sum(furthest.values())
    for index, stage in enumerate(stages):
        previous = funnel[-1].count if funnel else None
        funnel.append(FunnelStep(stage=stage, count=reached,
                                 conversion=_percent(reached, previous)))
        reached -= furthest[index]
    funnel.append(FunnelStep(stage=WON_STEP, count=won, conversion=_percent(won, funnel[-1].count)))
    return funnel


def _percent(part: int, whole: int | None) -> int | None:
    """Whole percent, halves up (as every percentage the digest shows); None of nothing."""
    return (part * 200 + whole) // (whole * 2) if whole else None


def stuck_condition(config: TeamConfig, now: datetime) -> Any:
    """Open leads whose stage has not changed for that stage's stale-days."""
    per_stage = [and_(Lead.stage == stage.key,
                      col(Lead.stage_changed_at) < now - timedelta(days=config.stale_days_for(stage.key)))
                 for stage in config.stages]
    # Implied by the stages' own conditions; stated so an index reads only leads that old.
    least = min(config.stale_days_for(stage.key) for stage in config.stages)
    return and_(Lead.status == "open", col(Lead.stage_changed_at) < now - timedelta(days=least),
                or_(*per_stage))


def _late_lists(session: Session, digest: Digest, scope_leads: list[Any], config: TeamConfig, now: datetime,
                today: date, members: dict[Any, Member], top: int) -> None:
    def owner(lead: Lead) -> str:
        member = members.get(lead.owner_id)
        return member.name if member else "-"

    overdue = [*scope_leads, Lead.status == "open", col(Lead.next_followup_on) < today,
               not_snoozed(today)]
    digest.overdue_total = int(session.exec(select(func.count()).select_from(Lead).where(*overdue)).one())
    digest.overdue = [LateLead(lead=lead, owner=owner(lead), days=(today - lead.next_followup_on).days)
                      for lead in session.exec(select(Lead).where(*overdue)
                                               .order_by(col(Lead.next_followup_on), col(Lead.number)).limit(top))
                      if lead.next_followup_on]
    stuck = [*scope_leads, stuck_condition(config, now)]
    digest.stuck_total = int(session.exec(select(func.count()).select_from(Lead).where(*stuck)).one())
    digest.stuck = [LateLead(lead=lead, owner=owner(lead), days=(now - lead.stage_changed_at).days)
                    for lead in session.exec(select(Lead).where(*stuck)
                                             .order_by(col(Lead.stage_changed_at), col(Lead.number)).limit(top))]


def _waiting(session: Session, digest: Digest, quote_scope: list[Any], top: int) -> None:
    waiting = [*quote_scope, Quote.status == "pending", ApprovalStep.status == "waiting"]
    digest.waiting_total = int(session.exec(
        select(func.count()).select_from(Quote).join(ApprovalStep, col(ApprovalStep.quote_id) == Quote.id)
        .where(*waiting)).one())
    rows = session.exec(select(Quote, ApprovalStep).join(ApprovalStep, col(ApprovalStep.quote_id) == Quote.id)
                        .where(*waiting).order_by(col(ApprovalStep.waiting_since)).limit(top)).all()
    digest.waiting = [WaitingApproval(quote=quote, role=step.role,
                                      since=step.waiting_since or digest.now)
                      for quote, step in rows]
