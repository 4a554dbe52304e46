"""Writing pushes: an outbox row per message, idempotent by its dedupe key."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from models.tables import InboundDelivery, Member, Outbox, Team

log = logging.getLogger("dealbot.outbox")

Committed = Callable[[list[int]], None]
# Who wants to hear of rows the moment their transaction commits, per engine: a serving process's
# delivery task, so a push leaves at once instead of at the next poll.
_listeners: weakref.WeakKeyDictionary[Engine, list[Committed]] = weakref.WeakKeyDictionary()


def listen(engine: Engine, action: Committed) -> None:
    """Call `action` with the ids of the rows each transaction on `engine` queued, once it committed
    (from the committing thread; never for a transaction rolled back)."""
    _listeners.setdefault(engine, []).append(action)


def unlisten(engine: Engine, action: Committed) -> None:
    actions = _listeners.get(engine, [])
    if action in actions:
        actions.remove(action)


def _announce_on_commit(session: Session, row_id: int) -> None:
    bind = session.get_bind()
    actions = _listeners.get(getattr(bind, "engine", bind))  # type: ignore[arg-type]
    if not actions:
        return
    queued = session.info.setdefault("outbox_queued", [])
    queued.append(row_id)
    if len(queued) > 1:
        return  # the listeners below hear of every row of this transaction at once

    def committed(_session: Session) -> None:
        ids = list(session.info.pop("outbox_queued", []))
        for action in list(actions) if ids else []:
            try:
                action(ids)
            except Exception:  # the command has committed: its answer must not fail for this
                log.exception("telling a listener of queued outbox rows failed")

    def rolled_back(_session: Session) -> None:
        session.info.pop("outbox_queued", None)  # leaves `committed` nothing to announce

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_rollback", rolled_back, once=True)


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
    row = session.execute(statement).first()
    if row is None:
        return False
    _announce_on_commit(session, int(row[0]))
    return True


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
