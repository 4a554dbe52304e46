"""The audit trail: one event per change, with the changed fields before and after."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from models.scope import Scope
from models.tables import AuditEvent


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def record(
    scope: Scope,
    *,
    entity: str,
    entity_id: int,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    return record_event(scope.session, team_id=scope.team.id or 0, actor_id=scope.actor.id, at=scope.now,
                        entity=entity, entity_id=entity_id, action=action, before=before, after=after)


def record_event(
    session: Session,
    *,
    team_id: int,
    actor_id: int | None,
    at: datetime,
    entity: str,
    entity_id: int,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """An audit event; `actor_id` is None when the bot itself acted (a reminder scan)."""
    event = AuditEvent(
        team_id=team_id,
        actor_id=actor_id,
        at=at,
        entity=entity,
        entity_id=entity_id,
        action=action,
        before={k: _plain(v) for k, v in before.items()} if before is not None else None,
        after={k: _plain(v) for k, v in after.items()} if after is not None else None,
    )
    session.add(event)
    return event


def history(session: Session, *, team_id: int, entity: str, entity_id: int, limit: int = 10) -> list[AuditEvent]:
    """The newest changes of one record, newest first."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.team_id == team_id, AuditEvent.entity == entity, AuditEvent.entity_id == entity_id)
        .order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc())
        .limit(limit)
    )
    return list(session.exec(query))
