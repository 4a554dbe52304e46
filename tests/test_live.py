"""Pushes leave as their command commits, from the serving process, with every outbox guarantee.

Real processes (`dealbot serve`, `dealbot worker`) get signed Slack slash commands and post to a
local fake Slack: an approval card reaches the approver with no worker running; a server killed
while the card is in flight leaves it to the worker, which sends it once; two servers and a worker
on one Postgres database send every card once; a 429 is obeyed. In-process: two deliveries (as two
processes would have) keep one chat's limit and its Retry-After between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import RateLimited, Target
from bot.app import Bot
from bot.settings import Settings
from commands import Dispatcher
from commands.types import Reply
from models import outbox
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import Outbox, Team
from reminders.outbox import Courier, DeliveryReport
from tests.databases import POSTGRES_URL, scratch_postgres
from tests.fakes.http import Answer, Recorded
from tests.test_cli import clean_env
from tests.test_crash import Processes, free_port, prepared, wait_until
from tests.test_slack import PAYLOADS, FakeSlack, arguments

SECRET = "live-signing-secret"
DEADLINE = 30.0


class Slack(FakeSlack):
    """Fake Slack that can hold approval cards unanswered (the sender is killed meanwhile)."""

    def __init__(self) -> None:
        self.hold_cards = False
        self.release = threading.Event()
        self.arrivals: dict[int, float] = {}
        super().__init__()

    def answer(self, request: Recorded) -> Answer:
        self.arrivals[id(request)] = time.monotonic()
        if self.hold_cards and request.name == "chat.postMessage" and is_card(request):
            self.release.wait(DEADLINE)
        return super().answer(request)

    def cards(self, channel: str = "DU2") -> list[Recorded]:
        return [
            r
            for r in self.calls("chat.postMessage")
            if arguments(r).get("channel") == channel and is_card(r)
        ]

    def close(self) -> None:
        self.release.set()
        super().close()


def is_card(request: Recorded) -> bool:
    return "/quote approve" in str(arguments(request).get("blocks", ""))


class Client:
    """Signed slash commands to one `dealbot serve`, each waited for until answered."""

    def __init__(self, url: str, api: Slack) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)
        self.api = api
        self.sent = 0

    def say(self, user: str, command: str, text: str) -> str:
        form = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
        self.sent += 1
        answer_path = f"/response/live-{time.monotonic_ns()}-{self.sent}"
        form.update(
            user_id=user,
            team_id="T0001",
            user_name=user.lower(),
            command=command,
            text=text,
            response_url=f"{self.api.url}{answer_path}",
        )
        body = urlencode(form).encode()
        stamp = str(int(time.time()))
        signature = (
            "v0="
            + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        )
        reply = self.http.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        )
        assert reply.status_code == 200, reply.text
        self.api.wait_for(
            lambda requests: any(r.path == answer_path for r in requests), timeout=DEADLINE
        )
        [answered] = [r for r in self.api.requests if r.path == answer_path]
        return str(answered.json.get("text", ""))

    def close(self) -> None:
        self.http.close()


class Deployment:
    def __init__(self, processes: Processes, api: Slack, engine: Engine) -> None:
        self.processes, self.api, self.engine = processes, api, engine
        self.clients: list[Client] = []

    def start(self, *args: str, api_path: str = "/api/") -> Any:
        """A process calling Slack at `api_path` of the fake: which process sent what shows."""
        saved = self.processes.env
        self.processes.env = {**saved, "SLACK_API_URL": f"{self.api.url}{api_path}"}
        try:
            return self.processes.start(*args)
        finally:
            self.processes.env = saved

    def serve(self, api_path: str = "/api/") -> tuple[Any, Client]:
        port = free_port()
        process = self.start("serve", "--port", str(port), api_path=api_path)
        client = Client(f"http://127.0.0.1:{port}", self.api)
        self.clients.append(client)
        wait_until(
            lambda: _healthy(client), "the server never came up", process=process, timeout=60
        )
        return process, client

    def team_with_a_manager(self, client: Client) -> None:
        client.say("U1", "/team", "config locale=en")
        client.say("U2", "/help", "")
        client.say("U1", "/team", "role <@U2|bob> manager")
        wait_until(lambda: self.settled(), "the team's own pushes never left", timeout=DEADLINE)

    def quote(self, client: Client, n: int) -> None:
        client.say("U3", "/lead", f"add Acme {n} value=120k")
        assert "asked bob" in client.say("U3", "/quote", f"L{n} 80k discount=5%")

    def statuses(self, kind: str | None = None) -> list[str]:
        with unit_of_work(self.engine) as session:
            query = select(Outbox.status)
            if kind:
                query = query.where(col(Outbox.kind) == kind)
            return [str(status) for status in session.execute(query).scalars()]

    def settled(self) -> bool:
        return all(status == "sent" for status in self.statuses())

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _healthy(client: Client) -> bool:
    try:
        return client.http.get("/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def slack_api() -> Iterator[Slack]:
    fake = Slack()
    yield fake
    fake.close()


@contextmanager
def _deployment(tmp_path: Path, api: Slack, url: str, **env: str) -> Iterator[Deployment]:
    engine = prepared(url)
    settings = clean_env()
    settings.update(
        DEALBOT_DATABASE_URL=url,
        DEALBOT_LOG_LEVEL="WARNING",
        SLACK_BOT_TOKEN="xoxb-live",
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=f"{api.url}/api/",
        DEALBOT_MEMBER_RATE="off",
        DEALBOT_TEAM_RATE="off",
        DEALBOT_SLACK_CHANNEL_RATE="100/1s",
        DEALBOT_SLACK_BOT_RATE="1000/1s",
        **env,
    )
    processes = Processes(tmp_path, settings)
    deployment = Deployment(processes, api, engine)
    try:
        yield deployment
    finally:
        deployment.close()
        processes.close()
        engine.dispose()


@pytest.fixture
def sqlite(tmp_path: Path, slack_api: Slack) -> Iterator[Deployment]:
    with _deployment(tmp_path, slack_api, f"sqlite:///{tmp_path / 'live.db'}") as deployment:
        yield deployment


@pytest.fixture
def postgres(tmp_path: Path, slack_api: Slack) -> Iterator[Deployment]:
    if not POSTGRES_URL:
        pytest.skip("DEALBOT_TEST_DATABASE_URL is not set")
    with scratch_postgres("live") as (url, engine):
        engine.dispose()
        with _deployment(tmp_path, slack_api, url) as deployment:
            yield deployment


def test_the_card_reaches_the_approver_with_no_worker_running_and_a_429_is_obeyed(
    sqlite: Deployment,
) -> None:
    _server, client = sqlite.serve()
    sqlite.team_with_a_manager(client)
    sqlite.quote(client, 1)
    wait_until(lambda: len(sqlite.api.cards()) == 1, "the card never reached bob", timeout=DEADLINE)
    assert "Acme 1" in arguments(sqlite.api.cards()[0])["text"]
    wait_until(sqlite.settled, "the card was never marked sent", timeout=DEADLINE)

    sqlite.api.failures["chat.postMessage"] = Answer(
        status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "1"}
    )
    sqlite.quote(client, 2)
    wait_until(lambda: len(sqlite.api.cards()) == 3, "no card after the 429", timeout=DEADLINE)
    refused, accepted = sqlite.api.cards()[1:]
    assert "Acme 2" in arguments(refused)["text"] and "Acme 2" in arguments(accepted)["text"]
    waited = _arrival(sqlite.api, accepted) - _arrival(sqlite.api, refused)
    assert waited >= 1.0, f"sent again {waited:.2f} s after a Retry-After of 1 s"
    wait_until(sqlite.settled, "the card was never marked sent", timeout=DEADLINE)
    assert len(sqlite.api.cards()) == 3  # bob saw each card once


def _arrival(api: Slack, request: Recorded) -> float:
    return api.arrivals[id(request)]


def test_a_server_killed_with_the_card_in_flight_leaves_it_to_the_worker_who_sends_it_once(
    tmp_path: Path, slack_api: Slack
) -> None:
    with _deployment(
        tmp_path, slack_api, f"sqlite:///{tmp_path / 'live.db'}", DEALBOT_OUTBOX_LEASE_SECONDS="1"
    ) as deployment:
        server, client = deployment.serve()
        deployment.team_with_a_manager(client)
        slack_api.hold_cards = True
        deployment.quote(client, 1)
        wait_until(
            lambda: len(slack_api.cards()) == 1,
            "the server never started sending the card",
            timeout=DEADLINE,
        )
        deployment.processes.kill(server)  # Slack never answered it: as good as never sent
        slack_api.hold_cards = False
        slack_api.release.set()
        assert deployment.statuses("approval") == ["sending"]
        worker = deployment.processes.start("worker", "--tick", "0.2")
        wait_until(
            deployment.settled,
            "the worker never delivered the card",
            process=worker,
            timeout=DEADLINE,
        )
        assert len(slack_api.cards()) == 2  # the one killed in flight, then the worker's
        deployment.processes.kill(worker)
        assert len(slack_api.cards()) == 2


def test_two_servers_and_a_worker_on_postgres_send_every_card_once(postgres: Deployment) -> None:
    _first, one = postgres.serve("/one/")
    _second, two = postgres.serve("/two/")
    worker = postgres.start("worker", "--tick", "0.1", api_path="/worker/")
    postgres.team_with_a_manager(one)
    for n in range(1, 9):
        postgres.quote(one if n % 2 else two, n)
    wait_until(
        lambda: len(postgres.api.cards()) >= 8,
        "some cards never reached bob",
        process=worker,
        timeout=DEADLINE,
    )
    wait_until(postgres.settled, "some cards were never marked sent", timeout=DEADLINE)
    texts = sorted(arguments(card)["text"] for card in postgres.api.cards())
    assert [text.split("Acme ")[1].split()[0] for text in texts] == sorted(
        str(n) for n in range(1, 9)
    )
    assert len(texts) == len(set(texts)) == 8
    senders = {card.path.split("/")[1] for card in postgres.api.cards()}
    assert senders & {"one", "two"}, "the servers sent none of their cards: the worker sent all"


# --- two processes' deliveries on one database ---------------------------------------------------


class Recording:
    def __init__(self, clock: FixedClock, refuse: int = 0) -> None:
        self.clock, self.refuse = clock, refuse
        self.sent: list[tuple[str, Any]] = []

    async def send(self, target: Target, reply: Reply) -> str:
        if self.refuse:
            self.refuse -= 1
            raise RateLimited(3, "429")
        self.sent.append((reply.text, self.clock.now()))
        return str(len(self.sent))

    async def update(self, target: Target, ref: str, reply: Reply) -> None:
        return None


def _process(engine: Engine, clock: FixedClock, sender: Recording) -> Any:
    """What one `dealbot serve` or `dealbot worker` delivers with, as `build` wires it."""
    settings = Settings(DEALBOT_SLACK_CHANNEL_RATE="1/1s", DEALBOT_SLACK_BOT_RATE="1000/1s")
    bot = Bot(
        settings=settings,
        engine=engine,
        clock=clock,
        dispatcher=Dispatcher(engine, clock),
        senders={"slack": sender},
    )  # type: ignore[dict-item]
    delivery = bot.delivery()
    delivery.max_wait = timedelta(0)  # whatever cannot go now waits in the outbox
    return delivery


def _queue(engine: Engine, clock: FixedClock, count: int) -> None:
    with unit_of_work(engine) as session:
        team = Team(platform="slack", key="T0001", name="Sales", config={}, created_at=clock.now())
        session.add(team)
        session.flush()
        for n in range(count):
            outbox.enqueue(
                session,
                team=team,
                kind="test",
                dedupe_key=f"live:{n}",
                channel="C1",
                payload=Reply(text=f"m{n}").model_dump(mode="json"),
                now=clock.now(),
            )


def _deliver_one(delivery: Any) -> None:
    """One process takes one row and delivers it (the other row is left to the other process)."""
    delivery.batch = 1
    [row] = delivery.claim()
    asyncio.run(delivery.deliver(row, DeliveryReport()))


def test_two_processes_delivering_to_one_chat_keep_its_limit_between_them(
    engine: Engine, clock: FixedClock
) -> None:
    sender = Recording(clock)
    server, worker = _process(engine, clock, sender), _process(engine, clock, sender)
    _queue(engine, clock, 3)
    _deliver_one(worker)
    _deliver_one(server)  # the same moment, the same chat: the worker's send counts here too
    for step in range(8):
        clock.advance(milliseconds=500)
        asyncio.run((server if step % 2 else worker).run_once())
    moments = [when for _text, when in sender.sent]
    assert sorted(text for text, _when in sender.sent) == ["m0", "m1", "m2"]
    assert all(b - a >= timedelta(seconds=1) for a, b in zip(moments, moments[1:], strict=False))


def test_a_retry_after_one_process_heard_holds_the_chat_for_the_other(
    engine: Engine, clock: FixedClock
) -> None:
    told, other = Recording(clock, refuse=1), Recording(clock)
    _queue(engine, clock, 2)
    start = clock.now()
    _deliver_one(_process(engine, clock, told))  # m0: 429, retry after 3 s
    second = _process(engine, clock, other)
    for _ in range(12):
        asyncio.run(second.run_once())
        clock.advance(milliseconds=500)
    assert sorted(text for text, _when in other.sent) == ["m0", "m1"]
    assert all(when >= start + timedelta(seconds=3) for _text, when in other.sent)


def test_a_committed_push_is_delivered_at_once_and_a_rolled_back_one_never(
    engine: Engine, clock: FixedClock
) -> None:
    sender = Recording(clock)
    courier = Courier(_process(engine, clock, sender))

    async def scenario() -> None:
        await courier.start()
        try:
            _queue(engine, clock, 1)
            with contextlib.suppress(RuntimeError), unit_of_work(engine) as session:
                team = session.execute(select(Team)).scalar_one()
                outbox.enqueue(session, team=team, kind="test", dedupe_key="live:gone",
                               channel="C1", payload=Reply(text="gone").model_dump(mode="json"),
                               now=clock.now())  # fmt: skip
                raise RuntimeError("the command failed: nothing it queued may leave")
            deadline = time.monotonic() + DEADLINE
            while not sender.sent and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            await courier.stop()

    asyncio.run(scenario())
    assert [text for text, _when in sender.sent] == ["m0"]
    with unit_of_work(engine) as session:
        assert session.execute(select(Outbox.status)).scalars().all() == ["sent"]
