"""Writing pushes: an outbox row per message, idempotent by its dedupe key."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from models.tables import InboundDelivery, Member, Outbox, OutboxSubject, Team

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
    about: Sequence[str] = (),
) -> bool:
    """Queue one message for a member or a channel; False when that dedupe key was queued before.
    `about`: the decisions it asks for (`quote:<id>` …), whose outcome will be written into it."""
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
    inserted = session.execute(statement).first()
    if inserted is None:
        return False
    if about:
        session.execute(insert_for(OutboxSubject), [
            {"team_id": team.id, "outbox_id": inserted[0], "subject": subject}
            for subject in dict.fromkeys(about)])
    _announce_on_commit(session, int(inserted[0]))
    return True


def messages_about(session: Session, *, team_id: int, subject: str) -> list[tuple[Outbox, int]]:
    """Every message pushed about `subject` that may still be read as it was, oldest first, each
    with how many subjects it is about (a reminder may list several quotes)."""
    subjects = (select(func.count()).where(col(OutboxSubject.outbox_id) == Outbox.id)
                .correlate(Outbox).scalar_subquery())
    rows = session.execute(
        select(Outbox, subjects).join(OutboxSubject, col(OutboxSubject.outbox_id) == Outbox.id)
        .where(col(OutboxSubject.team_id) == team_id, col(OutboxSubject.subject) == subject,
               col(Outbox.status).in_(("pending", "sending", "sent")))
        .order_by(col(Outbox.id))).all()
    return [(row, int(count)) for row, count in rows]


def revise(session: Session, message: Outbox, *, payload: dict[str, Any], state: str, now: datetime,
           only_subject: bool, closed: bool) -> str:
    """Make a pushed message say `payload` instead, through an `edit` row paced and retried like
    any push, which waits for the message to be sent and replaces any older edit of it still
    waiting. A message not sent yet that was about nothing but a decision now `closed` is never
    sent at all. `state` names what the message now tells: one edit per message and state.
    Returns dropped | edit | known (that edit was queued before)."""
    if message.status == "pending" and closed and only_subject:
        dropped = session.execute(
            update(Outbox).where(col(Outbox.id) == message.id, col(Outbox.status) == "pending")
            .values(status="dropped", last_error="overtaken before it was sent")
            .execution_options(synchronize_session=False))
        if dropped.rowcount == 1:
            return "dropped"
        session.refresh(message)  # claimed a moment ago: it goes out as it was, then is edited
    values = {
        "team_id": message.team_id, "platform": message.platform,
        "target_kind": message.target_kind,
        "target": message.target, "target_label": message.target_label, "kind": "edit",
        "dedupe_key": f"edit:{message.id}:{state}"[:200], "payload": payload, "status": "pending",
        "attempts": 0, "next_attempt_at": now, "created_at": now, "edit_of": message.id,
        "message_ref": message.message_ref,
    }
    dialect = session.get_bind().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    inserted = session.execute(insert_for(Outbox).values(**values)
                               .on_conflict_do_nothing(index_elements=["dedupe_key"])
                               .returning(Outbox.id)).first()
    if inserted is None:
        return "known"
    _announce_on_commit(session, int(inserted[0]))
    session.execute(update(Outbox).where(col(Outbox.edit_of) == message.id,
                                         col(Outbox.status) == "pending",
                                         col(Outbox.id) != inserted[0])
                    .values(status="dropped", last_error="a newer edit replaced it")
                    .execution_options(synchronize_session=False))
    return "edit"


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
