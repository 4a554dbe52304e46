"""Commands received but not yet answered: one row each, from the moment a platform is told
"received" until the answer is out.

A row is written before the acknowledgement, already leased to the process that received it. The
command's own transaction settles it (`ran`, with the reply to give) together with its effect and
its command log row, so a command runs once whoever runs it. The row is deleted once the answer is
out. A row whose lease ran out (its process died, or could not answer) is claimed by any server or
worker, which runs it if it has not run and answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from models.tables import InboundCommand


@dataclass(frozen=True)
class Held:
    """A received command as its runner sees it."""

    id: int
    platform: str
    key: str
    invocation: dict[str, Any]
    answer_to: dict[str, Any]
    received_at: datetime
    reply: dict[str, Any] | None = None  # set once it ran
    attempts: int = 0


def receive(
    session: Session,
    *,
    platform: str,
    key: str,
    invocation: dict[str, Any],
    answer_to: dict[str, Any],
    now: datetime,
    lease: timedelta,
) -> int | None:
    """Keep a command before it is acknowledged, leased to the caller. A platform's retry of a
    command kept before and not run yet (its receiver died, or is slow) is the caller's to run
    now: whoever runs it first, it runs once. None when that delivery has run (its answer is
    given by its runner, or after the lease)."""
    values = {
        "platform": platform,
        "key": key[:200],
        "invocation": invocation,
        "answer_to": answer_to,
        "status": "received",
        "received_at": now,
        "claimed_until": now + lease,
        "attempts": 0,
    }
    dialect = session.get_bind().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert_for(InboundCommand)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["platform", "key"])
        .returning(InboundCommand.id)
    )
    found = session.execute(statement).first()
    if found is None:
        found = session.execute(
            update(InboundCommand)
            .where(
                col(InboundCommand.platform) == platform,
                col(InboundCommand.key) == key[:200],
                col(InboundCommand.status) == "received",
            )
            .values(claimed_until=now + lease, attempts=InboundCommand.attempts + 1)
            .returning(InboundCommand.id)
        ).first()
    return None if found is None else int(found[0])


def settle(
    session: Session, command_id: int, *, reply: dict[str, Any], now: datetime, lease: timedelta
) -> bool:
    """Note, in the transaction that ran the command, that it ran and what to answer; the lease
    starts again so the runner has its time to answer. False when it had run already."""
    result = session.execute(
        update(InboundCommand)
        .where(col(InboundCommand.id) == command_id, col(InboundCommand.status) == "received")
        .values(status="ran", reply=reply, claimed_until=now + lease)
    )
    return bool(result.rowcount)


def answered(session: Session, command_id: int) -> None:
    session.execute(delete(InboundCommand).where(col(InboundCommand.id) == command_id))


def claim_due(
    session: Session, *, now: datetime, lease: timedelta, batch: int, platforms: list[str]
) -> list[Held]:
    """Take commands of these platforms whose lease ran out; concurrent claimers never get the
    same one."""
    query = (
        select(InboundCommand.id)
        .where(col(InboundCommand.claimed_until) < now, col(InboundCommand.platform).in_(platforms))
        .order_by(col(InboundCommand.id))
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.execute(query).scalars())
    if not ids:
        return []
    session.execute(
        update(InboundCommand)
        .where(col(InboundCommand.id).in_(ids))
        .values(claimed_until=now + lease, attempts=InboundCommand.attempts + 1)
    )
    rows = session.execute(
        select(InboundCommand)
        .where(col(InboundCommand.id).in_(ids))
        .order_by(col(InboundCommand.id))
    ).scalars()
    return [
        Held(
            id=row.id or 0,
            platform=row.platform,
            key=row.key,
            invocation=row.invocation,
            answer_to=row.answer_to,
            received_at=row.received_at,
            reply=row.reply if row.status == "ran" else None,
            attempts=row.attempts,
        )
        for row in rows
    ]


def retry_later(session: Session, command_id: int, *, at: datetime, error: str) -> None:
    session.execute(
        update(InboundCommand)
        .where(col(InboundCommand.id) == command_id)
        .values(claimed_until=at, last_error=error[:2000])
    )


def give_back(session: Session, command_ids: list[int], *, now: datetime, refund: bool) -> None:
    """End this process's lease on these commands (it is stopping): any server or worker takes
    them at once. `refund`: claimed and never started, the claim does not count as an attempt."""
    values: dict[str, Any] = {"claimed_until": now}
    if refund:
        values["attempts"] = InboundCommand.attempts - 1
    session.execute(
        update(InboundCommand).where(col(InboundCommand.id).in_(command_ids)).values(**values)
    )
