"""Acknowledged commands survive SIGKILL of `dealbot serve`, on SQLite and on Postgres.

Four clients send a burst of signed slash commands to a real `dealbot serve`, as Slack does: each
request once, never again (Slack does not retry slash commands), every answer to the command's own
response_url on a fake Slack. The server is killed at random points of the burst and started
again, and killed once more right after the last command was acknowledged, while most of them still
wait for the database. Then only a `dealbot worker` runs.

Every command Slack was told "received" (answered 200) must have run exactly once (one lead, one
command log row) and been answered on its response_url. An answer may be given twice only when a
kill fell after Slack took it and before the server let the command go: at most as many as the
commands found run-but-not-let-go right after each kill.

The kill points are random; the seed is printed in any failure (DEALBOT_CRASH_SEED repeats one).
"""

from __future__ import annotations

import hashlib
import hmac
import random
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
from sqlmodel import col

from models.db import unit_of_work
from models.tables import CommandLog, Lead, Team
from tests.databases import POSTGRES_URL, scratch_postgres
from tests.fakes.http import Answer, Recorded
from tests.test_cli import clean_env
from tests.test_crash import Processes, free_port, prepared, seed, start_server, wait_until
from tests.test_slack import PAYLOADS, SECRET, FakeSlack

USERS = ("U1", "U2", "U3", "U4")
DEADLINE = 120.0


class CountingSlack(FakeSlack):
    """The Slack fake, thread-safe, counting the answers each response_url received."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: Counter[int] = Counter()
        super().__init__()

    def answer(self, request: Recorded) -> Answer:
        with self.lock:
            if request.path.startswith("/response/"):
                self.answers[int(request.path.rsplit("/", 1)[1])] += 1
            return super().answer(request)

    def answered(self) -> Counter[int]:
        with self.lock:
            return Counter(self.answers)


@pytest.fixture
def slack() -> Iterator[CountingSlack]:
    fake = CountingSlack()
    yield fake
    fake.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'burst.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("DEALBOT_TEST_DATABASE_URL is not set")
    with scratch_postgres("inbox_crash") as (url, _engine):
        yield url


@pytest.fixture
def processes(tmp_path: Path, database: str, slack: CountingSlack) -> Iterator[Processes]:
    env = clean_env()
    env.update(
        DEALBOT_DATABASE_URL=database,
        DEALBOT_LOG_LEVEL="WARNING",
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{slack.url}/api/",
        DEALBOT_INBOX_LEASE_SECONDS="2",
        DEALBOT_MEMBER_RATE="off",
        DEALBOT_TEAM_RATE="off",
    )
    running = Processes(tmp_path, env)
    yield running
    running.close()


class Clients:
    """Slack sending each command once, from several users at once; a command it could not
    deliver (the server was down) is simply not acknowledged."""

    def __init__(self, url: str, fake: CountingSlack, count: int) -> None:
        self.url = url
        self.fake = fake
        self.count = count
        self.acknowledged: set[int] = set()
        self.lock = threading.Lock()
        form = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
        self.form = form

    def body(self, number: int) -> bytes:
        user = USERS[number % len(USERS)]
        form = dict(
            self.form,
            user_id=user,
            user_name=user.lower(),
            command="/lead",
            text=f"add Cust-{number:03d}",
            response_url=f"{self.fake.url}/response/{number}",
        )
        return urlencode(form).encode()

    def send(self, client: httpx.Client, number: int) -> None:
        body = self.body(number)
        stamp = str(int(time.time()))
        signature = (
            "v0="
            + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        )
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                answer = client.post(
                    self.url + "/slack/events",
                    content=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Slack-Request-Timestamp": stamp,
                        "X-Slack-Signature": signature,
                    },
                )
                break
            except httpx.ConnectError:
                # The server is down: the burst waits for it rather than pass it by.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
            except httpx.HTTPError:
                return  # sent, and cut off with the server: not acknowledged
        if answer.status_code == 200:
            with self.lock:
                self.acknowledged.add(number)

    def start(self) -> list[threading.Thread]:
        def run(numbers: list[int]) -> None:
            with httpx.Client(timeout=15) as client:
                for number in numbers:
                    self.send(client, number)

        users = len(USERS) * 2  # two commands of each user at a time
        threads = [
            threading.Thread(target=run, args=(list(range(i, self.count, users)),), daemon=True)
            for i in range(users)
        ]
        for thread in threads:
            thread.start()
        return threads

    def acked(self) -> int:
        with self.lock:
            return len(self.acknowledged)


def _kept(engine: Engine, status: str | None = None) -> int:
    """Commands kept (`received`: not run yet; `ran`: run, answer maybe out, not let go)."""
    query = "SELECT count(*) FROM inbound_command" + (" WHERE status = :status" if status else "")
    with unit_of_work(engine) as session:
        return int(session.execute(text(query), {"status": status}).scalar_one())


@pytest.mark.slow
@pytest.mark.parametrize("count, kills", [pytest.param(80, 2, id="80-commands")])
def test_every_acknowledged_command_survives_kills_of_the_server_and_is_answered(
    processes: Processes, slack: CountingSlack, database: str, count: int, kills: int
) -> None:
    chosen = seed()
    chance = random.Random(chosen)
    engine = prepared(database)
    port = free_port()
    server = start_server(processes, port)
    clients = Clients(f"http://127.0.0.1:{port}", slack, count)
    doubles_bound = waiting = 0
    try:
        threads = clients.start()
        for threshold in sorted(chance.sample(range(5, count - 20), kills)):
            wait_until(
                lambda t=threshold: (
                    clients.acked() >= t or not any(thread.is_alive() for thread in threads)
                ),
                "no progress",
                process=server,
            )
            processes.kill(server)
            doubles_bound += _kept(engine, "ran")
            waiting += _kept(engine, "received")
            server = start_server(processes, port)
        wait_until(
            lambda: not any(thread.is_alive() for thread in threads), "the burst never ended"
        )
        processes.kill(server)  # with whatever still waits for the database
        doubles_bound += _kept(engine, "ran")
        waiting += _kept(engine, "received")
        worker = processes.start("worker", "--tick", "0.2")
        acknowledged = set(clients.acknowledged)
        wait_until(
            lambda: set(slack.answered()) >= acknowledged and _kept(engine) == 0,
            "acknowledged commands were never answered",
            process=worker,
        )
        processes.kill(worker)
    except AssertionError as error:
        raise AssertionError(f"{error} (seed {chosen})\n{processes.logs()}") from None

    with unit_of_work(engine) as session:
        names = Counter(session.execute(select(Lead.name)).scalars())
        numbers = sorted(session.execute(select(Lead.number)).scalars())
        team = session.execute(select(Team)).scalar_one()
        logged = Counter(
            session.execute(
                select(CommandLog.text).where(col(CommandLog.outcome) != "duplicate")
            ).scalars()
        )
        crashed = session.execute(
            select(func.count())
            .select_from(CommandLog)
            .where(col(CommandLog.outcome).in_(("crash", "error")))
        ).scalar_one()
    ran = {int(name.removeprefix("Cust-")) for name in names}
    assert acknowledged <= ran, f"lost: {sorted(acknowledged - ran)} (seed {chosen})"
    assert all(times == 1 for times in names.values()), (names.most_common(3), chosen)
    assert all(times == 1 for times in logged.values()), (logged.most_common(3), chosen)
    assert set(logged) == {f"/lead add Cust-{n:03d}" for n in ran} and crashed == 0, chosen
    assert numbers == list(range(1, len(ran) + 1)) and team.lead_seq == len(ran), chosen
    answers = slack.answered()
    assert set(answers) >= acknowledged and set(answers) <= ran, chosen
    doubled = sum(times - 1 for times in answers.values())
    assert doubled <= doubles_bound, (answers.most_common(3), doubles_bound, chosen)
    print(
        f"\n[crash] {count} slash commands, {len(acknowledged)} acknowledged, "
        f"{processes.kills - 1} SIGKILLs of serve finding {waiting} not yet run, all run once "
        f"and answered; {doubled} answered twice (bound {doubles_bound}); seed {chosen}"
    )
