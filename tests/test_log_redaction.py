"""What `dealbot serve` writes to its log at DEBUG, through the real entry points of Slack,
Telegram and WeCom: no credential (configured or fetched at run time) and no customer's name or
note, whichever library wrote the line; and the moments in a line stay readable."""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.wecom_crypto import WeComCrypto
from bot import logs
from bot.app import build
from bot.settings import Settings
from bot.web import create_app
from models.clock import FixedClock
from models.db import create_schema
from tests.fakes.asgi import LiveServer
from tests.test_privacy import _slack as slash_command
from tests.test_privacy import _telegram as group_message
from tests.test_slack import FakeSlack
from tests.test_telegram import FakeBotApi
from tests.test_wecom import FakeWeCom, payload

CORP = "wx49f0ab532d5d035a"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-2222-SlackBotTokenValue",
    "SLACK_SIGNING_SECRET": "slack-signing-secret-value-42",
    "TELEGRAM_BOT_TOKEN": "987654:TelegramTokenValueAbcdefghijklmnop",
    "TELEGRAM_WEBHOOK_SECRET": "telegram-webhook-secret-value",
    "WECOM_SECRET": "wecom-corp-secret-value-77",
    "WECOM_TOKEN": "wecom-callback-token-123",
    "WECOM_ENCODING_AES_KEY": AES_KEY,
    "WECOM_WEBHOOK_KEY": "wecom-robot-key-value-99",
}
PERSONAL = ("Huaguo", "Bajie", "Wukong")  # a lead's name, its contact, a follow-up's note


@pytest.fixture
def debug_log(tmp_path: Any, clock: FixedClock) -> Iterator[dict[str, Any]]:
    """The app as `dealbot serve` runs it with every platform, logging at DEBUG into a stream."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    slack, telegram, wecom = FakeSlack(), FakeBotApi(), FakeWeCom()
    settings = Settings.model_validate(
        {
            **SECRETS,
            "SLACK_API_URL": f"{slack.url}/api/",
            "TELEGRAM_API_URL": telegram.url,
            "TELEGRAM_WEBHOOK_URL": "https://x.example/telegram/webhook",
            "WECOM_CORP_ID": CORP,
            "WECOM_AGENT_ID": "1",
            "WECOM_API_URL": wecom.url,
            "DEALBOT_LOG_LEVEL": "DEBUG",
        }
    )
    stream = io.StringIO()
    logs.configure(settings.log_level, stream, secrets=logs.credentials(settings))
    bot = build(
        settings, clock=clock, database_url=f"sqlite:///{tmp_path / 'debug.db'}", migrate=False
    )
    create_schema(bot.engine)
    server = LiveServer(create_app(bot))
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        yield {
            "client": client,
            "slack": slack,
            "telegram": telegram,
            "wecom": wecom,
            "stream": stream,
        }
    finally:
        client.close()
        server.close()
        for fake in (slack, telegram, wecom):
            fake.close()
        bot.engine.dispose()
        root.handlers, _ = saved[0], root.setLevel(saved[1])
        for name in logs.QUIET_FLOORS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logs.stdlib_defaults()


def _slack(client: httpx.Client, slack: FakeSlack, text: str) -> None:
    slash_command(client, slack, "U1", text, secret=SECRETS["SLACK_SIGNING_SECRET"])


def _telegram(client: httpx.Client, telegram: FakeBotApi, update_id: int, text: str) -> None:
    wanted = len(telegram.sent()) + 1
    group_message(client, update_id, text, secret=SECRETS["TELEGRAM_WEBHOOK_SECRET"])
    telegram.wait_for(lambda _: len(telegram.sent()) >= wanted)


def _wecom(client: httpx.Client, wecom: FakeWeCom, msg_id: int, text: str) -> None:
    crypto = WeComCrypto(SECRETS["WECOM_TOKEN"], AES_KEY, CORP)
    inner = payload(
        "text_message.xml",
        user="zhangsan",
        content=text,
        create_time=int(time.time()),
        msg_id=msg_id,
    ).replace("$agent_id", "1")
    encrypted = crypto.encrypt(inner.encode())
    stamp = str(int(time.time()))
    wanted = len(wecom.sent_to("zhangsan")) + 1
    answer = client.post(
        "/wecom/callback",
        content=payload("callback.xml", encrypt=encrypted),
        params={
            "msg_signature": crypto.signature(stamp, "7", encrypted),
            "timestamp": stamp,
            "nonce": "7",
        },
    )
    assert answer.status_code == 200
    wecom.wait_for(lambda _: len(wecom.sent_to("zhangsan")) >= wanted)


def test_debug_log_of_real_requests_holds_no_credential_and_no_customer(
    debug_log: dict[str, Any],
) -> None:
    client = debug_log["client"]
    _slack(client, debug_log["slack"], "add Huaguo Fruit contact=Zhu Bajie")
    _slack(client, debug_log["slack"], "show L1")
    _telegram(client, debug_log["telegram"], 701, "/lead add Huaguo Fruit contact=Zhu Bajie")
    _telegram(client, debug_log["telegram"], 702, "/follow L1 Sun Wukong wants a discount")
    _wecom(client, debug_log["wecom"], 7001, "/lead add Huaguo Fruit contact=Zhu Bajie")
    _wecom(client, debug_log["wecom"], 7002, "/follow L1 Sun Wukong wants a discount")
    output = debug_log["stream"].getvalue()
    assert '"level": "debug"' in output  # DEBUG lines were written: the check below means something
    assert debug_log["wecom"].at("/cgi-bin/gettoken")  # the corpsecret did travel in a URL
    leaks = [value for value in (*SECRETS.values(), "TOKEN-1", *PERSONAL) if value in output]
    assert leaks == []


def test_every_logger_masks_credentials_and_keeps_moments(debug_log: dict[str, Any]) -> None:
    moment = datetime(2026, 12, 3, 7, 36, 12, 345678, tzinfo=UTC)
    logging.getLogger("apscheduler.scheduler").info("job scheduled at %s", moment)
    logging.getLogger("some.library").debug(
        "GET /cgi-bin/gettoken?corpid=%s&corpsecret=%s then /bot%s/getMe, Bearer %s",
        CORP,
        "runtime-secret-abc",
        "42:short",
        "xapp-1-A2-runtime",
    )
    output = debug_log["stream"].getvalue()
    assert "job scheduled at 2026-12-03 07:36:12.345678+00:00" in output
    assert "runtime-secret-abc" not in output and "42:short" not in output
    assert "xapp-1-A2-runtime" not in output and "corpsecret=[token]" in output


def test_addresses_in_a_line_stay_readable_and_a_phone_beside_them_does_not(
    debug_log: dict[str, Any],
) -> None:
    logging.getLogger("some.server").info(
        '%s - "POST /slack/events HTTP/1.1" 200, from %s. Call %s',
        "203.0.113.45:51234",
        "192.168.100.200",
        "138.0013.8000",
    )
    output = debug_log["stream"].getvalue()
    assert '203.0.113.45:51234 - \\"POST /slack/events HTTP/1.1\\" 200' in output
    assert "from 192.168.100.200. Call [phone]" in output


def test_a_password_in_any_url_is_masked_however_short(debug_log: dict[str, Any]) -> None:
    logging.getLogger("some.library").warning("cannot reach postgresql://dealbot:pw@db:5432/x")
    output = debug_log["stream"].getvalue()
    assert "cannot reach postgresql://dealbot:[secret]@db:5432/x" in output


@contextmanager
def captured_log(level: str = "DEBUG") -> Iterator[io.StringIO]:
    """Logging configured as the CLI does, at `level`, into a stream; restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure(level, stream)
    try:
        yield stream
    finally:
        root.handlers, _ = saved[0], root.setLevel(saved[1])
        for name in logs.QUIET_FLOORS:
            logging.getLogger(name).setLevel(logging.NOTSET)
        logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logs.stdlib_defaults()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    with captured_log("DEBUG") as stream:
        yield stream


def logged(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# Numbers a log line carries that are not phone numbers: each must reach the log as it was.
NOT_PHONES = [
    "scheduled at 2026-12-03 07:36:12.345678+00:00",
    "sent 2026-12-03T07:36:12Z, due 2026-12-03T15:36:12.123+08:00, day 2026-12-03",
    "Next wakeup is due at 2026-12-03 07:36:17 (in 4.922768 seconds)",
    "took 1234567 ms (duration_ms=1234567.89), 0:00:01.234567, 12.3456789 s, 12345678µs",
    "outbox row 12345678, lead id 10000001, pid 1234567, 7340032 bytes",
    "WeCom MsgId 7000000000000000001, response_code RC-1234567, msgid msg-1234567",
    "request 123e4567-e89b-12d3-a456-426614174000, epoch 1733211372, ms 1733211372000",
    "amount 1200000, ¥1,200,000, 1,234,567.00 CNY, amount=1234567.89, 120万",
    "Slack user U012AB3CD4E in C0123456789 of T0123456789, ts 1712345678.123456",
    "Telegram chat -1001234567890, user 123456789, update_id 987654321, message_id 1234567",
    "from 203.0.113.45:51234, version 1.2.3.4567890",
]

# Phone numbers as people type them, in China and in North America.
PHONES = [
    "13800138000",
    "138 0013 8000",
    "138-0013-8000",
    "+86 138 0013 8000",
    "+8613800138000",
    "+86-138-0013-8000",
    "0086 138 0013 8000",
    "(+86) 138-0013-8000",
    "１３８００１３８０００",
    "010-12345678",
    "010 1234 5678",
    "(010) 12345678",
    "0755-88886666",
    "(0755) 8888-6666",
    "021-6123-4567",
    "+86 10 1234 5678",
    "400-800-8888",
    "(415) 555-2671",
    "415-555-2671",
    "415.555.2671",
    "+1 415 555 2671",
    "1 (415) 555-2671",
    "+14155552671",
    "+44 20 7946 0958",
]


def test_times_durations_ids_and_amounts_reach_the_log_unchanged(json_log: io.StringIO) -> None:
    for line in NOT_PHONES:
        logging.getLogger("some.library").info("%s", line)
        logs.events.info("push", error=line)
    written = logged(json_log)
    assert [entry["event"] for entry in written[::2]] == NOT_PHONES
    assert [entry["error"] for entry in written[1::2]] == NOT_PHONES


def test_every_way_of_writing_a_phone_number_is_masked(json_log: io.StringIO) -> None:
    for phone in PHONES:
        logging.getLogger("some.library").warning("caller said %s, then hung up", phone)
        logs.events.info("push", error=f"电话{phone}。")
    written = logged(json_log)
    assert [entry["event"] for entry in written[::2]] == [
        "caller said [phone], then hung up"
    ] * len(PHONES)
    assert [entry["error"] for entry in written[1::2]] == ["电话[phone]。"] * len(PHONES)


def test_an_email_beside_the_numbers_is_masked_and_nothing_else(json_log: io.StringIO) -> None:
    logging.getLogger("dealbot.outbox").warning(
        "delivery of outbox row 1234567 to li.lei@example.com failed at 2026-12-03 07:36:12 "
        "after 2500 ms: 138-0013-8000 unreachable"
    )
    (entry,) = logged(json_log)
    assert entry["event"] == (
        "delivery of outbox row 1234567 to [email] failed at 2026-12-03 07:36:12 "
        "after 2500 ms: [phone] unreachable"
    )
