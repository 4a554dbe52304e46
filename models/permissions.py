"""Who may see and change what. The single place these rules live.

Reps see and change their own leads and see the pool (公海); managers see and change the leads of
their reports, their own, the pool, and those of reps with no manager set (small teams rarely set
one); admins see and change everything.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from models.config import ROLE_RANK
from models.errors import DomainError
from models.tables import Lead, Member


def rank(member: Member) -> int:
    return ROLE_RANK.get(member.role, 0)


def is_manager_of(manager: Member, owner: Member | None) -> bool:
    """Whether `manager` oversees `owner`: as their manager, or as any manager of an unmanaged rep."""
    if owner is None or rank(manager) < ROLE_RANK["manager"]:
        return False
    if rank(manager) >= ROLE_RANK["admin"]:
        return True
    if owner.manager_id == manager.id:
        return True
    return owner.manager_id is None and owner.role == "rep"


def can_see(session: Session, member: Member, lead: Lead) -> bool:
    if lead.owner_id is None or lead.owner_id == member.id or rank(member) >= ROLE_RANK["admin"]:
        return True
    owner = session.get(Member, lead.owner_id)
    return is_manager_of(member, owner)


def can_change(session: Session, member: Member, lead: Lead) -> bool:
    """Change the lead's facts, stage, follow-ups, quotes and outcome."""
    if lead.owner_id is None:
        return rank(member) >= ROLE_RANK["manager"]
    return can_see(session, member, lead)


def visible_leads(member: Member) -> Any:
    """The same rule as `can_see`, as a SQL condition for list queries."""
    if rank(member) >= ROLE_RANK["admin"]:
        return Lead.team_id == member.team_id
    mine_or_pool = or_(col(Lead.owner_id).is_(None), Lead.owner_id == member.id)
    if rank(member) < ROLE_RANK["manager"]:
        return and_(Lead.team_id == member.team_id, mine_or_pool)
    reports = select(Member.id).where(
        Member.team_id == member.team_id,
        or_(
            Member.manager_id == member.id,
            and_(col(Member.manager_id).is_(None), Member.role == "rep"),
        ),
    )
    return and_(Lead.team_id == member.team_id, or_(mine_or_pool, col(Lead.owner_id).in_(reports)))


def require_see(session: Session, member: Member, lead: Lead) -> None:
    if not can_see(session, member, lead):
        raise DomainError("lead.not_visible", lead=lead.number, owner=_owner_name(session, lead))


def require_change(session: Session, member: Member, lead: Lead) -> None:
    require_see(session, member, lead)
    if not can_change(session, member, lead):
        if lead.owner_id is None:
            raise DomainError("lead.in_pool", lead=lead.number)
        raise DomainError("lead.not_yours", lead=lead.number, owner=_owner_name(session, lead))


def require_role(member: Member, role: str, action: str) -> None:
    if rank(member) < ROLE_RANK[role]:
        raise DomainError("forbidden.role", action=action, role=role)


def _owner_name(session: Session, lead: Lead) -> str:
    owner = session.get(Member, lead.owner_id) if lead.owner_id else None
    return owner.name if owner else "-"
