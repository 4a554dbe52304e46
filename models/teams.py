"""Teams and members: who belongs, their roles, the team's settings, and handing work over."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from models import audit
from models.config import ROLE_RANK, TeamConfig
from models.errors import DomainError
from models.normalize import visible
from models.permissions import is_manager_of, rank, require_role
from models.scope import Scope
from models.tables import ApprovalStep, CommandLog, Lead, Member, Quote, Team


def find_team(session: Session, *, platform: str, key: str) -> Team | None:
    return session.exec(select(Team).where(Team.platform == platform, Team.key == key)).first()


def get_or_create_team(session: Session, *, platform: str, key: str, name: str, now: datetime,
                       currency: str | None = None, timezone: str | None = None) -> Team:
    """The team of a workspace / corp / group, created on first contact. Its currency and timezone
    are fixed then (from the language of that first contact and the deployment's default), so
    amounts never change symbol with the speaker."""
    team = find_team(session, platform=platform, key=key)
    if team:
        return team
    try:
        with session.begin_nested():
            config = {key: value for key, value in (("currency", currency), ("timezone", timezone))
                      if value}
            team = Team(platform=platform, key=key, name=name or key, config=config, created_at=now)
            session.add(team)
    except IntegrityError:
        # Another process created it between our read and our insert.
        team = session.exec(select(Team).where(Team.platform == platform, Team.key == key)).one()
    return team


def find_member(session: Session, team: Team, user_key: str) -> Member | None:
    return session.exec(select(Member).where(Member.team_id == team.id, Member.user_key == user_key)).first()


def find_member_by_handle(session: Session, team: Team, handle: str) -> Member | None:
    wanted = handle.lower().lstrip("@")
    return session.exec(select(Member).where(Member.team_id == team.id, Member.handle == wanted)).first()


def home_team(session: Session, *, platform: str, user_key: str) -> Team | None:
    """The team a user means in a private chat with the bot: the one they last used the bot in,
    among the teams they belong to (a refused command may have named a team they are not in)."""
    last = session.exec(select(CommandLog.team_key).where(CommandLog.platform == platform,
                                                          CommandLog.user_key == user_key,
                                                          CommandLog.team_key != "")
                        .order_by(col(CommandLog.id).desc()).limit(1)).first()
    if last is not None:
        team = find_team(session, platform=platform, key=last)
        if team is not None and find_member(session, team, user_key) is not None:
            return team
    return session.exec(select(Team).join(Member, col(Member.team_id) == Team.id)
                        .where(Team.platform == platform, Member.user_key == user_key)
                        .order_by(col(Team.id))).first()


def teams_of(session: Session, *, platform: str, user_key: str) -> int:
    """How many teams of a platform the user belongs to."""
    query = (select(func.count()).select_from(Member).join(Team, col(Team.id) == Member.team_id)
             .where(Team.platform == platform, Member.user_key == user_key))
    return int(session.exec(query).one())


def find_member_by_name(session: Session, team: Team, name: str) -> Member | None:
    wanted = name.strip().lstrip("@").casefold()
    for member in session.exec(select(Member).where(Member.team_id == team.id)):
        if member.name.casefold() == wanted or member.user_key.casefold() == wanted:
            return member
    return None


def ensure_member(
    session: Session,
    team: Team,
    *,
    user_key: str,
    name: str,
    now: datetime,
    admins: Iterable[str] = (),
    handle: str | None = None,
) -> Member:
    """The member behind a platform user, created on first contact.

    The first member of a team becomes its admin, unless the deployment names its admins.
    """
    handle = handle.lower().lstrip("@")[:64] if handle else None
    name = visible(name).strip()  # a platform's display name may carry U+202E or zero-widths
    member = find_member(session, team, user_key)
    if member:
        if name and member.name != name and name != user_key:
            member.name = name[:200]
        if handle and member.handle != handle:
            member.handle = handle
        return member
    admin_keys = {key.strip() for key in admins if key.strip()}
    if admin_keys:
        role = "admin" if user_key in admin_keys else "rep"
    else:
        has_members = session.exec(select(func.count()).select_from(Member).where(Member.team_id == team.id)).one()
        role = "rep" if has_members else "admin"
    try:
        with session.begin_nested():
            member = Member(team_id=team.id, user_key=user_key, name=(name or user_key)[:200], handle=handle,
                            role=role, created_at=now)
            session.add(member)
    except IntegrityError:
        member = find_member(session, team, user_key)
        assert member is not None
    return member


def members(session: Session, team: Team) -> list[Member]:
    return list(session.exec(select(Member).where(Member.team_id == team.id).order_by(col(Member.id))))


def set_role(scope: Scope, member: Member, role: str, *, manager: Member | None = None) -> None:
    if role not in ROLE_RANK:
        raise DomainError("team.unknown_role", role=role)
    # Two admins stepping down (or demoting each other) at once must not leave the team without one:
    # take the team lock, then look again at who is admin now.
    lock_team(scope.session, scope.team)
    scope.session.refresh(scope.actor)
    if member is not scope.actor:
        scope.session.refresh(member)
    require_role(scope.actor, "admin", "team")
    if member.role == "admin" and role != "admin" and _admin_count(scope) <= 1:
        raise DomainError("team.last_admin")
    if manager is not None and manager.id == member.id:
        raise DomainError("team.own_manager")
    before: dict[str, Any] = {"role": member.role, "manager_id": member.manager_id}
    member.role = role
    if manager is not None:
        member.manager_id = manager.id
    scope.session.add(member)
    audit.record(
        scope, entity="member", entity_id=member.id or 0, action="role",
        before=before, after={"role": member.role, "manager_id": member.manager_id},
    )


def _admin_count(scope: Scope) -> int:
    query = select(func.count()).select_from(Member).where(Member.team_id == scope.team.id, Member.role == "admin")
    return int(scope.session.exec(query).one())


def update_config(scope: Scope, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply already-parsed settings (dotted paths allowed); validate the whole; audit the change."""
    current = TeamConfig.model_validate(scope.team.config or {}).model_dump(mode="json")
    updated = _deep_copy(current)
    for path, value in changes.items():
        _set_path(updated, path.split("."), value)
    try:
        validated = TeamConfig.model_validate(updated)
    except ValidationError as exc:
        first = exc.errors()[0]
        detail = str(first.get("msg", "")).removeprefix("Value error, ")
        where = ".".join(str(part) for part in first.get("loc", ()))  # name the setting: "page_size: …"
        limits = {key: value for key, value in (first.get("ctx") or {}).items() if key in ("ge", "gt", "le", "lt")}
        raise DomainError("team.bad_config", detail=f"{where}: {detail}" if where else detail,
                          path=where, limits=limits) from exc
    stored = validated.model_dump(mode="json")
    before = {p: _get_path(current, p.split(".")) for p in changes}
    after = {p: _get_path(stored, p.split(".")) for p in changes}
    scope.team.config = stored
    scope.session.add(scope.team)
    scope.refresh_config()
    audit.record(scope, entity="team", entity_id=scope.team.id or 0, action="config", before=before, after=after)
    return before, after


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _set_path(tree: Any, path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def _get_path(tree: Any, path: list[str]) -> Any:
    node = tree
    for part in path:
        node = node[int(part)] if isinstance(node, list) else node.get(part)
    return node


def handoff(scope: Scope, source: Member, target: Member) -> tuple[list[Lead], list[Quote]]:
    """Move every open lead and pending quote of `source` to `target`, one audit event each."""
    if source.id == target.id:
        raise DomainError("team.handoff_same")
    actor = scope.actor
    if rank(actor) < ROLE_RANK["admin"] and source.id != actor.id and not is_manager_of(actor, source):
        raise DomainError("team.handoff_not_yours", member=source.name)
    session = scope.session
    leads = list(session.exec(
        select(Lead).where(Lead.team_id == scope.team.id, Lead.owner_id == source.id, Lead.status == "open")
        .order_by(col(Lead.number))
    ))
    moved_leads = []
    for lead in leads:
        # Only if it is still the source's open lead: an assignment or claim that won a race stays.
        result = session.execute(
            update(Lead)
            .where(col(Lead.id) == lead.id, col(Lead.owner_id) == source.id, col(Lead.status) == "open")
            .values(owner_id=target.id, version=Lead.version + 1, last_activity_at=scope.now)
        )
        if result.rowcount != 1:
            continue
        moved_leads.append(lead)
        audit.record(scope, entity="lead", entity_id=lead.id or 0, action="handoff",
                     before={"owner": source.name}, after={"owner": target.name})
    quotes = list(session.exec(
        select(Quote).where(Quote.team_id == scope.team.id, Quote.requester_id == source.id, Quote.status == "pending")
        .order_by(col(Quote.number))
    ))
    moved_quotes = []
    for quote in quotes:
        result = session.execute(
            update(Quote).where(col(Quote.id) == quote.id, col(Quote.requester_id) == source.id,
                                col(Quote.status) == "pending")
            .values(requester_id=target.id, version=Quote.version + 1)
        )
        if result.rowcount != 1:
            continue
        moved_quotes.append(quote)
        audit.record(scope, entity="quote", entity_id=quote.id or 0, action="handoff",
                     before={"requester": source.name}, after={"requester": target.name})
    session.expire_all()
    return moved_leads, moved_quotes


def lock_team(session: Session, team: Team) -> None:
    """Serialise this team's writers that read first and decide after (duplicate check, last admin).

    Postgres: a row lock on the team that conflicts with itself and with `next_number`, not with the
    foreign-key locks inserts take. SQLite: every unit of work already holds the write lock.
    """
    session.execute(select(Team.id).where(col(Team.id) == team.id).with_for_update(key_share=True))


def next_number(session: Session, team: Team, counter: str) -> int:
    """The next short id (L12, Q7) of a team; the row lock keeps concurrent writers apart."""
    column = Team.lead_seq if counter == "lead" else Team.quote_seq
    session.execute(update(Team).where(col(Team.id) == team.id).values({column: column + 1}))
    value = session.exec(select(column).where(Team.id == team.id)).one()
    return int(value)


def waiting_steps_for(session: Session, team: Team) -> list[ApprovalStep]:
    query = (
        select(ApprovalStep).join(Quote, col(Quote.id) == ApprovalStep.quote_id)
        .where(Quote.team_id == team.id, ApprovalStep.status == "waiting")
    )
    return list(session.exec(query))


def managers_of(session: Session, member: Member) -> list[Member]:
    """Who oversees `member`: their manager; else every manager of the team; else its admins."""
    if member.manager_id:
        manager = session.get(Member, member.manager_id)
        if manager:
            return [manager]
    people = list(session.exec(select(Member).where(Member.team_id == member.team_id).order_by(col(Member.id))))
    for role in ("manager", "admin"):
        found = [m for m in people if m.role == role and m.id != member.id]
        if found:
            return found
    return []


def locale_of(team: Team) -> str:
    """The language of pushes: the configured one, else the one the team last typed in."""
    configured = (team.config or {}).get("locale")
    return configured or team.last_locale or "en"
