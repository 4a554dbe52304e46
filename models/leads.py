"""Leads: registering with a duplicate check, listing, moving along the pipeline, ownership, closing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, func, or_, select

from models import audit, teamwork
from models.config import ROLE_RANK, Stage
from models.errors import DomainError
from models.horizon import require_plannable
from models.normalize import normalize_company, normalize_email, normalize_phone
from models.permissions import rank, require_change, require_role, require_see, visible_leads
from models.scope import Scope
from models.tables import FollowUp, Lead, Member, Quote
from models.teams import lock_team, next_number

EDITABLE = ("name", "company", "contact", "phone", "email", "source", "tag", "value")


@dataclass
class NewLead:
    name: str
    company: str | None = None
    contact: str | None = None
    phone: str | None = None
    email: str | None = None
    source: str | None = None
    tag: str | None = None
    value: int | None = None  # minor units


def find_duplicates(session: Session, *, team_id: int, phone: str | None, email: str | None,
                    company: str | None) -> list[Lead]:
    """Leads of the team that share a normalised phone, e-mail or company (撞单)."""
    conditions = []
    if phone:
        conditions.append(Lead.norm_phone == phone)
    if email:
        conditions.append(Lead.norm_email == email)
    if company:
        conditions.append(Lead.norm_company == company)
    if not conditions:
        return []
    query = select(Lead).where(Lead.team_id == team_id, or_(*conditions)).order_by(col(Lead.number)).limit(5)
    return list(session.exec(query))


def add_lead(scope: Scope, data: NewLead, *, owner: Member | None, to_pool: bool = False,
             force: bool = False, rule: str | None = None) -> tuple[Lead, list[Lead]]:
    """Register a lead; refuses a likely duplicate unless `force` (then it is added and noted).
    `rule` names the assignment rule that chose the owner, for the audit trail."""
    norm_phone = normalize_phone(data.phone)
    norm_email = normalize_email(data.email)
    norm_company = normalize_company(data.company or data.name)
    # Two reps adding one customer at once: the second waits here, then finds the first's lead.
    lock_team(scope.session, scope.team)
    duplicates = find_duplicates(scope.session, team_id=scope.team.id or 0, phone=norm_phone,
                                 email=norm_email, company=norm_company)
    if duplicates and not force:
        raise DomainError("lead.duplicate", lead=duplicates[0])
    first_stage = scope.config.stages[0]
    lead = Lead(
        team_id=scope.team.id or 0,
        number=next_number(scope.session, scope.team, "lead"),
        name=data.name, company=data.company, contact=data.contact, phone=data.phone,
        email=data.email, source=data.source, tag=data.tag, value=data.value,
        norm_phone=norm_phone, norm_email=norm_email, norm_company=norm_company,
        owner_id=None if to_pool else (owner.id if owner else scope.actor.id),
        created_by_id=scope.actor.id,
        stage=first_stage.key,
        last_activity_at=scope.now, stage_changed_at=scope.now, created_at=scope.now,
    )
    scope.session.add(lead)
    scope.session.flush()
    audit.record(scope, entity="lead", entity_id=lead.id or 0, action="add", after=_snapshot(lead)
                 | ({"duplicate_of": [d.number for d in duplicates]} if duplicates else {})
                 | ({"assignment": rule} if rule else {}))
    return lead, duplicates


def auto_owner(scope: Scope) -> tuple[Member | None, bool, str | None]:
    """Who owns a lead the actor adds without naming an owner: (owner, to_pool, rule).

    Reps own what they add. For managers and admins the team's rule decides: `manual` (they own it),
    `pool`, `least_loaded` or `round_robin` among their reps (else the team's reps)."""
    rule = scope.config.assignment
    if rank(scope.actor) < ROLE_RANK["manager"] or rule == "manual":
        return None, False, None
    if rule == "pool":
        return None, True, rule
    # Two managers adding at once must not both hand the same turn out.
    lock_team(scope.session, scope.team)
    if rule == "least_loaded":
        return pick_owner_by_balance(scope.session, scope.team.id or 0, scope.actor), False, rule
    reps = _reps_of(scope.session, scope.team.id or 0, scope.actor)
    if not reps:
        return None, False, rule
    return teamwork.next_in_turn(scope, scope.actor, reps), False, rule


def _reps_of(session: Session, team_id: int, manager: Member) -> list[Member]:
    reps = list(session.exec(select(Member).where(Member.team_id == team_id, Member.role == "rep")))
    return [rep for rep in reps if rep.manager_id == manager.id] or reps


def pick_owner_by_balance(session: Session, team_id: int, manager: Member) -> Member:
    """The rep (of this manager, else of the team) with the fewest open leads; the manager if none."""
    own = _reps_of(session, team_id, manager)
    if not own:
        return manager
    counts = dict(session.exec(
        select(Lead.owner_id, func.count()).where(Lead.team_id == team_id, Lead.status == "open",
                                                  col(Lead.owner_id).in_([r.id for r in own]))
        .group_by(col(Lead.owner_id))
    ).all())
    return min(own, key=lambda rep: (counts.get(rep.id, 0), rep.id))


def get_lead(scope: Scope, number: int) -> Lead:
    lead = scope.session.exec(select(Lead).where(Lead.team_id == scope.team.id, Lead.number == number)).first()
    if lead is None:
        raise DomainError("lead.not_found", lead=number)
    return lead


def visible_lead(scope: Scope, number: int) -> Lead:
    lead = get_lead(scope, number)
    require_see(scope.session, scope.actor, lead)
    return lead


def changeable_lead(scope: Scope, number: int) -> Lead:
    lead = get_lead(scope, number)
    require_change(scope.session, scope.actor, lead)
    return lead


def not_snoozed(today: date) -> Any:
    """Leads not snoozed on `today`: a snooze quiets the nudges and the overdue lists alike.
    `snoozed_until` is the day they come back, so a week's snooze is quiet for seven days."""
    return or_(col(Lead.snoozed_until).is_(None), col(Lead.snoozed_until) <= today)


def list_leads(scope: Scope, *, which: str, stage: str | None, page: int) -> tuple[list[Lead], int]:
    """One page of what the actor may see, newest activity first, and the total count."""
    conditions: list[Any] = [visible_leads(scope.actor)]
    if which == "mine":
        conditions.append(Lead.owner_id == scope.actor.id)
    elif which == "pool":
        conditions.append(col(Lead.owner_id).is_(None))
    if which == "overdue":
        conditions += [Lead.status == "open", col(Lead.next_followup_on) < scope.today,
                       not_snoozed(scope.today)]
    elif which in ("mine", "pool", "team"):
        conditions.append(Lead.status == "open")
    elif which == "won":
        conditions.append(Lead.status == "won")
    elif which == "lost":
        conditions.append(Lead.status == "lost")
    if stage:
        conditions += [Lead.stage == stage, Lead.status == "open"]
    size = scope.config.page_size
    total = int(scope.session.exec(select(func.count()).select_from(Lead).where(*conditions)).one())
    query = (select(Lead).where(*conditions)
             .order_by(col(Lead.last_activity_at).desc(), col(Lead.number).desc())
             .offset((page - 1) * size).limit(size))
    return list(scope.session.exec(query)), total


def guarded_update(scope: Scope, lead: Lead, *, action: str, conflict: str = "lead.changed",
                   extra_where: Any = None, same_version: bool = True, **changes: Any) -> None:
    """Change a lead only if nobody changed it since we read it (version column); audit the change.

    `same_version=False` lets changes that commute (two follow-ups logged at once) both land, guarded
    only by `extra_where` (still open, say).
    """
    before = {key: getattr(lead, key) for key in changes}
    where = [col(Lead.id) == lead.id]
    if same_version:
        where.append(Lead.version == lead.version)
    if extra_where is not None:
        where.append(extra_where)
    result = scope.session.execute(
        update(Lead).where(*where).values(**changes, version=Lead.version + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        scope.session.refresh(lead)
        if lead.status != "open" and conflict == "lead.changed":
            raise DomainError("lead.closed", lead=lead.number, status=lead.status)
        raise DomainError(conflict, lead=lead.number, owner=owner_name(scope.session, lead))
    scope.session.refresh(lead)
    audit.record(scope, entity="lead", entity_id=lead.id or 0, action=action, before=before,
                 after={key: getattr(lead, key) for key in changes})


def _require_open(lead: Lead) -> None:
    if lead.status != "open":
        raise DomainError("lead.closed", lead=lead.number, status=lead.status)


def unmet_requirements(scope: Scope, lead: Lead, stage: Stage) -> list[str]:
    missing = []
    for need in stage.required:
        if need == "contact" and not lead.contact:
            missing.append(need)
        elif need == "phone_or_email" and not (lead.phone or lead.email):
            missing.append(need)
        elif need == "value" and not lead.value:
            missing.append(need)
        elif need == "followup" and not scope.session.exec(
                select(FollowUp.id).where(FollowUp.lead_id == lead.id).limit(1)).first():
            missing.append(need)
        elif need == "approved_quote" and not scope.session.exec(
                select(Quote.id).where(Quote.lead_id == lead.id, Quote.status == "approved").limit(1)).first():
            missing.append(need)
    return missing


def move_to_stage(scope: Scope, lead: Lead, stage: Stage) -> Stage:
    """Move along the pipeline: forward one step (or more when the team allows skipping), or back."""
    require_change(scope.session, scope.actor, lead)
    _require_open(lead)
    config = scope.config
    current = config.stage_index(lead.stage)
    wanted = config.stage_index(stage.key)
    if wanted == current:
        raise DomainError("lead.same_stage", lead=lead.number, stage=stage)
    if wanted > current + 1 and not config.allow_skip:
        raise DomainError("lead.no_skip", lead=lead.number, stage=stage, next=config.stages[current + 1])
    if wanted > current:
        for step in config.stages[current + 1: wanted + 1]:
            missing = unmet_requirements(scope, lead, step)
            if missing:
                raise DomainError("lead.requirements", lead=lead.number, stage=step, missing=missing)
    guarded_update(scope, lead, action="stage", stage=stage.key, stage_changed_at=scope.now,
                   last_activity_at=scope.now)
    return stage


def next_stage(scope: Scope, lead: Lead) -> Stage:
    stages = scope.config.stages
    index = scope.config.stage_index(lead.stage)
    if index + 1 >= len(stages):
        raise DomainError("lead.last_stage", lead=lead.number)
    return move_to_stage(scope, lead, stages[index + 1])


def assign(scope: Scope, lead: Lead, member: Member) -> None:
    require_role(scope.actor, "manager", "assign")
    require_see(scope.session, scope.actor, lead)
    _require_open(lead)
    if lead.owner_id == member.id:
        raise DomainError("lead.already_owner", lead=lead.number, owner=member.name)
    guarded_update(scope, lead, action="assign", owner_id=member.id, last_activity_at=scope.now)


def claim(scope: Scope, lead: Lead) -> None:
    """Take a lead from the pool; of two people claiming at once exactly one gets it."""
    _require_open(lead)
    if lead.owner_id is not None:
        raise DomainError("lead.not_in_pool", lead=lead.number, owner=owner_name(scope.session, lead))
    limit = scope.config.pool_claim_limit
    if limit and rank(scope.actor) < ROLE_RANK["manager"]:
        teamwork.take_claim_slot(scope, limit)  # undone with the rest if the claim below loses a race
    guarded_update(scope, lead, action="claim", conflict="lead.not_in_pool",
                   extra_where=col(Lead.owner_id).is_(None),
                   owner_id=scope.actor.id, last_activity_at=scope.now)


def release(scope: Scope, lead: Lead) -> None:
    require_change(scope.session, scope.actor, lead)
    _require_open(lead)
    if lead.owner_id is None:
        raise DomainError("lead.already_in_pool", lead=lead.number)
    guarded_update(scope, lead, action="release", owner_id=None, next_followup_on=None,
                   last_activity_at=scope.now)
    _settle(scope, lead, "released")


def win(scope: Scope, lead: Lead, amount: int | None) -> int:
    """Close as won; the amount defaults to the latest approved quote, then the estimate."""
    require_change(scope.session, scope.actor, lead)
    _require_open(lead)
    if amount is None:
        quote = scope.session.exec(
            select(Quote).where(Quote.lead_id == lead.id, Quote.status == "approved")
            .order_by(col(Quote.number).desc())).first()
        amount = quote.amount if quote else lead.value
    if amount is None:
        raise DomainError("lead.won_needs_amount", lead=lead.number)
    guarded_update(scope, lead, action="won", status="won", won_amount=amount, closed_at=scope.now,
                   next_followup_on=None, last_activity_at=scope.now)
    from models.aftersale import schedule_care  # after-sales builds on leads, not the reverse
    schedule_care(scope.session, scope.config, lead, now=scope.now)
    _settle(scope, lead, "won")
    return amount


def lose(scope: Scope, lead: Lead, reason: str) -> None:
    require_change(scope.session, scope.actor, lead)
    _require_open(lead)
    guarded_update(scope, lead, action="lost", status="lost", lost_reason=reason, closed_at=scope.now,
                   next_followup_on=None, last_activity_at=scope.now)
    _settle(scope, lead, "lost")


def _settle(scope: Scope, lead: Lead, because: str) -> None:
    from models.quotes import settle_lead  # quotes build on leads, not the reverse
    settle_lead(scope.session, lead, because=because, now=scope.now, actor_id=scope.actor.id)


def edit(scope: Scope, lead: Lead, changes: dict[str, Any]) -> None:
    require_change(scope.session, scope.actor, lead)
    unknown = [key for key in changes if key not in EDITABLE]
    if unknown:
        raise DomainError("lead.not_editable", field=unknown[0])
    derived: dict[str, Any] = {}
    if "phone" in changes:
        derived["norm_phone"] = normalize_phone(changes["phone"])
    if "email" in changes:
        derived["norm_email"] = normalize_email(changes["email"])
    if "company" in changes or "name" in changes:
        derived["norm_company"] = normalize_company(changes.get("company", lead.company)
                                                    or changes.get("name", lead.name))
    guarded_update(scope, lead, action="edit", **changes, **derived, last_activity_at=scope.now)


def owner_name(session: Session, lead: Lead) -> str:
    owner = session.get(Member, lead.owner_id) if lead.owner_id else None
    return owner.name if owner else "-"


def _snapshot(lead: Lead) -> dict[str, Any]:
    return {key: getattr(lead, key) for key in (*EDITABLE, "owner_id", "stage") if getattr(lead, key) is not None}


def recent_followups(session: Session, lead: Lead, limit: int = 3) -> list[FollowUp]:
    return list(session.exec(select(FollowUp).where(FollowUp.lead_id == lead.id)
                             .order_by(col(FollowUp.created_at).desc(), col(FollowUp.id).desc()).limit(limit)))


def open_quotes(session: Session, lead: Lead) -> list[Quote]:
    return list(session.exec(select(Quote).where(Quote.lead_id == lead.id)
                             .order_by(col(Quote.number).desc()).limit(5)))


def snooze(scope: Scope, lead: Lead, until: date) -> None:
    """Quiet the nudges about a lead until `until`, the day they resume. It only quiets: the next
    follow-up stays as it is, and what is still due after the snooze is nudged again then."""
    require_change(scope.session, scope.actor, lead)
    _require_open(lead)
    if until <= scope.today:
        raise DomainError("lead.snooze_past", date=until)
    require_plannable(until, scope.today)
    guarded_update(scope, lead, action="snooze", snoozed_until=until)


def latest_numbers(scope: Scope) -> tuple[int | None, int | None]:
    """The numbers of the actor's newest own lead and of the newest quote they would act on (a
    rep's own; for an approver, someone else's), for examples worded with their own ids."""
    session, actor = scope.session, scope.actor
    lead = session.exec(select(Lead.number)
                        .where(Lead.team_id == scope.team.id, Lead.owner_id == actor.id)
                        .order_by(col(Lead.number).desc()).limit(1)).first()
    theirs = (col(Quote.requester_id) != actor.id) if rank(actor) >= ROLE_RANK["manager"] \
        else (col(Quote.requester_id) == actor.id)
    quote = session.exec(select(Quote.number).where(Quote.team_id == scope.team.id, theirs)
                         .order_by(col(Quote.number).desc()).limit(1)).first()
    return lead, quote
