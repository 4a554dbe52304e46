"""Quotes and their approval: the team's policy decides who must sign, level by level."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import update
from sqlmodel import Session, col, select

from models import audit
from models.config import ROLE_RANK, ApprovalPolicy
from models.errors import DomainError
from models.permissions import can_see, rank, require_change
from models.scope import Scope
from models.tables import ApprovalStep, Lead, Member, Quote
from models.leads import guarded_update
from models.teams import next_number


def levels_needed(policy: ApprovalPolicy, amount: Decimal, discount_pct: Decimal) -> int:
    """How many approval levels a quote needs: 0 means approved automatically.

    Below `auto_below` nothing is needed; otherwise the first level whose limit covers the amount.
    A discount above `discount_raise_pct` raises the need by one level, up to the top level.
    """
    if amount < policy.auto_below:
        level = 0
    else:
        level = len(policy.levels)
        for index, step in enumerate(policy.levels, start=1):
            if step.up_to is None or amount <= step.up_to:
                level = index
                break
    if discount_pct > policy.discount_raise_pct:
        level += 1
    return min(level, len(policy.levels))


@dataclass
class Decision:
    quote: Quote
    approved_levels: list[int]
    finished: bool  # the quote reached its final status with this decision
    next_step: ApprovalStep | None


def create_quote(scope: Scope, lead: Lead, *, amount: int, discount_bp: int, note: str | None) -> tuple[Quote, list[ApprovalStep]]:
    require_change(scope.session, scope.actor, lead)
    if lead.status != "open":
        raise DomainError("lead.closed", lead=lead.number, status=lead.status)
    if amount <= 0:
        raise DomainError("quote.amount_positive")
    if not 0 <= discount_bp <= 10_000:
        raise DomainError("quote.bad_discount")
    policy = scope.config.approval
    needed = levels_needed(policy, Decimal(amount) / 100, Decimal(discount_bp) / 100)
    quote = Quote(team_id=scope.team.id or 0, number=next_number(scope.session, scope.team, "quote"),
                  lead_id=lead.id or 0, requester_id=scope.actor.id or 0, amount=amount,
                  discount_bp=discount_bp, note=note, levels_required=needed,
                  current_level=1 if needed else 0, status="pending" if needed else "approved",
                  decided_at=None if needed else scope.now, created_at=scope.now)
    scope.session.add(quote)
    scope.session.flush()
    steps = []
    for level in range(1, needed + 1):
        step = ApprovalStep(quote_id=quote.id or 0, level=level, role=policy.levels[level - 1].role,
                            status="waiting" if level == 1 else "queued",
                            waiting_since=scope.now if level == 1 else None)
        scope.session.add(step)
        steps.append(step)
    # Still open at this moment, or no quote: a quote racing `/lead lost` must not land on a lost lead.
    guarded_update(scope, lead, action="quote", extra_where=Lead.status == "open", same_version=False,
                   last_activity_at=scope.now)
    audit.record(scope, entity="quote", entity_id=quote.id or 0, action="create",
                 after={"lead": lead.number, "amount": amount, "discount_bp": discount_bp,
                        "levels": needed, "status": quote.status})
    sign_unattended(scope, quote)
    return quote, [step for step in steps if step.status in ("waiting", "queued")]


def get_quote(scope: Scope, number: int) -> Quote:
    quote = scope.session.exec(select(Quote).where(Quote.team_id == scope.team.id, Quote.number == number)).first()
    if quote is None:
        raise DomainError("quote.not_found", quote=number)
    return quote


def steps_of(session: Session, quote: Quote) -> list[ApprovalStep]:
    return list(session.exec(select(ApprovalStep).where(ApprovalStep.quote_id == quote.id)
                             .order_by(col(ApprovalStep.level))))


def current_step(session: Session, quote: Quote) -> ApprovalStep | None:
    if quote.status != "pending":
        return None
    return session.exec(select(ApprovalStep).where(ApprovalStep.quote_id == quote.id,
                                                   ApprovalStep.level == quote.current_level)).first()


def approvers_for(session: Session, quote: Quote, step: ApprovalStep) -> list[Member]:
    """Who is asked to decide a step: the requester's own manager when that fits the level,
    otherwise every member of the step's role (and, if the team has none, every admin)."""
    requester = session.get(Member, quote.requester_id)
    needed = ROLE_RANK[step.role]
    if requester and requester.manager_id and step.role == "manager":
        manager = session.get(Member, requester.manager_id)
        if manager and rank(manager) >= needed and manager.id != quote.requester_id:
            return [manager]
    team_members = list(session.exec(select(Member).where(Member.team_id == quote.team_id).order_by(col(Member.id))))
    exact = [m for m in team_members if m.role == step.role and m.id != quote.requester_id]
    if exact:
        return exact
    return [m for m in team_members if rank(m) >= needed and m.id != quote.requester_id]


def decide(scope: Scope, quote: Quote, *, approve: bool, note: str | None) -> Decision:
    """Approve or reject the step waiting on a quote. Final; exactly one of two racing deciders wins.

    An approver whose role also covers the levels after the current one signs those too, so a boss
    never has to approve the same quote twice.
    """
    session = scope.session
    if quote.status != "pending":
        raise DomainError("quote.already_decided", quote=quote)
    if quote.requester_id == scope.actor.id:
        raise DomainError("quote.own")
    step = current_step(session, quote)
    assert step is not None
    if rank(scope.actor) < ROLE_RANK["manager"]:
        raise DomainError("quote.reps_cannot_decide")
    if rank(scope.actor) < ROLE_RANK[step.role]:
        raise DomainError("quote.level_too_low", quote=quote.number, role=step.role)
    if not may_decide(session, scope.actor, quote, step):
        asked = ", ".join(member.name for member in approvers_for(session, quote, step))
        raise DomainError("quote.not_your_approval", quote=quote.number, approvers=asked)
    steps = steps_of(session, quote)
    later = [s for s in steps if s.level > step.level]
    if approve:
        signed = [step] + _covered(scope.actor, later)
        remaining = [s for s in later if s not in signed]
        status = "pending" if remaining else "approved"
        next_level = remaining[0].level if remaining else 0
    else:
        signed, remaining = [step], []
        status, next_level = "rejected", 0
    final = status != "pending"
    result = session.execute(
        update(Quote).where(col(Quote.id) == quote.id, Quote.version == quote.version, Quote.status == "pending")
        .values(status=status, current_level=next_level, version=quote.version + 1,
                decided_by_id=scope.actor.id if final else None,
                decided_at=scope.now if final else None,
                decision_note=note if final else None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(quote)
        if quote.status != "pending":
            raise DomainError("quote.already_decided", quote=quote)
        raise DomainError("quote.changed", quote=quote.number)
    session.refresh(quote)
    for signed_step in signed:
        signed_step.status = "approved" if approve else "rejected"
        signed_step.decided_by_id = scope.actor.id
        signed_step.decided_at = scope.now
        signed_step.note = note
        session.add(signed_step)
    if not approve:
        for skipped in later:
            skipped.status = "skipped"
            session.add(skipped)
    next_step = None
    if remaining:
        next_step = remaining[0]
        next_step.status = "waiting"
        next_step.waiting_since = scope.now
        session.add(next_step)
    session.flush()
    audit.record(scope, entity="quote", entity_id=quote.id or 0, action="approve" if approve else "reject",
                 before={"status": "pending", "level": step.level},
                 after={"status": status, "levels": [s.level for s in signed], "note": note})
    if next_step is not None and sign_unattended(scope, quote):
        next_step = current_step(session, quote)
        final = quote.status != "pending"
    return Decision(quote=quote, approved_levels=[s.level for s in signed] if approve else [],
                    finished=final, next_step=next_step)


def may_decide(session: Session, actor: Member, quote: Quote, step: ApprovalStep) -> bool:
    """Those asked decide; so does anyone above the step's role, or of its role overseeing the lead.
    A manager of another team's reps cannot approve a quote only their manager was asked about."""
    if rank(actor) > ROLE_RANK[step.role]:
        return True
    if any(member.id == actor.id for member in approvers_for(session, quote, step)):
        return True
    lead = session.get(Lead, quote.lead_id)
    requester = session.get(Member, quote.requester_id)
    return lead is not None and can_see(session, actor, lead) and lead.owner_id != actor.id and (
        requester is None or requester.manager_id in (None, actor.id))


def sign_unattended(scope: Scope, quote: Quote) -> list[ApprovalStep]:
    """Steps nobody but the requester could decide (a one-admin team's own big quote) are signed on
    the requester's authority, so no quote waits forever for an approver who does not exist."""
    session = scope.session
    signed = []
    while quote.status == "pending":
        step = current_step(session, quote)
        if step is None or approvers_for(session, quote, step):
            break
        step.status, step.decided_by_id, step.decided_at = "approved", quote.requester_id, scope.now
        step.note = "no other approver"
        session.add(step)
        later = [s for s in steps_of(session, quote) if s.level > step.level]
        if later:
            quote.current_level = later[0].level
            later[0].status, later[0].waiting_since = "waiting", scope.now
            session.add(later[0])
        else:
            quote.status, quote.current_level = "approved", 0
            quote.decided_by_id, quote.decided_at, quote.decision_note = quote.requester_id, scope.now, step.note
        quote.version += 1
        session.add(quote)
        session.flush()
        signed.append(step)
        audit.record(scope, entity="quote", entity_id=quote.id or 0, action="approve",
                     before={"status": "pending", "level": step.level},
                     after={"status": quote.status, "levels": [step.level], "note": step.note})
    return signed


def _covered(actor: Member, later: list[ApprovalStep]) -> list[ApprovalStep]:
    covered = []
    for step in later:
        if rank(actor) < ROLE_RANK[step.role]:
            break
        covered.append(step)
    return covered


def list_quotes(scope: Scope, *, pending_only: bool, limit: int = 20) -> list[Quote]:
    """Quotes the actor asked for, plus, for approvers, those they may decide or oversee."""
    session = scope.session
    query = select(Quote).where(Quote.team_id == scope.team.id)
    if pending_only:
        query = query.where(Quote.status == "pending")
    quotes = list(session.exec(query.order_by(col(Quote.number).desc()).limit(500)))
    actor = scope.actor
    visible = []
    for quote in quotes:
        if actor.id in (quote.requester_id, quote.decided_by_id):
            visible.append(quote)
        elif rank(actor) >= ROLE_RANK["manager"]:
            step = current_step(session, quote)
            lead = session.get(Lead, quote.lead_id)
            if (step and rank(actor) >= ROLE_RANK[step.role]) or (lead and can_see(session, actor, lead)):
                visible.append(quote)
        if len(visible) >= limit:
            break
    return visible


def waiting_for(scope: Scope, limit: int = 10) -> list[Quote]:
    """Pending quotes the actor is asked to decide now."""
    session = scope.session
    rows = session.exec(select(Quote, ApprovalStep).join(ApprovalStep, col(ApprovalStep.quote_id) == Quote.id)
                        .where(Quote.team_id == scope.team.id, Quote.status == "pending",
                               ApprovalStep.status == "waiting", Quote.requester_id != scope.actor.id)
                        .order_by(col(ApprovalStep.waiting_since))).all()
    mine = [quote for quote, step in rows
            if any(member.id == scope.actor.id for member in approvers_for(session, quote, step))]
    return mine[:limit]
