"""Scale-out on Postgres, with real processes: two `dealbot serve` replicas and two `dealbot
worker`s against one fresh database, a fake Slack Web API, and a clock file the test moves.

A load of signed slash commands is spread over both replicas, with conflicting claims and approvals;
then the clock jumps past the follow-up dates and the digest times, twice. Correctness must come
from the database alone: every command gets exactly one answer and one log row, exactly one of the
racing claimers and approvers wins, every due nudge and digest reaches Slack exactly once, and every
outbox row is sent and matches exactly one message Slack received.

Runs only when DEALBOT_TEST_DATABASE_URL is set; creates dealbot_scale_mp_* and drops it."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import httpx
import pytest
from alembic import command
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Engine

from models.db import create_schema
from models.migrate import alembic_config
from tests.databases import POSTGRES_URL, scratch_postgres
from tests.fakes.http import Answer, Recorded
from tests.test_cli import clean_env, dealbot_executable
from tests.test_slack import PAYLOADS, SECRET, FakeSlack, arguments

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="DEALBOT_TEST_DATABASE_URL is not set")

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI)  # Thursday morning
FIRST_JUMP = datetime(2026, 11, 30, 18, 5, tzinfo=SHANGHAI)  # Monday, past the digests: overdue
SECOND_JUMP = datetime(2026, 12, 1, 18, 5, tzinfo=SHANGHAI)  # Tuesday, past the daily digest
ADMIN, MANAGERS = "U1", ("U2", "U3")
REPS = tuple(f"U{n}" for n in range(4, 12))  # U4–U7 report to U2, U8–U11 to U3
KEPT, READ_ROUNDS = 3, 2  # leads each rep keeps (followed up); rounds of read-only commands
CHANNEL = "C2147483705"  # the recorded slash command's channel: the team's channel
DEADLINE = 60  # seconds for anything the test waits on


class ThreadSafeSlack(FakeSlack):
    """The Slack fake, answering one request at a time (it numbers message timestamps)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivered: list[str] = []  # "channel:ts" of every chat.postMessage answered
        self.texts: dict[str, str] = {}  # what each of them said
        super().__init__()

    def answer(self, request: Recorded) -> Answer:
        with self.lock:
            answer = super().answer(request)
            if request.name == "chat.postMessage":
                ref = f"{answer.body['channel']}:{answer.body['ts']}"
                self.delivered.append(ref)
                self.texts[ref] = str(arguments(request).get("text", ""))
            return answer

    def posts(self) -> list[dict[str, Any]]:
        return [arguments(r) for r in list(self.requests) if r.name == "chat.postMessage"]


# --- processes ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@dataclass
class Fleet:
    """Every process this test started, killed when it ends, whatever happened."""

    folder: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, *args: str, port: int) -> Process:
        log = self.folder / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(
                [dealbot_executable(), *args],
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
            )
        process = Process(name, popen, log, f"http://127.0.0.1:{port}")
        self.processes.append(process)
        return process

    def wait_ready(self, process: Process, path: str) -> None:
        """Poll the process's own endpoint until it answers (bounded)."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise AssertionError(
                    f"{process.name} exited {process.popen.returncode}:\n{process.output()}"
                )
            try:
                if httpx.get(process.url + path, timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        raise AssertionError(f"{process.name} never became ready:\n{process.output()}")

    def stop(self, process: Process) -> int:
        """SIGTERM, then wait for the process to finish what it holds."""
        process.popen.terminate()
        return process.popen.wait(timeout=DEADLINE)

    def kill_all(self) -> None:
        for process in self.processes:
            if process.popen.poll() is None:
                process.popen.kill()
            process.popen.wait(timeout=10)


@pytest.fixture
def database() -> Iterator[tuple[str, Engine]]:
    with scratch_postgres("scale_mp") as (url, engine):
        # The schema the code expects (stamped as head, so the processes' own upgrade is a no-op),
        # even while a model change waits for its migration; test_migrations holds them equal.
        create_schema(engine)
        command.stamp(alembic_config(engine), "head")
        yield url, engine


@pytest.fixture
def slack() -> Iterator[ThreadSafeSlack]:
    fake = ThreadSafeSlack()
    yield fake
    fake.close()


@pytest.fixture
def fleet(tmp_path: Path, database: tuple[str, Engine], slack: ThreadSafeSlack) -> Iterator[Fleet]:
    env = clean_env()
    env.update(
        DEALBOT_DATABASE_URL=database[0],
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        DEALBOT_CLOCK_FILE=str(tmp_path / "now"),
        DEALBOT_LOG_LEVEL="WARNING",
        DEALBOT_SLACK_CHANNEL_RATE="100/1s",
        DEALBOT_SLACK_BOT_RATE="1000/1s",
        # The load is one team's burst: the command limits (tested on their own) would hold it back.
        DEALBOT_MEMBER_RATE="off",
        DEALBOT_TEAM_RATE="off",
    )
    fleet = Fleet(tmp_path, env)
    set_clock(fleet, START)
    try:
        yield fleet
    finally:
        fleet.kill_all()


def set_clock(fleet: Fleet, moment: datetime) -> None:
    """Replace the clock file in one step: every process reads the new moment from now on."""
    draft = fleet.folder / "now.draft"
    draft.write_text(moment.isoformat())
    draft.replace(fleet.folder / "now")


# --- the chat load ------------------------------------------------------------------------------
@dataclass
class Sent:
    user: str
    line: str


class Load:
    """Signed slash commands, alternating between the replicas; each names its own response_url."""

    def __init__(self, slack: ThreadSafeSlack, servers: list[str]) -> None:
        self.slack = slack
        self.servers = servers
        self.base = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
        self.sent: dict[str, Sent] = {}
        self.ids = itertools.count(1)
        self.http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=64))

    def post(self, user: str, line: str) -> str:
        number = next(self.ids)
        key = f"c{number}"
        command, _, rest = line.partition(" ")
        form = {
            **self.base,
            "user_id": user,
            "user_name": user.lower(),
            "command": command,
            "text": rest,
            "response_url": f"{self.slack.url}/response/{key}",
            "trigger_id": key,
        }
        body = urlencode(form).encode()
        stamp = str(int(time.time()))
        signature = (
            "v0="
            + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        )
        self.sent[key] = Sent(user, line)
        answer = self.http.post(
            self.servers[number % len(self.servers)] + "/slack/events",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        )
        assert answer.status_code == 200, answer.text
        return key

    def reply(self, key: str) -> dict[str, Any]:
        path, found, position = f"/response/{key}", [], [0]

        def arrived(requests: list[Recorded]) -> bool:  # looks only at requests it has not seen
            found.extend(r for r in requests[position[0] :] if r.path == path)
            position[0] = len(requests)
            return bool(found)

        self.slack.wait_for(arrived, timeout=DEADLINE)
        return dict(found[0].json)

    def say(self, user: str, line: str) -> dict[str, Any]:
        return self.reply(self.post(user, line))

    def together(self, lines: list[tuple[str, str]], workers: int = 16) -> list[dict[str, Any]]:
        """Send every line at once from a pool of clients; the replies in the same order."""
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda item: self.say(*item), lines))


def lead_number(reply: dict[str, Any]) -> int:
    match = re.search(r"\bL(\d+)\b", reply["text"])
    assert match, reply["text"]
    return int(match.group(1))


def mention(user: str) -> str:
    return f"<@{user}|{user.lower()}>"


# --- what Slack received ------------------------------------------------------------------------
def lines_to(slack: ThreadSafeSlack, channel: str, title: str) -> list[str]:
    """Every bullet line of every message to `channel` whose first line contains `title`."""
    found = []
    for post in slack.posts():
        text = str(post.get("text", ""))
        if post.get("channel") == channel and title in text.split("\n", 1)[0]:
            found += [line for line in text.split("\n")[1:] if line.startswith("·")]
    return found


def numbers(lines: list[str], prefix: str) -> Counter[int]:
    return Counter(
        int(m.group(1)) for line in lines for m in [re.search(rf"\b{prefix}(\d+)\b", line)] if m
    )


def channel_posts(slack: ThreadSafeSlack) -> int:
    return sum(1 for post in slack.posts() if post.get("channel") == CHANNEL)


def wait_until(slack: ThreadSafeSlack, ready: Callable[[], bool]) -> None:
    slack.wait_for(lambda _requests: ready(), timeout=DEADLINE)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (metric, keys), value in samples.items()
        if metric == name and all((k, v) in keys for k, v in labels.items())
    )


def test_two_servers_and_two_workers_on_postgres_lose_nothing_and_send_nothing_twice(
    fleet: Fleet, slack: ThreadSafeSlack, database: tuple[str, Engine]
) -> None:
    started = time.monotonic()
    engine = database[1]
    ports = [free_port() for _ in range(4)]
    servers = [
        fleet.start(f"serve{i}", "serve", "--port", str(ports[i]), port=ports[i]) for i in range(2)
    ]
    workers = [
        fleet.start(
            f"worker{i}",
            "worker",
            "--tick",
            "0.3",
            "--metrics-port",
            str(ports[2 + i]),
            port=ports[2 + i],
        )
        for i in range(2)
    ]
    for server in servers:
        fleet.wait_ready(server, "/healthz")
    for worker in workers:
        fleet.wait_ready(worker, "/metrics")
    ready_at = time.monotonic()
    load = Load(slack, [server.url for server in servers])

    # The team: an admin, two managers, eight reps split between them (in order: roles need people).
    load.say(ADMIN, "/team config locale=en timezone=Asia/Shanghai")
    load.together([(user, "/help") for user in (*MANAGERS, *REPS)])
    load.together([(ADMIN, f"/team role {mention(m)} manager") for m in MANAGERS])
    load.together(
        [
            (ADMIN, f"/team role {mention(rep)} rep manager={mention(MANAGERS[i // 4])}")
            for i, rep in enumerate(REPS)
        ]
    )

    # Every rep adds leads at once (numbers come from one counter row): 3 kept, 1 for the pool.
    added = load.together(
        [(rep, f"/lead add Acme {rep}-{i} value=120k") for rep in REPS for i in range(KEPT + 1)]
    )
    numbers_added = [lead_number(reply) for reply in added]
    assert len(set(numbers_added)) == len(REPS) * (KEPT + 1), "lead numbers collided"
    owned = {
        rep: numbers_added[k * (KEPT + 1) : (k + 1) * (KEPT + 1)] for k, rep in enumerate(REPS)
    }
    kept = {rep: leads[:KEPT] for rep, leads in owned.items()}
    pool = [leads[KEPT] for leads in owned.values()]

    # Follow-ups due tomorrow, quotes needing a manager, leads released to the pool, reads.
    mixed = [
        (rep, f"/follow L{n} called them next=tomorrow via=call") for rep in REPS for n in kept[rep]
    ]
    mixed += [(rep, f"/quote L{kept[rep][0]} 80k") for rep in REPS]
    mixed += [(rep, f"/lead release L{owned[rep][KEPT]}") for rep in REPS]
    mixed += [
        (rep, line)
        for rep in REPS
        for line in [
            "/lead list",
            f"/lead show L{kept[rep][1]}",
            "/quote list",
            "/report today",
            "/lead list pool",
            "/help lead",
            "/me",
            "/lead list team",
        ]
        * READ_ROUNDS
    ]
    replies = load.together(mixed)
    quoted = replies[len(REPS) * KEPT : len(REPS) * (KEPT + 1)]
    quotes = {
        rep: int(re.search(r"\bQ(\d+)\b", reply["text"]).group(1))  # type: ignore[union-attr]
        for rep, reply in zip(REPS, quoted, strict=True)
    }

    # Races: three reps claim each pool lead; the admin and both managers approve half the quotes.
    racing_claims = [
        (REPS[(k + j) % len(REPS)], f"/lead claim L{n}")
        for k, n in enumerate(pool)
        for j in range(3)
    ]
    contested = {rep: quotes[rep] for rep in REPS[:4]}
    racing_approvals = [
        (who, f"/quote approve Q{q} ok") for q in contested.values() for who in (ADMIN, *MANAGERS)
    ]
    load.together(racing_claims + racing_approvals, workers=24)
    commands_sent = len(load.sent)

    # Monday evening: follow-ups overdue past the SLA, waiting quotes, the daily and weekly digests.
    set_clock(fleet, FIRST_JUMP)
    pending = [quotes[rep] for rep in REPS[4:]]

    def first_jump_delivered() -> bool:
        reps_told = all(
            numbers(lines_to(slack, f"D{rep}", "overdue"), "L") == Counter(kept[rep])
            for rep in REPS
        )
        managers_told = all(
            numbers(lines_to(slack, f"D{m}", "overdue past"), "L")
            == Counter(n for rep in REPS[4 * i : 4 * i + 4] for n in kept[rep])
            for i, m in enumerate(MANAGERS)
        )
        waiting = numbers(
            [
                line
                for user in (ADMIN, *MANAGERS)
                for line in lines_to(slack, f"D{user}", "waiting")
            ],
            "Q",
        )
        return (
            reps_told
            and managers_told
            and set(pending) <= set(waiting)
            and channel_posts(slack) >= 2
        )

    wait_until(slack, first_jump_delivered)
    # Tuesday evening: one more daily digest, and no repeat of Monday's nudges.
    set_clock(fleet, SECOND_JUMP)
    wait_until(slack, lambda: channel_posts(slack) >= 3)

    served = [scrape(server.url) for server in servers]
    delivered = [scrape(worker.url) for worker in workers]
    for worker in workers:
        assert fleet.stop(worker) == 0, worker.output()  # finishes its pass: nothing half-sent

    # Every command: one answer on its response_url, one log row, no crash; the metrics agree.
    answers = Counter(
        r.path.removeprefix("/response/") for r in slack.requests if r.path.startswith("/response/")
    )
    assert set(answers) == set(load.sent) and set(answers.values()) == {1}
    with engine.connect() as connection:
        outcomes = dict(
            connection.execute(
                text("SELECT outcome, count(*) FROM command_log GROUP BY outcome")
            ).all()
        )
        claims = connection.execute(
            text(
                "SELECT l.number, count(*), min(m.user_key), min(o.user_key) FROM audit_event a "
                "JOIN lead l ON l.id = a.entity_id JOIN member m ON m.id = a.actor_id "
                "LEFT JOIN member o ON o.id = l.owner_id "
                "WHERE a.entity = 'lead' AND a.action = 'claim' GROUP BY l.number"
            )
        ).all()
        approvals = dict(
            connection.execute(
                text(
                    "SELECT q.number, count(*) FROM audit_event a "
                    "JOIN quote q ON q.id = a.entity_id "
                    "WHERE a.entity = 'quote' AND a.action = 'approve' GROUP BY q.number"
                )
            ).all()
        )
        statuses = dict(connection.execute(text("SELECT number, status FROM quote")).all())
        outbox = connection.execute(
            text("SELECT id, kind, status, message_ref FROM outbox ORDER BY id")
        ).all()
    assert sum(outcomes.values()) == commands_sent and "crash" not in outcomes, outcomes
    with engine.connect() as connection:
        followed = connection.execute(text("SELECT count(*) FROM followup")).scalar_one()
    assert followed == len(REPS) * KEPT and len(statuses) == len(REPS)
    assert sum(total(s, "dealbot_commands_total") for s in served) == commands_sent

    # Races: one winner each, the lead belongs to its claimer; each contested quote approved once.
    assert sorted(row[0] for row in claims) == sorted(pool)
    assert all(count == 1 and claimer == owner for _n, count, claimer, owner in claims), claims
    assert all(approvals.get(q) == 1 and statuses[q] == "approved" for q in contested.values()), (
        approvals
    )
    assert all(statuses[q] == "pending" for q in pending)

    # Pushes: every row sent, each one exactly one message Slack received, and nothing else posted.
    posts = slack.posts()
    refs = Counter(slack.delivered)
    # Edits of cards whose quote was decided change a message already posted; they post nothing.
    messages = [row for row in outbox if row.kind != "edit"]
    edits = [row for row in outbox if row.kind == "edit"]
    assert {row.status for row in messages} == {"sent"}, Counter(row.status for row in messages)
    # Every push reached Slack once. A post no push made can only be a command's answer sent late
    # by another process (the inbox's lease ran out under load before the first answer was
    # recorded); it must not repeat a push.
    pushed = {row.message_ref for row in messages}
    assert pushed <= set(refs) and set(refs.values()) == {1}
    assert len(pushed) == len(messages)
    pushed_texts = {(ref.split(":")[0], slack.texts[ref]) for ref in pushed}
    stray = [ref for ref in refs if ref not in pushed]
    assert not [r for r in stray if (r.split(":")[0], slack.texts[r]) in pushed_texts], stray
    assert len(stray) <= 1, [slack.texts[r][:80] for r in stray]
    assert {row.status for row in edits} <= {"sent", "dropped"}
    assert all(row.message_ref in refs for row in edits if row.status == "sent")
    assert sum(
        total(s, "dealbot_outbox_deliveries_total", outcome="sent") for s in delivered
    ) <= len(outbox)
    for rep in REPS:  # Tuesday repeated nothing: each overdue lead reached its owner once
        assert numbers(lines_to(slack, f"D{rep}", "overdue"), "L") == Counter(kept[rep])
    kinds = Counter(row.kind for row in outbox)
    assert kinds["digest-daily"] == 2 and kinds["digest-weekly"] == 1

    per_worker = [
        int(total(s, "dealbot_outbox_deliveries_total", outcome="sent")) for s in delivered
    ]
    print(
        f"\nprocesses ready in {ready_at - started:.1f} s; "
        f"whole run {time.monotonic() - started:.1f} s"
    )
    print(
        f"commands sent {commands_sent} (over 2 replicas: "
        f"{[int(total(s, 'dealbot_commands_total')) for s in served]}), "
        f"answered once each: {len(answers)}; "
        f"outcomes {dict(sorted(outcomes.items()))}"
    )
    print(
        f"claim races {len(pool)} × 3 claimers → {len(claims)} winners; "
        f"approval races {len(contested)} × 3 approvers → "
        f"{sum(approvals.get(q, 0) for q in contested.values())} approvals"
    )
    print(
        f"outbox rows {len(outbox)} all sent, Slack messages {len(posts)} (duplicates 0, lost 0); "
        f"by kind {dict(sorted(kinds.items()))}; sent by worker {per_worker}"
    )
