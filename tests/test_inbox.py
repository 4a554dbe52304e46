"""Once a platform is told "received", the command survives the process that received it.

A server acknowledges a command and then never gets to run it (here: its commands wait at a gate,
as they wait for the database in a server that is about to die). After the lease, a worker built
from the same settings runs it once and answers it: Slack on the command's response_url (or, when
that is too old, in the person's DM), Telegram in the chat, WeCom to the person. The server's own
run, should it come after all, is recognised and answers nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.wecom import WeComAdapter
from bot.app import Bot, build, keep_commands
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from commands.inbox import Inbox
from commands.types import Invocation, Reply
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, InboundCommand, Lead, Member
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer
from tests.test_slack import SECRET as SLACK_SECRET
from tests.test_slack import FakeSlack, SlackHarness, text_of
from tests.test_telegram import GROUP, PEOPLE, FakeBotApi, TelegramHarness
from tests.test_telegram import SECRET as TELEGRAM_SECRET
from tests.test_telegram import TOKEN as TELEGRAM_TOKEN
from tests.test_wecom import (
    AES_KEY,
    AGENT,
    CORP,
    ROBOT_KEY,
    TOKEN,
    FakeWeCom,
    WeComHarness,
    shown,
)
from tests.test_wecom import SECRET as WECOM_SECRET

LEASE = timedelta(seconds=30)


class Gated(Dispatcher):
    """Commands wait at a gate: a server that acknowledged them and has not run them yet."""

    def __init__(self, engine: Engine, clock: FixedClock) -> None:
        super().__init__(engine, clock)
        self.gate = threading.Event()
        self.waiting = threading.Semaphore(0)
        self.replies: list[Reply] = []

    def dispatch(self, invocation: Invocation, *, inbox_id: int | None = None) -> Reply:
        self.waiting.release()
        assert self.gate.wait(20)
        reply = super().dispatch(invocation, inbox_id=inbox_id)
        self.replies.append(reply)
        return reply

    def until_waiting(self) -> None:
        assert self.waiting.acquire(timeout=10), "the command never reached the dispatcher"


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def worker_of(settings: Settings, engine: Engine, clock: FixedClock) -> Bot:
    """Another process: `dealbot worker` as built from the deployment's settings."""
    return build(settings, clock=clock, database_url=url_of(engine), migrate=False)


def counts(engine: Engine) -> tuple[int, int, int]:
    """Leads, commands logged as run (a recognised repeat is logged as a duplicate), commands
    still kept."""
    with unit_of_work(engine) as session:
        leads, logged, kept = (
            session.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
            for table, where in (
                (Lead, ()),
                (CommandLog, (CommandLog.outcome != "duplicate",)),
                (InboundCommand, ()),
            )
        )
    return leads, logged, kept


# --- Slack -----------------------------------------------------------------------------------


@pytest.fixture
def slack_api() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


def slack_settings(api: FakeSlack) -> Settings:
    return Settings(
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SLACK_SECRET,
        SLACK_API_URL=f"{api.url}/api/",
    )


class GatedSlack(SlackHarness):
    """The Slack harness, its commands kept and waiting at a gate."""

    def __init__(self, engine: Engine, clock: FixedClock, api: FakeSlack) -> None:
        super().__init__(engine, clock, api)
        self.server.close()
        self.dispatcher = Gated(engine, clock)
        self.bot.dispatcher = self.dispatcher
        keep_commands(self.bot, lease=LEASE)
        self.server = LiveServer(create_app(self.bot))
        self.http.base_url = self.server.url  # type: ignore[assignment]

    def close(self) -> None:
        self.dispatcher.gate.set()
        super().close()


@pytest.fixture
def gated_slack(engine: Engine, clock: FixedClock, slack_api: FakeSlack) -> Iterator[GatedSlack]:
    harness = GatedSlack(engine, clock, slack_api)
    yield harness
    harness.close()


def response_posts(api: FakeSlack) -> list[dict[str, Any]]:
    return [r.json for r in list(api.requests) if r.path.startswith("/response/")]


def slack_command(
    clock: FixedClock, text: str, key: str, *, user: str = "U1", name: str = "alice"
) -> Invocation:
    """A slash command as the Slack adapter hands it over, its delivery id made of `key`."""
    return Invocation(
        platform="slack",
        team_key="T0001",
        channel="C1",
        user_key=user,
        user_name=name,
        text=text,
        received_at=clock.now(),
        delivery_id=f"command:v0={key}",
    )


def answer_to(api: FakeSlack, key: str, user: str = "U1") -> dict[str, Any]:
    """Where the Slack adapter notes to answer a command: its response_url, the chat, the person."""
    return {"response_url": f"{api.url}/response/{key}", "channel": "C1", "user": user}


def test_a_slash_command_acknowledged_but_never_run_is_run_and_answered_by_the_worker(
    gated_slack: GatedSlack, engine: Engine, clock: FixedClock, slack_api: FakeSlack
) -> None:
    answer = gated_slack.command("U1", "/lead", "add Acme Trading value=120k")
    assert answer.status_code == 200  # Slack was told "received"
    gated_slack.dispatcher.until_waiting()
    worker = worker_of(slack_settings(slack_api), engine, clock)

    asyncio.run(worker.worker().run_once())
    assert counts(engine) == (0, 0, 1), "its lease is the receiver's: nobody else runs it yet"

    clock.advance(seconds=LEASE.total_seconds() + 1)  # the receiver is gone
    asyncio.run(worker.worker().run_once())
    (posted,) = response_posts(slack_api)
    assert "L1 Acme Trading" in posted["text"] and posted["response_type"] == "in_channel"
    assert counts(engine) == (1, 1, 0)

    gated_slack.dispatcher.gate.set()  # the receiver runs it after all
    slack_api.wait_for(lambda _: len(gated_slack.dispatcher.replies) == 1)
    assert gated_slack.dispatcher.replies[0].duplicate
    asyncio.run(worker.worker().run_once())
    assert len(response_posts(slack_api)) == 1, "answered once"
    assert counts(engine) == (1, 1, 0), "run once"


def test_a_command_whose_answer_failed_is_answered_later_without_running_again(
    gated_slack: GatedSlack, engine: Engine, clock: FixedClock, slack_api: FakeSlack
) -> None:
    gated_slack.dispatcher.gate.set()
    original = slack_api.handler

    def refuse_first(request: Any) -> Answer:
        if request.path.startswith("/response/") and len(response_posts(slack_api)) == 1:
            return Answer(status=500, body=b"server_error")
        return original(request)

    slack_api.handler = refuse_first
    assert gated_slack.command("U2", "/lead", "add Globex").status_code == 200
    slack_api.wait_for(lambda _: len(response_posts(slack_api)) == 1)
    worker = worker_of(slack_settings(slack_api), engine, clock)
    clock.advance(seconds=LEASE.total_seconds() + 1)
    asyncio.run(worker.worker().run_once())
    first, second = response_posts(slack_api)
    assert first == second and "L1 Globex" in second["text"]
    assert counts(engine) == (1, 1, 0)


def test_an_answer_too_late_for_the_response_url_goes_to_the_persons_dm(
    engine: Engine, clock: FixedClock, slack_api: FakeSlack
) -> None:
    server = build(
        slack_settings(slack_api), clock=clock, database_url=url_of(engine), migrate=False
    )
    assert server.inbox is not None
    invocation = slack_command(clock, "/lead add Initech", "late", user="U3", name="carol")
    asyncio.run(server.inbox.receive(invocation, answer_to(slack_api, "late", user="U3")))
    clock.advance(minutes=45)  # its receiver died; the worker was down too
    asyncio.run(worker_of(slack_settings(slack_api), engine, clock).worker().run_once())
    assert not response_posts(slack_api)
    (dm,) = [r.form or r.json for r in slack_api.calls("chat.postMessage")]
    assert dm["channel"] == "DU3" and "L1 Initech" in text_of(dm)
    assert counts(engine) == (1, 1, 0)


def test_a_kept_command_that_fails_is_answered_with_its_error_and_not_run_again(
    engine: Engine, clock: FixedClock, slack_api: FakeSlack
) -> None:
    worker = worker_of(slack_settings(slack_api), engine, clock)
    assert worker.inbox is not None
    invocation = slack_command(clock, "/lead show L99", "fails")
    asyncio.run(worker.inbox.receive(invocation, answer_to(slack_api, "fails")))
    clock.advance(seconds=LEASE.total_seconds() + 1)
    for _ in range(2):
        asyncio.run(worker.worker().run_once())
        clock.advance(minutes=5)
    (posted,) = response_posts(slack_api)
    assert "L99" in posted["text"] and posted["response_type"] == "ephemeral"
    assert counts(engine) == (0, 1, 0)


def test_the_same_command_run_by_two_runners_at_once_runs_once(
    engine: Engine, clock: FixedClock
) -> None:
    """The receiver, slow, and a worker that took over after the lease: one runs it."""
    inbox = Inbox(engine, Dispatcher(engine, clock), clock, lease=LEASE)
    invocation = slack_command(clock, "/lead add Hooli", "twice")
    kept = asyncio.run(inbox.receive(invocation, {"user": "U1"}))
    other = Inbox(engine, Dispatcher(engine, clock), clock, lease=LEASE)

    async def both() -> list[Reply]:
        return list(await asyncio.gather(inbox.run(kept, invocation), other.run(kept, invocation)))

    replies = asyncio.run(both())
    assert sorted(reply.duplicate for reply in replies) == [False, True]
    assert counts(engine) == (1, 1, 1)  # kept until answered


# --- Telegram --------------------------------------------------------------------------------


def test_a_telegram_command_kept_but_not_run_is_run_by_the_worker_and_answered_in_its_chat(
    engine: Engine, clock: FixedClock
) -> None:
    api = FakeBotApi()
    try:
        settings = Settings(
            TELEGRAM_BOT_TOKEN=TELEGRAM_TOKEN,
            TELEGRAM_WEBHOOK_SECRET=TELEGRAM_SECRET,
            TELEGRAM_API_URL=api.url,
            TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/webhook",
        )
        server = build(settings, clock=clock, database_url=url_of(engine), migrate=False)
        assert server.inbox is not None
        invocation = Invocation(
            platform="telegram",
            team_key=str(GROUP),
            team_name="Sales",
            channel=str(GROUP),
            user_key="1111111",
            user_name="Alice",
            text="/lead add Umbrella",
            received_at=clock.now(),
            delivery_id="update:31337",
        )
        asyncio.run(server.inbox.receive(invocation, {"chat": GROUP}))
        clock.advance(seconds=LEASE.total_seconds() + 1)
        worker = worker_of(settings, engine, clock)
        asyncio.run(worker.worker().run_once())
        asyncio.run(worker.worker().run_once())
        (sent,) = api.sent()
        assert sent["chat_id"] in (GROUP, str(GROUP)) and "L1 Umbrella" in sent["text"]
        assert counts(engine) == (1, 1, 0)
    finally:
        api.close()


# --- WeCom -----------------------------------------------------------------------------------


def wecom_settings(api: FakeWeCom) -> Settings:
    return Settings.model_validate(
        {
            "WECOM_CORP_ID": CORP,
            "WECOM_AGENT_ID": AGENT,
            "WECOM_SECRET": WECOM_SECRET,
            "WECOM_TOKEN": TOKEN,
            "WECOM_ENCODING_AES_KEY": AES_KEY,
            "WECOM_WEBHOOK_KEY": ROBOT_KEY,
            "WECOM_API_URL": api.url,
        }
    )


@contextmanager
def gated_wecom(
    engine: Engine, clock: FixedClock
) -> Iterator[tuple[WeComHarness, Gated, FakeWeCom]]:
    """A WeCom server that keeps its commands and holds each at a gate before it runs."""
    api = FakeWeCom()
    harness = WeComHarness(engine, clock, api)
    harness.server.close()
    gated = Gated(engine, clock)
    harness.bot.dispatcher = gated
    keep_commands(harness.bot, lease=LEASE)
    harness.server = LiveServer(create_app(harness.bot))
    harness.http.base_url = harness.server.url  # type: ignore[assignment]
    try:
        yield harness, gated, api
    finally:
        gated.gate.set()
        harness.close()
        api.close()


def test_a_wecom_message_acknowledged_but_never_run_is_run_and_answered_by_the_worker(
    engine: Engine, clock: FixedClock
) -> None:
    with gated_wecom(engine, clock) as (harness, gated, api):
        assert isinstance(harness.adapter, WeComAdapter) and harness.adapter.inbox is not None

        answer = harness.post_xml(harness.text("zhangsan", "/线索 新建 华为技术"))
        assert answer.status_code == 200 and answer.content == b""  # WeCom was told "received"
        gated.until_waiting()
        clock.advance(seconds=LEASE.total_seconds() + 1)
        asyncio.run(worker_of(wecom_settings(api), engine, clock).worker().run_once())
        (message,) = api.sent_to("zhangsan")
        assert "L1" in shown(message) and "华为技术" in shown(message)

        gated.gate.set()
        api.wait_for(lambda _: len(gated.replies) == 1)
        assert gated.replies[0].duplicate and len(api.sent_to("zhangsan")) == 1
        assert counts(engine) == (1, 1, 0)


def test_a_wecom_click_kept_by_a_dead_server_is_still_a_click_when_the_worker_runs_it(
    engine: Engine, clock: FixedClock
) -> None:
    """A button acts only for members of its team: so does one the worker runs for a dead server
    (kept as typed text, it would have made the clicker a member and run the command)."""
    with gated_wecom(engine, clock) as (harness, gated, api):
        click = harness.click("zhaoliu", "/线索 新建 华为技术", task_id="T1", response_code="RC")
        assert harness.post_xml(click).status_code == 200
        gated.until_waiting()
        clock.advance(seconds=LEASE.total_seconds() + 1)
        asyncio.run(worker_of(wecom_settings(api), engine, clock).worker().run_once())
        (message,) = api.sent_to("zhaoliu")
        assert "你不在其中" in shown(message)
        with unit_of_work(engine) as session:
            assert session.execute(select(func.count()).select_from(Member)).scalar_one() == 0
        assert counts(engine)[0] == 0


def test_telegrams_retry_of_a_command_kept_by_a_dead_server_runs_it_at_once(
    engine: Engine, clock: FixedClock
) -> None:
    """Telegram sends an update again until it is answered 200: the retry runs the kept command
    now (not after the lease), once, and answers it."""
    api = FakeBotApi()
    harness = TelegramHarness(engine, clock, api)
    try:
        keep_commands(harness.bot, lease=LEASE)
        update = harness.message("alice", "/lead add Umbrella")
        first = Invocation(
            platform="telegram",
            team_key=str(GROUP),
            team_name="Sales team",
            channel=str(GROUP),
            user_key=str(PEOPLE["alice"]["id"]),
            user_name="Alice",
            text="/lead add Umbrella",
            received_at=clock.now(),
            delivery_id=f"update:{update['update_id']}",
        )
        dead = Inbox(engine, Dispatcher(engine, clock), clock, lease=LEASE)
        asyncio.run(dead.receive(first, {"chat": GROUP}))  # kept, then its server died
        assert harness.post(update).status_code == 200  # the retry, within the lease
        (sent,) = api.sent()
        assert "L1 Umbrella" in sent["text"]
        assert harness.post(update).status_code == 200  # and again: nothing more
        assert len(api.sent()) == 1 and counts(engine) == (1, 1, 0)
    finally:
        harness.close()
        api.close()
