"""Writing pushes: an outbox row per message, idempotent by its dedupe key."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from models.tables import InboundDelivery, Member, Outbox, Team


def enqueue(
    session: Session,
    *,
    team: Team,
    kind: str,
    dedupe_key: str,
    payload: dict[str, Any],
    now: datetime,
    member: Member | None = None,
    channel: str | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Queue one message for a member or a channel; False when that dedupe key was queued before."""
    if (member is None) == (channel is None):
        raise ValueError("a push goes to exactly one member or one channel")
    values = {
        "team_id": team.id,
        "platform": team.platform,
        "target_kind": "member" if member else "channel",
        "target": member.user_key if member else channel,
        "target_label": member.name if member else channel,
        "kind": kind,
        "dedupe_key": dedupe_key[:200],
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": not_before or now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # RETURNING, not rowcount: psycopg reports -1 rows for INSERT … ON CONFLICT DO NOTHING.
    statement = (insert_for(Outbox).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
                 .returning(Outbox.id))
    return session.execute(statement).first() is not None


def first_delivery(session: Session, *, platform: str, key: str, now: datetime) -> bool:
    """Record an inbound delivery id; False when it was recorded before (a platform's retry)."""
    values = {"platform": platform, "key": key[:200], "received_at": now}
    dialect = session.get_bind().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (insert_for(InboundDelivery).values(**values)
                 .on_conflict_do_nothing(index_elements=["platform", "key"]).returning(InboundDelivery.id))
    return session.execute(statement).first() is not None


def retry_delay(backoff: timedelta, attempts: int, cap: timedelta) -> timedelta:
    """How long to wait after the `attempts`-th failure: `backoff`, doubled each time, at most
    `cap`."""
    return min(backoff * 2 ** (attempts - 1), cap)
