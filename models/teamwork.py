"""Teamwork: transfer requests, delegation and N-of-M signatures, personal notification
settings, assignment turns and the daily pool-claim limit. The tables, then their rules.

This module reads helpers from `models.tables` and is imported at that module's end; it must not
import `models.leads` or `models.quotes` (they import it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col, select

# First, so that models.audit and models.scope find every table loaded.
import models.tables  # noqa: F401
from models import audit, outbox
from models.config import ROLE_RANK, TeamConfig, parse_clock
from models.errors import DomainError
from models.permissions import is_manager_of, rank
from models.scope import Scope
from models.tables import Lead, Member, Outbox, _utc_column
from models.teams import lock_team, managers_of

# --- tables ------------------------------------------------------------------------------------


class TransferRequest(SQLModel, table=True):
    """Someone asking for a lead another member owns (撞单); the owner, or later their manager,
    decides."""

    __tablename__ = "transfer_request"
    __table_args__ = (
        # One open request per lead: two reps asking at once get one request and one clear answer.
        Index("uq_transfer_pending_lead", "lead_id", unique=True,
              sqlite_where=text("status = 'pending'"), postgresql_where=text("status = 'pending'")),
        Index("ix_transfer_team_status", "team_id", "status", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    lead_id: int = Field(foreign_key="lead.id")
    requester_id: int = Field(foreign_key="member.id")
    # The owner when asked; a later owner makes the request stale.
    owner_id: int = Field(foreign_key="member.id")
    reason: str = Field(sa_column=Column(Text, nullable=False))
    # pending → approved | rejected | cancelled | stale
    status: str = Field(default="pending", max_length=10)
    created_at: datetime = _utc_column()
    escalated_at: datetime | None = _utc_column(nullable=True)
    decided_by_id: int | None = Field(default=None, foreign_key="member.id")
    # Whose say a delegate used when deciding (None: the decider's own).
    on_behalf_of_id: int | None = Field(default=None, foreign_key="member.id")
    decided_at: datetime | None = _utc_column(nullable=True)
    decision_note: str | None = Field(default=None, sa_column=Column(Text))
    version: int = 1


class Delegation(SQLModel, table=True):
    """From `from_on` to `until_on` (team-local days, inclusive) `delegate_id` decides for
    `member_id`."""

    __table_args__ = (Index("ix_delegation_member", "team_id", "member_id", "until_on"),
                      Index("ix_delegation_delegate", "team_id", "delegate_id", "until_on"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    member_id: int = Field(foreign_key="member.id")
    delegate_id: int = Field(foreign_key="member.id")
    from_on: date
    until_on: date
    created_by_id: int = Field(foreign_key="member.id")
    created_at: datetime = _utc_column()
    ended_at: datetime | None = _utc_column(nullable=True)  # ended early


class ApprovalSignature(SQLModel, table=True):
    """One person's decision on one approval level: who clicked, and whose authority they used."""

    __tablename__ = "approval_signature"
    __table_args__ = (
        # A principal counts once per level, whoever clicks for them; a person signs a level once.
        UniqueConstraint("step_id", "principal_id", name="uq_signature_step_principal"),
        UniqueConstraint("step_id", "member_id", name="uq_signature_step_member"),
        Index("ix_signature_quote", "quote_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    quote_id: int = Field(foreign_key="quote.id")
    step_id: int = Field(foreign_key="approval_step.id")
    member_id: int = Field(foreign_key="member.id")
    principal_id: int = Field(foreign_key="member.id")  # == member_id unless signed as a delegate
    decision: str = Field(max_length=8)  # approve | reject
    note: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = _utc_column()


class MemberPrefs(SQLModel, table=True):
    """A member's own notification settings; no row means the defaults."""

    __tablename__ = "member_prefs"
    __table_args__ = (UniqueConstraint("member_id", name="uq_member_prefs_member"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    member_id: int = Field(foreign_key="member.id")
    nudges: str = Field(default="digest", max_length=8)
    approvals: str = Field(default="realtime", max_length=8)
    updates: str = Field(default="realtime", max_length=8)
    quiet_hours: str | None = Field(default=None, max_length=11)  # None: the team's; "off": none
    lang: str | None = Field(default=None, max_length=8)
    timezone: str | None = Field(default=None, max_length=64)
    silent: bool = False  # not asked for approvals others can give
    updated_at: datetime = _utc_column()


class HeldNotice(SQLModel, table=True):
    """A push for someone who reads that kind as a digest: it joins their next batched message."""

    __tablename__ = "held_notice"
    __table_args__ = (UniqueConstraint("key", name="uq_held_notice_key"),
                      Index("ix_held_notice_open", "team_id", "taken_at"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    member_id: int = Field(foreign_key="member.id")
    kind: str = Field(max_length=32)
    key: str = Field(max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = _utc_column()
    taken_at: datetime | None = _utc_column(nullable=True)


class ClaimCount(SQLModel, table=True):
    """Leads a member claimed from the pool on one team-local day (the daily claim limit)."""

    __tablename__ = "claim_count"
    __table_args__ = (UniqueConstraint("team_id", "member_id", "day", name="uq_claim_count_day"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    member_id: int = Field(foreign_key="member.id")
    day: date
    count: int = 0


class AssignmentTurn(SQLModel, table=True):
    """Whose turn is next when a manager's leads go round robin: the rep who got the last one."""

    __tablename__ = "assignment_turn"
    __table_args__ = (UniqueConstraint("team_id", "manager_id", name="uq_assignment_turn"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    manager_id: int = Field(foreign_key="member.id")
    last_member_id: int = Field(foreign_key="member.id")


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


# --- personal notification settings ------------------------------------------------------------

CATEGORIES = ("nudges", "approvals", "updates")
MODES = ("realtime", "digest", "off")
_KIND_CATEGORY = {
    "overdue": "nudges", "overdue-manager": "nudges", "stuck": "nudges", "stuck-manager": "nudges",
    "pool-warning": "nudges", "pool-returned": "nudges",
    # After-sales reminders are nudges too.
    "instalment-due": "nudges", "receivable-overdue": "nudges",
    "receivable-overdue-manager": "nudges", "renewal": "nudges", "care": "nudges",
    "approval": "approvals", "approval-wait": "approvals", "approval-escalate": "approvals",
    "transfer": "approvals", "transfer-escalate": "approvals",
}
# Pushes a person caused by asking someone to decide: never held by quiet hours, never turned off.
ASKED_BY_A_PERSON = frozenset({"approval", "transfer"})


def category_of(kind: str) -> str:
    """nudges (reminders the bot finds), approvals (someone must decide), updates (the rest)."""
    return _KIND_CATEGORY.get(kind, "updates")


@dataclass(frozen=True)
class Prefs:
    nudges: str = "digest"
    approvals: str = "realtime"
    updates: str = "realtime"
    quiet_hours: str | None = None
    lang: str | None = None
    timezone: str | None = None
    silent: bool = False

    def mode(self, kind: str) -> str:
        mode = str(getattr(self, category_of(kind)))
        # Approvals others ask for are never fully silenced.
        return "digest" if mode == "off" and category_of(kind) == "approvals" else mode

    @property
    def own_quiet(self) -> bool:
        return self.quiet_hours not in (None, "off")

    def quiet_config(self, config: TeamConfig) -> TeamConfig:
        """The team's time settings with this person's quiet hours and timezone in their place."""
        changes: dict[str, Any] = {}
        if self.quiet_hours is not None:
            changes["quiet_hours"] = None if self.quiet_hours == "off" else self.quiet_hours
        if self.timezone:
            changes["timezone"] = self.timezone
        return config.model_copy(update=changes) if changes else config

    @property
    def tz(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None


DEFAULT_PREFS = Prefs()
_PREF_FIELDS = ("nudges", "approvals", "updates", "quiet_hours", "lang", "timezone", "silent")


def _as_prefs(row: MemberPrefs | None) -> Prefs:
    if row is None:
        return DEFAULT_PREFS
    return Prefs(**{name: getattr(row, name) for name in _PREF_FIELDS})


def prefs_of(session: Session, member_id: int | None) -> Prefs:
    if member_id is None:
        return DEFAULT_PREFS
    query = select(MemberPrefs).where(MemberPrefs.member_id == member_id)
    return _as_prefs(session.exec(query).first())


def prefs_for(session: Session, member_ids: list[int]) -> dict[int, Prefs]:
    """Settings of several members at once (absent members get the defaults)."""
    found: dict[int, Prefs] = dict.fromkeys(member_ids, DEFAULT_PREFS)
    if member_ids:
        query = select(MemberPrefs).where(col(MemberPrefs.member_id).in_(member_ids))
        for row in session.exec(query):
            found[row.member_id] = _as_prefs(row)
    return found


def _checked_pref(name: str, value: Any) -> Any:
    if name in CATEGORIES:
        if value not in MODES:
            raise DomainError("prefs.bad_mode", mode=value)
        if name == "approvals" and value == "off":
            raise DomainError("prefs.approvals_off")
    elif name == "quiet_hours" and value not in (None, "off"):
        start, sep, end = str(value).partition("-")
        try:
            if not sep:
                raise ValueError(value)
            value = f"{parse_clock(start):%H:%M}-{parse_clock(end):%H:%M}"
        except ValueError:
            raise DomainError("prefs.bad_quiet", text=value) from None
    elif name == "lang" and value not in (None, "zh", "en"):
        raise DomainError("prefs.bad_lang", text=value)
    elif name == "timezone" and value is not None:
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise DomainError("prefs.bad_timezone", text=value) from None
    elif name == "silent":
        value = bool(value)
    return value


def set_prefs(scope: Scope, changes: dict[str, Any]) -> tuple[Prefs, Prefs]:
    """Change the actor's own settings; audited. Returns (before, after)."""
    unknown = [name for name in changes if name not in _PREF_FIELDS]
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]}")
    checked = {name: _checked_pref(name, value) for name, value in changes.items()}
    session, member = scope.session, scope.actor
    # Two first settings at once must not make two rows: insert-or-nothing, then update that row.
    session.execute(_insert(session)(MemberPrefs).values(team_id=scope.team.id, member_id=member.id,
                                                         updated_at=scope.now)
                    .on_conflict_do_nothing(index_elements=["member_id"]))
    row = session.exec(select(MemberPrefs).where(MemberPrefs.member_id == member.id)
                       .execution_options(populate_existing=True)).one()
    before = _as_prefs(row)
    for name, value in checked.items():
        setattr(row, name, value)
    row.updated_at = scope.now
    session.add(row)
    session.flush()
    after = _as_prefs(row)
    audit.record(scope, entity="member", entity_id=member.id or 0, action="prefs",
                 before={name: getattr(before, name) for name in checked},
                 after={name: getattr(after, name) for name in checked})
    return before, after


def deliver(scope: Scope, member: Member, *, kind: str, key: str, payload: dict[str, Any],
            prefs: Prefs | None = None, not_before: datetime | None = None,
            about: tuple[str, ...] = ()) -> str:
    """Send, hold for the member's next batched message, or drop a push, by the member's settings.
    `about`: the decisions it asks for, whose outcome is later edited in (see `outbox.enqueue`).

    Returns "sent", "held" or "dropped" (a kind the member turned off)."""
    prefs = prefs or prefs_of(scope.session, member.id)
    mode = prefs.mode(kind)
    if mode == "off":
        return "dropped"
    if mode == "digest":
        hold(scope.session, team_id=scope.team.id or 0, member=member, kind=kind, key=key,
             payload={**payload, "about": list(about)} if about else payload, now=scope.now)
        return "held"
    outbox.enqueue(scope.session, team=scope.team, kind=kind, dedupe_key=key, payload=payload,
                   now=scope.now, member=member, not_before=not_before, about=about)
    return "sent"


def ever_delivered(session: Session, *, team_id: int, prefix: str) -> bool:
    """Whether a push whose key starts with `prefix` was ever sent or held for a batched message:
    `deliver` does one or the other (or drops a kind its reader turned off)."""
    sent = session.exec(select(Outbox.id).where(
        Outbox.team_id == team_id, col(Outbox.dedupe_key).startswith(prefix)).limit(1)).first()
    return sent is not None or session.exec(select(HeldNotice.id).where(
        HeldNotice.team_id == team_id,
        col(HeldNotice.key).startswith(f"held:{prefix}")).limit(1)).first() is not None


def hold(session: Session, *, team_id: int, member: Member, kind: str, key: str,
         payload: dict[str, Any], now: datetime) -> bool:
    """Keep a push for the member's next batched message; False when that key was held before."""
    statement = (_insert(session)(HeldNotice)
                 .values(team_id=team_id, member_id=member.id, kind=kind, key=f"held:{key}"[:200],
                         payload=payload, created_at=now)
                 .on_conflict_do_nothing(index_elements=["key"]).returning(HeldNotice.id))
    return session.execute(statement).first() is not None


def take_held(session: Session, *, team_id: int, now: datetime) -> list[HeldNotice]:
    """The team's held pushes, marked taken; of two scans at once only one gets each."""
    statement = (update(HeldNotice)
                 .where(col(HeldNotice.team_id) == team_id, col(HeldNotice.taken_at).is_(None))
                 .values(taken_at=now).returning(HeldNotice.id))
    ids = [int(row_id) for row_id in session.execute(statement).scalars()]
    if not ids:
        return []
    query = select(HeldNotice).where(col(HeldNotice.id).in_(ids)).order_by(col(HeldNotice.id))
    return list(session.exec(query))


def drop_held(session: Session, *, prefix: str) -> None:
    """Drop held pushes (not batched yet) whose key starts with `prefix`: what they ask is moot."""
    session.execute(update(HeldNotice).where(col(HeldNotice.key).startswith(f"held:{prefix}"),
                                             col(HeldNotice.taken_at).is_(None))
                    .values(taken_at=HeldNotice.created_at)
                    .execution_options(synchronize_session=False))


# --- delegation --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Asked:
    """Who is pushed to decide (`member`) and whose decision it stands for (`principal`)."""

    member: Member
    principal: Member

    @property
    def delegated(self) -> bool:
        return self.member.id != self.principal.id


def _active(day: date) -> Any:
    return (col(Delegation.ended_at).is_(None), col(Delegation.from_on) <= day,
            col(Delegation.until_on) >= day)


def delegation_of(session: Session, member_id: int, day: date) -> Delegation | None:
    return session.exec(select(Delegation).where(Delegation.member_id == member_id, *_active(day))
                        .order_by(col(Delegation.id).desc()).limit(1)).first()


def delegate_for(session: Session, member: Member, day: date) -> Member | None:
    """Who stands in for `member` on `day`, following a delegate's own delegation, never in a
    circle."""
    seen = {member.id}
    current, found = member, None
    for _ in range(5):
        delegation = delegation_of(session, current.id or 0, day)
        if delegation is None or delegation.delegate_id in seen:
            break
        nxt = session.get(Member, delegation.delegate_id)
        if nxt is None:
            break
        seen.add(nxt.id)
        current = found = nxt
    return found


def principals_of(session: Session, member: Member, day: date) -> list[Member]:
    """Everyone `member` stands in for on `day`: directly first, then along delegation chains."""
    found: list[Member] = []
    seen = {member.id}
    frontier = [member.id]
    for _ in range(5):
        if not frontier:
            break
        query = (select(Delegation).where(col(Delegation.delegate_id).in_(frontier), *_active(day))
                 .order_by(col(Delegation.id)))
        rows = list(session.exec(query))
        frontier = []
        for row in rows:
            principal = session.get(Member, row.member_id)
            if principal is None or principal.id in seen:
                continue
            seen.add(principal.id)
            found.append(principal)
            frontier.append(principal.id)
    return found


def route(session: Session, principals: list[Member], day: date, *,
          never: set[int | None]) -> list[Asked]:
    """Who to push for each principal: their delegate while one is set, else themselves. `never`
    holds people who may not decide (the requester, those who already signed)."""
    asked: list[Asked] = []
    seen: set[int | None] = set()
    for principal in principals:
        delegate = delegate_for(session, principal, day)
        member = delegate if delegate is not None and delegate.id not in never else principal
        if member.id not in seen:
            seen.add(member.id)
            asked.append(Asked(member=member, principal=principal))
    return asked


def set_delegation(scope: Scope, member: Member, delegate: Member, *, from_on: date,
                   until_on: date) -> tuple[Delegation, list[Delegation]]:
    """`delegate` decides for `member` over the period; `member`'s overlapping delegation ends."""
    actor = scope.actor
    if member.id != actor.id and rank(actor) < ROLE_RANK["admin"]:
        raise DomainError("delegation.not_yours", member=member.name)
    if rank(member) < ROLE_RANK["manager"]:
        raise DomainError("delegation.not_an_approver", member=member.name)
    if delegate.id == member.id:
        raise DomainError("delegation.self")
    if from_on < scope.today:
        raise DomainError("delegation.past", date=from_on)
    if until_on < from_on:
        raise DomainError("delegation.until_before_from", date=until_on)
    if until_on > scope.today + timedelta(days=366):
        raise DomainError("delegation.too_long")
    session = scope.session
    lock_team(session, scope.team)  # one delegation per person and day, however many type at once
    overlapping = list(session.exec(select(Delegation).where(
        Delegation.member_id == member.id, col(Delegation.ended_at).is_(None),
        col(Delegation.until_on) >= from_on, col(Delegation.from_on) <= until_on)))
    for old in overlapping:
        _end(scope, old)
    delegation = Delegation(team_id=scope.team.id or 0, member_id=member.id or 0,
                            delegate_id=delegate.id or 0, from_on=from_on, until_on=until_on,
                            created_by_id=actor.id or 0, created_at=scope.now)
    session.add(delegation)
    session.flush()
    audit.record(scope, entity="member", entity_id=member.id or 0, action="delegate",
                 after={"delegate": delegate.name, "delegate_id": delegate.id, "from": from_on,
                        "until": until_on})
    return delegation, overlapping


def end_delegations(scope: Scope, member: Member) -> list[Delegation]:
    """End `member`'s current and planned delegations now."""
    if member.id != scope.actor.id and rank(scope.actor) < ROLE_RANK["admin"]:
        raise DomainError("delegation.not_yours", member=member.name)
    session = scope.session
    lock_team(session, scope.team)
    open_ones = list(session.exec(select(Delegation).where(
        Delegation.member_id == member.id, col(Delegation.ended_at).is_(None),
        col(Delegation.until_on) >= scope.today)))
    if not open_ones:
        raise DomainError("delegation.none", member=member.name)
    for delegation in open_ones:
        _end(scope, delegation)
    return open_ones


def _end(scope: Scope, delegation: Delegation) -> None:
    delegation.ended_at = scope.now
    scope.session.add(delegation)
    delegate = scope.session.get(Member, delegation.delegate_id)
    audit.record(scope, entity="member", entity_id=delegation.member_id, action="delegate_end",
                 before={"delegate": delegate.name if delegate else None,
                         "from": delegation.from_on, "until": delegation.until_on},
                 after={"ended": scope.now})


def delegations(session: Session, team_id: int, day: date) -> list[Delegation]:
    """The team's current and planned delegations, soonest first."""
    return list(session.exec(select(Delegation).where(
        Delegation.team_id == team_id, col(Delegation.ended_at).is_(None),
        col(Delegation.until_on) >= day)
        .order_by(col(Delegation.from_on), col(Delegation.id))))


# --- the pool: claims per day and assignment turns -----------------------------------------------

def take_claim_slot(scope: Scope, limit: int) -> int:
    """Count one claim of the actor today; refuses past the team's daily limit, racing or not."""
    session = scope.session
    keys = {"team_id": scope.team.id, "member_id": scope.actor.id, "day": scope.today}
    session.execute(_insert(session)(ClaimCount).values(**keys, count=0)
                    .on_conflict_do_nothing(index_elements=["team_id", "member_id", "day"]))
    result = session.execute(
        update(ClaimCount).where(col(ClaimCount.team_id) == keys["team_id"],
                                 col(ClaimCount.member_id) == keys["member_id"],
                                 col(ClaimCount.day) == keys["day"], col(ClaimCount.count) < limit)
        .values(count=ClaimCount.count + 1).returning(ClaimCount.count))
    used = result.scalar()
    if used is None:
        raise DomainError("lead.claim_limit", limit=limit)
    return int(used)


def next_in_turn(scope: Scope, manager: Member, candidates: list[Member]) -> Member:
    """The rep after the one who got `manager`'s previous lead (in member order). Call it under
    the team lock."""
    ordered = sorted(candidates, key=lambda member: member.id or 0)
    session = scope.session
    turn = session.exec(select(AssignmentTurn).where(
        AssignmentTurn.team_id == scope.team.id, AssignmentTurn.manager_id == manager.id)).first()
    last = turn.last_member_id if turn is not None else None
    later = [member for member in ordered if last is not None and (member.id or 0) > last]
    chosen = later[0] if later else ordered[0]
    if turn is None:
        turn = AssignmentTurn(team_id=scope.team.id or 0, manager_id=manager.id or 0,
                              last_member_id=chosen.id or 0)
    turn.last_member_id = chosen.id or 0
    session.add(turn)
    return chosen


# --- transfer requests -------------------------------------------------------------------------

def pending_transfer(session: Session, lead: Lead) -> TransferRequest | None:
    return session.exec(select(TransferRequest).where(TransferRequest.lead_id == lead.id,
                                                      TransferRequest.status == "pending")).first()


def latest_transfer(session: Session, lead: Lead) -> TransferRequest | None:
    return session.exec(select(TransferRequest).where(TransferRequest.lead_id == lead.id)
                        .order_by(col(TransferRequest.id).desc()).limit(1)).first()


def request_transfer(scope: Scope, lead: Lead, reason: str) -> TransferRequest:
    """Ask the owner for their lead. One open request per lead; a request the lead outgrew (it
    changed hands) makes way for a new one."""
    session = scope.session
    lock_team(session, scope.team)  # two reps asking at once: the second finds the first's request
    session.refresh(lead)
    if lead.status != "open":
        raise DomainError("lead.closed", lead=lead.number, status=lead.status)
    if lead.owner_id is None:
        raise DomainError("transfer.in_pool", lead=lead.number)
    if lead.owner_id == scope.actor.id:
        raise DomainError("transfer.already_yours", lead=lead.number)
    pending = pending_transfer(session, lead)
    if pending is not None:
        if pending.owner_id == lead.owner_id:
            raise DomainError("transfer.pending", request=pending)
        _close(scope, pending, lead, "stale", note="the lead changed hands")
    owner = session.get(Member, lead.owner_id)
    request = TransferRequest(team_id=scope.team.id or 0, lead_id=lead.id or 0,
                              requester_id=scope.actor.id or 0, owner_id=lead.owner_id,
                              reason=reason, created_at=scope.now)
    session.add(request)
    session.flush()
    audit.record(scope, entity="lead", entity_id=lead.id or 0, action="transfer_ask",
                 after={"requester": scope.actor.name, "owner": owner.name if owner else None,
                        "reason": reason, "request": request.id})
    return request


def transfer_authority(session: Session, actor: Member, request: TransferRequest,
                       day: date) -> Member | None:
    """Whose say `actor` decides a transfer with: the owner's, their manager's, or that of someone
    they stand in for."""
    if actor.id == request.requester_id:
        return None
    owner = session.get(Member, request.owner_id)
    for who in [actor, *principals_of(session, actor, day)]:
        if who.id == request.requester_id:
            continue
        if who.id == request.owner_id or is_manager_of(who, owner):
            return who
    return None


@dataclass
class TransferOutcome:
    request: TransferRequest
    lead: Lead
    principal: Member  # whose say decided it (the actor, or the one they stand in for)


def decide_transfer(scope: Scope, request: TransferRequest, *, approve: bool,
                    note: str | None) -> TransferOutcome:
    """Approve (ownership moves) or reject. Final; of two people deciding at once exactly one wins.

    A request the lead outgrew is closed as stale instead: the outcome says so and nothing moves."""
    session = scope.session
    lead = session.get(Lead, request.lead_id)
    assert lead is not None
    if request.status != "pending":
        raise DomainError("transfer.already_decided", request=request)
    if request.requester_id == scope.actor.id:
        raise DomainError("transfer.own_request", lead=lead.number)
    principal = transfer_authority(session, scope.actor, request, scope.today)
    if principal is None:
        owner = session.get(Member, request.owner_id)
        raise DomainError("transfer.not_yours", lead=lead.number,
                          owner=owner.name if owner else "-")
    if lead.status != "open" or lead.owner_id != request.owner_id:
        _close(scope, request, lead, "stale", note=note, principal=principal)
        return TransferOutcome(request=request, lead=lead, principal=principal)
    status = "approved" if approve else "rejected"
    _close(scope, request, lead, status, note=note, principal=principal)
    if approve:
        moved = session.execute(
            update(Lead).where(col(Lead.id) == lead.id, col(Lead.owner_id) == request.owner_id,
                               col(Lead.status) == "open")
            .values(owner_id=request.requester_id, version=Lead.version + 1,
                    last_activity_at=scope.now)
            .execution_options(synchronize_session=False))
        if moved.rowcount != 1:  # assigned or closed since we read it: undo the whole decision
            raise DomainError("lead.changed", lead=lead.number)
        session.refresh(lead)
        requester = session.get(Member, request.requester_id)
        audit.record(scope, entity="lead", entity_id=lead.id or 0, action="transfer",
                     before={"owner_id": request.owner_id},
                     after={"owner_id": request.requester_id, "request": request.id,
                            "requester": requester.name if requester else None,
                            **({"for": principal.name} if principal.id != scope.actor.id else {})})
    return TransferOutcome(request=request, lead=lead, principal=principal)


def cancel_transfer(scope: Scope, request: TransferRequest) -> Lead:
    lead = scope.session.get(Lead, request.lead_id)
    assert lead is not None
    if request.status != "pending":
        raise DomainError("transfer.already_decided", request=request)
    if request.requester_id != scope.actor.id:
        raise DomainError("transfer.cancel_not_yours", lead=lead.number)
    _close(scope, request, lead, "cancelled", note=None)
    return lead


def _close(scope: Scope, request: TransferRequest, lead: Lead, status: str, *, note: str | None,
           principal: Member | None = None) -> None:
    """Move a pending request to its final status, only if still pending; audited on the lead."""
    behalf = principal.id if principal is not None and principal.id != scope.actor.id else None
    result = scope.session.execute(
        update(TransferRequest).where(col(TransferRequest.id) == request.id,
                                      col(TransferRequest.version) == request.version,
                                      col(TransferRequest.status) == "pending")
        .values(status=status, decided_by_id=scope.actor.id, on_behalf_of_id=behalf,
                decided_at=scope.now, decision_note=note, version=request.version + 1)
        .execution_options(synchronize_session=False))
    scope.session.refresh(request)
    if result.rowcount != 1:
        raise DomainError("transfer.already_decided", request=request)
    if status != "approved":
        after: dict[str, Any] = {"request": request.id, "status": status, "note": note}
        if behalf:
            after["for"] = principal.name if principal else None
        audit.record(scope, entity="lead", entity_id=lead.id or 0, action=f"transfer_{status}",
                     before={"status": "pending"}, after=after)


def close_transfers(session: Session, lead: Lead, *, because: str, now: datetime,
                    actor_id: int | None) -> list[TransferRequest]:
    """Close the lead's open transfer request: the lead was closed or handed to the pool."""
    closed = []
    for request in session.exec(select(TransferRequest).where(TransferRequest.lead_id == lead.id,
                                                              TransferRequest.status == "pending")):
        result = session.execute(
            update(TransferRequest).where(col(TransferRequest.id) == request.id,
                                          col(TransferRequest.status) == "pending")
            .values(status="stale", decided_by_id=actor_id, decided_at=now,
                    decision_note=f"lead:{because}", version=TransferRequest.version + 1)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            continue
        session.refresh(request)
        drop_held(session, prefix=f"transfer:{request.id}:")
        audit.record_event(session, team_id=lead.team_id, actor_id=actor_id, at=now, entity="lead",
                           entity_id=lead.id or 0, action="transfer_stale",
                           before={"status": "pending"},
                           after={"request": request.id, "status": "stale", "because": because})
        closed.append(request)
    return closed


def closed_now(session: Session, lead: Lead, now: datetime) -> list[TransferRequest]:
    """The lead's transfer requests closed at `now` because the lead was closed or pooled."""
    return list(session.exec(select(TransferRequest).where(
        TransferRequest.lead_id == lead.id, TransferRequest.status == "stale",
        TransferRequest.decided_at == now, col(TransferRequest.decision_note).startswith("lead:"))))


def transfers_due(session: Session, team_id: int, before: datetime) -> list[TransferRequest]:
    """Pending requests asked before `before` and not yet sent on to a manager."""
    return list(session.exec(select(TransferRequest).where(
        TransferRequest.team_id == team_id, TransferRequest.status == "pending",
        col(TransferRequest.escalated_at).is_(None), col(TransferRequest.created_at) < before)
        .order_by(col(TransferRequest.created_at))))


def escalate_transfer(session: Session, request: TransferRequest, now: datetime) -> list[Member]:
    """Mark a request as sent on; the owner's managers to ask (none if another scan did it)."""
    result = session.execute(
        update(TransferRequest)
        .where(col(TransferRequest.id) == request.id, col(TransferRequest.escalated_at).is_(None),
               col(TransferRequest.status) == "pending")
        .values(escalated_at=now).execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return []
    owner = session.get(Member, request.owner_id)
    if owner is None:
        return []
    return [m for m in managers_of(session, owner) if m.id != request.requester_id]
