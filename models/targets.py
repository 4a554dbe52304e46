"""Monthly sales targets per member, set by managers and shown against what was won."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, func, select

from models import audit
from models.errors import DomainError
from models.permissions import is_manager_of, rank, require_role
from models.scope import Scope
from models.tables import Lead, Member, Target
from models.teams import lock_team


def month_bounds(month: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC start and end of a calendar month in the team's timezone."""
    year, number = (int(part) for part in month.split("-"))
    start = datetime.combine(date(year, number, 1), time(), tz)
    end = datetime.combine(date(year + number // 12, number % 12 + 1, 1), time(), tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def set_target(scope: Scope, member: Member, *, month: str, amount: int) -> Target:
    require_role(scope.actor, "manager", "target")
    if rank(scope.actor) < 2 and member.id != scope.actor.id and not is_manager_of(scope.actor, member):
        raise DomainError("target.not_your_report", member=member.name)
    if amount <= 0:
        raise DomainError("target.amount_positive")
    lock_team(scope.session, scope.team)  # two managers setting the same target at once: one row
    target = scope.session.exec(select(Target).where(Target.team_id == scope.team.id, Target.member_id == member.id,
                                                     Target.month == month)).first()
    before = {"amount": target.amount} if target else None
    if target is None:
        target = Target(team_id=scope.team.id or 0, member_id=member.id or 0, month=month, amount=amount)
    target.amount = amount
    scope.session.add(target)
    scope.session.flush()
    audit.record(scope, entity="target", entity_id=target.id or 0, action="set", before=before,
                 after={"member": member.name, "month": month, "amount": amount})
    return target


@dataclass
class TargetProgress:
    member: Member
    target: int | None
    won: int

    @property
    def percent(self) -> int | None:
        return round(self.won * 100 / self.target) if self.target else None


def progress(session: Session, *, team_id: int, month: str, tz: ZoneInfo,
             member_ids: list[int] | None = None) -> list[TargetProgress]:
    """Target and won amount for everyone with either in that month, largest target first."""
    start, end = month_bounds(month, tz)
    targets = dict(session.exec(select(Target.member_id, Target.amount)
                                .where(Target.team_id == team_id, Target.month == month)).all())
    won = dict(session.exec(
        select(Lead.owner_id, func.coalesce(func.sum(Lead.won_amount), 0))
        .where(Lead.team_id == team_id, Lead.status == "won", col(Lead.closed_at) >= start, col(Lead.closed_at) < end)
        .group_by(col(Lead.owner_id))).all())
    ids = {i for i in (*targets, *won) if i is not None}
    if member_ids is not None:
        ids &= set(member_ids)
    members = {m.id: m for m in session.exec(select(Member).where(col(Member.id).in_(ids)))} if ids else {}
    rows = [TargetProgress(member=members[i], target=targets.get(i), won=int(won.get(i, 0))) for i in ids if i in members]
    return sorted(rows, key=lambda r: (-(r.target or 0), -r.won, r.member.name))
