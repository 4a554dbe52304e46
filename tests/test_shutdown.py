"""SIGTERM, the way Docker, Kubernetes and Heroku stop a process, sent to real `dealbot serve`,
`worker` and `run` processes in the middle of their work, on SQLite and on Postgres.

* `serve` stops accepting, runs and answers every command it acknowledged (signed slash commands
  to `/slack/events`, each answered on its response_url on a fake Slack), lets each go and exits
  by itself. What it could not answer within DEALBOT_SHUTDOWN_GRACE_SECONDS it gives back, and a
  worker answers it at once, not after the lease.
* `worker` finishes the push in hand and gives back the pushes it claimed and had not sent:
  another worker sends them at once, not after the lease.
* `run` does both.

Every acknowledged command is answered exactly once and every push delivered exactly once. The
fake Slack holds chosen requests at a gate, so the processes are stopped with work in hand.
"""

from __future__ import annotations

import hashlib
import hmac
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from commands.types import Reply
from models import outbox
from models.clock import SystemClock
from models.db import unit_of_work
from models.tables import Lead, Outbox, Team
from tests.databases import POSTGRES_URL, scratch_postgres
from tests.fakes.http import Answer, Recorded
from tests.test_cli import clean_env
from tests.test_crash import Processes, free_port, prepared, wait_until
from tests.test_slack import PAYLOADS, SECRET, FakeSlack, arguments

DEADLINE = 30.0  # for anything a test waits on; the leases below are longer
LEASE = "600"  # seconds: a command or push not given back waits this long for anyone else
EXITED_BY_ITSELF = (0, -signal.SIGTERM)  # 143: uvicorn raises the signal again once it is done


class GatedSlack(FakeSlack):
    """Slack holding requests at a gate until `release`: the answers on response URLs, the
    `users.info` look-ups, or the n-th chat.postMessage; counting what it answered."""

    def __init__(self, *, responses: bool = False, look_ups: bool = False, post: int = 0) -> None:
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.held = {"response": responses, "users.info": look_ups}
        self.post_held = post  # hold the post-th chat.postMessage (1-based), none with 0
        self.waiting: Counter[str] = Counter()
        self.answers: Counter[int] = Counter()  # command number → answers on its response_url
        self.posts: Counter[str] = Counter()  # push text → times posted
        self.post_count = 0
        super().__init__()

    def answer(self, request: Recorded) -> Answer:
        kind = "response" if request.path.startswith("/response/") else request.name
        with self.lock:
            if kind == "chat.postMessage":
                self.post_count += 1
            hold = self.held.get(kind, False) or (
                kind == "chat.postMessage" and self.post_count == self.post_held
            )
            if hold:
                self.waiting[kind] += 1
        if hold:
            assert self.gate.wait(DEADLINE), "never released"
        with self.lock:
            if kind == "response":
                self.answers[int(request.path.rsplit("/", 1)[1])] += 1
            if kind == "chat.postMessage":
                self.posts[str(arguments(request).get("text", ""))] += 1
            if hold:
                self.waiting[kind] -= 1
            return super().answer(request)

    def holding(self, kind: str) -> int:
        with self.lock:
            return self.waiting[kind]

    def answered(self) -> Counter[int]:
        with self.lock:
            return Counter(self.answers)

    def posted(self) -> Counter[str]:
        with self.lock:
            return Counter(self.posts)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'stop.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("DEALBOT_TEST_DATABASE_URL is not set")
    with scratch_postgres("shutdown") as (url, _engine):
        yield url


def processes_for(tmp_path: Path, database: str, slack: FakeSlack, **settings: str) -> Processes:
    env = clean_env()
    env.update(
        DEALBOT_DATABASE_URL=database,
        DEALBOT_LOG_LEVEL="INFO",
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        DEALBOT_INBOX_LEASE_SECONDS=LEASE,
        DEALBOT_OUTBOX_LEASE_SECONDS=LEASE,
        DEALBOT_MEMBER_RATE="off",
        DEALBOT_TEAM_RATE="off",
        DEALBOT_SLACK_CHANNEL_RATE="100000/1s",
        DEALBOT_SLACK_BOT_RATE="100000/1s",
        DEALBOT_SHUTDOWN_GRACE_SECONDS="20",
    )
    env.update(settings)
    return Processes(tmp_path, env)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Processes]]:
    """Every process group a test starts, killed at its end whatever happened."""
    groups: list[Processes] = []
    yield groups
    for group in groups:
        group.close()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def refused(port: int) -> bool:
    """No new connection is accepted on `port` any more."""
    try:
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def exit_code(process: subprocess.Popen[bytes]) -> int:
    wait_until(lambda: process.poll() is not None, "it never exited")
    return int(process.returncode)


class SlashCommands:
    """Slack sending signed slash commands `/lead add Cust-<n>`, each once (Slack never sends one
    again), from several users at once; each with its own response_url on the fake."""

    def __init__(self, port: int, slack: FakeSlack) -> None:
        self.url = f"http://127.0.0.1:{port}/slack/events"
        self.slack = slack
        self.form = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
        self.acknowledged: set[int] = set()
        self.lock = threading.Lock()
        self.threads: list[threading.Thread] = []

    def send(self, client: httpx.Client, number: int, user: str) -> bool:
        body = urlencode(
            dict(
                self.form,
                user_id=user,
                user_name=user.lower(),
                command="/lead",
                text=f"add Cust-{number:03d}",
                response_url=f"{self.slack.url}/response/{number}",
            )
        ).encode()
        stamp = str(int(time.time()))
        base = f"v0:{stamp}:".encode() + body
        signature = "v0=" + hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
        try:
            answer = client.post(
                self.url,
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Slack-Request-Timestamp": stamp,
                    "X-Slack-Signature": signature,
                },
            )
        except httpx.HTTPError:
            return False  # refused or cut off: not acknowledged
        if answer.status_code != 200:
            return False
        with self.lock:
            self.acknowledged.add(number)
        return True

    def burst(self, numbers: range, *, senders: int) -> None:
        """`senders` users (U1, U2, …) send their share of `numbers` one after another, until the
        server stops taking them."""

        def run(mine: list[int], user: str) -> None:
            with httpx.Client(timeout=DEADLINE) as client:
                for number in mine:
                    if not self.send(client, number, user):
                        return

        for index in range(senders):
            share = list(numbers)[index::senders]
            thread = threading.Thread(target=run, args=(share, f"U{index + 1}"), daemon=True)
            thread.start()
            self.threads.append(thread)

    def acked(self) -> set[int]:
        with self.lock:
            return set(self.acknowledged)

    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self.threads)


def kept(engine: Engine) -> int:
    """Commands acknowledged and not yet let go (answered)."""
    with unit_of_work(engine) as session:
        return int(session.execute(text("SELECT count(*) FROM inbound_command")).scalar_one())


def leads(engine: Engine) -> Counter[int]:
    with unit_of_work(engine) as session:
        names = session.execute(select(Lead.name)).scalars()
        return Counter(int(name.removeprefix("Cust-")) for name in names)


def statuses(engine: Engine) -> Counter[str]:
    with unit_of_work(engine) as session:
        rows = session.execute(select(Outbox.status, func.count()).group_by(Outbox.status)).all()
    return Counter({str(status): int(count) for status, count in rows})


def fill_outbox(engine: Engine, count: int) -> set[str]:
    """`count` pushes to Slack channels; their texts."""
    now = SystemClock().now()
    with unit_of_work(engine) as session:
        team = Team(platform="slack", key="T0001", name="Sales", config={}, created_at=now)
        session.add(team)
        session.flush()
        for n in range(count):
            outbox.enqueue(
                session,
                team=team,
                kind="test",
                dedupe_key=f"stop:{n}",
                channel=f"C{n:04d}",
                payload=Reply(text=f"push {n:03d}").model_dump(mode="json"),
                now=now,
            )
    return {f"push {n:03d}" for n in range(count)}


def start_listening(group: Processes, *args: str, port: int) -> subprocess.Popen[bytes]:
    process = group.start(*args)
    wait_until(lambda: healthy(port), "the server never came up", process=process)
    return process


# --- serve -----------------------------------------------------------------------------------


def test_serve_stopped_mid_burst_answers_every_acknowledged_command_once_and_exits(
    tmp_path: Path, database: str, started: list[Processes]
) -> None:
    slack = GatedSlack(responses=True)
    group = processes_for(tmp_path, database, slack)
    started.append(group)
    engine = prepared(database)
    port = free_port()
    try:
        server = start_listening(group, "serve", "--port", str(port), port=port)
        commands = SlashCommands(port, slack)
        commands.burst(range(200), senders=4)
        # Acknowledged, run and answering (their answers held), or still waiting to run.
        wait_until(
            lambda: len(commands.acked()) >= 12 and slack.holding("response") >= 3,
            "the burst never got going",
            process=server,
        )
        server.send_signal(signal.SIGTERM)
        wait_until(lambda: refused(port), "it kept accepting connections", process=server)
        wait_until(commands.done, "the senders never stopped", process=server)
        held_at_stop = slack.holding("response")
        slack.release()
        code = exit_code(server)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    finally:
        slack.release()
        slack.close()

    acknowledged = commands.acked()
    assert code in EXITED_BY_ITSELF, group.logs()
    assert slack.answered() == Counter({number: 1 for number in acknowledged})
    assert leads(engine) == Counter({number: 1 for number in acknowledged})
    assert kept(engine) == 0  # each let go: nobody answers it again
    assert 0 < len(acknowledged) < 200  # stopped mid-burst
    print(
        f"\n[shutdown] serve: SIGTERM with {held_at_stop} answers in flight; "
        f"{len(acknowledged)} acknowledged, each run and answered once; exit {code}"
    )


def test_serve_gives_back_what_it_cannot_answer_in_its_grace_and_a_worker_answers_at_once(
    tmp_path: Path, database: str, started: list[Processes]
) -> None:
    slack = GatedSlack(look_ups=True)  # each command waits for its user's name: never run here
    group = processes_for(tmp_path, database, slack, DEALBOT_SHUTDOWN_GRACE_SECONDS="0.5")
    started.append(group)
    engine = prepared(database)
    port = free_port()
    try:
        server = start_listening(group, "serve", "--port", str(port), port=port)
        commands = SlashCommands(port, slack)
        commands.burst(range(4), senders=4)
        wait_until(
            lambda: commands.done() and slack.holding("users.info") == 4,
            "the commands were never acknowledged",
            process=server,
        )
        assert commands.acked() == {0, 1, 2, 3}
        stopped = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = exit_code(server)  # by itself, its commands still held
        took = time.monotonic() - stopped
        assert slack.holding("users.info") == 4, "it waited for the commands past its grace"
        assert kept(engine) == 4, "it let go of commands it never answered"
        slack.release()
        worker = group.start("worker")
        wait_until(
            lambda: len(slack.answered()) == 4 and kept(engine) == 0,
            "the given-back commands were not answered at once",
            process=worker,
        )
        worker.send_signal(signal.SIGTERM)
        worker_code = exit_code(worker)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    finally:
        slack.release()
        slack.close()

    assert code in EXITED_BY_ITSELF and worker_code == 0, group.logs()
    assert slack.answered() == Counter({0: 1, 1: 1, 2: 1, 3: 1})
    assert leads(engine) == Counter({0: 1, 1: 1, 2: 1, 3: 1})
    print(
        f"\n[shutdown] serve with a 0.5 s grace: exit {code} {took:.1f} s after SIGTERM with 4 "
        f"commands unanswered; a worker answered them at once; worker exit {worker_code}"
    )


# --- worker ----------------------------------------------------------------------------------


def test_worker_finishes_the_push_in_hand_and_gives_back_the_rest_to_another_worker(
    tmp_path: Path, database: str, started: list[Processes]
) -> None:
    slack = GatedSlack(post=5)  # the fifth push is in hand when the worker is stopped
    group = processes_for(tmp_path, database, slack)
    started.append(group)
    engine = prepared(database)
    expected = fill_outbox(engine, 30)
    try:
        first = group.start("worker")
        wait_until(lambda: slack.holding("chat.postMessage") == 1, "no push", process=first)
        first.send_signal(signal.SIGTERM)
        # The 25 claimed and not started go back at once; the one in hand stays its own.
        wait_until(
            lambda: statuses(engine) == Counter(sent=4, sending=1, pending=25),
            "the claimed pushes were not given back",
            process=first,
        )
        second = group.start("worker")
        wait_until(
            lambda: statuses(engine)["sent"] == 29,
            "the other worker did not take them at once",
            process=first,  # still finishing its push in hand
        )
        slack.release()
        code = exit_code(first)
        second.send_signal(signal.SIGTERM)
        second_code = exit_code(second)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    finally:
        slack.release()
        slack.close()

    assert (code, second_code) == (0, 0), group.logs()
    assert slack.posted() == Counter({push: 1 for push in expected})
    assert statuses(engine) == Counter(sent=30)
    print(
        "\n[shutdown] worker: SIGTERM with 1 push in hand and 25 claimed; those 25 sent by "
        f"another worker at once, the one in hand finished; exits {code}, {second_code}"
    )


# --- run -------------------------------------------------------------------------------------


def test_run_stopped_mid_work_answers_its_commands_and_finishes_its_push(
    tmp_path: Path, database: str, started: list[Processes]
) -> None:
    slack = GatedSlack(responses=True, post=3)
    group = processes_for(tmp_path, database, slack)
    started.append(group)
    engine = prepared(database)
    expected = fill_outbox(engine, 10)
    port = free_port()
    try:
        everything = start_listening(group, "run", "--port", str(port), port=port)
        wait_until(lambda: slack.holding("chat.postMessage") == 1, "no push", process=everything)
        commands = SlashCommands(port, slack)
        commands.burst(range(6), senders=6)
        wait_until(
            lambda: commands.done() and slack.holding("response") == 6,
            "the commands were never answered",
            process=everything,
        )
        everything.send_signal(signal.SIGTERM)
        wait_until(
            lambda: refused(port) and statuses(engine)["pending"] == 7,
            "it kept accepting, or kept its claimed pushes",
            process=everything,
        )
        slack.release()
        code = exit_code(everything)
        after = statuses(engine)
        answered = slack.answered()
        worker = group.start("worker")
        wait_until(
            lambda: statuses(engine)["sent"] == 10, "the rest was never sent", process=worker
        )
        worker.send_signal(signal.SIGTERM)
        worker_code = exit_code(worker)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{group.logs()}") from None
    finally:
        slack.release()
        slack.close()

    assert code in EXITED_BY_ITSELF and worker_code == 0, group.logs()
    assert answered == Counter({number: 1 for number in range(6)}) == slack.answered()
    assert kept(engine) == 0
    assert after == Counter(sent=3, pending=7)
    assert slack.posted() == Counter({push: 1 for push in expected})
    print(
        f"\n[shutdown] run: SIGTERM with 6 answers and 1 push in flight, 7 pushes claimed; all "
        f"answered once, the push finished, the 7 given back; exit {code}"
    )
