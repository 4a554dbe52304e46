"""Feishu / Lark through its real entry point: events encrypted and signed exactly as Feishu sends
them, to `/feishu/events` on the app served by uvicorn, and a local HTTP server standing in for
Feishu's open API (tenant_access_token, bot info, contact, im/v1 messages, images and files)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import AuthBroken, RateLimited, Target, TargetGone, Transient
from adapters.feishu import FeishuAdapter, FeishuApi, FeishuSender, card, command_text, parse_event
from adapters.feishu_crypto import (
    BadCiphertext,
    BadSignature,
    BadToken,
    FeishuCrypto,
    StaleTimestamp,
)
from bot.app import Bot, build
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from commands.types import Button, Image, Invocation, Reply
from models import outbox
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, InboundDelivery, Member, Outbox, Quote, Team
from reminders.digests import write_digest
from reminders.limits import Pacer, default_limits
from reminders.outbox import OutboxDelivery
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer, FakeServer, Recorded

PAYLOADS = Path(__file__).parent / "payloads" / "feishu"
APP_ID, SECRET = "cli_9f5343c580712544", "feishu-app-secret-never-logged"
TOKEN, ENCRYPT_KEY = "rvaYgkR1GiQyWbKSTMy5ygmAYrnfqqsx", "feishu-encrypt-key"
TENANT, GROUP = "2ca1d211f64f6438", "oc_5ce6d572455d361153b7xx51da133945"
BOT = "ou_bot0000000000000000000000000000"
NAMES = {"ou_zhangsan": "张三", "ou_lijingli": "李经理", "ou_wangwu": "王五"}
MESSAGES = "/open-apis/im/v1/messages"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def message_event(
    user: str,
    text: str,
    *,
    event_id: str,
    group: bool = False,
    mentions: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """An im.message.receive_v1 event as Feishu sends it; `mentions`: key → (open_id, name)."""
    event = recorded("im_message_receive_v1.json")
    event["header"].update(event_id=event_id, token=TOKEN)
    message = event["event"]["message"]
    event["event"]["sender"]["sender_id"]["open_id"] = user
    message.update(
        content=json.dumps({"text": text}, ensure_ascii=False),
        chat_type="group" if group else "p2p",
        chat_id=GROUP if group else f"oc_p2p_{user}",
        create_time=str(int(time.time() * 1000)),
        mentions=[
            {
                "key": key,
                "id": {"open_id": open_id, "user_id": ""},
                "name": name,
                "tenant_key": TENANT,
            }
            for key, (open_id, name) in (mentions or {}).items()
        ],
    )
    return event


class FakeFeishu(FakeServer):
    """Feishu's open API: records calls, answers like Feishu, fails on demand (per path, in
    order)."""

    def __init__(self) -> None:
        self.failures: dict[str, list[Answer]] = {}
        self.expired: set[str] = set()
        self.counter = itertools.count(1)
        self.tokens = itertools.count(1)
        self.lock = threading.Lock()
        self.gateway = ""  # the long connection's WebSocket URL
        self.message_ids: list[tuple[Recorded, str]] = []  # each message sent, with the id given
        super().__init__(self.answer)

    def fail(self, path: str, *answers: Answer) -> None:
        self.failures.setdefault(path, []).extend(answers)

    def answer(self, request: Recorded) -> Answer:
        with self.lock:
            if self.failures.get(request.path):
                return self.failures[request.path].pop(0)
            number = next(self.counter)
            token = next(self.tokens) if request.path == TOKEN_PATH else 0
        if request.path == TOKEN_PATH:
            assert request.json == {"app_id": APP_ID, "app_secret": SECRET}
            return Answer(
                body={"code": 0, "msg": "ok", "tenant_access_token": f"t-{token}", "expire": 7200}
            )
        if request.headers.get("authorization", "").removeprefix("Bearer ") in self.expired:
            return Answer(status=400, body={"code": 99991663, "msg": "Invalid access token"})
        if request.path == "/callback/ws/endpoint":  # the long connection's address
            assert request.json == {"AppID": APP_ID, "AppSecret": SECRET}
            config = {"ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": 0,
                      "PingInterval": 120}  # fmt: skip
            return Answer(
                body={"code": 0, "msg": "ok", "data": {"URL": self.gateway, "ClientConfig": config}}
            )
        if request.path == "/open-apis/bot/v3/info":
            return Answer(
                body={"code": 0, "msg": "ok", "bot": {"open_id": BOT, "app_name": "dealbot"}}
            )
        if request.path.startswith("/open-apis/contact/v3/users/"):
            user = request.path.rsplit("/", 1)[-1]
            if user not in NAMES:
                return Answer(status=400, body={"code": 41050, "msg": "no user authority error"})
            return Answer(
                body={
                    "code": 0,
                    "msg": "success",
                    "data": {"user": {"open_id": user, "name": NAMES[user]}},
                }
            )
        if request.path == "/open-apis/im/v1/images":
            return Answer(body={"code": 0, "msg": "success", "data": {"image_key": "img_v2_1"}})
        if request.path == "/open-apis/im/v1/files":
            return Answer(body={"code": 0, "msg": "success", "data": {"file_key": "file_v2_1"}})
        if request.path == MESSAGES:
            with self.lock:
                self.message_ids.append((request, f"om_{number}"))
            return Answer(
                body={
                    "code": 0,
                    "msg": "success",
                    "data": {"message_id": f"om_{number}", "msg_type": request.json["msg_type"]},
                }
            )
        return Answer(body={"code": 0, "msg": "success", "data": {}})

    def at(self, path: str, method: str | None = None) -> list[Recorded]:
        return [r for r in list(self.requests) if r.path == path and method in (None, r.method)]

    def sent(self, receiver: str, msg_type: str | None = None) -> list[dict[str, Any]]:
        """Messages to an open_id or chat_id, with their content decoded."""
        found = []
        for r in self.at(MESSAGES, "POST"):
            if (
                r.json
                and r.json["receive_id"] == receiver
                and msg_type in (None, r.json["msg_type"])
            ):
                found.append(
                    {
                        **r.json,
                        "content": json.loads(r.json["content"]),
                        "receive_id_type": r.query["receive_id_type"],
                    }
                )
        return found


def shown(message: dict[str, Any]) -> str:
    """What a person sees of a message: its text, or a card's markdown and buttons' commands."""
    content = message["content"]
    if message["msg_type"] == "text":
        return str(content["text"])
    parts = []
    for element in content.get("elements", []):
        if element["tag"] == "markdown":
            parts.append(element["content"])
        for action in element.get("actions", []):
            parts.append(action["value"]["command"])
    return "\n".join(parts)


@pytest.fixture
def feishu_api() -> Iterator[FakeFeishu]:
    fake = FakeFeishu()
    yield fake
    fake.close()


class FeishuHarness:
    """The app as deployed (settings → `FeishuAdapter.from_settings`), served by uvicorn, and the
    Feishu side: events encrypted, signed and posted."""

    def __init__(self, engine: Engine, clock: FixedClock, api: FakeFeishu) -> None:
        self.api, self.engine, self.clock = api, engine, clock
        self.settings = Settings.model_validate(
            {
                "FEISHU_APP_ID": APP_ID,
                "FEISHU_APP_SECRET": SECRET,
                "FEISHU_VERIFICATION_TOKEN": TOKEN,
                "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
                "FEISHU_API_URL": api.url,
            }
        )
        self.dispatcher = Dispatcher(engine, clock)
        self.handled: list[Reply] = []
        self._handled = threading.Condition()
        self.adapter = FeishuAdapter.from_settings(self.settings, self._dispatch)
        self.bot = Bot(
            settings=self.settings,
            engine=engine,
            clock=clock,
            dispatcher=self.dispatcher,
            senders={"feishu": self.adapter.sender()},
            adapters=[self.adapter],
        )
        self.server = LiveServer(create_app(self.bot))
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        self.feishu = FeishuCrypto(ENCRYPT_KEY, TOKEN)
        self.event_ids = (f"evt{n:029d}" for n in itertools.count(1))
        self.seen: dict[str, int] = {}

    def _dispatch(self, invocation: Invocation) -> Reply:
        reply = self.dispatcher.dispatch(invocation)
        with self._handled:
            self.handled.append(reply)
            self._handled.notify_all()
        return reply

    def wait_handled(self, count: int) -> list[Reply]:
        with self._handled:
            assert self._handled.wait_for(lambda: len(self.handled) >= count, timeout=10)
            return list(self.handled)

    def close(self) -> None:
        self.http.close()
        self.server.close()

    def post(
        self,
        event: dict[str, Any],
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sealed_headers, body = self.feishu.seal(
            event, timestamp=str(timestamp) if timestamp is not None else None
        )
        if signature is not None:
            sealed_headers["X-Lark-Signature"] = signature
        return self.http.post(
            "/feishu/events", content=body, headers={**sealed_headers, **(headers or {})}
        )

    def message(
        self,
        user: str,
        text: str,
        *,
        group: bool = False,
        mentions: dict[str, tuple[str, str]] | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """An im.message.receive_v1 event; `mentions`: key → (open_id, name)."""
        return message_event(
            user, text, event_id=event_id or next(self.event_ids), group=group, mentions=mentions
        )

    def click(
        self, user: str, command: str, *, message_id: str, event_id: str | None = None
    ) -> dict[str, Any]:
        event = recorded("card_action_trigger.json")
        event["header"].update(event_id=event_id or next(self.event_ids), token=TOKEN)
        event["event"]["operator"]["open_id"] = user
        event["event"]["action"]["value"] = {"command": command}
        event["event"]["context"]["open_message_id"] = message_id
        return event

    def next_to(self, receiver: str) -> dict[str, Any]:
        wanted = self.seen.get(receiver, 0) + 1
        self.api.wait_for(lambda _: len(self.api.sent(receiver)) >= wanted)
        self.seen[receiver] = wanted
        return self.api.sent(receiver)[wanted - 1]

    def say(self, user: str, text: str, **kwargs: Any) -> dict[str, Any]:
        """The answer: in the group for everyone, or to the person (help, errors, exports)."""
        before = len(self.api.at(MESSAGES, "POST"))
        answer = self.post(self.message(user, text, **kwargs))
        assert answer.status_code == 200 and answer.json() == {}
        self.api.wait_for(lambda _: len(self.api.at(MESSAGES, "POST")) > before)
        first = self.api.at(MESSAGES, "POST")[before].json or {}
        receiver = first["receive_id"]
        self.seen[receiver] = self.seen.get(receiver, 0) + 1
        return self.api.sent(receiver)[self.seen[receiver] - 1]

    def deliver(self) -> None:
        asyncio.run(OutboxDelivery(self.engine, self.bot.senders, self.clock).run_once())


@pytest.fixture
def feishu(engine: Engine, clock: FixedClock, feishu_api: FakeFeishu) -> Iterator[FeishuHarness]:
    harness = FeishuHarness(engine, clock, feishu_api)
    yield harness
    harness.close()


def _nothing_stored(engine: Engine) -> bool:
    with unit_of_work(engine) as session:
        counts = [
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Team, CommandLog, InboundDelivery, Outbox)
        ]
    return counts == [0, 0, 0, 0]


# --- the crypto ---------------------------------------------------------------------------------


def test_the_documented_decryption_example() -> None:
    """Feishu's own example: Encrypt Key "test key" turns this ciphertext into "hello world"."""
    crypto = FeishuCrypto("test key", TOKEN)
    assert crypto.decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"


@settings(max_examples=40)
@given(message=st.binary(max_size=2000), key=st.text(min_size=1, max_size=60))
def test_encrypt_then_decrypt_round_trips(message: bytes, key: str) -> None:
    crypto = FeishuCrypto(key, TOKEN)
    assert crypto.decrypt(crypto.encrypt(message)) == message


def test_the_signature_covers_timestamp_nonce_key_and_body() -> None:
    crypto = FeishuCrypto(ENCRYPT_KEY, TOKEN, now=lambda: 1_700_000_000.0)
    headers, body = crypto.seal(
        {"type": "url_verification", "token": TOKEN}, timestamp="1700000000", nonce="42"
    )
    import hashlib

    expected = hashlib.sha256(b"1700000000" + b"42" + ENCRYPT_KEY.encode() + body).hexdigest()
    assert headers["X-Lark-Signature"] == expected
    lowered = {k.lower(): v for k, v in headers.items()}
    assert crypto.open(lowered, body)["token"] == TOKEN
    with pytest.raises(BadSignature):
        crypto.open(lowered, body.replace(b'"}', b'X"}'))
    with pytest.raises(StaleTimestamp):
        FeishuCrypto(ENCRYPT_KEY, TOKEN, now=lambda: 1_700_000_301.0).open(lowered, body)
    with pytest.raises(BadToken):
        FeishuCrypto(ENCRYPT_KEY, "another-token", now=lambda: 1_700_000_000.0).open(lowered, body)
    with pytest.raises(BadCiphertext):
        crypto.decrypt("AAAA")


# --- rendering and parsing ----------------------------------------------------------------------


def test_a_reply_with_buttons_becomes_a_shared_card_whose_buttons_carry_their_commands() -> None:
    reply = Reply(
        text='🧾 Q7 · <at user_id="all"></at> [x](http://evil)',
        fields=[("预计", "¥125,000")],
        buttons=[
            Button(label="同意", command="/审批 同意 Q7", style="primary"),
            Button(label="驳回", command="/审批 驳回 Q7 ", style="danger"),
        ],
    )
    made = card(reply)
    assert made["config"]["update_multi"] is True
    markdown, actions = made["elements"]
    assert "**预计**: ¥125,000" in markdown["content"]
    assert "<at" not in markdown["content"] and "](" not in markdown["content"]
    assert [(a["value"]["command"], a["type"]) for a in actions["actions"]] == [
        ("/审批 同意 Q7", "primary"),
        ("/审批 驳回 Q7", "danger"),
    ]
    assert len(card(reply, buttons=False)["elements"]) == 1


def test_a_group_message_is_a_command_only_when_addressed_to_the_bot() -> None:
    event = recorded("im_message_receive_v1.json")
    inbound = parse_event(event)
    assert inbound is not None and inbound.group and inbound.tenant == TENANT
    assert command_text(inbound, BOT) == ("hello", {})
    bob = ("@_user_2", "ou_bob", "Bob")
    at_bot = inbound.__class__(
        **{
            **inbound.__dict__,
            "text": "@_user_1 /team role @_user_2 manager",
            "mentions": (*inbound.mentions, bob),
        }
    )
    text, mentions = command_text(at_bot, BOT) or ("", {})
    assert text == "/team role @_user_2 manager" and mentions["@_user_2"].user_key == "ou_bob"
    chatter = inbound.__class__(
        **{**inbound.__dict__, "text": "@_user_2 lunch?", "mentions": (bob,)}
    )
    assert command_text(chatter, BOT) is None
    slash = inbound.__class__(**{**inbound.__dict__, "text": "/线索 列表", "mentions": ()})
    assert command_text(slash, BOT) == ("/线索 列表", {})


# --- the endpoint, end to end -------------------------------------------------------------------


def test_url_verification_answers_the_challenge(feishu: FeishuHarness) -> None:
    check = {**recorded("url_verification.json"), "token": TOKEN}
    assert feishu.post(check).json() == {"challenge": "ajls384kdjx98XX"}
    # Feishu may send the check unsigned: answered only when it decrypts and carries our token.
    body = json.dumps({"encrypt": feishu.feishu.encrypt(json.dumps(check).encode())})
    assert feishu.http.post("/feishu/events", content=body).json() == {
        "challenge": "ajls384kdjx98XX"
    }
    forged = json.dumps(
        {"encrypt": feishu.feishu.encrypt(json.dumps({**check, "token": "x"}).encode())}
    )
    assert feishu.http.post("/feishu/events", content=forged).status_code == 401
    assert _nothing_stored(feishu.engine) and not feishu.api.requests


@pytest.mark.parametrize(
    "line", ["@_user_1 线索 新建 华为技术 预计=12.5万", "/线索 新建 华为技术 预计=12.5万"]
)
def test_a_chinese_command_in_the_group_is_answered_in_the_group(
    feishu: FeishuHarness, line: str
) -> None:
    reply = feishu.say("ou_zhangsan", line, group=True, mentions={"@_user_1": (BOT, "dealbot")})
    assert reply["receive_id_type"] == "chat_id" and "L1 华为技术" in shown(reply)
    with unit_of_work(feishu.engine) as session:
        team = session.execute(select(Team)).scalar_one()
        member = session.execute(select(Member)).scalar_one()
    assert (team.platform, team.key, team.channel) == ("feishu", TENANT, GROUP)
    assert (member.user_key, member.name) == ("ou_zhangsan", "张三")  # named from the contact API


def test_group_chatter_not_addressed_to_the_bot_is_ignored(feishu: FeishuHarness) -> None:
    other = {"@_user_1": ("ou_wangwu", "王五")}
    assert (
        feishu.post(
            feishu.message("ou_zhangsan", "@_user_1 午饭吃什么", group=True, mentions=other)
        ).json()
        == {}
    )
    feishu.say("ou_zhangsan", "/帮助", group=True)
    assert len(feishu.api.at(MESSAGES, "POST")) == 1 and len(feishu.wait_handled(1)) == 1


def test_a_mentioned_member_is_resolved_by_open_id(feishu: FeishuHarness) -> None:
    feishu.say("ou_zhangsan", "/帮助")
    feishu.say("ou_lijingli", "/帮助")
    made = feishu.say(
        "ou_zhangsan",
        "@_user_1 /团队 角色 @_user_2 经理",
        group=True,
        mentions={"@_user_1": (BOT, "dealbot"), "@_user_2": ("ou_lijingli", "李经理")},
    )
    assert "李经理" in shown(made)


def test_an_export_reaches_the_member_as_a_file(feishu: FeishuHarness) -> None:
    feishu.say("ou_zhangsan", "/线索 新建 华为技术 电话=13912345678")
    told = feishu.say("ou_zhangsan", "/报表 导出")
    assert "导出完成" in shown(told)
    feishu.api.wait_for(lambda _: bool(feishu.api.sent("ou_zhangsan", "file")))
    [upload] = feishu.api.at("/open-apis/im/v1/files")
    assert upload.form["file_type"] == "xls" and upload.form["file_name"].endswith(".xlsx")
    assert feishu.api.sent("ou_zhangsan", "file")[0]["content"] == {"file_key": "file_v2_1"}


def _team_with_a_waiting_quote(feishu: FeishuHarness) -> dict[str, Any]:
    feishu.say("ou_zhangsan", "/帮助")  # the first member: admin
    feishu.say("ou_lijingli", "/帮助")
    feishu.say(
        "ou_zhangsan", "/团队 角色 @_user_1 经理", mentions={"@_user_1": ("ou_lijingli", "李经理")}
    )
    feishu.say("ou_wangwu", "/线索 新建 华为技术 预计=12.5万")
    asked = feishu.say("ou_wangwu", "/报价 L1 8万")
    assert "已通知 李经理" in shown(asked)
    feishu.deliver()
    [approval] = [m for m in feishu.api.sent("ou_lijingli", "interactive") if "Q1" in shown(m)]
    return approval


def test_a_button_click_approves_the_quote_and_replaces_the_card(feishu: FeishuHarness) -> None:
    approval = _team_with_a_waiting_quote(feishu)
    commands = [
        a["value"]["command"] for e in approval["content"]["elements"] for a in e.get("actions", [])
    ]
    assert commands[:2] == ["/审批 同意 Q1", "/审批 驳回 Q1"]
    message_id = next(
        r
        for r in feishu.api.at(MESSAGES, "POST")
        if r.json["receive_id"] == "ou_lijingli" and r.json["msg_type"] == "interactive"
    )
    click = feishu.click("ou_lijingli", commands[0], message_id="om_card_1")
    assert feishu.post(click).json() == {}
    [edit] = [
        r
        for r in feishu.api.wait_for(lambda rs: any(r.method == "PATCH" for r in rs))
        if r.method == "PATCH"
    ]
    assert edit.path == f"{MESSAGES}/om_card_1" and message_id
    edited = json.loads(edit.json["content"])
    assert "Q1 已由 李经理 同意" in edited["elements"][0]["content"]
    assert all(e["tag"] != "action" for e in edited["elements"])  # nobody can press it again
    with unit_of_work(feishu.engine) as session:
        assert session.execute(select(Quote.status)).scalar_one() == "approved"
    feishu.deliver()
    assert any("Q1 已由 李经理 同意" in shown(m) for m in feishu.api.sent("ou_wangwu"))
    # Feishu delivers the click again (same event_id): nothing runs twice.
    before = len(feishu.handled)
    assert feishu.post(click).json() == {}
    feishu.say("ou_lijingli", "/帮助")
    assert len(feishu.handled) == before + 1 and len(feishu.api.at(f"{MESSAGES}/om_card_1")) == 1


def test_a_refused_click_is_told_privately_and_the_card_stays(feishu: FeishuHarness) -> None:
    _team_with_a_waiting_quote(feishu)
    assert (
        feishu.post(feishu.click("ou_wangwu", "/审批 同意 Q1", message_id="om_card_1")).json() == {}
    )
    feishu.api.wait_for(
        lambda _: any("不能审批自己提交的报价" in shown(m) for m in feishu.api.sent("ou_wangwu"))
    )
    assert not [r for r in feishu.api.requests if r.method == "PATCH"]


def _refused(feishu: FeishuHarness, case: str) -> httpx.Response:
    event = feishu.message(
        "ou_zhangsan", "/线索 新建 机密客户 电话=13900000000", event_id="evt-secret"
    )
    if case == "forged signature":
        return feishu.post(event, signature="0" * 64)
    if case == "no signature":
        _headers, body = feishu.feishu.seal(event)
        return feishu.http.post("/feishu/events", content=body)
    if case == "stale timestamp":
        return feishu.post(event, timestamp=int(time.time()) - 6 * 60)
    if case == "timestamp from the future":
        return feishu.post(event, timestamp=int(time.time()) + 6 * 60)
    if case == "not a number":
        return feishu.post(event, timestamp=None, headers={"X-Lark-Request-Timestamp": "1e10"})
    if case == "wrong verification token":
        wrong = copy.deepcopy(event)
        wrong["header"]["token"] = "not-ours"
        return feishu.post(wrong)
    if case == "another encrypt key":
        headers, body = FeishuCrypto("someone else's key", TOKEN).seal(event)
        return feishu.http.post("/feishu/events", content=body, headers=headers)
    if case == "oversize body":
        return feishu.http.post("/feishu/events", content=b"{" + b" " * (300 * 1024) + b"}")
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("forged signature", 401),
        ("no signature", 401),
        ("stale timestamp", 401),
        ("timestamp from the future", 401),
        ("not a number", 401),
        ("wrong verification token", 401),
        ("another encrypt key", 401),
        ("oversize body", 413),
    ],
)
def test_forged_or_stale_events_are_refused_before_the_database(
    feishu: FeishuHarness, caplog: pytest.LogCaptureFixture, case: str, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    assert _refused(feishu, case).status_code == status
    assert _nothing_stored(feishu.engine) and not feishu.api.requests
    feishu.say(
        "ou_wangwu", "/帮助"
    )  # a valid command afterwards: anything the bad one caused is done
    with unit_of_work(feishu.engine) as session:
        assert list(session.execute(select(col(CommandLog.text))).scalars()) == ["/帮助"]
    assert "机密客户" not in caplog.text and "13900000000" not in caplog.text


def test_a_replayed_event_id_is_acknowledged_and_dropped_before_the_database(
    feishu: FeishuHarness, engine: Engine
) -> None:
    event = feishu.message("ou_zhangsan", "/线索 新建 华为技术", event_id="evt-once")
    assert feishu.say("ou_zhangsan", "/帮助")
    assert feishu.post(event).json() == {}
    feishu.next_to("ou_zhangsan")
    with unit_of_work(engine) as session:
        rows = session.execute(select(func.count()).select_from(CommandLog)).scalar_one()
    retry = feishu.post(event)  # Feishu re-delivers: same event_id, new timestamp, nonce, signature
    assert retry.status_code == 200 and retry.json() == {}
    feishu.say("ou_zhangsan", "/帮助")
    assert len(feishu.handled) == 3 and len(feishu.api.sent("ou_zhangsan")) == 3
    with unit_of_work(engine) as session:
        assert (
            session.execute(select(func.count()).select_from(CommandLog)).scalar_one() == rows + 1
        )


def test_a_re_delivery_to_another_process_runs_once(
    engine: Engine, clock: FixedClock, feishu_api: FakeFeishu
) -> None:
    """Two replicas: the event id is the delivery id the database keeps."""
    first, second = (
        FeishuHarness(engine, clock, feishu_api),
        FeishuHarness(engine, clock, feishu_api),
    )
    try:
        event = first.message("ou_zhangsan", "/线索 新建 华为技术", event_id="evt-twice")
        assert first.post(event).json() == {} and second.post(event).json() == {}
        first.wait_handled(1), second.wait_handled(1)
        assert sorted(r.duplicate for r in first.handled + second.handled) == [False, True]
        with unit_of_work(engine) as session:
            assert session.execute(select(func.count()).select_from(Quote)).scalar_one() == 0
            assert session.execute(select(func.count()).select_from(Team)).scalar_one() == 1
    finally:
        first.close(), second.close()


# --- the sender ---------------------------------------------------------------------------------


def make_sender(api: FakeFeishu, now: list[float] | None = None) -> FeishuSender:
    clock = now if now is not None else [1000.0]
    return FeishuSender(
        FeishuApi(app_id=APP_ID, app_secret=SECRET, base_url=api.url, monotonic=lambda: clock[0])
    )


def test_the_token_is_cached_refreshed_before_expiry_and_once_when_refused(
    feishu_api: FakeFeishu, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    now = [1000.0]
    sender = make_sender(feishu_api, now)
    member = Target(kind="member", key="ou_wangwu")
    for n in range(3):  # separate event loops, as the outbox worker runs them
        asyncio.run(sender.send(member, Reply(text=f"nudge {n}")))
    assert len(feishu_api.at(TOKEN_PATH)) == 1
    now[0] += 7200 - 1801
    asyncio.run(sender.send(member, Reply(text="still the first")))
    assert len(feishu_api.at(TOKEN_PATH)) == 1
    now[0] += 2  # half an hour before expiry Feishu hands out the next token: fetch it
    asyncio.run(sender.send(member, Reply(text="next")))
    assert len(feishu_api.at(TOKEN_PATH)) == 2
    feishu_api.expired.add("t-2")
    asyncio.run(sender.send(member, Reply(text="refused, then sent")))
    auths = [r.headers["authorization"] for r in feishu_api.at(MESSAGES)]
    assert auths[-2:] == ["Bearer t-2", "Bearer t-3"]
    feishu_api.expired.add("t-3")
    feishu_api.expired.add("t-4")
    with pytest.raises(AuthBroken):
        asyncio.run(sender.send(member, Reply(text="refused twice")))
    assert len(feishu_api.at(TOKEN_PATH)) == 4  # once more, not in a loop
    assert SECRET not in caplog.text and "t-2" not in caplog.text


@pytest.mark.parametrize(
    ("path", "answer", "error"),
    [
        (
            MESSAGES,
            Answer(
                status=400, body={"code": 230002, "msg": "Bot/User can NOT be out of the chat."}
            ),
            TargetGone,
        ),
        (
            MESSAGES,
            Answer(
                status=400, body={"code": 230013, "msg": "Bot has NO availability to this user."}
            ),
            TargetGone,
        ),
        (MESSAGES, Answer(status=400, body={"code": 99991672, "msg": "Access denied"}), AuthBroken),
        (TOKEN_PATH, Answer(body={"code": 10014, "msg": "app secret invalid"}), AuthBroken),
        (MESSAGES, Answer(status=502, body=b"bad gateway"), Transient),
        (MESSAGES, Answer(status=400, body={"code": 230001, "msg": "invalid request"}), Transient),
    ],
)
def test_feishu_codes_become_the_outbox_errors(
    feishu_api: FakeFeishu, path: str, answer: Answer, error: type[Exception]
) -> None:
    feishu_api.fail(path, answer)
    with pytest.raises(error):
        asyncio.run(
            make_sender(feishu_api).send(Target(kind="channel", key=GROUP), Reply(text="x"))
        )


def _queue(
    engine: Engine,
    clock: FixedClock,
    text: str,
    n: int,
    *,
    channel: str = GROUP,
    image: Image | None = None,
) -> None:
    with unit_of_work(engine) as session:
        team = session.execute(select(Team)).scalar_one_or_none()
        if team is None:
            team = Team(platform="feishu", key=TENANT, config={}, created_at=clock.now())
            session.add(team)
            session.flush()
        outbox.enqueue(
            session,
            team=team,
            kind="digest",
            channel=channel,
            dedupe_key=f"{text}:{n}",
            payload=Reply(text=f"{text} {n}", image=image).model_dump(mode="json"),
            now=clock.now(),
        )


def test_pushes_to_one_chat_are_paced_at_five_a_second(
    engine: Engine, clock: FixedClock, feishu_api: FakeFeishu
) -> None:
    for n in range(7):
        _queue(engine, clock, "push", n)
    pacer = Pacer(default_limits(Settings().rates))
    delivery = OutboxDelivery(
        engine, {"feishu": make_sender(feishu_api)}, clock, pacer=pacer, max_wait=timedelta(0)
    )
    report = asyncio.run(delivery.run_once())
    assert (report.sent, report.postponed) == (5, 2) and len(feishu_api.sent(GROUP)) == 5
    clock.advance(seconds=1)
    assert asyncio.run(delivery.run_once()).sent == 2


def test_a_rate_limit_code_is_obeyed_for_the_time_feishu_names(
    engine: Engine, clock: FixedClock, feishu_api: FakeFeishu
) -> None:
    _queue(engine, clock, "push", 1)
    feishu_api.fail(
        MESSAGES,
        Answer(
            status=400,
            body={"code": 99991400, "msg": "request trigger frequency limit"},
            headers={"x-ogw-ratelimit-reset": "7"},
        ),
    )
    delivery = OutboxDelivery(
        engine, {"feishu": make_sender(feishu_api)}, clock, max_wait=timedelta(0)
    )
    assert asyncio.run(delivery.run_once()).postponed == 1
    with unit_of_work(engine) as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=7)
    clock.advance(seconds=6)
    asyncio.run(delivery.run_once())
    assert len(feishu_api.at(MESSAGES)) == 1  # not tried before Feishu said
    clock.advance(seconds=1)
    assert asyncio.run(delivery.run_once()).sent == 1
    feishu_api.fail(MESSAGES, Answer(status=400, body={"code": 230020, "msg": "frequency limit"}))
    with pytest.raises(RateLimited) as raised:
        asyncio.run(
            make_sender(feishu_api).send(Target(kind="member", key="ou_x"), Reply(text="x"))
        )
    assert raised.value.retry_after == 1


def test_the_digest_reaches_the_group_with_its_chart(feishu: FeishuHarness) -> None:
    feishu.say(
        "ou_zhangsan",
        "@_user_1 线索 新建 华为技术 预计=12.5万",
        group=True,
        mentions={"@_user_1": (BOT, "dealbot")},
    )
    feishu.clock.advance(hours=10)  # 19:00 in Shanghai: today's digest (18:00) is due
    with unit_of_work(feishu.engine) as session:
        team = session.execute(select(Team)).scalar_one()
        assert write_digest(session, team, feishu.clock.now(), "daily")
    feishu.deliver()
    digest, chart = feishu.api.sent(GROUP)[1:]
    assert digest["msg_type"] == "text" and digest["receive_id_type"] == "chat_id"
    assert "日报" in shown(digest)
    [upload] = feishu.api.at("/open-apis/im/v1/images")
    assert upload.form["image_type"] == "message" and upload.form["image"].startswith("<")
    assert chart == {**chart, "msg_type": "image", "content": {"image_key": "img_v2_1"}}


def test_update_replaces_a_card_in_place(feishu_api: FakeFeishu) -> None:
    sender = make_sender(feishu_api)
    ref = asyncio.run(
        sender.send(
            Target(kind="member", key="ou_lijingli"),
            Reply(text="🧾 Q7", buttons=[Button(label="同意", command="/审批 同意 Q7")]),
        )
    )
    assert ref.startswith("card|om_")
    asyncio.run(sender.update(ref, Reply(text="✅ Q7 已由 李经理 同意 · 10:02")))
    [edit] = [r for r in feishu_api.requests if r.method == "PATCH"]
    assert edit.path == f"{MESSAGES}/{ref.split('|')[1]}"
    assert "已由 李经理 同意" in json.loads(edit.json["content"])["elements"][0]["content"]


# --- wiring -------------------------------------------------------------------------------------


def test_dealbot_run_picks_feishu_up_on_either_domain(
    tmp_path: Path, feishu_api: FakeFeishu
) -> None:
    settings = Settings.model_validate(
        {
            "FEISHU_APP_ID": APP_ID,
            "FEISHU_APP_SECRET": SECRET,
            "FEISHU_VERIFICATION_TOKEN": TOKEN,
            "FEISHU_ENCRYPT_KEY": ENCRYPT_KEY,
            "FEISHU_DOMAIN": "lark",
        }
    )
    assert (
        settings.platforms == ["feishu"]
        and settings.feishu_base_url == "https://open.larksuite.com"
    )
    bot = build(settings, database_url=f"sqlite:///{tmp_path / 'run.db'}")
    assert "feishu" in bot.senders
    paths = [route.path for route in create_app(bot).routes]
    assert "/feishu/events" in paths
    assert (
        Settings.model_validate({"FEISHU_APP_ID": "a"}).feishu_base_url == "https://open.feishu.cn"
    )
    with pytest.raises(ValueError):
        Settings.model_validate({"FEISHU_DOMAIN": "weixin"})


# --- the long connection (the official SDK's client against a local gateway) -------------------


class FakeGateway:
    """Feishu's long-connection gateway: a WebSocket server that pushes events in the SDK's frames
    (protobuf `pbbp2.Frame`, type "event") and records the client's acknowledgements."""

    def __init__(self) -> None:
        from lark_oapi.ws.pb.pbbp2_pb2 import Frame

        self.Frame = Frame
        self.acks: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        from websockets.asyncio.server import serve

        asyncio.set_event_loop(self.loop)

        async def connection(socket: Any) -> None:
            async def read() -> None:
                async for data in socket:
                    frame = self.Frame()
                    frame.ParseFromString(data)
                    if frame.method == 1:  # a data frame: the answer to an event
                        with self._changed:
                            self.acks.append(json.loads(frame.payload))
                            self._changed.notify_all()

            reading = asyncio.create_task(read())
            while not reading.done():  # until the client goes
                getting = asyncio.ensure_future(self.queue.get())
                await asyncio.wait({getting, reading}, return_when=asyncio.FIRST_COMPLETED)
                if getting.done():
                    await socket.send(self.frame(getting.result()))
                else:
                    getting.cancel()

        async def main() -> None:
            self.server = await serve(connection, "127.0.0.1", 0)
            port = self.server.sockets[0].getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}/ws?device_id=d1&service_id=7"
            ready.set()
            await self.server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(main())
        pending = asyncio.all_tasks(self.loop)
        self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()

    def frame(self, event: dict[str, Any]) -> bytes:
        frame = self.Frame()
        frame.SeqID, frame.LogID, frame.service, frame.method = 1, 1, 7, 1
        for key, value in {"type": "event", "message_id": event["header"]["event_id"],
                           "trace_id": "t1", "sum": "1", "seq": "0"}.items():  # fmt: skip
            header = frame.headers.add()
            header.key, header.value = key, value
        frame.payload = json.dumps(event).encode()
        return bytes(frame.SerializeToString())

    def push(self, event: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)

    def wait_acks(self, count: int) -> list[dict[str, Any]]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.acks) >= count, timeout=10)
            return list(self.acks)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(10)
        self.thread.join(5)

    async def _close(self) -> None:
        self.server.close()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()


def test_without_keys_events_come_over_the_long_connection_through_the_sdk(
    engine: Engine, clock: FixedClock, feishu_api: FakeFeishu
) -> None:
    gateway = FakeGateway()
    feishu_api.gateway = gateway.url
    settings = Settings.model_validate(
        {"FEISHU_APP_ID": APP_ID, "FEISHU_APP_SECRET": SECRET, "FEISHU_API_URL": feishu_api.url}
    )
    dispatcher = Dispatcher(engine, clock)
    handled: list[Reply] = []

    def dispatch(invocation: Invocation) -> Reply:
        handled.append(dispatcher.dispatch(invocation))
        return handled[-1]

    adapter = FeishuAdapter.from_settings(settings, dispatch)
    connection = adapter.long_connection
    assert adapter.routes() == [] and connection is not None  # no request URL without keys
    event = message_event("ou_zhangsan", "/线索 新建 华为技术 预计=12.5万", event_id="evt-ws-1")

    async def serve() -> None:
        connection.start()
        try:
            assert await asyncio.to_thread(connection.connected.wait, 15)
            gateway.push(event)
            gateway.push(event)  # delivered again: acknowledged, run once
            await asyncio.to_thread(gateway.wait_acks, 2)
            await asyncio.to_thread(
                feishu_api.wait_for, lambda _: bool(feishu_api.sent("ou_zhangsan"))
            )
        finally:
            connection.stop()

    try:
        asyncio.run(serve())
    finally:
        gateway.close()
    assert gateway.acks == [{"code": 200}, {"code": 200}]
    [reply] = feishu_api.sent("ou_zhangsan")
    assert "L1 华为技术" in shown(reply) and len(handled) == 1
    with unit_of_work(engine) as session:
        assert session.execute(select(Team.key)).scalar_one() == TENANT


def test_without_the_bots_open_id_the_first_mention_stands_in_and_feishu_is_not_asked_again(
    feishu: FeishuHarness,
) -> None:
    feishu.api.fail("/open-apis/bot/v3/info", Answer(status=503, body=b"unavailable"))
    at_bot = {"@_user_1": (BOT, "dealbot")}
    made = feishu.say("ou_zhangsan", "@_user_1 线索 新建 甲公司", group=True, mentions=at_bot)
    assert "L1 甲公司" in shown(made)
    made = feishu.say("ou_zhangsan", "@_user_1 线索 新建 乙公司", group=True, mentions=at_bot)
    assert "L2 乙公司" in shown(made)
    assert len(feishu.api.at("/open-apis/bot/v3/info")) == 1
