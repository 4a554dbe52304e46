"""The platform harnesses of the adapter tests (signed, encrypted requests through the real ASGI app
against fake platform servers), and what every attack test checks afterwards."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from models.db import unit_of_work
from models.tables import CommandLog, SQLModel
from tests.test_slack import slack, slack_api  # noqa: F401  (fixtures)
from tests.test_telegram import bot_api, telegram  # noqa: F401  (fixtures)
from tests.test_wecom import wecom, wecom_api  # noqa: F401  (fixtures)

LEDGERS = ("command_log", "inbound_delivery")  # what a refused command may still leave: its record


def domain(engine: Engine, *, skip: Iterable[str] = LEDGERS) -> dict[str, list[tuple]]:
    """Every row of every table but the ledgers: equal before and after means nothing changed."""
    skipped = set(skip)
    with unit_of_work(engine) as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
            for table in SQLModel.metadata.sorted_tables
            if table.name not in skipped
        }


def stored(engine: Engine) -> dict[str, int]:
    """Row counts of the tables that are not empty: `{}` when a request stored nothing at all."""
    with unit_of_work(engine) as session:
        counts = {
            table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        }
    return {name: count for name, count in counts.items() if count}


def eventually(check: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Wait for work the server does after it answered (bolt acks first, then runs the command)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the server never finished the work"
        time.sleep(0.02)


def logged(engine: Engine) -> int:
    """How many commands the dispatcher has recorded so far."""
    with unit_of_work(engine) as session:
        return int(session.execute(select(func.count()).select_from(CommandLog)).scalar_one())
