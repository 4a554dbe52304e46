"""Outbox fan-out: 10k messages to 1k group chats through the real outbox and platform sender,
against a local fake platform that enforces the platform's limits, answering 429 with a retry-after
as the platform does. Reported: achieved rate / allowed rate, 429s received, messages lost (rows not
sent, or sent but never received) and duplicated (received more than once).

`--platform telegram` (the default) enforces Telegram's published limits: 30 messages per second per
bot, 20 per minute per group and 1 per second per chat, so 10k messages take at least 333 s whatever
the code does. `--platform slack` enforces Slack's published 1 message per second per channel;
Slack publishes no workspace-wide figure, so the bot-wide cap is `--bot-rate` (default 200/s), on
both sides. The fake runs in a process of its own: its Python threads would otherwise share the GIL
with the outbox.

Quick look: `python -m bench fanout --quick` (2,000 messages to 200 chats)."""

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select
from sqlmodel import Session, col

from adapters.base import Sender
from adapters.slack import SlackSender
from adapters.telegram import TelegramSender
from bench import Table, progress
from bench.http import prepare_schema, scratch_database
from commands.types import Reply
from models import outbox
from models.clock import SystemClock
from models.db import make_engine
from models.tables import Outbox, Team
from reminders.limits import ARRIVAL_MARGIN, Limit, Pacer, PlatformLimits
from reminders.outbox import OutboxDelivery
from tests.fakes import telegram
from tests.fakes.http import Answer, FakeServer, Recorded


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", choices=sorted(PLATFORMS), default="telegram")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=1_000)
    parser.add_argument(
        "--bot-rate", default="200/1s", help="slack: the bot-wide cap, both sides (default 200/1s)"
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


@dataclass(frozen=True)
class Platform:
    """How a platform is limited and how it answers, for the fake and for the outbox's pacer."""

    name: str
    method: str  # the send call the fake limits
    channel: tuple[Limit, ...]  # per channel or group
    bot: tuple[Limit, ...]

    def accepted(self, channel: str, number: int) -> Answer:
        if self.name == "telegram":
            return telegram.sent_message({"chat_id": channel}, message_id=number, group=0)
        return Answer(body={"ok": True, "channel": channel, "ts": f"{number}.000000"})

    def refused(self) -> Answer:
        if self.name == "telegram":
            return telegram.too_many_requests(1)
        return Answer(status=429, body={"ok": False, "error": "ratelimited"},
                      headers={"Retry-After": "1"})

    def channel_key(self, i: int) -> str:
        return f"-100{i:07d}" if self.name == "telegram" else f"C{i:05d}"


def platform_limits(name: str, bot_rate: str) -> Platform:
    if name == "telegram":  # the Bot API FAQ: 30/s per bot, 20/min per group, 1/s per chat
        return Platform("telegram", "sendMessage",
                        channel=(Limit.parse("1/1s"), Limit.parse("20/60s")),
                        bot=(Limit.parse("30/1s"),))  # fmt: skip
    # Slack: chat.postMessage allows 1 per second per channel; no workspace-wide figure is published.
    return Platform("slack", "chat.postMessage", channel=(Limit.parse("1/1s"),),
                    bot=(Limit.parse(bot_rate),))


PLATFORMS = ("telegram", "slack")


class LimitedPlatform:
    """The platform's send call, refusing what breaks a limit as the platform does (429)."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.bot = [Window(limit) for limit in platform.bot]
        self.channels: dict[str, list[Window]] = {}
        self.received: Counter[str] = Counter()
        self.first: float | None = None
        self.last = 0.0
        self.refused = 0
        self.lock = threading.Lock()
        self.server = FakeServer(self.answer)
        self.url = self.server.url

    def answer(self, request: Recorded) -> Answer:
        if request.name == "getMe":
            return telegram.me()
        if request.name != self.platform.method:
            return Answer(body={"ok": True, "result": True})
        body = telegram.arguments(request)
        channel = str(body.get("channel") or body.get("chat_id"))
        with self.lock:
            now = time.monotonic()
            windows = self.channels.setdefault(
                channel, [Window(limit) for limit in self.platform.channel])
            if any(window.full(now) for window in (*windows, *self.bot)):
                self.refused += 1
                return self.platform.refused()
            for window in (*windows, *self.bot):
                window.accepted.append(now)
            self.received[str(body.get("text"))] += 1
            self.first = self.first if self.first is not None else now
            self.last = now
            return self.platform.accepted(channel, sum(self.received.values()))

    def close(self) -> None:
        self.server.close()

    def stats(self) -> dict[str, object]:
        with self.lock:
            return {"received": dict(self.received), "first": self.first, "last": self.last,
                    "refused": self.refused}  # fmt: skip


def serve_limited(platform: Platform, pipe: Connection) -> None:
    """The fake platform in a process of its own (so its Python threads take none of the measured
    process's GIL): sends its URL, serves until told to stop, then sends what it received."""
    fake = LimitedPlatform(platform)
    pipe.send(fake.url)
    pipe.recv()
    pipe.send(fake.stats())
    fake.close()


@contextmanager
def limited(platform: Platform) -> Iterator[tuple[str, Callable[[], dict[str, Any]]]]:
    """(url, stop): `stop()` ends the fake and returns its counts."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=serve_limited, args=(platform, theirs), daemon=True
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


def enqueue(engine: object, platform: Platform, messages: int, channels: int) -> None:
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as session, session.begin():  # type: ignore[arg-type]
        team = Team(platform=platform.name, key="TFANOUT", name="Fan-out", config={}, created_at=now)
        session.add(team)
        session.flush()
        for i in range(messages):
            outbox.enqueue(
                session,
                team=team,
                kind="fanout",
                channel=platform.channel_key(i % channels),
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


def rate(limit: Limit) -> float:
    return limit.count / limit.seconds


def shown(limits: tuple[Limit, ...]) -> str:
    return " and ".join(f"{limit.count}/{limit.seconds:g}s" for limit in limits)


def sender_for(platform: Platform, url: str) -> Sender:
    if platform.name == "telegram":
        return TelegramSender("123456:FANOUT", api_url=url)
    return SlackSender(AsyncWebClient(token="xoxb-bench", base_url=f"{url}/api/"))


def run(args: argparse.Namespace) -> Table:
    messages, channels = (2_000, 200) if args.quick else (args.messages, args.channels)
    platform = platform_limits(args.platform, args.bot_rate)
    allowed = min(min(map(rate, platform.bot)), channels * min(map(rate, platform.channel)))
    with limited(platform) as (fake_url, stop_fake):
        with scratch_database(args.db, args.pg, "fanout") as url:
            prepare_schema(url)
            engine = make_engine(url)
            try:
                progress(
                    f"fanout: queueing {messages:,} {platform.name} messages to {channels:,} chats "
                    f"({args.db})"
                )
                enqueue(engine, platform, messages, channels)
                limits = {
                    platform.name: PlatformLimits(
                        member=list(platform.channel),
                        channel=list(platform.channel),
                        bot=list(platform.bot),
                    )
                }
                delivery = OutboxDelivery(
                    engine,
                    {platform.name: sender_for(platform, fake_url)},
                    SystemClock(),
                    pacer=Pacer(limits, margin=ARRIVAL_MARGIN),  # as deployed
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
        title=f"Outbox fan-out: {messages:,} messages to {channels:,} chats, fake {platform.name} "
        f"enforcing {shown(platform.channel)} per chat and {shown(platform.bot)} per bot",
        columns=[
            "platform",
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
        platform.name,
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
    share, lost, duplicated = float(row[6]), int(row[8]), int(row[9])
    met = share >= 0.9 and lost == 0 and duplicated == 0
    return [
        (
            f"{row[0]}: achieved/allowed rate, lost, duplicated",
            f"{share:.2f}, {lost}, {duplicated}",
            ">= 0.90, 0, 0",
            "yes" if met else "NO",
        )
    ]
