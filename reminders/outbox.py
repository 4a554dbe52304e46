"""Delivering the outbox: claim due rows, send through the platform's `Sender`, mark the outcome.

A row is claimed with a lease (`status='sending'`, `claimed_until`). A worker that dies after the claim
leaves the lease to run out, and the row is delivered by the next run: nothing is lost. A row is marked
`sent` only after the platform accepted it, so a crash between the platform's "ok" and our mark can
send that one message again — the only duplicate possible, bounded to the rows in flight at the crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import AuthBroken, RateLimited, Sender, Target, TargetGone
from commands.types import Reply
from models.clock import Clock
from models.db import unit_of_work
from models.tables import Outbox
from reminders.limits import Pacer

log = logging.getLogger("dealbot.outbox")


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    postponed: int = 0  # rate limited: waits without spending an attempt
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.postponed += other.postponed
        self.errors += other.errors


@dataclass
class Claimed:
    id: int
    platform: str
    target: Target
    payload: dict[str, Any]
    attempts: int


Sleep = Callable[[float], Awaitable[None]]


class OutboxDelivery:
    """Claims due rows and delivers them, paced below the platforms' limits.

    A row whose booked slot is only a little ahead (`max_wait`) is waited for with `sleep`; a row whose
    slot is further away goes back to the outbox with that moment as its next attempt.
    """

    def __init__(self, engine: Engine, senders: Mapping[str, Sender], clock: Clock, *, max_attempts: int = 6,
                 batch: int = 100, lease: timedelta = timedelta(minutes=2),
                 backoff: timedelta = timedelta(seconds=30), pacer: Pacer | None = None,
                 sleep: Sleep = asyncio.sleep, max_wait: timedelta = timedelta(seconds=2)) -> None:
        self.engine = engine
        self.senders = senders
        self.clock = clock
        self.max_attempts = max_attempts
        self.batch = batch
        self.lease = lease
        self.backoff = backoff
        self.pacer = pacer or Pacer({})
        self.sleep = sleep
        self.max_wait = max_wait

    def due_condition(self, now: datetime) -> Any:
        return or_(
            (col(Outbox.status) == "pending") & (col(Outbox.next_attempt_at) <= now),
            (col(Outbox.status) == "sending") & (col(Outbox.claimed_until) < now),
        )

    def claim(self) -> list[Claimed]:
        """Take up to `batch` due rows for this worker; concurrent workers never get the same row."""
        now = self.clock.now()
        with unit_of_work(self.engine) as session:
            query = (select(Outbox.id).where(self.due_condition(now), col(Outbox.platform).in_(list(self.senders)))
                     .order_by(col(Outbox.next_attempt_at), col(Outbox.id)).limit(self.batch))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(session.execute(query).scalars())
            if not ids:
                return []
            session.execute(update(Outbox).where(col(Outbox.id).in_(ids))
                            .values(status="sending", claimed_until=now + self.lease, attempts=Outbox.attempts + 1))
            rows = session.execute(select(Outbox).where(col(Outbox.id).in_(ids))
                                   .order_by(col(Outbox.next_attempt_at), col(Outbox.id))).scalars()
            return [Claimed(id=row.id or 0, platform=row.platform,
                            target=Target(kind=row.target_kind, key=row.target, label=row.target_label),
                            payload=row.payload, attempts=row.attempts) for row in rows]

    async def run_once(self) -> DeliveryReport:
        """Deliver everything due now, batch after batch, until nothing is due."""
        report = DeliveryReport()
        while True:
            claimed = self.claim()
            if not claimed:
                return report
            for row in claimed:
                await self.deliver(row, report)
            if len(claimed) < self.batch:
                return report

    async def deliver(self, row: Claimed, report: DeliveryReport) -> None:
        sender = self.senders[row.platform]
        now = self.clock.now()
        slot = self.pacer.reserve(row.platform, row.target.kind, row.target.key, now, within=self.max_wait,
                                  ticket=row.id)
        if slot - now > self.max_wait:
            self._finish(row, status="pending", delay=slot - now, refund=True)
            report.postponed += 1
            return
        if slot > now:
            await self.sleep((slot - now).total_seconds())
        try:
            reply = Reply.model_validate(row.payload)
            ref = await sender.send(row.target, reply)
        except RateLimited as error:
            # Obey it for the whole chat, not just this row: the rest of the batch waits too.
            self.pacer.hold(row.platform, row.target.kind, row.target.key,
                            self.clock.now() + timedelta(seconds=error.retry_after))
            self._finish(row, status="pending", delay=timedelta(seconds=error.retry_after), refund=True,
                         error=str(error))
            report.postponed += 1
        except (TargetGone, AuthBroken) as error:
            self._finish(row, status="dead", error=f"{type(error).__name__}: {error}")
            report.dead += 1
            report.errors.append(str(error))
        except Exception as error:  # noqa: BLE001 - any other failure is retried, then given up on
            if row.attempts >= self.max_attempts:
                self._finish(row, status="dead", error=f"{type(error).__name__}: {error}")
                report.dead += 1
            else:
                delay = min(self.backoff * (2 ** (row.attempts - 1)), timedelta(hours=1))
                self._finish(row, status="pending", delay=delay, error=f"{type(error).__name__}: {error}")
                report.retried += 1
            log.warning("delivery of outbox row %s failed: %s", row.id, error)
        else:
            self._finish(row, status="sent", message_ref=ref)
            report.sent += 1

    def _finish(self, row: Claimed, *, status: str, delay: timedelta | None = None, refund: bool = False,
                error: str | None = None, message_ref: str | None = None) -> None:
        now = self.clock.now()
        values: dict[str, Any] = {"status": status, "claimed_until": None}
        if status == "sent":
            values.update(sent_at=now, message_ref=message_ref)
        if delay is not None:
            values["next_attempt_at"] = now + delay
        if refund:
            values["attempts"] = Outbox.attempts - 1
        if error is not None:
            values["last_error"] = error[:2000]
        with unit_of_work(self.engine) as session:
            session.execute(update(Outbox).where(col(Outbox.id) == row.id, col(Outbox.status) == "sending")
                            .values(**values))
