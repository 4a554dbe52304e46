"""A chat transcript driver: `chat.say("/lead add Acme")` returns what the bot answered, and every
push the command caused is delivered through the real outbox and recorded per recipient."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.console import ConsoleAdapter, ConsoleSender, render
from commands import Dispatcher
from commands.types import Reply
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import SQLModel
from reminders.outbox import OutboxDelivery


class Chat:
    def __init__(self, engine: Engine, clock: FixedClock, *, team: str = "acme", user: str = "alice",
                 admins: Sequence[str] = (), timezone: str | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.dispatcher = Dispatcher(engine, clock, admins=admins, timezone=timezone)
        self.image_dir = Path(tempfile.mkdtemp(prefix="dealbot-charts-"))
        self.adapter = ConsoleAdapter(self.dispatcher.dispatch, clock, team=team, user=user, image_dir=self.image_dir)
        self.lines: list[str] = []
        self.sender = ConsoleSender(write=self.lines.append, image_dir=self.image_dir)
        self.delivery = OutboxDelivery(engine, {"console": self.sender}, clock)

    def reply(self, line: str) -> Reply:
        """The raw reply to one line; pushes it caused are delivered before this returns."""
        reply = self.adapter.dispatch(self.adapter.invocation(line))
        self.deliver()
        return reply

    def say(self, line: str) -> str:
        return render(self.reply(line), image_dir=self.image_dir)

    def deliver(self) -> None:
        asyncio.run(self.delivery.run_once())

    def pushes(self, name: str) -> list[str]:
        """Every message delivered to `name`, oldest first."""
        prefix = f"→ {name}: "
        return [line[len(prefix):] for line in self.lines if line.startswith(prefix)]

    def counts(self, *, skip: Sequence[str] = ("command_log",)) -> dict[str, int]:
        """Row counts of every table: a cheap snapshot to prove a failed command changed nothing."""
        with unit_of_work(self.engine) as session:
            return {table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
                    for table in SQLModel.metadata.sorted_tables if table.name not in skip}

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every row of every table but the command log, for exact before/after comparison."""
        with unit_of_work(self.engine) as session:
            return {table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
                    for table in SQLModel.metadata.sorted_tables if table.name != "command_log"}
