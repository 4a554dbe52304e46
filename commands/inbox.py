"""Commands survive the process that received them.

An adapter keeps each command (`receive`) before it tells the platform "received", runs it (`run`)
and, once its answer is out, lets it go (`answered`). Should the process die in between, any
`dealbot serve` or `dealbot worker` finds the command when its lease runs out (`recover_once`),
runs it if it had not run (the command's transaction settles it: it runs once, whoever runs it)
and answers it through the platform's `answer_later` (Slack's response_url while it is valid, else
a direct message; a message to the chat or person on Telegram and WeCom).

An answer is given at least once: one can be given twice only when a process died after the
platform accepted it and before it was let go.

A process that is told to stop (`stop`) takes no command in hand any more, waits a while for those
it holds to be run and answered (`drain`) and gives back the rest (`abandon`): their leases end, so
another process runs and answers them at once rather than after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from commands.dispatch import Dispatcher
from commands.types import Invocation, Reply
from models import inbox
from models.clock import Clock
from models.db import unit_of_work
from models.outbox import retry_delay
from models.tables import InboundCommand

log = logging.getLogger("dealbot.inbox")

# answer_later(where to answer, as the adapter noted it; the reply; how long ago it was received)
Answerer = Callable[[dict[str, Any], Reply, timedelta], Awaitable[None]]


@dataclass(frozen=True)
class Received:
    """A command kept for its runner; `repeat`: that delivery was received before, and this one
    is acknowledged but neither run nor answered."""

    id: int
    repeat: bool = False


@dataclass
class RecoveryReport:
    ran: int = 0  # commands that had not run before
    answered: int = 0
    retried: int = 0
    given_up: int = 0
    errors: list[str] = field(default_factory=list)


class Inbox:
    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        clock: Clock,
        *,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 6,
        backoff: timedelta = timedelta(seconds=15),
        batch: int = 50,
    ) -> None:
        self.engine = engine
        self.dispatcher = dispatcher
        self.clock = clock
        self.lease = lease
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.batch = batch
        self.answerers: dict[str, Answerer] = {}
        dispatcher.inbox_lease = lease
        # Threads of its own: commands waiting for the database in the default executor must not
        # hold up the write that lets a platform be acknowledged.
        self._threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="inbox")
        # Commands this process holds and has not let go: each with the task that runs and answers
        # it (None: one taken over from a dead process, in hand in a recovery pass).
        self._held: dict[int, asyncio.Task[Any] | None] = {}
        self._stopping = False
        self._wake: asyncio.Event | None = None

    async def _in_thread(self, work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work)

    # --- the serving process --------------------------------------------------------------------
    async def receive(self, invocation: Invocation, answer_to: dict[str, Any]) -> Received:
        """Keep a command before the platform is told it was received (a platform's retry of one
        kept before and not run yet is handed over to run here; one that ran is a `repeat`)."""
        key = invocation.delivery_id
        if not key:
            raise ValueError("a command kept for later needs the platform's delivery id")

        def keep() -> int | None:
            with unit_of_work(self.engine) as session:
                return inbox.receive(
                    session,
                    platform=invocation.platform,
                    key=key,
                    invocation=invocation.model_dump(mode="json"),
                    answer_to=answer_to,
                    now=self.clock.now(),
                    lease=self.lease,
                )

        found = await self._in_thread(keep)
        if found is None:
            return Received(0, repeat=True)
        self._hold(found)
        return Received(found)

    def _hold(self, command_id: int) -> None:
        """Note the task that acknowledged a command: it runs and answers it."""
        for held, task in list(self._held.items()):
            if self._left_to_lease(task):
                del self._held[held]
        self._held[command_id] = asyncio.current_task()

    @staticmethod
    def _left_to_lease(task: asyncio.Task[Any] | None) -> bool:
        """A task that ended without letting its command go (its answer failed) leaves it to the
        lease, as before; one cut off by a stop, or still running, still holds it."""
        return task is not None and task.done() and not task.cancelled()

    async def run(self, received: Received | None, invocation: Invocation) -> Reply:
        """Run a kept command (or, with None, one that is not kept)."""
        inbox_id = received.id if received is not None else None
        return await asyncio.to_thread(self.dispatcher.dispatch, invocation, inbox_id=inbox_id)

    async def answered(self, received: Received | None) -> None:
        """The command's answer is out: nothing is left to do for it."""
        if received is None or received.repeat:
            return

        try:
            await self._in_thread(lambda: self._let_go(received.id))
        except Exception:  # noqa: BLE001 - the answer is out; at worst it is given again later
            log.exception("could not let go of an answered command")
        self._held.pop(received.id, None)

    # --- after a crash --------------------------------------------------------------------------
    def claim(self) -> list[inbox.Held]:
        with unit_of_work(self.engine) as session:
            return inbox.claim_due(
                session,
                now=self.clock.now(),
                lease=self.lease,
                batch=self.batch,
                platforms=list(self.answerers),
            )

    async def recover_once(self) -> RecoveryReport:
        """Run and answer every kept command whose lease ran out, batch after batch."""
        report = RecoveryReport()
        while not self._stopping:
            claimed = await asyncio.to_thread(self.claim)
            for index, held in enumerate(claimed):
                if self._stopping:
                    rest = [each.id for each in claimed[index:]]
                    await self._in_thread(partial(self._give_back, rest, refund=True))
                    return report
                self._held[held.id] = None
                try:
                    await self._recover(held, report)
                except Exception:
                    self._held.pop(held.id, None)
                    raise
                # Not reached when a stop cuts the pass off: still held then, and given back.
                self._held.pop(held.id, None)
            if len(claimed) < self.batch:
                return report
        return report

    async def _recover(self, held: inbox.Held, report: RecoveryReport) -> None:
        if held.reply is not None:
            reply = Reply.model_validate(held.reply)
        else:
            invocation = Invocation.model_validate(held.invocation)
            reply = await asyncio.to_thread(self.dispatcher.dispatch, invocation, inbox_id=held.id)
            if reply.duplicate:
                # Run by another runner, who answers it; or a repeat of a delivery run before,
                # settled as such and let go on a later pass.
                return
            report.ran += 1
        if not reply.duplicate:
            try:
                await self.answerers[held.platform](
                    held.answer_to, reply, self.clock.now() - held.received_at
                )
            except Exception as error:  # noqa: BLE001 - any failure is retried, then given up on
                await self._in_thread(partial(self._not_answered, held, error, report))
                return
            report.answered += 1
        await self._in_thread(lambda: self._let_go(held.id))

    def _let_go(self, command_id: int) -> None:
        with unit_of_work(self.engine) as session:
            inbox.answered(session, command_id)

    def _not_answered(self, held: inbox.Held, error: Exception, report: RecoveryReport) -> None:
        detail = f"{type(error).__name__}: {error}"
        report.errors.append(detail)
        with unit_of_work(self.engine) as session:
            if held.attempts >= self.max_attempts:
                # It ran (its effect and log row are kept); only its answer is lost.
                log.error(
                    "gave up answering a %s command after %d attempts: %s",
                    held.platform,
                    held.attempts,
                    detail,
                )
                inbox.answered(session, held.id)
                report.given_up += 1
                return
            delay = retry_delay(self.backoff, held.attempts, cap=timedelta(minutes=10))
            log.warning(
                "answering a %s command failed, again in %s: %s", held.platform, delay, detail
            )
            inbox.retry_later(session, held.id, at=self.clock.now() + delay, error=detail)
            report.retried += 1

    async def serve(self, every: float = 5.0) -> None:
        """Recover every `every` seconds until `stop` (a task of the serving process)."""
        self._wake = asyncio.Event()
        while not self._stopping:
            try:
                await self.recover_once()
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("recovering received commands failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), every)

    # --- stopping -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Take no command from a dead process any more: a recovery pass ends after the command
        in hand and gives back those it claimed and had not started. (Call on the serving loop.)"""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    def busy(self) -> bool:
        """Whether a command this process acknowledged is still being run or answered."""
        return any(task is not None and not task.done() for task in self._held.values())

    async def drain(self, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, for the commands this process acknowledged to be run
        and answered; whether they all were."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.busy():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def abandon(self) -> int:
        """Give back every command still held (running, cut off, or in hand in a recovery pass),
        so another process runs and answers it now; how many."""
        held = sorted(key for key, task in self._held.items() if not self._left_to_lease(task))
        self._held.clear()
        if held:
            await self._in_thread(partial(self._give_back, held, refund=False))
            log.warning(
                "stopping: %d commands not answered in time, given back to other servers "
                "and workers",
                len(held),
            )
        return len(held)

    def _give_back(self, command_ids: list[int], *, refund: bool) -> None:
        with unit_of_work(self.engine) as session:
            inbox.give_back(session, command_ids, now=self.clock.now(), refund=refund)

    def pending(self) -> int:
        """Commands kept and not yet answered."""
        with unit_of_work(self.engine) as session:
            return int(
                session.execute(select(func.count()).select_from(InboundCommand)).scalar_one()
            )
