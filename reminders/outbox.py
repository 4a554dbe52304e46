"""Delivering the outbox: claim due rows, send through the platform's `Sender`, mark the outcome.

A row is claimed with a lease (`status='sending'`, `claimed_until`). A worker that dies after the claim
leaves the lease to run out, and the row is delivered by the next run: nothing is lost. A row is marked
`sent` only after the platform accepted it, so a crash between the platform's "ok" and our mark can
send that one message again — the only duplicate possible, bounded to the rows in flight at the crash.
A worker sends one row at a time, so that is at most one message (with all its parts) per worker per
crash; a serving process's `Courier` sends up to `at_once` (8) at a time, so at most that many. A worker whose lease ran out before a row's turn leaves the row to whoever claims it next
rather than race them; the lease (`DEALBOT_OUTBOX_LEASE_SECONDS`, 2 minutes) must outlast one send.
A worker told to stop (`stop`) finishes the row in hand and gives back the rows it claimed and had
not started, so another worker sends them at once rather than after the lease.

A row with `edit_of` edits the message another row sent (a card once its decision is made): it waits
for that message to be out, gives way to a newer edit of the same message, and is dropped, not
retried, when the platform no longer lets the message change.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import AuthBroken, RateLimited, Sender, Target, TargetGone, Unchangeable
from commands.types import Reply
from models import outbox
from models.clock import Clock
from models.db import unit_of_work
from models.outbox import retry_delay
from models.tables import Outbox, Team
from reminders.limits import Pacer, SharedPacer

log = logging.getLogger("dealbot.outbox")


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    postponed: int = 0  # rate limited: waits without spending an attempt
    dropped: int = 0  # edits with nothing to do: superseded, or the message can no longer change
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.dead += other.dead
        self.postponed += other.postponed
        self.dropped += other.dropped
        self.errors += other.errors


@dataclass
class Claimed:
    id: int
    platform: str
    target: Target
    payload: dict[str, Any]
    attempts: int
    team_id: int = 0
    kind: str = ""
    team_key: str = ""  # the team's platform key: buttons on the message act in that team
    until: datetime | None = None  # the lease: after this, another worker may have claimed the row
    edit_of: int | None = None  # an edit: the row whose message it changes
    message_ref: str | None = None  # an edit: that message, when it was known at queueing


@dataclass(frozen=True)
class Delivered:
    """What an observer (metrics, logs) hears of each delivery attempt; never the message itself."""

    outbox_id: int
    team_id: int
    platform: str
    kind: str
    outcome: str  # sent | retried | dead | postponed (paced, or the platform said 429) | dropped
    attempts: int
    duration_ms: float
    error: Exception | None = None  # what the platform's sender raised, if anything


Sleep = Callable[[float], Awaitable[None]]
DeliveryObserver = Callable[[Delivered], None]


class OutboxDelivery:
    """Claims due rows and delivers them, paced below the platforms' limits.

    A row whose booked slot is only a little ahead (`max_wait`) is waited for with `sleep`; a row whose
    slot is further away goes back to the outbox with that moment as its next attempt.
    """

    def __init__(self, engine: Engine, senders: Mapping[str, Sender], clock: Clock, *, max_attempts: int = 6,
                 batch: int = 100, lease: timedelta = timedelta(minutes=2),
                 backoff: timedelta = timedelta(seconds=30), pacer: Pacer | SharedPacer | None = None,
                 sleep: Sleep = asyncio.sleep, max_wait: timedelta = timedelta(seconds=2),
                 observer: DeliveryObserver | None = None) -> None:
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
        self.observer = observer
        self.stopping = False
        self._waiting: list[Claimed] = []  # claimed in this pass, not started yet
        # Told of each row put back for later (a paced slot, a Retry-After, a retry) and when it is
        # due: a `Courier` comes back for it then, rather than leave it to the next poll.
        self.on_postponed: Callable[[int, datetime], None] | None = None
        self.offload: Executor | None = None

    def due_condition(self, now: datetime) -> Any:
        return or_(
            (col(Outbox.status) == "pending") & (col(Outbox.next_attempt_at) <= now),
            (col(Outbox.status) == "sending") & (col(Outbox.claimed_until) < now),
        )

    def claim(self, ids: list[int] | None = None) -> list[Claimed]:
        """Take up to `batch` due rows (of `ids` only, when given) for this worker; concurrent workers
        never get the same row."""
        now = self.clock.now()
        with unit_of_work(self.engine) as session:
            query = (select(Outbox.id).where(self.due_condition(now), col(Outbox.platform).in_(list(self.senders)))
                     .order_by(col(Outbox.next_attempt_at), col(Outbox.id)).limit(self.batch))
            if ids is not None:
                query = query.where(col(Outbox.id).in_(ids))
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(session.execute(query).scalars())
            if not ids:
                return []
            session.execute(update(Outbox).where(col(Outbox.id).in_(ids))
                            .values(status="sending", claimed_until=now + self.lease, attempts=Outbox.attempts + 1))
            rows = session.execute(select(Outbox, Team.key)
                                   .outerjoin(Team, col(Team.id) == Outbox.team_id)
                                   .where(col(Outbox.id).in_(ids))
                                   .order_by(col(Outbox.next_attempt_at), col(Outbox.id))).all()
            return [Claimed(id=row.id or 0, platform=row.platform,
                            target=Target(kind=row.target_kind, key=row.target, label=row.target_label),
                            payload=row.payload, attempts=row.attempts, team_id=row.team_id,
                            kind=row.kind, team_key=team_key or "", until=now + self.lease,
                            edit_of=row.edit_of, message_ref=row.message_ref)
                    for row, team_key in rows]

    async def run_once(self) -> DeliveryReport:
        """Deliver everything due now, batch after batch, until nothing is due."""
        report = DeliveryReport()
        while not self.stopping:
            claimed = self.claim()
            if not claimed:
                return report
            self._waiting = claimed[::-1]
            while self._waiting and not self.stopping:
                await self.deliver(self._waiting.pop(), report)
            if len(claimed) < self.batch:
                return report
        return report

    def stop(self) -> int:
        """Start no other row: the one in hand is finished by its pass, the rows claimed and not
        started go back to the outbox now; how many."""
        self.stopping = True
        rows, self._waiting = self._waiting, []
        with unit_of_work(self.engine) as session:
            for until in {row.until for row in rows}:
                ids = [row.id for row in rows if row.until == until]
                # Only while the lease is still ours: past it, another worker may hold them.
                session.execute(update(Outbox)
                                .where(col(Outbox.id).in_(ids), col(Outbox.status) == "sending",
                                       col(Outbox.claimed_until) == until)
                                .values(status="pending", claimed_until=None,
                                        attempts=Outbox.attempts - 1))
        return len(rows)

    async def deliver(self, row: Claimed, report: DeliveryReport) -> None:
        sender = self.senders[row.platform]
        started = time.perf_counter()
        if row.edit_of is not None:
            verdict = await self._db(self._edited_message, row)
            if verdict in ("superseded", "gone"):
                why = ("a newer edit replaced it" if verdict == "superseded"
                       else "the message was never sent")
                await self._db(self._finish, row, status="dropped", error=why)
                report.dropped += 1
                self._observe(row, "dropped", started)
                return
            if isinstance(verdict, datetime):  # its message is still to be sent: look again then
                delay = max(verdict - self.clock.now(), self.EDIT_WAIT)
                await self._db(self._finish, row, status="pending", delay=delay, refund=True)
                self._postponed(row, self.clock.now() + delay)
                report.postponed += 1
                self._observe(row, "postponed", started)
                return
        now = self.clock.now()
        slot = await self._db(self.pacer.reserve, row.platform, row.target.kind, row.target.key,
                              now, within=self.max_wait, ticket=row.id)
        if slot - now > self.max_wait:
            await self._db(self._finish, row, status="pending", delay=slot - now, refund=True)
            self._postponed(row, slot)
            report.postponed += 1
            self._observe(row, "postponed", started)
            return
        if slot > now:
            await self.sleep((slot - now).total_seconds())
            # A 429 heard meanwhile (by this process or another) holds the chat past our slot.
            held = await self._db(self.pacer.held_until, row.platform, row.target.kind, row.target.key)
            if held is not None and held > self.clock.now():
                await self._db(self._finish, row, status="pending", delay=held - self.clock.now(),
                               refund=True)
                self._postponed(row, held)
                report.postponed += 1
                self._observe(row, "postponed", started)
                return
        if row.until is not None and self.clock.now() >= row.until:
            return  # our lease ran out: the row may be someone else's now; sending could double it
        try:
            # The row's team, not anything in the payload, is the team its buttons act in.
            reply = Reply.model_validate(row.payload).model_copy(update={"team_key": row.team_key})
            if row.edit_of is not None:  # never a new message: `_edited_message` found its ref
                ref = row.message_ref or ""
                await sender.update(ref, reply)
            else:
                ref = await sender.send(row.target, reply)
        except Unchangeable as error:
            # Too old, deleted, or its one permitted change spent: it stays as it is, no retry.
            await self._db(self._finish, row, status="dropped", error=f"left as it was: {error}")
            report.dropped += 1
            self._observe(row, "dropped", started, error)
        except RateLimited as error:
            # Obey it for the whole chat, not just this row: the rest of the batch waits too.
            await self._db(self.pacer.hold, row.platform, row.target.kind, row.target.key,
                           self.clock.now() + timedelta(seconds=error.retry_after))
            await self._db(self._finish, row, status="pending", refund=True, error=str(error),
                           delay=timedelta(seconds=error.retry_after))
            self._postponed(row, self.clock.now() + timedelta(seconds=error.retry_after))
            report.postponed += 1
            self._observe(row, "postponed", started, error)
        except (TargetGone, AuthBroken) as error:
            await self._db(self._finish, row, status="dead",
                           error=f"{type(error).__name__}: {error}")
            report.dead += 1
            report.errors.append(str(error))
            self._observe(row, "dead", started, error)
        except Exception as error:  # noqa: BLE001 - any other failure is retried, then given up on
            if row.attempts >= self.max_attempts:
                await self._db(self._finish, row, status="dead",
                               error=f"{type(error).__name__}: {error}")
                report.dead += 1
            else:
                delay = retry_delay(self.backoff, row.attempts, cap=timedelta(hours=1))
                await self._db(self._finish, row, status="pending", delay=delay,
                               error=f"{type(error).__name__}: {error}")
                self._postponed(row, self.clock.now() + delay)
                report.retried += 1
            log.warning("delivery of outbox row %s failed: %s", row.id, error)
            self._observe(row, "dead" if row.attempts >= self.max_attempts else "retried", started, error)
        else:
            await self._db(self._finish, row, status="sent", message_ref=ref)
            report.sent += 1
            self._observe(row, "sent", started)

    EDIT_WAIT = timedelta(seconds=2)  # an edit of a message still on its way looks again after this

    def _edited_message(self, row: Claimed) -> str | datetime:
        """Whether an edit can go now (`ready`, with `row.message_ref` filled in), must wait for its
        message to be sent (the moment that is due), or has nothing to do: its message is `gone`
        (dead, dropped) or a newer edit of it was queued (`superseded`)."""
        with unit_of_work(self.engine) as session:
            newer = session.execute(select(Outbox.id).where(
                col(Outbox.edit_of) == row.edit_of, col(Outbox.id) > row.id,
                col(Outbox.status) != "dropped").limit(1)).first()
            if newer is not None:
                return "superseded"
            original = session.execute(
                select(Outbox.status, Outbox.message_ref, Outbox.next_attempt_at)
                .where(col(Outbox.id) == row.edit_of)).first()
        if original is None or original.status not in ("pending", "sending", "sent"):
            return "gone"
        if original.status != "sent":
            return original.next_attempt_at
        if not original.message_ref:
            return "gone"
        row.message_ref = original.message_ref
        return "ready"
    async def _db(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # A serving process delivers on the loop that answers requests: a transaction waiting for
        # SQLite's write lock must not hold that loop, nor the threads its requests run on, so
        # there it runs on threads of its own.
        if self.offload is not None:
            loop = asyncio.get_running_loop()
            call = functools.partial(action, *args, **kwargs)
            return await loop.run_in_executor(self.offload, call)
        return action(*args, **kwargs)

    def _postponed(self, row: Claimed, due: datetime) -> None:
        if self.on_postponed is not None:
            self.on_postponed(row.id, due)

    def _observe(self, row: Claimed, outcome: str, started: float, error: Exception | None = None) -> None:
        if self.observer is None:
            return
        try:
            self.observer(Delivered(outbox_id=row.id, team_id=row.team_id, platform=row.platform, kind=row.kind,
                                    outcome=outcome, attempts=row.attempts,
                                    duration_ms=round((time.perf_counter() - started) * 1000, 2), error=error))
        except Exception:
            log.exception("the delivery observer failed")

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


class Courier:
    """Delivers the pushes its own process queues the moment their transaction commits.

    The outbox tells it the ids of each committed transaction's rows (`models.outbox.listen`, called
    from the committing thread); it claims exactly those through the same lease a worker uses, so a
    row is sent by whoever claims it first and never by both, and delivers each with the same pacing
    (a `SharedPacer`: the windows are the database's, shared with the workers), Retry-After, retries
    and dead rows. A row put back for later (a paced slot, a 429, a retry) is claimed again when it
    is due. Whatever it never gets to (the process dies after the commit, a row is not due yet)
    stays pending in the outbox, and the worker's poll delivers it.
    """

    def __init__(self, delivery: OutboxDelivery, *, at_once: int = 8) -> None:
        self.delivery = delivery
        self.at_once = at_once
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[list[int]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._later: set[asyncio.TimerHandle] = set()
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="courier")

    async def start(self) -> None:
        """Start on the running loop and listen for committed rows."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._slots = asyncio.Semaphore(self.at_once)
        self.delivery.on_postponed = self._come_back
        self.delivery.offload = self._threads
        self._task = asyncio.create_task(self._run(), name="dealbot-courier")
        outbox.listen(self.delivery.engine, self.hand)

    async def stop(self) -> None:
        """Stop listening; deliveries in hand finish (a row left claimed waits out its lease)."""
        outbox.unlisten(self.delivery.engine, self.hand)
        for handle in self._later:
            handle.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._threads.shutdown(wait=False)

    def hand(self, ids: list[int]) -> None:
        """Rows just committed: deliver them now. Safe from any thread."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or loop.is_closed():
            return  # not started, or gone: the worker's poll delivers them
        loop.call_soon_threadsafe(queue.put_nowait, list(ids))

    def _come_back(self, row_id: int, due: datetime) -> None:
        if self._loop is None:
            return
        delay = max(0.0, (due - self.delivery.clock.now()).total_seconds())
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            self._later.discard(handle)  # type: ignore[arg-type]
            self.hand([row_id])

        handle = self._loop.call_later(delay, fire)
        self._later.add(handle)

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            ids = await self._queue.get()
            while not self._queue.empty():  # whatever else committed meanwhile, in one claim
                ids += self._queue.get_nowait()
            try:
                claimed = await self.delivery._db(self.delivery.claim, ids)
            except Exception:
                log.exception("claiming just-committed outbox rows failed; the worker's poll will")
                continue
            for index, row in enumerate(claimed):
                try:
                    await self._slots.acquire()
                except asyncio.CancelledError:
                    # Stopping: the rows not started go back to the outbox now, not when
                    # their lease runs out.
                    for left in claimed[index:]:
                        self.delivery._finish(left, status="pending", delay=timedelta(0),
                                              refund=True)
                    raise
                task = asyncio.create_task(self._deliver(row))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _deliver(self, row: Claimed) -> None:
        try:
            await self.delivery.deliver(row, DeliveryReport())
        except Exception:
            log.exception("delivering outbox row %s failed", row.id)
        finally:
            self._slots.release()
