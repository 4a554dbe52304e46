"""Crash safety with real processes killed by SIGKILL at random points.

* `dealbot worker` delivering an outbox of messages to a fake Telegram Bot API: killed and restarted
  again and again, then left to finish. Every message arrives; one arrives twice only when a kill
  fell between Telegram's "ok" and the row being marked sent — at most one message per kill (the
  documented bound, reminders/outbox.py).
* `dealbot serve` in the middle of Telegram updates from several members at once: killed and
  restarted while the senders retry every update that got no answer, as Telegram does. Every command
  runs exactly once, and no lead, follow-up, quote or audit row is ever half-written.

The kill points are random; the seed is printed in any failure (DEALBOT_CRASH_SEED repeats one).
Everything is bounded in time, and every process started is killed at the end, whatever happened.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import col

from commands.types import Reply
from models import outbox
from models.clock import SystemClock
from models.db import create_schema, make_engine, unit_of_work
from models.migrate import alembic_config
from models.tables import (
    AuditEvent,
    CommandLog,
    FollowUp,
    InboundDelivery,
    Lead,
    Member,
    Outbox,
    Quote,
    Team,
)
from tests.fakes.http import Answer, FakeServer, Recorded
from tests.fakes.telegram import arguments, me, sent_message
from tests.test_cli import clean_env, dealbot_executable

TOKEN, SECRET = "123456:CRASH-token", "crash-secret"
GROUP = -1001234567890
DEADLINE = 120.0  # seconds for anything one phase of a test waits on


def seed() -> int:
    return int(os.environ.get("DEALBOT_CRASH_SEED") or time.time_ns() % 1_000_000)


# --- the fake Bot API ----------------------------------------------------------------------------


class BotApi(FakeServer):
    """Telegram's Bot API: answers getMe and sendMessage, counting what was sent, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.texts: list[str] = []
        super().__init__(self.answer)

    def answer(self, request: Recorded) -> Answer:
        if request.name == "getMe":
            return me()
        if request.name == "sendMessage":
            args = arguments(request)
            with self.lock:
                self.texts.append(str(args.get("text", "")))
                number = len(self.texts)
            return sent_message(args, message_id=number, group=GROUP)
        return Answer(body={"ok": True, "result": True})

    def sent(self) -> list[str]:
        with self.lock:
            return list(self.texts)

    def requests_of(self, name: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.name == name]


@pytest.fixture
def bot_api() -> Iterator[BotApi]:
    fake = BotApi()
    yield fake
    fake.close()


# --- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    check: Callable[[], bool],
    what: str,
    *,
    timeout: float = DEADLINE,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll with a deadline while a real process works."""
    deadline = time.monotonic() + timeout
    while not check():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.02)


@dataclass
class Processes:
    """Every process a test starts; all of them are killed when it ends, whatever happened."""

    folder: Path
    env: dict[str, str]
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)
    kills: int = 0

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{args[0]}-{len(self.started)}.log").open("wb")
        process = subprocess.Popen(
            [dealbot_executable(), *args],
            env=self.env,
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.started.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no clean-up, no finally, exactly what a power cut does to the process."""
        if process.poll() is None:
            process.kill()
            self.kills += 1
        process.wait(timeout=30)

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}"
            for path in sorted(self.folder.glob("*.log"))
        )


@pytest.fixture
def processes(tmp_path: Path, bot_api: BotApi) -> Iterator[Processes]:
    env = clean_env()
    env.update(
        DEALBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'crash.db'}",
        DEALBOT_LOG_LEVEL="WARNING",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=bot_api.url,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/webhook",
        DEALBOT_OUTBOX_LEASE_SECONDS="1",
        DEALBOT_TELEGRAM_BOT_RATE="100000/1s",
        DEALBOT_TELEGRAM_CHAT_RATE="100000/1s",
        DEALBOT_TELEGRAM_GROUP_RATE="100000/1s",
        DEALBOT_MEMBER_RATE="off",
        DEALBOT_TEAM_RATE="off",
    )
    running = Processes(tmp_path, env)
    yield running
    running.close()


def prepared(url: str) -> Engine:
    """The models' schema, stamped as the newest migration: the processes migrate nothing."""
    engine = make_engine(url)
    create_schema(engine)
    command.stamp(alembic_config(engine), "head")
    return engine


# --- the worker ----------------------------------------------------------------------------------


def _fill_outbox(engine: Engine, count: int) -> None:
    now = SystemClock().now()
    with unit_of_work(engine) as session:
        team = Team(platform="telegram", key=str(GROUP), name="Sales", config={}, created_at=now)
        session.add(team)
        session.flush()
        for n in range(count):
            outbox.enqueue(
                session,
                team=team,
                kind="test",
                dedupe_key=f"crash:{n}",
                channel=str(5_000_000 + n),
                payload=Reply(text=f"message {n:05d}").model_dump(mode="json"),
                now=now,
            )


def _statuses(engine: Engine) -> Counter[str]:
    with unit_of_work(engine) as session:
        return Counter(
            dict(session.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all())
        )


@pytest.mark.parametrize(
    "messages, kills",
    [
        pytest.param(200, 3, id="200-messages"),
        pytest.param(600, 6, id="600-messages", marks=pytest.mark.slow),
    ],
)
def test_a_worker_killed_at_random_points_delivers_everything_once(
    processes: Processes, bot_api: BotApi, messages: int, kills: int
) -> None:
    chosen = seed()
    chance = random.Random(chosen)
    engine = prepared(processes.env["DEALBOT_DATABASE_URL"])
    _fill_outbox(engine, messages)
    try:
        for _ in range(kills):
            worker = processes.start("worker", "--tick", "0.1")
            floor = len(bot_api.sent())
            # Somewhere in the middle of delivering: after a random number of further messages.
            target = min(messages - 1, floor + chance.randint(1, max(2, messages // (kills + 1))))
            wait_until(
                lambda target=target: (
                    len(bot_api.sent()) >= target or _statuses(engine)["sent"] >= messages
                ),
                "delivery never started",
                process=worker,
            )
            processes.kill(worker)
        during = processes.kills  # the kills while messages were in flight
        last = processes.start("worker", "--tick", "0.1")
        wait_until(
            lambda: _statuses(engine)["sent"] == messages, "the outbox never emptied", process=last
        )
        processes.kill(last)
    except AssertionError as error:
        raise AssertionError(f"{error} (seed {chosen})\n{processes.logs()}") from None
    received = Counter(t for t in bot_api.sent() if t.startswith("message "))
    expected = {f"message {n:05d}" for n in range(messages)}
    twice = {t: c for t, c in received.items() if c > 1}
    assert set(received) == expected, (
        f"lost: {sorted(expected - set(received))[:10]} (seed {chosen})"
    )
    doubled = sum(c - 1 for c in twice.values())
    assert doubled <= during, (twice, during, chosen)
    assert _statuses(engine) == Counter({"sent": messages})
    print(
        f"\n[crash] worker: {messages} messages, {during} SIGKILLs while delivering, "
        f"{doubled} delivered twice (bound {during}), seed {chosen}"
    )


# --- the web server ------------------------------------------------------------------------------

MEMBERS = [
    {"id": 7000 + n, "is_bot": False, "first_name": f"Rep{n}", "username": f"rep{n}"}
    for n in range(4)
]


@dataclass
class Update:
    number: int
    who: dict[str, Any]
    text: str
    answered: bool = False

    def body(self) -> dict[str, Any]:
        return {
            "update_id": 900_000 + self.number,
            "message": {
                "message_id": 900_000 + self.number,
                "from": self.who,
                "date": int(time.time()),
                "text": self.text,
                "chat": {"id": GROUP, "title": "Sales", "type": "supergroup"},
                "entities": [
                    {"offset": 0, "length": len(self.text.split()[0]), "type": "bot_command"}
                ],
            },
        }


class Telegram:
    """Sends updates from several members at once and, like Telegram, sends an update again until
    the server answers it 200."""

    def __init__(self, url: Callable[[], str]) -> None:
        self.url = url
        self.failures = 0

    def deliver(self, updates: list[Update], *, senders: int = 4) -> None:
        queues = [updates[i::senders] for i in range(senders)]
        errors: list[BaseException] = []

        def run(queue: list[Update]) -> None:
            try:
                with httpx.Client(timeout=10) as client:
                    for update in queue:
                        self._until_answered(client, update)
            except BaseException as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=(queue,), daemon=True) for queue in queues]
        for thread in threads:
            thread.start()
        self.threads = threads
        self.errors = errors

    def _until_answered(self, client: httpx.Client, update: Update) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                answer = client.post(
                    self.url() + "/telegram/webhook",
                    json=update.body(),
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
                )
                if answer.status_code == 200:
                    update.answered = True
                    return
            except httpx.HTTPError:
                self.failures += 1
            time.sleep(0.05)  # the server is down: Telegram, too, waits before it retries
        raise AssertionError(f"update {update.number} never answered")

    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self.threads)


def start_server(processes: Processes, port: int) -> subprocess.Popen[bytes]:
    """`dealbot serve` on `port`, once it answers its health check."""
    server = processes.start("serve", "--port", str(port))
    wait_until(lambda: _healthy(port), "the server never came up", process=server)
    return server


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _check_whole(engine: Engine) -> dict[str, int]:
    """The invariants a half-written command would break; the row counts."""
    with unit_of_work(engine) as session:
        assert session.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        team = session.execute(select(Team)).scalar_one()
        leads = list(session.execute(select(Lead).order_by(col(Lead.number))).scalars())
        quotes = list(session.execute(select(Quote).order_by(col(Quote.number))).scalars())
        followups = list(session.execute(select(FollowUp)).scalars())
        events = list(session.execute(select(AuditEvent)).scalars())
    assert [lead.number for lead in leads] == list(
        range(1, len(leads) + 1)
    ) and team.lead_seq == len(leads)
    assert [quote.number for quote in quotes] == list(
        range(1, len(quotes) + 1)
    ) and team.quote_seq == len(quotes)
    by = Counter((e.entity, e.entity_id, e.action) for e in events)
    lead_ids, quote_ids = {lead.id for lead in leads}, {quote.id for quote in quotes}
    for lead in leads:
        assert by[("lead", lead.id, "add")] == 1, f"L{lead.number} has no single add event"
        assert by[("lead", lead.id, "followup")] == sum(f.lead_id == lead.id for f in followups)
        assert by[("lead", lead.id, "quote")] == sum(q.lead_id == lead.id for q in quotes)
    for quote in quotes:
        assert by[("quote", quote.id, "create")] == 1, f"Q{quote.number} has no single create event"
        assert quote.lead_id in lead_ids
    for event in events:
        assert event.entity != "lead" or event.entity_id in lead_ids
        assert event.entity != "quote" or event.entity_id in quote_ids
    return {
        "leads": len(leads),
        "quotes": len(quotes),
        "followups": len(followups),
        "audit": len(events),
    }


@pytest.mark.parametrize(
    "count, kills",
    [
        pytest.param(120, 2, id="120-updates"),
        pytest.param(300, 4, id="300-updates", marks=pytest.mark.slow),
    ],
)
def test_a_server_killed_mid_command_leaves_nothing_half_written_and_runs_each_once(
    processes: Processes, bot_api: BotApi, count: int, kills: int
) -> None:
    chosen = seed()
    chance = random.Random(chosen)
    engine = prepared(processes.env["DEALBOT_DATABASE_URL"])
    port = free_port()
    current = {"url": f"http://127.0.0.1:{port}"}
    server = start_server(processes, port)
    telegram = Telegram(lambda: current["url"])
    adds = [
        Update(n, MEMBERS[n % 4], f"/lead add Cust-{n} phone=139{n:08d} force=yes")
        for n in range(count)
    ]
    later = [
        Update(count + n, MEMBERS[n % 4], f"/follow L{n + 1} note-{n} via=call")
        if n % 2
        else Update(count + n, MEMBERS[n % 4], f"/quote L{n + 1} 30k q-{n}")
        for n in range(count)
    ]
    try:
        telegram.deliver([Update(-1, MEMBERS[0], "/team config locale=en")], senders=1)
        wait_until(telegram.done, "the first update was never answered")
        for phase, (updates, phase_kills) in enumerate(
            ((adds, kills // 2), (later, kills - kills // 2))
        ):
            telegram.deliver(updates)
            # Kill after random numbers of answered updates: always in the middle of the load.
            for threshold in sorted(chance.sample(range(1, len(updates) - 8), phase_kills)):
                wait_until(
                    lambda threshold=threshold, updates=updates: (
                        telegram.done() or sum(u.answered for u in updates) >= threshold
                    ),
                    "no progress",
                    process=server,
                )
                if telegram.done():
                    break
                processes.kill(server)
                server = start_server(processes, port)
            wait_until(telegram.done, f"phase {phase} never finished", process=server)
            assert not telegram.errors, telegram.errors
            if phase == 0:  # follow-ups and quotes need every lead: L1…Ln belong to their adders
                _reassign(engine)
    except AssertionError as error:
        raise AssertionError(f"{error} (seed {chosen})\n{processes.logs()}") from None
    finally:
        processes.kill(server)
    counts = _check_whole(engine)
    with unit_of_work(engine) as session:
        names = Counter(session.execute(select(Lead.name)).scalars())
        notes = Counter(session.execute(select(FollowUp.note)).scalars())
        quote_notes = Counter(session.execute(select(Quote.note)).scalars())
        deliveries = session.execute(select(func.count()).select_from(InboundDelivery)).scalar_one()
        # Retries of updates that ran before a kill cut their answer off: recognised, not rerun.
        rerun = session.execute(
            select(func.count()).select_from(CommandLog).where(CommandLog.outcome == "duplicate")
        ).scalar_one()
    assert names == Counter({f"Cust-{n}": 1 for n in range(count)}), chosen
    assert notes == Counter({f"note-{n}": 1 for n in range(count) if n % 2}), chosen
    assert quote_notes == Counter({f"q-{n}": 1 for n in range(count) if not n % 2}), chosen
    assert deliveries == 2 * count + 1
    print(
        f"\n[crash] serve: {2 * count + 1} updates, {processes.kills - 1} SIGKILLs mid-load, "
        f"{telegram.failures} sends refused while down, {rerun} retries of commands that had run "
        f"recognised; each command ran once; {counts}; "
        f"seed {chosen}"
    )


def _reassign(engine: Engine) -> None:
    """Update n follows up or quotes L(n+1) as member n % 4: hand each lead to that member."""
    with unit_of_work(engine) as session:
        keys = {m.user_key: m.id for m in session.execute(select(Member)).scalars()}
        for lead in session.execute(select(Lead)).scalars():
            lead.owner_id = keys[str(MEMBERS[(lead.number - 1) % 4]["id"])]
