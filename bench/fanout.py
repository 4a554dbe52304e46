"""Outbox fan-out: 10k messages to 1k channels through the real outbox and Slack sender, against a
local fake Slack that enforces a per-channel and a bot-wide limit (answering 429 + Retry-After). The
fake runs in a process of its own: its Python threads would otherwise share the GIL with the outbox.

The published Slack limit (about 1 message per second per channel) would make 10 messages per
channel take 10 s at least whatever the code does, so the run configures faster limits (default
20/s per channel, 200/s for the bot) on both sides: the outbox's pacer and the fake's enforcement.
Reported: achieved rate / allowed rate, 429s received, messages lost (rows not sent, or sent but
never received) and duplicated (received more than once).

Quick look: `python -m bench fanout --messages 2000 --channels 200`."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from adapters.slack import SlackSender
from bench import Table, progress
from bench.http import prepare_schema, scratch_database
from commands.types import Reply
from models import outbox
from models.clock import SystemClock
from models.db import make_engine
from models.tables import Outbox, Team
from reminders.limits import Limit, Pacer, PlatformLimits
from reminders.outbox import OutboxDelivery
from tests.fakes.http import Answer, FakeServer, Recorded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=1_000)
    parser.add_argument(
        "--channel-rate", default="20/1s", help="per-channel limit, both sides (default 20/1s)"
    )
    parser.add_argument(
        "--bot-rate", default="200/1s", help="bot-wide limit, both sides (default 200/1s)"
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument("--quick", action="store_true", help="2,000 messages to 200 channels")


class Window:
    """At most `limit.count` accepted in any `limit.seconds`, measured when requests arrive."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.accepted: deque[float] = deque()

    def full(self, now: float) -> bool:
        while self.accepted and now - self.accepted[0] >= self.limit.seconds:
            self.accepted.popleft()
        return len(self.accepted) >= self.limit.count


class LimitedSlack:
    """chat.postMessage that refuses what breaks a limit, like Slack: 429 with Retry-After."""

    def __init__(self, channel: Limit, bot: Limit) -> None:
        self.channel_limit = channel
        self.bot = Window(bot)
        self.channels: dict[str, Window] = {}
        self.received: Counter[str] = Counter()
        self.first: float | None = None
        self.last = 0.0
        self.refused = 0
        self.lock = threading.Lock()
        self.server = FakeServer(self.answer)
        self.url = self.server.url

    def answer(self, request: Recorded) -> Answer:
        if request.name != "chat.postMessage":
            return Answer(body={"ok": True})
        body = request.json or request.form
        channel = str(body.get("channel"))
        with self.lock:
            now = time.monotonic()
            window = self.channels.setdefault(channel, Window(self.channel_limit))
            if window.full(now) or self.bot.full(now):
                self.refused += 1
                return Answer(
                    status=429,
                    body={"ok": False, "error": "ratelimited"},
                    headers={"Retry-After": "1"},
                )
            window.accepted.append(now)
            self.bot.accepted.append(now)
            self.received[str(body.get("text"))] += 1
            self.first = self.first if self.first is not None else now
            self.last = now
            return Answer(body={"ok": True, "channel": channel, "ts": f"{now:.6f}"})

    def close(self) -> None:
        self.server.close()

    def stats(self) -> dict[str, object]:
        with self.lock:
            return {"received": dict(self.received), "first": self.first, "last": self.last,
                    "refused": self.refused}  # fmt: skip


def serve_limited_slack(channel: Limit, bot: Limit, pipe: Connection) -> None:
    """The fake Slack in a process of its own (so its Python threads take none of the measured
    process's GIL): sends its URL, serves until told to stop, then sends what it received."""
    fake = LimitedSlack(channel, bot)
    pipe.send(fake.url)
    pipe.recv()
    pipe.send(fake.stats())
    fake.close()


@contextmanager
def limited_slack(channel: Limit, bot: Limit) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """(url, stop): `stop()` ends the fake and returns its counts."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_limited_slack, args=(channel, bot, theirs), daemon=True
    )
    process.start()
    stats: dict[str, Any] = {}

    def stop() -> dict[str, Any]:
        if not stats:
            ours.send("stop")
            stats.update(ours.recv())
        return stats

    try:
        yield ours.recv(), stop
    finally:
        if process.is_alive() and not stats:
            stop()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def enqueue(engine: object, messages: int, channels: int) -> None:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session, session.begin():  # type: ignore[arg-type]
        team = Team(platform="slack", key="TFANOUT", name="Fan-out", config={}, created_at=now)
        session.add(team)
        session.flush()
        for i in range(messages):
            outbox.enqueue(
                session,
                team=team,
                kind="fanout",
                channel=f"C{i % channels:05d}",
                dedupe_key=f"fanout:{i}",
                payload=Reply(text=f"fanout m{i}").model_dump(mode="json"),
                now=now,
            )


async def deliver_all(delivery: OutboxDelivery, engine: object, deadline: float) -> int:
    """Run the outbox until nothing is pending (or the deadline passes); returns the passes made."""
    passes = 0
    while time.monotonic() < deadline:
        report = await delivery.run_once()
        passes += 1
        with Session(engine) as session:  # type: ignore[arg-type]
            left = session.execute(
                select(func.count())
                .select_from(Outbox)
                .where(col(Outbox.status).in_(["pending", "sending"]))
            ).scalar_one()
        if not left:
            return passes
        if not report.sent:
            await asyncio.sleep(0.05)  # the next rows wait for their paced slot
    return passes


def run(args: argparse.Namespace) -> Table:
    messages, channels = (2_000, 200) if args.quick else (args.messages, args.channels)
    channel_limit, bot_limit = Limit.parse(args.channel_rate), Limit.parse(args.bot_rate)
    allowed = min(
        bot_limit.count / bot_limit.seconds, channels * channel_limit.count / channel_limit.seconds
    )
    with limited_slack(channel_limit, bot_limit) as (fake_url, stop_fake):
        with scratch_database(args.db, args.pg, "fanout") as url:
            prepare_schema(url)
            engine = make_engine(url)
            try:
                progress(
                    f"fanout: queueing {messages:,} messages to {channels:,} channels ({args.db})"
                )
                enqueue(engine, messages, channels)
                limits = {
                    "slack": PlatformLimits(
                        member=[channel_limit], channel=[channel_limit], bot=[bot_limit]
                    )
                }
                sender = SlackSender(
                    AsyncWebClient(token="xoxb-bench", base_url=f"{fake_url}/api/")
                )
                delivery = OutboxDelivery(
                    engine,
                    {"slack": sender},
                    SystemClock(),
                    pacer=Pacer(limits),
                    max_wait=timedelta(seconds=2),
                )
                progress(f"fanout: delivering at up to {allowed:.0f} msg/s")
                started = time.monotonic()
                passes = asyncio.run(
                    deliver_all(delivery, engine, started + 30 + 3 * messages / allowed)
                )
                wall = time.monotonic() - started
                with Session(engine) as session:
                    statuses = dict(
                        session.execute(
                            select(Outbox.status, func.count()).group_by(Outbox.status)
                        ).all()
                    )
            finally:
                engine.dispose()
        fake = stop_fake()
    expected = {f"fanout m{i}" for i in range(messages)}
    received: dict[str, int] = fake["received"]
    lost = len(expected - set(received)) + sum(
        count for status, count in statuses.items() if status != "sent"
    )
    duplicated = sum(count - 1 for count in received.values() if count > 1)
    span = (fake["last"] - fake["first"]) if fake["first"] is not None else 0.0
    achieved = (sum(received.values()) - 1) / span if span else 0.0
    table = Table(
        title=f"Outbox fan-out: {messages:,} messages to {channels:,} channels, "
        f"fake Slack enforcing {args.channel_rate} per channel and {args.bot_rate} for the bot",
        columns=[
            "db",
            "messages",
            "channels",
            "allowed msg/s",
            "achieved msg/s",
            "achieved/allowed",
            "429s",
            "lost",
            "duplicated",
            "wall s",
            "passes",
        ],
    )
    table.add(
        args.db,
        messages,
        channels,
        allowed,
        achieved,
        f"{achieved / allowed:.2f}",
        fake["refused"],
        lost,
        duplicated,
        wall,
        passes,
    )
    table.notes.append(
        "achieved = messages accepted by the fake / time from its first to its last accept; "
        "target: >= 0.90 of allowed with 0 lost and 0 duplicated."
    )
    table.notes.append(
        f"outbox rows by status at the end: {dict(sorted(statuses.items()))}; load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    """For `python -m bench`'s summary: share of the allowed rate reached, losses, duplicates."""
    row = table.rows[0]
    share, lost, duplicated = float(row[5]), int(row[7]), int(row[8])
    met = share >= 0.9 and lost == 0 and duplicated == 0
    return [
        (
            "achieved/allowed rate, lost, duplicated",
            f"{share:.2f}, {lost}, {duplicated}",
            ">= 0.90, 0, 0",
            "yes" if met else "NO",
        )
    ]
