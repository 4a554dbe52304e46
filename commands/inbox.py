"""Commands survive the process that received them.

An adapter keeps each command (`receive`) before it tells the platform "received", runs it (`run`)
and, once its answer is out, lets it go (`answered`). Should the process die in between, any
`dealbot serve` or `dealbot worker` finds the command when its lease runs out (`recover_once`),
runs it if it had not run (the command's transaction settles it: it runs once, whoever runs it)
and answers it through the platform's `answer_later` (Slack's response_url while it is valid, else
a direct message; a message to the chat or person on Telegram and WeCom).

An answer is given at least once: one can be given twice only when a process died after the
platform accepted it and before it was let go.
"""

from __future__ import annotations

import asyncio
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
        return Received(0, repeat=True) if found is None else Received(found)

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
        while True:
            claimed = await asyncio.to_thread(self.claim)
            for held in claimed:
                await self._recover(held, report)
            if len(claimed) < self.batch:
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
        """Recover every `every` seconds, for ever (a task of the serving process)."""
        while True:
            try:
                await self.recover_once()
            except Exception:  # noqa: BLE001 - the next pass tries again
                log.exception("recovering received commands failed")
            await asyncio.sleep(every)

    def pending(self) -> int:
        """Commands kept and not yet answered."""
        with unit_of_work(self.engine) as session:
            return int(
                session.execute(select(func.count()).select_from(InboundCommand)).scalar_one()
            )
