"""Timestamps and senders at the webhooks: a freshness check only trusts a timestamp of plain ASCII
digits, and a request that names no sender, team or signature is refused before anything runs —
on every platform, through the real entry points, with nothing written to the database."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy.engine import Engine

from adapters.slack import SlackAdapter
from adapters.wecom import Inbound
from bot.app import Bot
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from models.clock import FixedClock
from tests.attacks.conftest import stored
from tests.attacks.test_signatures import FORM, post_signed, signature, slash_body
from tests.fakes.asgi import LiveServer
from tests.test_slack import PAYLOADS as SLACK_PAYLOADS
from tests.test_slack import FakeSlack, SlackHarness
from tests.test_telegram import PEOPLE, TelegramHarness
from tests.test_wecom import WeComHarness, payload

# Each of these once read as a number (float() takes nan, inf, 1e10, +123, " 123", "١٢٣"), and
# abs(now - nan) > 300 is False: a NaN timestamp was always "fresh".
NOT_TIMESTAMPS = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e10",
    "+123",
    " 123",
    "123 ",
    "١٧٠٠٠٠٠٠٠٠",
    "１７００００００００",
    "1700000000.5",
    "0x65",
    "",
    "9" * 40,
]


def now_stamp() -> str:
    return str(int(time.time()))


# --- WeCom --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", NOT_TIMESTAMPS)
def test_wecom_message_with_a_timestamp_that_is_not_digits_is_refused(
    wecom: WeComHarness, stamp: str
) -> None:
    encrypted = wecom.wecom.encrypt(wecom.text("zhangsan", "/lead add Sneaky Co").encode())
    params = {
        "msg_signature": wecom.wecom.signature(stamp, "1", encrypted),
        "timestamp": stamp,
        "nonce": "1",
    }  # correctly signed: only the timestamp is wrong
    answer = wecom.http.post(
        "/wecom/callback",
        params=params,
        content=payload("callback.xml", encrypt=encrypted),
        headers={"Content-Type": "text/xml"},
    )
    assert answer.status_code in (400, 401)
    assert stored(wecom.engine) == {} and not wecom.api.requests


def verify_url(wecom: WeComHarness, stamp: str) -> httpx.Response:
    """WeCom's URL check, correctly signed, at `stamp`: valid, it echoes the decrypted echostr."""
    echo = wecom.wecom.encrypt(b"5927782489442352469")
    return wecom.http.get(
        "/wecom/callback",
        params={
            "msg_signature": wecom.wecom.signature(stamp, "1", echo),
            "timestamp": stamp,
            "nonce": "1",
            "echostr": echo,
        },
    )


@pytest.mark.parametrize("stamp", NOT_TIMESTAMPS)
def test_wecom_url_verification_with_a_timestamp_that_is_not_digits_is_refused(
    wecom: WeComHarness, stamp: str
) -> None:
    answer = verify_url(wecom, stamp)
    assert answer.status_code in (400, 401) and b"5927782489442352469" not in answer.content
    assert stored(wecom.engine) == {}


def test_a_signed_wecom_timestamp_of_digits_is_still_accepted(wecom: WeComHarness) -> None:
    answer = verify_url(wecom, now_stamp())
    assert answer.status_code == 200 and answer.text == "5927782489442352469"


@pytest.mark.parametrize("sender", ["", " ", "   \n", "a b", "x" * 65, "<b>"])
def test_wecom_callback_without_a_sender_is_refused_and_nothing_is_sent(
    wecom: WeComHarness, sender: str
) -> None:
    inner = wecom.text("zhangsan", "/lead add Sneaky Co").replace(
        "<![CDATA[zhangsan]]>", f"<![CDATA[{sender}]]>"
    )
    assert wecom.post_xml(inner).status_code == 400
    without = "".join(
        line for line in wecom.text("zhangsan", "/帮助").splitlines() if "FromUserName" not in line
    )
    assert wecom.post_xml(without).status_code == 400
    click = payload(
        "template_card_event.xml",
        user=sender,
        event_key="/lead claim L1",
        task_id="t1",
        response_code="rc",
        create_time=int(time.time()),
    )
    assert wecom.post_xml(click).status_code == 400
    assert stored(wecom.engine) == {} and not wecom.api.requests


@pytest.mark.parametrize("created", ["١٢٣", "+123", " 123", "nan", "1e3"])
def test_a_wecom_create_time_is_read_only_when_it_is_digits(created: str) -> None:
    assert Inbound(msg_type="text", user="zhangsan", create_time=created).received_at.year > 2000
    assert Inbound(msg_type="text", user="zhangsan", create_time="123").received_at.year == 1970


# --- Slack --------------------------------------------------------------------------------------


# HTTP itself trims a header's surrounding spaces (and clients refuse to send them).
@pytest.mark.parametrize("stamp", [stamp for stamp in NOT_TIMESTAMPS if stamp == stamp.strip()])
def test_slack_request_with_a_timestamp_that_is_not_digits_is_refused(
    slack: SlackHarness, stamp: str
) -> None:
    body = slash_body(slack, "add Sneaky Co")
    answer = slack.http.post(
        "/slack/events",
        content=body,
        headers={
            "Content-Type": FORM,
            "X-Slack-Request-Timestamp": stamp.encode(),
            "X-Slack-Signature": signature(body, stamp),
        },
    )
    assert answer.status_code == 401
    assert stored(slack.engine) == {} and not slack.api.requests


def test_slack_ssl_check_field_does_not_skip_the_signature(slack: SlackHarness) -> None:
    """Adding `ssl_check=1` to an unsigned command must not get it past dealbot's own check."""
    body = b"ssl_check=1&token=x&command=%2Flead&text=add+Sneaky&team_id=T0001&user_id=U1"
    unsigned = slack.http.post("/slack/events", content=body, headers={"Content-Type": FORM})
    assert unsigned.status_code == 401
    assert stored(slack.engine) == {} and not slack.api.requests
    # Slack's own certificate check is signed like every request, and answered without running.
    signed = post_signed(slack, body, stamp=now_stamp(), sig=signature(body, now_stamp()))
    assert signed.status_code == 200
    assert stored(slack.engine) == {}


def _click_body(team: object, user: object) -> bytes:
    click = json.loads((SLACK_PAYLOADS / "block_actions.json").read_text())
    click["team"] = team
    click["user"] = user
    click["actions"][0]["value"] = "/lead add Sneaky Co"
    return urlencode({"payload": json.dumps(click)}).encode()


SLACK_ANONYMOUS = {
    "command without user_id": lambda slack: slash_body(slack, "add Sneaky Co", user=""),
    "command without team_id": lambda slack: slash_body(slack, "add Sneaky Co", team=""),
    "command with a blank user": lambda slack: slash_body(slack, "add Sneaky Co", user="  "),
    "click without a user": lambda slack: _click_body({"id": "T0001"}, None),
    "click with an empty user": lambda slack: _click_body({"id": "T0001"}, {"id": ""}),
    "click without a team": lambda slack: _click_body(None, {"id": "U1", "name": "alice"}),
}


@pytest.mark.parametrize("case", list(SLACK_ANONYMOUS))
def test_signed_slack_request_without_a_sender_or_team_is_refused(
    slack: SlackHarness, case: str
) -> None:
    body = SLACK_ANONYMOUS[case](slack)
    stamp = now_stamp()
    assert post_signed(slack, body, stamp=stamp, sig=signature(body, stamp)).status_code == 400
    assert stored(slack.engine) == {} and not slack.api.requests


# --- Telegram -----------------------------------------------------------------------------------


def _without(update: dict, *path: str) -> dict:
    holder = update
    for key in path[:-1]:
        holder = holder[key]
    del holder[path[-1]]
    return update


def test_telegram_update_without_a_sender_is_refused(telegram: TelegramHarness) -> None:
    message = _without(telegram.message("alice", "/lead add Sneaky Co"), "message", "from")
    assert telegram.post(message).status_code == 400
    anonymous = telegram.message("alice", "/lead add Sneaky Co")
    anonymous["message"]["from"] = {**PEOPLE["alice"], "id": 0}
    assert telegram.post(anonymous).status_code == 400
    press = json.loads(json.dumps(telegram.message("alice", "x")))  # any update shape
    press = {
        "update_id": press["update_id"] + 1,
        "callback_query": {
            "id": "1",
            "chat_instance": "1",
            "data": "/lead add Sneaky Co",
            "message": press["message"],
        },
    }
    assert telegram.post(press).status_code == 400
    assert stored(telegram.engine) == {} and not telegram.api.sent()


def test_telegram_update_without_a_secret_is_refused(telegram: TelegramHarness) -> None:
    update = telegram.message("alice", "/lead add Sneaky Co")
    assert telegram.post(update, secret=None).status_code == 401
    assert telegram.post(update, secret="").status_code == 401
    assert stored(telegram.engine) == {}


def test_a_sender_with_an_id_is_still_served(telegram: TelegramHarness) -> None:
    assert "Sneaky" in telegram.say("alice", "/lead add Sneaky Co")


def test_without_a_signing_secret_slack_has_no_http_entry_point(
    engine: Engine, clock: FixedClock, slack_api: FakeSlack
) -> None:
    """Socket Mode needs no public URL: with only the app token, nothing answers on
    /slack/events, so no request there goes unverified."""
    settings = Settings(
        SLACK_BOT_TOKEN="xoxb-test", SLACK_APP_TOKEN="xapp-test", SLACK_API_URL=slack_api.url
    )
    dispatcher = Dispatcher(engine, clock)
    adapter = SlackAdapter.from_settings(settings, dispatcher.dispatch)
    bot = Bot(
        settings=settings,
        engine=engine,
        clock=clock,
        dispatcher=dispatcher,
        senders={"slack": adapter.sender()},
        adapters=[adapter],
    )
    server = LiveServer(create_app(bot))
    try:
        body = b"command=%2Flead&text=add+Sneaky&team_id=T0001&user_id=U1&user_name=alice"
        answer = httpx.post(
            f"{server.url}/slack/events", content=body, headers={"Content-Type": FORM}, timeout=10
        )
        assert answer.status_code in (404, 405)
        assert stored(engine) == {} and not slack_api.requests
    finally:
        server.close()
