"""Quotes and their approval: the team's policy decides who must sign, level by level."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import update
from sqlmodel import Session, col, select

from models import audit, teamwork
from models.config import ROLE_RANK, ApprovalPolicy
from models.errors import DomainError
from models.leads import guarded_update
from models.permissions import can_see, rank, require_change
from models.scope import Scope
from models.tables import ApprovalStep, Lead, Member, Quote
from models.teams import next_number
from models.teamwork import ApprovalSignature, Asked


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
    approved_levels: list[int]  # levels this decision completed
    finished: bool  # the quote reached its final status with this decision
    next_step: ApprovalStep | None  # the step waiting now (the same one while it needs more signatures)
    principal: Member | None = None  # whose authority decided: the actor, or the one they stand in for
    signed: int = 1  # approvals the signed step has now
    needed: int = 1  # approvals that step needs


class _Raced(Exception):
    """Another decision on the same quote landed first; look again and decide anew."""


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
        rule = policy.levels[level - 1]
        step = ApprovalStep(quote_id=quote.id or 0, level=level, role=rule.role, needed=rule.approvers,
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


def visible_quote(scope: Scope, number: int) -> Quote:
    """A quote the actor may look at: theirs, one on a lead they see, one they signed or may decide."""
    quote = get_quote(scope, number)
    session, actor = scope.session, scope.actor
    if actor.id in (quote.requester_id, quote.decided_by_id) or rank(actor) >= ROLE_RANK["admin"]:
        return quote
    lead = session.get(Lead, quote.lead_id)
    if lead is not None and can_see(session, actor, lead):
        return quote
    if any(actor.id in (s.member_id, s.principal_id) for s in quote_signatures(session, quote)):
        return quote
    step = current_step(session, quote)
    if step is not None and authority_for(session, actor, quote, step, scope.today) is not None:
        return quote
    raise DomainError("quote.not_visible", quote=number)


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
    otherwise every member of the step's role (and, if the team has none, every admin). A step that
    needs several signatures asks every member of its role, the requester's manager first, and
    people above the role when its own members are too few."""
    requester = session.get(Member, quote.requester_id)
    needed = ROLE_RANK[step.role]
    manager = session.get(Member, requester.manager_id) if requester and requester.manager_id else None
    if manager is not None and (rank(manager) < needed or manager.id == quote.requester_id):
        manager = None
    if step.needed <= 1 and manager is not None and step.role == "manager":
        return [manager]
    team_members = list(session.exec(select(Member).where(Member.team_id == quote.team_id).order_by(col(Member.id))))
    exact = [m for m in team_members if m.role == step.role and m.id != quote.requester_id]
    if step.needed <= 1:
        return exact or [m for m in team_members if rank(m) >= needed and m.id != quote.requester_id]
    first = [manager] if manager is not None and manager in exact else []
    people = first + [m for m in exact if m not in first]
    if len(people) < step.needed:
        people += [m for m in team_members if rank(m) > needed and m.id != quote.requester_id]
    return people


def signatures_of(session: Session, step: ApprovalStep) -> list[ApprovalSignature]:
    return list(session.exec(select(ApprovalSignature).where(ApprovalSignature.step_id == step.id)
                             .order_by(col(ApprovalSignature.id))))


def quote_signatures(session: Session, quote: Quote) -> list[ApprovalSignature]:
    return list(session.exec(select(ApprovalSignature).where(ApprovalSignature.quote_id == quote.id)
                             .order_by(col(ApprovalSignature.id))))


def needed_now(session: Session, quote: Quote, step: ApprovalStep) -> int:
    """Signatures a step needs in all: its rule, but never more than there are people who may sign."""
    if step.needed <= 1:
        return 1
    eligible = session.exec(select(Member.id).where(Member.team_id == quote.team_id, Member.id != quote.requester_id,
                                                    col(Member.role).in_(_roles_from(step.role)))).all()
    return max(1, min(step.needed, len(eligible)))


def _roles_from(role: str) -> list[str]:
    return [name for name, value in ROLE_RANK.items() if value >= ROLE_RANK[role]]


def asked_for(session: Session, quote: Quote, step: ApprovalStep, day: date) -> list[Asked]:
    """Who to push about a step on `day`: its approvers who have not signed yet, silent approvers
    only when the others are too few, each routed to their delegate while one is set."""
    signatures = signatures_of(session, step)
    done = {s.principal_id for s in signatures} | {s.member_id for s in signatures}
    principals = [m for m in approvers_for(session, quote, step) if m.id not in done]
    missing = needed_now(session, quote, step) - sum(1 for s in signatures if s.decision == "approve")
    prefs = teamwork.prefs_for(session, [m.id or 0 for m in principals])
    loud = [m for m in principals if not prefs[m.id or 0].silent]
    if len(loud) >= max(missing, 1):
        principals = loud
    return teamwork.route(session, principals, day, never={quote.requester_id, *done})


def authority_for(session: Session, actor: Member, quote: Quote, step: ApprovalStep, day: date) -> Member | None:
    """Whose authority `actor` decides `step` with: their own, else that of someone they stand in for."""
    if actor.id == quote.requester_id:
        return None
    for who in [actor, *teamwork.principals_of(session, actor, day)]:
        if who.id != quote.requester_id and rank(who) >= ROLE_RANK[step.role] and may_decide(session, who, quote, step):
            return who
    return None


def decide(scope: Scope, quote: Quote, *, approve: bool, note: str | None) -> Decision:
    """Approve or reject the step waiting on a quote. Final; exactly one of two racing deciders wins.

    A level may need several people's signatures; each counts once, whether its owner or their
    delegate clicked. An approver whose role also covers the levels after the current one signs those
    too, so a boss never has to approve the same quote twice.
    """
    for _attempt in range(3):
        try:
            return _decide(scope, quote, approve=approve, note=note)
        except _Raced:
            # Another signature on this quote landed first (Postgres): read it all again.
            scope.session.flush()
            scope.session.expire_all()
            scope.session.refresh(quote)
    raise DomainError("quote.changed", quote=quote.number)


def _decide(scope: Scope, quote: Quote, *, approve: bool, note: str | None) -> Decision:
    session, actor = scope.session, scope.actor
    if quote.status != "pending":
        raise DomainError("quote.already_decided", quote=quote)
    if quote.requester_id == actor.id:
        raise DomainError("quote.own")
    step = current_step(session, quote)
    assert step is not None
    principal = authority_for(session, actor, quote, step, scope.today)
    if principal is None:
        if rank(actor) < ROLE_RANK["manager"]:
            raise DomainError("quote.reps_cannot_decide")
        if rank(actor) < ROLE_RANK[step.role]:
            raise DomainError("quote.level_too_low", quote=quote.number, role=step.role)
        asked = ", ".join(member.name for member in approvers_for(session, quote, step))
        raise DomainError("quote.not_your_approval", quote=quote.number, approvers=asked)
    signatures = signatures_of(session, step)
    mine = next((s for s in signatures if s.principal_id == principal.id or s.member_id == actor.id), None)
    if mine is not None:
        session.refresh(quote)  # the quote we read may predate that signature (Postgres)
        if quote.status != "pending":
            raise DomainError("quote.already_decided", quote=quote)
        raise DomainError("quote.already_signed", quote=quote, signature=mine,
                          missing=needed_now(session, quote, step) - len(signatures))
    steps = steps_of(session, quote)
    signed_count = sum(1 for s in signatures if s.decision == "approve") + 1
    needed = needed_now(session, quote, step)
    plan: list[tuple[ApprovalStep, bool]] = []  # each level this signature goes on, and whether it completes it
    if approve:
        plan.append((step, signed_count >= needed))
        if signed_count >= needed:
            for later in (s for s in steps if s.level > step.level):
                if rank(principal) < ROLE_RANK[later.role]:
                    break
                completes = needed_now(session, quote, later) <= 1
                plan.append((later, completes))
                if not completes:
                    break
        completed = {s.id for s, completes in plan if completes}
        remaining = [s for s in steps if s.level >= step.level and s.id not in completed]
        status = "pending" if remaining else "approved"
    else:
        plan, remaining, status = [(step, True)], [], "rejected"
    final = status != "pending"
    result = session.execute(
        update(Quote).where(col(Quote.id) == quote.id, Quote.version == quote.version, Quote.status == "pending")
        .values(status=status, current_level=remaining[0].level if remaining else 0, version=quote.version + 1,
                decided_by_id=actor.id if final else None,
                decided_at=scope.now if final else None,
                decision_note=note if final else None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        session.refresh(quote)
        if quote.status != "pending":
            raise DomainError("quote.already_decided", quote=quote)
        raise _Raced
    session.refresh(quote)
    for signed_step, completes in plan:
        session.add(ApprovalSignature(quote_id=quote.id or 0, step_id=signed_step.id or 0, member_id=actor.id or 0,
                                      principal_id=principal.id or 0, decision="approve" if approve else "reject",
                                      note=note, at=scope.now))
        if completes:
            signed_step.status = "approved" if approve else "rejected"
            signed_step.decided_by_id = actor.id
            signed_step.decided_at = scope.now
            signed_step.note = note
            session.add(signed_step)
    if not approve:
        for skipped in (s for s in steps if s.level > step.level):
            skipped.status = "skipped"
            session.add(skipped)
    next_step = None
    if remaining:
        next_step = remaining[0]
        if next_step.status != "waiting":
            next_step.status = "waiting"
            next_step.waiting_since = scope.now
            session.add(next_step)
    session.flush()
    levels = [s.level for s, completes in plan if completes]
    after: dict[str, object] = {"status": status, "levels": levels, "note": note}
    if principal.id != actor.id:
        after["for"] = principal.name
    if needed > 1:
        after["signed"], after["needed"] = signed_count, needed
    audit.record(scope, entity="quote", entity_id=quote.id or 0, action="approve" if approve else "reject",
                 before={"status": "pending", "level": step.level}, after=after)
    if next_step is not None and sign_unattended(scope, quote):
        next_step = current_step(session, quote)
        final = quote.status != "pending"
    return Decision(quote=quote, approved_levels=levels if approve else [], finished=final, next_step=next_step,
                    principal=principal, signed=signed_count, needed=needed)


def may_decide(session: Session, actor: Member, quote: Quote, step: ApprovalStep) -> bool:
    """Those asked decide; so does anyone above the step's role, or of its role overseeing the lead.
    A manager of another team's reps cannot approve a quote only their manager was asked about.
    A level needing several signatures takes them from anyone of its role or above."""
    if rank(actor) > ROLE_RANK[step.role]:
        return True
    if step.needed > 1 and rank(actor) >= ROLE_RANK[step.role]:
        return True
    if any(member.id == actor.id for member in approvers_for(session, quote, step)):
        return True
    lead = session.get(Lead, quote.lead_id)
    requester = session.get(Member, quote.requester_id)
    return lead is not None and can_see(session, actor, lead) and lead.owner_id != actor.id and (
        requester is None or requester.manager_id in (None, actor.id))


def final_signature(session: Session, quote: Quote) -> ApprovalSignature | None:
    """The signature that settled a decided quote (None when it was approved without one)."""
    if quote.decided_by_id is None:
        return None
    return session.exec(select(ApprovalSignature).where(ApprovalSignature.quote_id == quote.id,
                                                        ApprovalSignature.member_id == quote.decided_by_id)
                        .order_by(col(ApprovalSignature.id).desc()).limit(1)).first()


def sign_unattended(scope: Scope, quote: Quote) -> list[ApprovalStep]:
    """Steps nobody but the requester could decide, and that the requester's own role covers (a
    one-admin team's own big quote), are signed on the requester's authority, so such a quote never
    waits for an approver who cannot exist. A step above the requester's role is never signed this
    way: it waits for someone who may decide it (see `unasked_steps`)."""
    session = scope.session
    requester = session.get(Member, quote.requester_id)
    signed = []
    while quote.status == "pending":
        step = current_step(session, quote)
        if step is None or approvers_for(session, quote, step):
            break
        if requester is None or rank(requester) < ROLE_RANK[step.role]:
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


def unasked_steps(session: Session, team_id: int) -> list[tuple[Quote, ApprovalStep]]:
    """Steps waiting with nobody ever asked to decide them (nobody could, when they began to wait):
    no approval card was sent or held for them. They go to whoever may decide them once that
    person exists."""
    rows = session.exec(select(Quote, ApprovalStep)
                        .join(ApprovalStep, col(ApprovalStep.quote_id) == Quote.id)
                        .where(Quote.team_id == team_id, Quote.status == "pending",
                               ApprovalStep.status == "waiting",
                               ApprovalStep.level == Quote.current_level)
                        .order_by(col(Quote.number))).all()
    return [(quote, step) for quote, step in rows if not teamwork.ever_delivered(
        session, team_id=team_id, prefix=f"approval:{quote.id}:{step.level}:")]


# Why a pending quote was withdrawn: what happened to its lead.
WITHDRAWN_BECAUSE = ("won", "lost", "forgotten", "released", "pool")


def settle_lead(session: Session, lead: Lead, *, because: str, now: datetime,
                actor_id: int | None) -> list[Quote]:
    """What hangs on a lead that is closed (won, lost, forgotten) or handed to the pool: its pending
    quotes are withdrawn — nobody is asked about them any more, and deciding one answers why — and
    its open transfer request is closed. Approved and rejected quotes stay as they are."""
    assert because in WITHDRAWN_BECAUSE
    pending = list(session.exec(select(Quote)
                                .where(Quote.lead_id == lead.id, Quote.status == "pending")
                                .order_by(col(Quote.number))))
    withdrawn = []
    for quote in pending:
        result = session.execute(
            update(Quote).where(col(Quote.id) == quote.id, Quote.status == "pending")
            .values(status="withdrawn", decided_at=now, decided_by_id=actor_id,
                    decision_note=f"lead:{because}", version=Quote.version + 1)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            continue  # decided a moment ago: that decision stands
        session.refresh(quote)
        session.execute(update(ApprovalStep)
                        .where(col(ApprovalStep.quote_id) == quote.id,
                               col(ApprovalStep.status).in_(("waiting", "queued")))
                        .values(status="withdrawn").execution_options(synchronize_session=False))
        teamwork.drop_held(session, prefix=f"approval:{quote.id}:")
        audit.record_event(session, team_id=quote.team_id, actor_id=actor_id, at=now,
                           entity="quote", entity_id=quote.id or 0, action="withdraw",
                           before={"status": "pending"},
                           after={"status": "withdrawn", "because": because, "lead": lead.number})
        withdrawn.append(quote)
    teamwork.close_transfers(session, lead, because=because, now=now, actor_id=actor_id)
    return withdrawn


def withdrawn_because(quote: Quote) -> str | None:
    """What happened to the lead that withdrew this quote (won, lost, …); None if it was not."""
    if quote.status != "withdrawn" or not quote.decision_note:
        return None
    return quote.decision_note.removeprefix("lead:")


def settled_now(session: Session, lead: Lead, now: datetime, day: date, *,
                actor_id: int | None = None) -> list[tuple[Quote, list[Member]]]:
    """The quotes of `lead` withdrawn at `now`, each with whom to tell: those who had been asked to
    decide it and its requester, save the one who withdrew it by closing the lead."""
    found = []
    query = (select(Quote).where(Quote.lead_id == lead.id, Quote.status == "withdrawn",
                                 Quote.decided_at == now).order_by(col(Quote.number)))
    for quote in session.exec(query):
        step = session.exec(select(ApprovalStep).where(
            ApprovalStep.quote_id == quote.id, ApprovalStep.level == quote.current_level)).first()
        asked = asked_for(session, quote, step, day) if step is not None else []
        people = {one.member.id: one.member for one in asked}
        requester = session.get(Member, quote.requester_id)
        if requester is not None:
            people[requester.id] = requester
        people.pop(actor_id, None)
        found.append((quote, list(people.values())))
    return found


def list_quotes(scope: Scope, *, pending_only: bool, limit: int = 20) -> list[Quote]:
    """Quotes the actor asked for, plus, for approvers, those they may decide or oversee."""
    session = scope.session
    query = select(Quote).where(Quote.team_id == scope.team.id)
    if pending_only:
        query = query.where(Quote.status == "pending")
    quotes = list(session.exec(query.order_by(col(Quote.number).desc()).limit(500)))
    actor = scope.actor
    stands_in = bool(teamwork.principals_of(session, actor, scope.today))
    visible = []
    for quote in quotes:
        if actor.id in (quote.requester_id, quote.decided_by_id):
            visible.append(quote)
        elif rank(actor) >= ROLE_RANK["manager"]:
            step = current_step(session, quote)
            lead = session.get(Lead, quote.lead_id)
            if (step and rank(actor) >= ROLE_RANK[step.role]) or (lead and can_see(session, actor, lead)):
                visible.append(quote)
        elif stands_in and quote.status == "pending":
            step = current_step(session, quote)
            if step and authority_for(session, actor, quote, step, scope.today):
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
    actor, day = scope.actor, scope.today
    mine = []
    for quote, step in rows:
        asked = [a.member.id for a in asked_for(session, quote, step, day)]
        # A silent approver is not pushed, but still finds here what they may decide.
        if actor.id in asked or (any(m.id == actor.id for m in approvers_for(session, quote, step))
                                 and not any(s.principal_id == actor.id for s in signatures_of(session, step))):
            mine.append(quote)
        if len(mine) >= limit:
            break
    return mine
