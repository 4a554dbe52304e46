"""Operating signals: `GET /metrics` (Prometheus text) counts commands, deliveries, platform errors
and jobs through the observers `build()` wires in; `GET /healthz` says 503 when the database is
gone; the JSON log has one line per command and per push and never a phone, e-mail or token."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from adapters.base import AuthBroken, RateLimited, Target, TargetGone, Transient
from adapters.console import ConsoleAdapter
from bot import logs
from bot.app import Bot, FileClock, build
from bot.metrics import error_code
from bot.settings import Settings
from bot.web import create_app
from commands.types import Reply
from models.clock import FixedClock
from models.db import create_schema
from tests.fakes.asgi import LiveServer

PHONE_FORMS = ("138-0013-8000", "13800138000", "138 0013 8000", "0013-8000")
EMAIL = "li.lei@example.com"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def served(bot: Bot) -> Iterator[httpx.Client]:
    """The web app on a local port (uvicorn), and a client for it."""
    server = LiveServer(create_app(bot))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        server.close()


@pytest.fixture
def bot(tmp_path: Path, clock: FixedClock) -> Iterator[Bot]:
    # The schema of the models as they are now, whether or not their migration has been generated.
    built = build(
        settings(), database_url=f"sqlite:///{tmp_path / 'metrics.db'}", clock=clock, migrate=False
    )
    create_schema(built.engine)
    yield built
    built.engine.dispose()


def say(bot: Bot, line: str, user: str = "alice") -> Reply:
    adapter = ConsoleAdapter(bot.dispatcher.dispatch, bot.clock, team="acme", user=user)
    return bot.dispatcher.dispatch(adapter.invocation(line))


def samples(client: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


class ScriptedSender:
    """A console-platform sender answering from a script: an exception to raise, or success."""

    platform = "console"

    def __init__(self, script: list[Exception | None]) -> None:
        self.script = script

    async def send(self, target: Target, reply: Reply) -> str:
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return "ref"

    async def update(self, message_ref: str, reply: Reply) -> None:
        return None


def test_metrics_count_commands_deliveries_platform_errors_and_jobs(bot: Bot) -> None:
    say(bot, "/team config locale=en")
    say(bot, "[bob] /help", user="bob")
    say(bot, "/team role @bob manager")
    say(bot, "/lead add Acme value=120k", user="carol")
    say(bot, "/quote L1 80k", user="carol")  # asks bob: one outbox row
    say(bot, "/quote L1 eighty", user="carol")  # a usage error
    say(bot, "/nonsense")
    with served(bot) as client:
        before = samples(client)
    assert before[("dealbot_commands_total", (("outcome", "ok"), ("verb", "lead add")))] == 1
    assert before[("dealbot_commands_total", (("outcome", "error"), ("verb", "quote")))] == 1
    assert before[("dealbot_commands_total", (("outcome", "error"), ("verb", "unknown")))] == 1
    assert before[("dealbot_command_duration_seconds_count", (("verb", "quote"),))] == 2
    assert before[("dealbot_outbox_rows", (("status", "pending"),))] >= 1
    assert before[("dealbot_outbox_rows", (("status", "dead"),))] == 0

    # The platform says 429, then the channel is gone: one postponed, one dead, counted by code.
    bot.senders["console"] = ScriptedSender(
        [RateLimited(3), TargetGone("slack: channel_not_found")]
    )
    delivery = bot.delivery()
    asyncio.run(delivery.run_once())
    assert isinstance(bot.clock, FixedClock)
    bot.clock.advance(seconds=5)
    asyncio.run(delivery.run_once())
    asyncio.run(bot.worker().run_once())

    with served(bot) as client:
        after = samples(client)
    deliveries = {
        key[1]: value for key, value in after.items() if key[0] == "dealbot_outbox_deliveries_total"
    }
    assert deliveries[(("outcome", "postponed"), ("platform", "console"))] == 1
    assert deliveries[(("outcome", "dead"), ("platform", "console"))] >= 1
    errors = {
        dict(key[1])["code"]: value
        for key, value in after.items()
        if key[0] == "dealbot_platform_api_errors_total"
    }
    assert errors["ratelimited"] == 1 and errors["channel_not_found"] >= 1
    assert after[("dealbot_outbox_rows", (("status", "dead"),))] >= 1
    assert after[("dealbot_job_duration_seconds_count", (("kind", "scan"),))] >= 1


def test_healthz_is_503_and_metrics_still_answer_when_the_database_is_unreachable() -> None:
    # Nothing listens on port 1: the connection is refused at once.
    down = build(
        settings(),
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/dealbot_scale_none",
        migrate=False,
    )
    with served(down) as client:
        answer = client.get("/healthz")
        assert answer.status_code == 503
        assert answer.json()["ok"] is False and answer.json()["database"] == "OperationalError"
        assert client.get("/metrics").status_code == 200


def test_healthz_is_200_with_the_database(bot: Bot) -> None:
    with served(bot) as client:
        answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["database"] == "ok"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure("INFO", stream)
    try:
        yield stream
    finally:
        root.handlers, _ = saved[0], root.setLevel(saved[1])
        logs.stdlib_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_one_json_line_per_command_and_push_and_no_phone_or_email_in_clear(
    bot: Bot, log_output: io.StringIO
) -> None:
    say(bot, "/team config locale=en")
    say(bot, "[bob] /help", user="bob")
    say(bot, "/team role @bob manager")
    say(bot, f"/lead add Acme phone=138-0013-8000 email={EMAIL} contact=Li", user="carol")
    say(
        bot, f"/lead add Acme Two phone=13800138000 email={EMAIL}", user="carol"
    )  # a duplicate warning
    say(bot, f"/lead edit L1 phone=138 0013 8000 email=x{EMAIL}", user="carol")
    say(bot, f"/quote L1 13800138000 {EMAIL}", user="carol")
    say(bot, f"/follow L9 call {EMAIL} on 0013-8000", user="carol")  # no such lead: an error
    # A delivery failing with the contact details in the platform's error text.
    bot.senders["console"] = ScriptedSender(
        [RuntimeError(f"cannot reach {EMAIL} / +86 138-0013-8000")]
    )
    asyncio.run(bot.delivery().run_once())
    logging.getLogger("dealbot.test").warning(
        "caller said %s, token xoxb-1234-5678-abcdef", "138 0013 8000"
    )

    output = log_output.getvalue()
    for secret in (*PHONE_FORMS, EMAIL, "xoxb-1234"):
        assert secret not in output, f"{secret!r} appears in the log"
    parsed = lines(log_output)
    commands = [line for line in parsed if line["event"] == "command"]
    assert len(commands) == 8
    for line in commands:
        assert {"team", "verb", "outcome", "duration_ms", "timestamp", "level"} <= set(line)
        assert line["team"] == "acme"
    assert [(c["verb"], c["outcome"]) for c in commands][3:] == [
        ("lead add", "ok"),
        ("lead add", "refused"),  # a duplicate: it names the owner and asks for force=yes
        ("lead edit", "ok"),
        ("quote", "ok"),
        ("follow", "error"),
    ]
    pushes = [line for line in parsed if line["event"] == "push"]
    assert pushes and all(
        {"team", "kind", "outcome", "duration_ms"} <= set(line) for line in pushes
    )
    assert any(
        "[email]" in (line.get("error") or "") and "[phone]" in line["error"] for line in pushes
    )
    assert any(line["event"].startswith("caller said [phone], token [token]") for line in parsed)


def test_the_file_clock_jumps_when_the_file_is_replaced_and_runs_on_in_between(
    tmp_path: Path,
) -> None:
    path = tmp_path / "now"
    path.write_text("2026-11-26T09:00:00+08:00")
    clock = FileClock(path)
    first = clock.now()
    assert first.tzinfo is not None
    assert timedelta(0) <= first - datetime(2026, 11, 26, 1, 0, tzinfo=UTC) < timedelta(minutes=1)
    assert clock.now() >= first
    moved = tmp_path / "next"
    moved.write_text("2026-12-01T18:30:00+08:00")
    moved.replace(path)
    assert (
        timedelta(0)
        <= clock.now() - datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
        < timedelta(minutes=1)
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (RateLimited(7, "slack 429"), "ratelimited"),
        (TargetGone("slack: channel_not_found"), "channel_not_found"),
        (AuthBroken("slack refused our token: invalid_auth"), "invalid_auth"),
        (TargetGone("telegram: Forbidden: bot was blocked by the user"), "forbidden"),
        (AuthBroken("wecom message/send: errcode 40014 invalid access_token"), "errcode_40014"),
        (Transient("slack unreachable: [Errno 111] Connection refused"), "Transient"),
        (RuntimeError("boom"), "RuntimeError"),
    ],
)
def test_platform_errors_are_labelled_by_the_platforms_code(error: Exception, code: str) -> None:
    assert error_code(error) == code
