"""Floods: a 1,000-update Telegram burst and 1,000 Slack commands in 10 s against `dealbot serve`,
with /healthz timed every 50 ms throughout.

One `dealbot serve` subprocess with Telegram and Slack configured (fake platform APIs in this
process) and the deployment's default command limits (60 per member and 600 per team a minute).
The Telegram burst: `--updates` `/lead add` updates from 20 members of one group, sent as fast as
`--clients` concurrent connections allow, each waiting for its 200 (Telegram's own behaviour). The
Slack load: `--commands` `/lead add` slash commands from 50 members of one workspace, sent evenly
over `--seconds`. Reported per phase: how long it took, how many commands ran, how many were held
back by the limits (told to slow down, or silently once told), and the health check's latency —
the target is every check under 100 ms while the flood lasts.

Quick look: `python -m bench floods --quick` (300 updates, 300 commands in 3 s)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from bench import Table, progress
from bench.http import (
    base_env,
    dealbot_command,
    prepare_schema,
    running,
    scratch_database,
    slack_web_api,
)
from tests.fakes.http import Answer, FakeServer, Recorded
from tests.fakes.telegram import arguments, me, sent_message

TOKEN, WEBHOOK_SECRET, SIGNING_SECRET = "123456:FLOOD-token", "flood-secret", "flood-signing"
GROUP = -1009000000001
HEALTH_TARGET_MS = 100.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--updates", type=int, default=1000, help="Telegram updates in the burst")
    parser.add_argument("--commands", type=int, default=1000, help="Slack slash commands")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="over how long the Slack commands go"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent Telegram connections")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--pg", default="127.0.0.1:5432", help="Postgres host:port (user postgres)")
    parser.add_argument("--quick", action="store_true", help="300 updates, 300 commands in 3 s")


class Platforms:
    """Telegram's Bot API and Slack's Web API with response URLs: counts what the bot sent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.telegram_texts: list[str] = []
        self.slack_answers: list[str] = []
        self.server = FakeServer(self.answer)
        self.url = self.server.url

    def answer(self, request: Recorded) -> Answer:
        if request.name == "getMe":
            return me()
        if request.name == "sendMessage":
            args = arguments(request)
            with self.lock:
                self.telegram_texts.append(str(args.get("text", "")))
                number = len(self.telegram_texts)
            return sent_message(args, message_id=number, group=GROUP)
        if request.path.startswith("/response/"):
            with self.lock:
                self.slack_answers.append(str((request.json or {}).get("text", "")))
            return Answer(body={"ok": True})
        if request.name in ("auth.test", "users.info"):
            return slack_web_api(request, team="TFLOOD")
        return Answer(body={"ok": True, "result": True})

    def counts(self) -> tuple[int, int, int, int]:
        """Telegram answers and slow-downs, Slack answers and slow-downs."""
        with self.lock:
            return (
                len(self.telegram_texts),
                sum("Slow down" in t or "Your team" in t for t in self.telegram_texts),
                len(self.slack_answers),
                sum("Slow down" in t or "Your team" in t for t in self.slack_answers),
            )

    def close(self) -> None:
        self.server.close()


@dataclass
class Health:
    """GET /healthz every `every` seconds on its own thread and connection, while a phase runs."""

    url: str
    every: float = 0.05
    samples: list[float] = field(default_factory=list)
    failures: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Health:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(self.url + "/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = (time.perf_counter() - started) * 1000
                if ok:
                    self.samples.append(took)
                else:
                    self.failures += 1
                self._stop.wait(max(0.0, self.every - took / 1000))


def pct(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def update(number: int, member: int) -> dict[str, Any]:
    text = f"/lead add Burst {number} force=yes"
    return {
        "update_id": 700_000 + number,
        "message": {
            "message_id": 700_000 + number,
            "date": int(time.time()),
            "text": text,
            "from": {
                "id": 8_000_000 + member,
                "is_bot": False,
                "first_name": f"Member{member}",
                "username": f"member{member}",
            },
            "chat": {"id": GROUP, "title": "Sales", "type": "supergroup"},
            "entities": [{"offset": 0, "length": 5, "type": "bot_command"}],
        },
    }


async def telegram_burst(url: str, total: int, clients: int) -> tuple[float, int]:
    """Send every update as fast as `clients` connections allow; seconds taken, non-200s."""
    numbers = iter(range(total))
    failed = 0
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:

        async def client() -> None:
            nonlocal failed
            for number in numbers:
                async with http.post(
                    f"{url}/telegram/webhook",
                    json=update(number, number % 20),
                    headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                ) as answer:
                    await answer.read()
                    failed += answer.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started, failed


def slash_body(fake_url: str, number: int) -> tuple[bytes, dict[str, str]]:
    user = f"UF{number % 50:03d}"
    body = urlencode(
        {
            "token": "x",
            "team_id": "TFLOOD",
            "team_domain": "flood",
            "channel_id": "CFLOOD",
            "channel_name": "sales",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/lead",
            "text": f"add Slack {number} force=yes",
            "api_app_id": "A1",
            "response_url": f"{fake_url}/response/{number}",
            "trigger_id": f"t{number}",
        }
    ).encode()
    stamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(
            SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256
        ).hexdigest()
    )
    return body, {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }


async def slack_paced(url: str, fake_url: str, total: int, seconds: float) -> tuple[float, int]:
    """Send the commands evenly over `seconds`, each without waiting for the one before."""
    failed = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:

        async def one(number: int) -> None:
            nonlocal failed
            await asyncio.sleep(number * seconds / total)
            body, headers = slash_body(fake_url, number)
            async with http.post(f"{url}/slack/events", data=body, headers=headers) as answer:
                await answer.read()
                failed += answer.status != 200

        started = time.perf_counter()
        await asyncio.gather(*(one(number) for number in range(total)))
        return time.perf_counter() - started, failed


def handled(url: str, platform: str) -> int:
    """How many commands of a platform the server has run (or held back) so far."""
    from sqlalchemy import func, select

    from models.db import make_engine, unit_of_work
    from models.tables import CommandLog

    engine = make_engine(url)
    try:
        with unit_of_work(engine) as session:
            return int(
                session.execute(
                    select(func.count())
                    .select_from(CommandLog)
                    .where(CommandLog.platform == platform)
                ).scalar_one()
            )
    finally:
        engine.dispose()


def wait_for(check: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)


def add_phase(table: Table, phase: str, sent: int, took: float, failed: int, answered: int,
              slowed: int, health: Health) -> None:
    """One flood's row: what was sent and answered, and the health checks made meanwhile."""
    samples = health.samples
    table.add(phase, sent, took, failed, answered - slowed, slowed, len(samples), pct(samples, 50),
              pct(samples, 99), max(samples, default=None),
              sum(s > HEALTH_TARGET_MS for s in samples) + health.failures)


def run(args: argparse.Namespace) -> Table:
    updates = 300 if args.quick else args.updates
    commands = 300 if args.quick else args.commands
    seconds = 3.0 if args.quick else args.seconds
    fake = Platforms()
    table = Table(
        title="Floods against dealbot serve (default limits: 60/min per member, 600/min per team)",
        columns=[
            "phase",
            "sent",
            "seconds",
            "non-200",
            "answered",
            "held back",
            "health n",
            "health p50 ms",
            "health p99 ms",
            "health max ms",
            "over 100 ms",
        ],
    )
    try:
        with scratch_database(args.db, args.pg, "floods") as url:
            prepare_schema(url)
            env = base_env()
            env.update(
                DEALBOT_DATABASE_URL=url,
                DEALBOT_LOG_LEVEL="WARNING",
                TELEGRAM_BOT_TOKEN=TOKEN,
                TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
                TELEGRAM_WEBHOOK_URL="https://bench.example/telegram/webhook",
                TELEGRAM_API_URL=fake.url,
                SLACK_BOT_TOKEN="xoxb-flood",
                SLACK_SIGNING_SECRET=SIGNING_SECRET,
                SLACK_API_URL=f"{fake.url}/api/",
            )
            with running([*dealbot_command(), "serve"], env, health="/healthz") as server:
                with Health(server.url) as idle:
                    time.sleep(2)
                table.add(
                    "idle",
                    0,
                    2.0,
                    0,
                    "-",
                    "-",
                    len(idle.samples),
                    pct(idle.samples, 50),
                    pct(idle.samples, 99),
                    max(idle.samples, default=None),
                    sum(s > HEALTH_TARGET_MS for s in idle.samples),
                )
                progress(f"telegram burst: {updates} updates")
                with Health(server.url) as health:
                    took, failed = asyncio.run(telegram_burst(server.url, updates, args.clients))
                answered, slowed, _, _ = fake.counts()
                add_phase(table, "telegram burst", updates, took, failed, answered, slowed, health)
                progress(f"slack: {commands} commands over {seconds:g} s")
                with Health(server.url) as health:
                    took, failed = asyncio.run(slack_paced(server.url, fake.url, commands, seconds))
                    # Slack is answered after the ack: wait until every command has been handled.
                    wait_for(lambda: handled(url, "slack") >= commands)
                    took = max(took, 0.0)
                _, _, answered, slowed = fake.counts()
                add_phase(table, f"slack {commands} in {seconds:g} s", commands, took, failed,
                          answered, slowed, health)
    finally:
        fake.close()
    table.notes.append(
        "answered = commands that ran and were answered; held back = told to slow down (once per "
        "member and window; a held member's other commands get no answer: they show in neither)."
    )
    table.notes.append(
        f"client, fakes and server share this machine ({os.cpu_count()} cores); load "
        f"average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"health checked every 50 ms; target: every check < {HEALTH_TARGET_MS:.0f} ms."
    )
    return table


def headline(table: Table) -> list[tuple[str, str, str, str]]:
    rows = []
    for row in table.rows[1:]:
        worst = row[9]
        rows.append(
            (
                f"{row[0]}: slowest health check",
                f"{worst:.1f} ms" if worst is not None else "-",
                f"< {HEALTH_TARGET_MS:.0f} ms",
                "yes" if worst is not None and worst < HEALTH_TARGET_MS and not row[10] else "NO",
            )
        )
    return rows
