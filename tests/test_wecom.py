"""WeCom through its real entry point: callbacks encrypted and signed exactly as WeCom sends
them, to `/wecom/callback` on the app served by uvicorn, and a local HTTP server standing in for
WeCom's API (gettoken, user/get, message/send, update_template_card, appchat/send, webhook/send,
media/upload).

The crypto is proved on the public test vector in ../shared/platforms.md first."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import logging
import re
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from string import Template
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import AuthBroken, RateLimited, Target, TargetGone, Transient
from adapters.wecom import (
    APP_MARKDOWN_BYTES,
    BUTTON_KEY_BYTES,
    ROBOT_MARKDOWN_BYTES,
    Inbound,
    RobotWindow,
    WeComAdapter,
    WeComApi,
    WeComSender,
    button_key,
    command_of,
    markdown,
    split_bytes,
    template_card,
)
from adapters.wecom_crypto import (
    BadCiphertext,
    BadSignature,
    BadXml,
    Rejected,
    StaleTimestamp,
    WeComCrypto,
    WrongReceiver,
    pad,
    parse_xml,
    passive_text,
    unpad,
    xml_fields,
)
from bot.app import Bot
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from commands.types import Button, Image, Invocation, Reply
from models import outbox
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, InboundDelivery, Member, Outbox, Quote, Team
from reminders.outbox import OutboxDelivery
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer, FakeServer, Recorded

PAYLOADS = Path(__file__).parent / "payloads" / "wecom"
VECTOR = json.loads((PAYLOADS / "test_vector.json").read_text())
# The harness uses the vector's public keys, so recordings and live requests share one app.
TOKEN, AES_KEY, CORP = VECTOR["token"], VECTOR["encoding_aes_key"], VECTOR["corp_id"]
AGENT = "1"
SECRET = "app-secret-never-logged"
ROBOT_KEY = "robot-key-never-logged"
NAMES = {"zhangsan": "张三", "lijingli": "李经理", "wangwu": "王五", "messense": "messense"}
SEND = "/cgi-bin/message/send"
UPDATE = "/cgi-bin/message/update_template_card"
ROBOT = "/cgi-bin/webhook/send"
APPCHAT = "/cgi-bin/appchat/send"
GETTOKEN = "/cgi-bin/gettoken"
TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")
WANGWU = Target(kind="member", key="wangwu")


def payload(name: str, **values: Any) -> str:
    template = Template((PAYLOADS / name).read_text())
    return template.substitute(corp_id=CORP, agent_id=AGENT, **values)


class FakeWeCom(FakeServer):
    """WeCom's server API: records calls, answers like WeCom, fails on demand (per path, in
    order)."""

    def __init__(self) -> None:
        self.failures: dict[str, list[Answer]] = {}
        self.expired: set[str] = set()
        self.counter = itertools.count(1)
        self.tokens = itertools.count(1)
        self.lock = threading.Lock()
        super().__init__(self.answer)

    def fail(self, path: str, *answers: Answer) -> None:
        self.failures.setdefault(path, []).extend(answers)

    def answer(self, request: Recorded) -> Answer:
        with self.lock:
            if self.failures.get(request.path):
                return self.failures[request.path].pop(0)
            number = next(self.counter)
            token = next(self.tokens) if request.path == GETTOKEN else 0
        if request.path == GETTOKEN:
            return Answer(body={"errcode": 0, "errmsg": "ok", "access_token": f"TOKEN-{token}",
                                "expires_in": 7200})
        if request.path != ROBOT and request.query.get("access_token") in self.expired:
            return Answer(body={"errcode": 42001, "errmsg": "access_token expired"})
        if request.path == "/cgi-bin/user/get":
            user = request.query.get("userid", "")
            if user not in NAMES:
                return Answer(body={"errcode": 60111, "errmsg": "userid not found"})
            return Answer(body={"errcode": 0, "errmsg": "ok", "userid": user, "name": NAMES[user]})
        if request.path == SEND:
            body: dict[str, Any] = {"errcode": 0, "errmsg": "ok", "invaliduser": "",
                                    "msgid": f"msg-{number}"}
            if (request.json or {}).get("msgtype") == "template_card":
                body["response_code"] = f"RC-{number}"
            return Answer(body=body)
        if request.path == "/cgi-bin/media/upload":
            return Answer(body={"errcode": 0, "errmsg": "ok", "media_id": "MEDIA-1"})
        return Answer(body={"errcode": 0, "errmsg": "ok"})

    def at(self, path: str) -> list[Recorded]:
        return [request for request in list(self.requests) if request.path == path]

    def sent_to(self, user: str) -> list[dict[str, Any]]:
        return [r.json for r in self.at(SEND) if r.json and r.json.get("touser") == user]


def shown(message: dict[str, Any]) -> str:
    """What a person sees of a message/send body: markdown, or a card's title, text and buttons."""
    if message["msgtype"] == "markdown":
        return str(message["markdown"]["content"])
    card = message["template_card"]
    return "\n".join([card["main_title"]["title"], card.get("sub_title_text", ""),
                      *(button["key"] for button in card["button_list"])])


@pytest.fixture
def wecom_api() -> Iterator[FakeWeCom]:
    fake = FakeWeCom()
    yield fake
    fake.close()


class WeComHarness:
    """The app as deployed (settings → `WeComAdapter.from_settings`), served by uvicorn, and the
    WeCom side: encrypting, signing and posting callbacks."""

    def __init__(self, engine: Engine, clock: FixedClock, api: FakeWeCom) -> None:
        self.api = api
        self.engine = engine
        self.clock = clock
        settings = Settings.model_validate({
            "WECOM_CORP_ID": CORP, "WECOM_AGENT_ID": AGENT, "WECOM_SECRET": SECRET,
            "WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": AES_KEY,
            "WECOM_WEBHOOK_KEY": ROBOT_KEY, "WECOM_API_URL": api.url})
        self.dispatcher = Dispatcher(engine, clock)
        self.gate = threading.Event()  # cleared, it holds commands back: proves the answer is early
        self.gate.set()
        self.handled: list[Reply] = []  # every dispatch's reply, duplicates included
        self._handled = threading.Condition()
        self.adapter = WeComAdapter.from_settings(settings, self._dispatch)
        self.bot = Bot(settings=settings, engine=engine, clock=clock, dispatcher=self.dispatcher,
                       senders={"wecom": self.adapter.sender()}, adapters=[self.adapter])
        self.server = LiveServer(create_app(self.bot))
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        self.wecom = WeComCrypto(TOKEN, AES_KEY, CORP)
        self.msg_ids = itertools.count(7000000000000000001)
        self.seen: dict[str, int] = {}

    def _dispatch(self, invocation: Invocation) -> Reply:
        assert self.gate.wait(10)
        reply = self.dispatcher.dispatch(invocation)
        with self._handled:
            self.handled.append(reply)
            self._handled.notify_all()
        return reply

    def wait_handled(self, count: int) -> list[Reply]:
        """Block until `count` deliveries have been dispatched (retries leave no other trace)."""
        with self._handled:
            assert self._handled.wait_for(lambda: len(self.handled) >= count, timeout=10)
            return list(self.handled)

    def close(self) -> None:
        self.gate.set()
        self.http.close()
        self.server.close()

    def post(self, encrypted: str, *, timestamp: int | None = None, nonce: str = "1372623149",
             signature: str | None = None, body: bytes | None = None) -> httpx.Response:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = signature or self.wecom.signature(stamp, nonce, encrypted)
        content = body if body is not None else payload("callback.xml", encrypt=encrypted).encode()
        params = {"msg_signature": signature, "timestamp": stamp, "nonce": nonce}
        return self.http.post("/wecom/callback", content=content, params=params,
                              headers={"Content-Type": "text/xml"})

    def post_xml(self, inner: str, **kwargs: Any) -> httpx.Response:
        return self.post(self.wecom.encrypt(inner.encode()), **kwargs)

    def text(self, user: str, content: str, *, msg_id: int | None = None) -> str:
        return payload("text_message.xml", user=user, content=content, create_time=int(time.time()),
                       msg_id=msg_id if msg_id is not None else next(self.msg_ids))

    def click(self, user: str, key: str, *, task_id: str, response_code: str,
              create_time: int | None = None) -> str:
        return payload("template_card_event.xml", user=user, event_key=key, task_id=task_id,
                       response_code=response_code,
                       create_time=create_time if create_time is not None else int(time.time()))

    def next_to(self, user: str) -> dict[str, Any]:
        """The next message/send to `user` (the adapter sends after its empty 200)."""
        wanted = self.seen.get(user, 0) + 1
        self.api.wait_for(lambda _: len(self.api.sent_to(user)) >= wanted)
        self.seen[user] = wanted
        return self.api.sent_to(user)[wanted - 1]

    def message_to(self, user: str, text: str, *, msgtype: str | None = None) -> dict[str, Any]:
        """The first message/send to `user` showing `text` (pushes may arrive in any order)."""
        def found() -> list[dict[str, Any]]:
            return [m for m in self.api.sent_to(user)
                    if text in shown(m) and msgtype in (None, m["msgtype"])]

        self.api.wait_for(lambda _: bool(found()))
        return found()[0]

    def say(self, user: str, content: str) -> dict[str, Any]:
        answer = self.post_xml(self.text(user, content))
        assert answer.status_code == 200 and answer.content == b""
        return self.next_to(user)

    def deliver(self) -> None:
        asyncio.run(OutboxDelivery(self.engine, self.bot.senders, self.clock).run_once())


@pytest.fixture
def wecom(engine: Engine, clock: FixedClock, wecom_api: FakeWeCom) -> Iterator[WeComHarness]:
    harness = WeComHarness(engine, clock, wecom_api)
    yield harness
    harness.close()


def _nothing_stored(engine: Engine) -> bool:
    with unit_of_work(engine) as session:
        counts = [session.execute(select(func.count()).select_from(table)).scalar_one()
                  for table in (Team, CommandLog, InboundDelivery, Outbox)]
    return counts == [0, 0, 0, 0]


# --- the crypto ---------------------------------------------------------------------------------

def vector_crypto(timestamp: str) -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP, now=lambda: float(timestamp))


def test_public_vector_url_verification() -> None:
    case = VECTOR["verify"]
    crypto = vector_crypto(case["timestamp"])
    plain = crypto.open(case["msg_signature"], case["timestamp"], case["nonce"], case["echostr"])
    assert plain == b"5927782489442352469"


def test_public_vector_message() -> None:
    case = VECTOR["message"]
    crypto = vector_crypto(case["timestamp"])
    inner = crypto.open(case["msg_signature"], case["timestamp"], case["nonce"], case["encrypt"])
    message = Inbound.parse(inner)
    assert (message.user, message.content) == ("messense", "test")
    assert message.msg_id == "4363689963896700987"
    assert message.msg_type == "text" and message.delivery_id == "4363689963896700987"


def test_the_vector_is_refused_at_todays_time() -> None:
    """The vector is from 2014: with the real clock its timestamp is a replay."""
    case = VECTOR["message"]
    with pytest.raises(StaleTimestamp):
        WeComCrypto(TOKEN, AES_KEY, CORP).open(case["msg_signature"], case["timestamp"],
                                               case["nonce"], case["encrypt"])


@given(message=st.binary(max_size=3000), receive_id=st.text(min_size=1, max_size=40))
def test_encrypt_then_decrypt_round_trips(message: bytes, receive_id: str) -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, receive_id)
    encrypted = crypto.encrypt(message)
    assert len(base64.b64decode(encrypted)) % 32 == 0  # padded to WeCom's 32-byte blocks
    assert crypto.decrypt(encrypted) == message


@given(message=st.binary(min_size=1, max_size=500), data=st.data())
def test_any_change_to_a_signed_callback_is_refused(message: bytes, data: st.DataObject) -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP, now=lambda: 1_700_000_000.0)
    encrypted = crypto.encrypt(message)
    signature = crypto.signature("1700000000", "42", encrypted)
    raw = bytearray(base64.b64decode(encrypted))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(BadSignature):
        crypto.open(signature, "1700000000", "42", base64.b64encode(bytes(raw)).decode())
    forged = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    with pytest.raises(BadSignature):
        crypto.open(forged, "1700000000", "42", encrypted)


def _raw_encrypt(plain: bytes) -> str:
    """AES-CBC with the app's key and no padding of ours: to forge well-signed bad plaintexts."""
    key = WeComCrypto(TOKEN, AES_KEY, CORP).key
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


@pytest.mark.parametrize(("encrypted", "error"), [
    ("not base64 at all!", BadCiphertext),
    (base64.b64encode(b"x" * 20).decode(), BadCiphertext),  # not whole AES blocks
    (_raw_encrypt(b"\x00" * 31 + b"\x00"), BadCiphertext),  # pad value 0
    (_raw_encrypt(b"\x00" * 31 + b"\x21"), BadCiphertext),  # pad value 33
    (_raw_encrypt(b"\x00" * 28 + b"\x01\x02\x04\x04"), BadCiphertext),  # inconsistent pad bytes
    (_raw_encrypt(pad(b"r" * 16 + struct.pack(">I", 500) + b"short" + CORP.encode())),
     BadCiphertext),  # a length past the end
    (WeComCrypto(TOKEN, AES_KEY, "wwSomebodyElse").encrypt(b"<xml/>"), WrongReceiver),
], ids=["not-base64", "not-whole-blocks", "pad-0", "pad-33", "inconsistent-pad", "length-past-end",
        "another-corp"])  # fixed ids: the ciphertexts are random, and parallel workers must agree
def test_tampered_or_foreign_ciphertexts_are_refused(encrypted: str,
                                                     error: type[Exception]) -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP, now=lambda: 1_700_000_000.0)
    with pytest.raises(error):
        crypto.open(crypto.signature("1700000000", "7", encrypted), "1700000000", "7", encrypted)


def test_padding_is_to_32_byte_blocks() -> None:
    assert len(pad(b"")) == 32 and pad(b"")[-1] == 32
    assert pad(b"a" * 31) == b"a" * 31 + b"\x01"
    assert len(pad(b"a" * 32)) == 64
    assert unpad(pad(b"hello")) == b"hello"


def test_passive_reply_is_encrypted_signed_and_wrapped() -> None:
    crypto = WeComCrypto(TOKEN, AES_KEY, CORP, now=lambda: 1_700_000_000.0)
    sealed = xml_fields(parse_xml(crypto.seal(passive_text(to_user="zhangsan", corp_id=CORP,
                                                           content="收到 ]]> ok", create_time=1),
                                              nonce="99")))
    assert sealed["TimeStamp"] == "1700000000" and sealed["Nonce"] == "99"
    inner = xml_fields(parse_xml(crypto.open(sealed["MsgSignature"], sealed["TimeStamp"],
                                             sealed["Nonce"], sealed["Encrypt"])))
    assert inner["Content"] == "收到 ]]> ok" and inner["ToUserName"] == "zhangsan"
    assert inner["MsgType"] == "text"


@pytest.mark.parametrize("xml", [
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    "<xml><Encrypt>&b;</Encrypt></xml>",
    '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml><Content>&x;</Content></xml>',
    "<!DOCTYPE xml><xml/>",
    "<xml><unclosed></xml>",
    "",
])
def test_the_xml_parser_refuses_dtds_entities_and_garbage(xml: str) -> None:
    with pytest.raises(BadXml):
        parse_xml(xml)


# --- rendering ----------------------------------------------------------------------------------

@given(text=st.text(alphabet=st.sampled_from("ab 中文😀\n"), max_size=600),
       limit=st.integers(min_value=4, max_value=64))
def test_split_bytes_keeps_every_character_and_the_limit(text: str, limit: int) -> None:
    parts = split_bytes(text, limit)
    assert "".join(parts) == text
    assert all(len(part.encode()) <= limit for part in parts)


@given(command=st.text(max_size=3000))
def test_button_keys_resolve_back_to_their_command(command: str) -> None:
    key = button_key(command)
    assert key is not None and len(key.encode()) <= BUTTON_KEY_BYTES
    assert command_of(key) == command.strip()


def test_a_short_command_is_its_own_key_and_a_long_one_is_packed() -> None:
    assert button_key("/审批 同意 Q7 ") == "/审批 同意 Q7"
    long = "/quote approve Q7 " + "好" * 600
    assert button_key(long) != long and command_of(button_key(long) or "") == long.strip()
    assert command_of("z:not-base64!!") == ""


def test_a_reply_with_buttons_becomes_a_button_interaction_card() -> None:
    reply = Reply(text="🧾 Q7 · Acme Trading · ¥80,000 · 申请人 王五 · L1 阶段 线索",
                  fields=[("预计", "¥125,000")],
                  buttons=[Button(label="同意", command="/审批 同意 Q7", style="primary"),
                           Button(label="驳回", command="/审批 驳回 Q7 ", style="danger")])
    card = template_card(reply, task_id="dealbot-1")
    assert card is not None and card["card_type"] == "button_interaction"
    assert card["task_id"] == "dealbot-1"
    assert [b["key"] for b in card["button_list"]] == ["/审批 同意 Q7", "/审批 驳回 Q7"]
    assert [b["style"] for b in card["button_list"]] == [1, 3]
    assert len(card["main_title"]["title"]) <= 36 and "申请人 王五" in card["sub_title_text"]
    assert card["horizontal_content_list"] == [{"keyname": "预计", "value": "¥125,000"}]
    assert "**预计**: ¥125,000" in markdown(reply) and "`/审批 同意 Q7`" in markdown(reply)


# --- the callback, end to end -------------------------------------------------------------------

def test_url_verification_answers_the_bare_echostr(wecom: WeComHarness) -> None:
    echostr = wecom.wecom.encrypt(b"8120374932658209355")
    stamp, nonce = str(int(time.time())), "1234"
    answer = wecom.http.get("/wecom/callback", params={
        "msg_signature": wecom.wecom.signature(stamp, nonce, echostr), "timestamp": stamp,
        "nonce": nonce, "echostr": echostr})
    assert answer.status_code == 200 and answer.content == b"8120374932658209355"


def test_url_verification_with_the_public_vector_and_an_unencoded_plus(wecom: WeComHarness) -> None:
    case = VECTOR["verify"]
    assert wecom.adapter.crypto is not None
    wecom.adapter.crypto.now = lambda: float(case["timestamp"])
    assert "+" in case["echostr"]
    names = ("msg_signature", "timestamp", "nonce", "echostr")
    raw_query = "&".join(f"{name}={case[name]}" for name in names)
    answer = wecom.http.get(f"/wecom/callback?{raw_query}")
    assert answer.status_code == 200 and answer.text == case["plaintext"]


def test_the_public_vector_message_is_dispatched(wecom: WeComHarness) -> None:
    case = VECTOR["message"]
    assert wecom.adapter.crypto is not None
    wecom.adapter.crypto.now = lambda: float(case["timestamp"])
    answer = wecom.post(case["encrypt"], timestamp=int(case["timestamp"]), nonce=case["nonce"],
                        signature=case["msg_signature"])
    assert answer.status_code == 200 and answer.content == b""
    reply = wecom.next_to("messense")  # "test" is no command: the usage answer, privately
    assert reply["msgtype"] == "markdown" and "test" in reply["markdown"]["content"]
    assert reply["agentid"] == 1


@pytest.mark.parametrize(("line", "expected"), [
    ("/线索 新建 华为技术 预计=12.5万", "L1 华为技术"),
    ("线索 新建 华为技术 预计=12.5万", "L1 华为技术"),
    ("/lead add Acme Trading value=120k", "L1 Acme Trading"),
])
def test_a_text_command_is_answered_empty_at_once_then_replied_through_message_send(
        wecom: WeComHarness, line: str, expected: str) -> None:
    wecom.gate.clear()  # the command cannot finish until the test lets it
    started = time.monotonic()
    answer = wecom.post_xml(wecom.text("zhangsan", line))
    assert answer.status_code == 200 and answer.content == b""
    assert time.monotonic() - started < 5  # inside WeCom's window while the command still runs
    assert not wecom.api.at(SEND)
    wecom.gate.set()
    reply = wecom.next_to("zhangsan")
    assert expected in shown(reply)
    if reply["msgtype"] == "template_card":  # the reply's buttons, keyed by their commands
        keys = [b["key"] for b in reply["template_card"]["button_list"]]
        assert any(key.startswith(("/跟进 L1", "/follow L1")) for key in keys)
        assert TASK_ID.match(reply["template_card"]["task_id"])
    with unit_of_work(wecom.engine) as session:
        team = session.execute(select(Team)).scalar_one()
        member = session.execute(select(Member)).scalar_one()
    assert (team.platform, team.key) == ("wecom", CORP)
    assert (member.user_key, member.name) == ("zhangsan", "张三")  # named from user/get


def test_an_export_reaches_the_member_as_a_file(wecom: WeComHarness) -> None:
    wecom.say("zhangsan", "/线索 新建 华为技术 电话=13912345678")
    told = wecom.say("zhangsan", "/报表 导出")
    assert "导出完成" in shown(told)
    wecom.api.wait_for(lambda _: any(m["msgtype"] == "file" for m in wecom.api.sent_to("zhangsan")))
    sent = [m for m in wecom.api.sent_to("zhangsan") if m["msgtype"] == "file"]
    [upload] = [r for r in wecom.api.at("/cgi-bin/media/upload") if r.query["type"] == "file"]
    assert sent == [{"touser": "zhangsan", "agentid": 1, "msgtype": "file",
                     "file": {"media_id": "MEDIA-1"}}]
    # The workbook itself, named for the day, with the lead in it.
    assert b'filename="dealbot-2026-11-26.xlsx"' in upload.body
    workbook = upload.body[upload.body.index(b"PK\x03\x04"):].rsplit(b"\r\n--", 1)[0]
    leads = load_workbook(io.BytesIO(workbook), read_only=True).worksheets[0]
    assert [row[:2] for row in leads.iter_rows(values_only=True)] == [("编号", "客户名称"),
                                                                     ("L1", "华为技术")]


def test_members_named_from_user_get_and_mentions_by_user_id(wecom: WeComHarness) -> None:
    wecom.say("zhangsan", "/帮助")
    wecom.say("lijingli", "/帮助")
    made = wecom.say("zhangsan", "/团队 角色 @lijingli 经理")
    assert "李经理" in shown(made)
    unknown = wecom.say("zhangsan", "/团队 角色 @nobody 经理")
    assert "nobody" in shown(unknown)
    # zhangsan, lijingli (as sender, then cached for the mention), nobody: each asked once
    assert len(wecom.api.at("/cgi-bin/user/get")) == 3


def test_a_retried_delivery_with_the_same_msg_id_is_handled_once(wecom: WeComHarness) -> None:
    body = wecom.text("zhangsan", "/线索 新建 华为技术", msg_id=4363689963896700987)
    first = wecom.post_xml(body)
    retry = wecom.post_xml(body, nonce="987654")  # WeCom's retry: same message, new envelope
    assert first.status_code == retry.status_code == 200
    handled = wecom.wait_handled(2)
    assert sorted(reply.duplicate for reply in handled) == [False, True], [r.text for r in handled]
    assert "L1 华为技术" in shown(wecom.next_to("zhangsan"))
    wecom.say("zhangsan", "/帮助")  # a later command: had the retry answered, it came before this
    assert len(wecom.api.sent_to("zhangsan")) == 2
    with unit_of_work(wecom.engine) as session:
        outcomes = sorted(session.execute(select(col(CommandLog.outcome))).scalars())
    assert outcomes == ["duplicate", "ok", "ok"]


def test_events_in_the_same_second_are_each_processed(wecom: WeComHarness) -> None:
    wecom.say("zhangsan", "/线索 新建 甲公司")
    wecom.say("zhangsan", "/线索 新建 乙公司")
    second = int(time.time())
    for number in (1, 2):
        wecom.post_xml(wecom.click("zhangsan", f"/线索 查看 L{number}", task_id=f"t{number}",
                                   response_code=f"rc{number}", create_time=second))
    first, other = wecom.next_to("zhangsan"), wecom.next_to("zhangsan")
    assert {"L1" in shown(first), "L1" in shown(other)} == {True, False}


def _team_with_a_waiting_quote(wecom: WeComHarness) -> dict[str, Any]:
    wecom.say("zhangsan", "/帮助")  # the first member: admin
    wecom.say("lijingli", "/帮助")
    wecom.say("zhangsan", "/团队 角色 @lijingli 经理")
    wecom.say("wangwu", "/线索 新建 华为技术 预计=12.5万")
    asked = wecom.say("wangwu", "/报价 L1 8万")
    assert "已通知 李经理" in shown(asked)
    wecom.deliver()
    return wecom.message_to("lijingli", "Q1 · 华为技术", msgtype="template_card")


def test_approval_card_click_runs_as_the_clicker_updates_the_card_and_tells_the_requester(
        wecom: WeComHarness) -> None:
    card = _team_with_a_waiting_quote(wecom)["template_card"]
    assert card["card_type"] == "button_interaction" and TASK_ID.match(card["task_id"])
    keys = [button["key"] for button in card["button_list"]]
    assert keys == ["/审批 同意 Q1", "/审批 驳回 Q1"]
    # The click carries its own ResponseCode, usable once to update the card.
    click = wecom.click("lijingli", keys[0], task_id=card["task_id"], response_code="RC-card")
    assert wecom.post_xml(click).status_code == 200
    [update] = [r.json for r in wecom.api.wait_for(lambda rs: any(r.path == UPDATE for r in rs))
                if r.path == UPDATE]
    assert update["userids"] == ["lijingli"] and update["response_code"] == "RC-card"
    assert update["agentid"] == 1
    assert "Q1 已由 李经理 同意 · 09:00" in update["button"]["replace_name"]
    wecom.deliver()
    told = wecom.message_to("wangwu", "Q1 已由 李经理 同意")
    assert "L1 华为技术" in shown(told)
    # WeCom retries the same click event: it runs once.
    before = len(wecom.wait_handled(0))
    assert wecom.post_xml(click, nonce="retry").status_code == 200
    after = wecom.wait_handled(before + 1)[before:]
    assert [reply.duplicate for reply in after] == [True], [reply.text for reply in after]
    wecom.say("lijingli", "/帮助")
    assert len([r for r in wecom.api.at(UPDATE) if r.json["response_code"] == "RC-card"]) == 1


def test_a_refused_click_is_told_privately_and_the_card_stays(wecom: WeComHarness) -> None:
    card = _team_with_a_waiting_quote(wecom)["template_card"]
    click = wecom.click("wangwu", card["button_list"][0]["key"], task_id=card["task_id"],
                        response_code="RC-card")
    assert wecom.post_xml(click).status_code == 200
    wecom.message_to("wangwu", "不能审批自己提交的报价")
    assert not wecom.api.at(UPDATE)


def _run_in(wecom: WeComHarness, team: str, user: str, text: str) -> Reply:
    return wecom.dispatcher.dispatch(Invocation(platform="wecom", team_key=team, user_key=user,
                                                user_name=user, text=text,
                                                received_at=wecom.clock.now()))


def _q1_status_by_team(wecom: WeComHarness) -> dict[str, str]:
    with unit_of_work(wecom.engine) as session:
        rows = session.execute(select(Team.key, Quote.status).join(Quote, Quote.team_id == Team.id)
                               .where(Quote.number == 1)).all()
    return {str(key): str(status) for key, status in rows}


def test_a_card_click_acts_in_the_apps_corp_whatever_team_the_clicker_used_last(
        wecom: WeComHarness) -> None:
    """Every callback is sealed with the corp's key and runs in the corp's team: a card's button
    cannot reach another team, even one the clicker (admin there, with its own Q1) wrote in last."""
    card = _team_with_a_waiting_quote(wecom)["template_card"]
    _run_in(wecom, "wwOtherCorp", "lijingli", "/help")
    _run_in(wecom, "wwOtherCorp", "zhaoliu", "/lead add Beta value=120k")
    assert _run_in(wecom, "wwOtherCorp", "zhaoliu", "/quote L1 80k").ok
    _run_in(wecom, "wwOtherCorp", "lijingli", "/lead list")
    assert _q1_status_by_team(wecom) == {CORP: "pending", "wwOtherCorp": "pending"}
    click = wecom.click("lijingli", card["button_list"][0]["key"], task_id=card["task_id"],
                        response_code="RC-card")
    assert wecom.post_xml(click).status_code == 200
    wecom.api.wait_for(lambda rs: any(r.path == UPDATE for r in rs))
    assert _q1_status_by_team(wecom) == {CORP: "approved", "wwOtherCorp": "pending"}


def test_a_click_never_makes_the_clicker_a_member(wecom: WeComHarness) -> None:
    card = _team_with_a_waiting_quote(wecom)["template_card"]
    click = wecom.click("stranger", card["button_list"][0]["key"], task_id=card["task_id"],
                        response_code="RC-card")
    assert wecom.post_xml(click).status_code == 200
    wecom.message_to("stranger", "你不在其中的团队")
    with unit_of_work(wecom.engine) as session:
        assert not session.execute(select(Member).where(Member.user_key == "stranger")).all()
    assert _q1_status_by_team(wecom) == {CORP: "pending"} and not wecom.api.at(UPDATE)


def _post_raw(wecom: WeComHarness, case: str) -> httpx.Response:
    inner = wecom.text("zhangsan", "/线索 新建 机密客户 电话=13900000000")
    if case == "bad signature":
        return wecom.post_xml(inner, signature="0" * 40)
    if case == "stale timestamp":
        return wecom.post_xml(inner, timestamp=int(time.time()) - 6 * 60)
    if case == "wrong corp id":
        return wecom.post(WeComCrypto(TOKEN, AES_KEY, "wwOtherCorp").encrypt(inner.encode()))
    if case == "corrupt ciphertext":
        return wecom.post(base64.b64encode(b"\x01" * 47).decode())
    if case == "bad padding":
        return wecom.post(_raw_encrypt(b"\x00" * 63 + b"\x40"))
    if case == "entity in the envelope":
        body = b'<!DOCTYPE xml [<!ENTITY e "x">]><xml><Encrypt>&e;</Encrypt></xml>'
        return wecom.post("x", body=body)
    if case == "doctype in the message":
        return wecom.post_xml('<!DOCTYPE xml [<!ENTITY e "/lead add X">]>'
                              "<xml><MsgType>text</MsgType><Content>&e;</Content></xml>")
    if case == "oversize body":
        return wecom.post_xml(inner, body=b"<xml>" + b" " * (70 * 1024) + b"</xml>")
    if case == "oversize body without a length":
        stamp = str(int(time.time()))
        chunks = iter([b"<xml>", b" " * (70 * 1024), b"</xml>"])  # chunked: no Content-Length
        return wecom.http.post("/wecom/callback", content=chunks,
                               params={"msg_signature": "0" * 40, "timestamp": stamp, "nonce": "1"})
    if case == "missing signature":
        return wecom.http.post("/wecom/callback", content=payload("callback.xml", encrypt="x"))
    if case == "forged url verification":
        return wecom.http.get("/wecom/callback", params={
            "msg_signature": "0" * 40, "timestamp": str(int(time.time())), "nonce": "1",
            "echostr": wecom.wecom.encrypt(b"123")})
    raise AssertionError(case)


@pytest.mark.parametrize(("case", "status"), [
    ("bad signature", 401), ("stale timestamp", 401), ("wrong corp id", 401),
    ("corrupt ciphertext", 400), ("bad padding", 400), ("entity in the envelope", 400),
    ("doctype in the message", 400), ("oversize body", 413),
    ("oversize body without a length", 413), ("missing signature", 400),
    ("forged url verification", 401),
])
def test_forged_replayed_or_malformed_callbacks_are_refused_before_anything_happens(
        wecom: WeComHarness, caplog: pytest.LogCaptureFixture, case: str, status: int) -> None:
    caplog.set_level(logging.DEBUG)
    answer = _post_raw(wecom, case)
    assert answer.status_code == status
    wecom.say("wangwu", "/帮助")  # a valid command afterwards: anything the bad one caused is done
    with unit_of_work(wecom.engine) as session:
        lines = list(session.execute(select(col(CommandLog.text))).scalars())
    assert lines == ["/帮助"]
    assert {r.path for r in wecom.api.requests} <= {GETTOKEN, "/cgi-bin/user/get", SEND}
    assert len(wecom.api.at(SEND)) == 1
    assert "机密客户" not in caplog.text and "13900000000" not in caplog.text


def test_nothing_is_stored_for_a_refused_callback(wecom: WeComHarness) -> None:
    assert _post_raw(wecom, "bad signature").status_code == 401
    assert _nothing_stored(wecom.engine) and not wecom.api.requests


def test_other_events_and_message_types_are_acknowledged_and_ignored(wecom: WeComHarness) -> None:
    entered = payload("enter_agent_event.xml", user="zhangsan", create_time=int(time.time()))
    assert wecom.post_xml(entered).status_code == 200
    image = wecom.text("zhangsan", "x").replace("CDATA[text]", "CDATA[image]")
    assert wecom.post_xml(image).status_code == 200
    wecom.say("zhangsan", "/帮助")
    assert len(wecom.api.at(SEND)) == 1


# --- the sender ---------------------------------------------------------------------------------

class Sleeps:
    def __init__(self) -> None:
        self.waited: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waited.append(seconds)


def make_sender(api: FakeWeCom, *, now: list[float] | None = None, sleep: Sleeps | None = None,
                robot_key: str | None = ROBOT_KEY) -> WeComSender:
    clock = now if now is not None else [1000.0]
    client = WeComApi(corp_id=CORP, secret=SECRET, agent_id=1, base_url=api.url,
                      webhook_key=robot_key, sleep=sleep or Sleeps(), monotonic=lambda: clock[0])
    return WeComSender(client, robot=RobotWindow(20, 60, monotonic=lambda: clock[0]))


def test_a_digest_longer_than_4096_bytes_goes_to_the_robot_in_parts(
        engine: Engine, clock: FixedClock, wecom_api: FakeWeCom) -> None:
    rows = [["成员", "跟进", "赢单"]]
    rows += [[f"销售{n:03d}", str(n), f"¥{n * 1000:,}"] for n in range(300)]
    digest = Reply(text="📊 **销售日报** · 11月26日（周四）", table=rows)
    with unit_of_work(engine) as session:
        team = Team(platform="wecom", key=CORP, config={}, created_at=clock.now())
        session.add(team)
        session.flush()
        outbox.enqueue(session, team=team, kind="digest-daily", channel="robot",
                       dedupe_key="digest:1", payload=digest.model_dump(mode="json"),
                       now=clock.now())
    sender = make_sender(wecom_api)
    report = asyncio.run(OutboxDelivery(engine, {"wecom": sender}, clock).run_once())
    assert report.sent == 1
    posts = wecom_api.at(ROBOT)
    assert len(posts) >= 2 and all(r.query["key"] == ROBOT_KEY for r in posts)
    contents = [r.json["markdown"]["content"] for r in posts]
    assert all(len(content.encode()) <= ROBOT_MARKDOWN_BYTES for content in contents)
    assert "".join(contents) == markdown(digest)
    assert not wecom_api.at(GETTOKEN)  # the robot's key is its credential


def test_digest_chart_goes_to_the_robot_as_base64_and_md5(wecom_api: FakeWeCom) -> None:
    png = b"\x89PNG\r\n\x1a\n fake chart"
    reply = Reply(text="📊 周报", image=Image(png=png, alt="漏斗"))
    asyncio.run(make_sender(wecom_api).send(Target(kind="channel", key="robot"), reply))
    image = [r.json for r in wecom_api.at(ROBOT) if r.json["msgtype"] == "image"][0]["image"]
    assert base64.b64decode(image["base64"]) == png and image["md5"] == hashlib.md5(png).hexdigest()


def test_an_app_chat_gets_markdown_through_appchat_send(wecom_api: FakeWeCom) -> None:
    ref = asyncio.run(make_sender(wecom_api).send(Target(kind="channel", key="wrkSFfCgAAxxxx"),
                                                  Reply(text="x" * (APP_MARKDOWN_BYTES + 10))))
    posts = [r.json for r in wecom_api.at(APPCHAT)]
    assert [p["chatid"] for p in posts] == ["wrkSFfCgAAxxxx"] * 2 and ref == "chat|wrkSFfCgAAxxxx"


def test_a_member_gets_markdown_and_a_chart_through_media_upload(wecom_api: FakeWeCom) -> None:
    sender = make_sender(wecom_api)
    ref = asyncio.run(sender.send(WANGWU,
                                  Reply(text="**逾期** L1", image=Image(png=b"png", alt="chart"))))
    sent = wecom_api.sent_to("wangwu")
    assert [m["msgtype"] for m in sent] == ["markdown", "image"]
    assert sent[1]["image"]["media_id"] == "MEDIA-1"
    assert sent[0]["markdown"]["content"] == "**逾期** L1" and ref.startswith("msg|wangwu|")


def test_the_token_is_fetched_once_for_many_sends(wecom_api: FakeWeCom,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sender = make_sender(wecom_api)
    for n in range(5):  # separate event loops, as the outbox worker runs them
        asyncio.run(sender.send(WANGWU, Reply(text=f"nudge {n}")))
    assert len(wecom_api.at(GETTOKEN)) == 1
    assert {r.query["access_token"] for r in wecom_api.at(SEND)} == {"TOKEN-1"}
    assert SECRET not in caplog.text and "TOKEN-1" not in caplog.text


def test_the_token_is_refreshed_shortly_before_it_expires(wecom_api: FakeWeCom) -> None:
    now = [1000.0]
    sender = make_sender(wecom_api, now=now)
    asyncio.run(sender.send(WANGWU, Reply(text="a")))
    now[0] += 7200 - 301
    asyncio.run(sender.send(WANGWU, Reply(text="b")))
    assert len(wecom_api.at(GETTOKEN)) == 1
    now[0] += 2
    asyncio.run(sender.send(WANGWU, Reply(text="c")))
    assert len(wecom_api.at(GETTOKEN)) == 2


def test_concurrent_sends_share_one_token_fetch(wecom_api: FakeWeCom) -> None:
    sender = make_sender(wecom_api)

    async def many() -> None:
        await asyncio.gather(*(sender.send(WANGWU, Reply(text=str(n)))
                               for n in range(8)))

    asyncio.run(many())
    assert len(wecom_api.at(GETTOKEN)) == 1 and len(wecom_api.at(SEND)) == 8


def test_an_expired_token_is_refreshed_and_the_call_retried_once(wecom_api: FakeWeCom) -> None:
    sender = make_sender(wecom_api)
    asyncio.run(sender.send(WANGWU, Reply(text="first")))
    wecom_api.expired.add("TOKEN-1")
    asyncio.run(sender.send(WANGWU, Reply(text="second")))
    tokens = [r.query["access_token"] for r in wecom_api.at(SEND)]
    assert tokens == ["TOKEN-1", "TOKEN-1", "TOKEN-2"] and len(wecom_api.at(GETTOKEN)) == 2
    wecom_api.fail(SEND, *[Answer(body={"errcode": 40014, "errmsg": "invalid access_token"})] * 2)
    with pytest.raises(AuthBroken):
        asyncio.run(sender.send(WANGWU, Reply(text="third")))
    assert len(wecom_api.at(GETTOKEN)) == 3  # refreshed once, not in a loop


def test_busy_is_retried_with_back_off(wecom_api: FakeWeCom) -> None:
    sleeps = Sleeps()
    sender = make_sender(wecom_api, sleep=sleeps)
    wecom_api.fail(SEND, *[Answer(body={"errcode": -1, "errmsg": "system busy"})] * 2)
    asyncio.run(sender.send(WANGWU, Reply(text="x")))
    assert sleeps.waited == [0.5, 1.0] and len(wecom_api.at(SEND)) == 3
    wecom_api.fail(SEND, *[Answer(body={"errcode": -1, "errmsg": "system busy"})] * 3)
    with pytest.raises(Transient):
        asyncio.run(sender.send(WANGWU, Reply(text="y")))


@pytest.mark.parametrize(("path", "target", "answer", "error"), [
    (SEND, "member", {"errcode": 81013, "errmsg": "user & party & tag all invalid"}, TargetGone),
    (SEND, "member", {"errcode": 0, "errmsg": "ok", "invaliduser": "wangwu"}, TargetGone),
    (SEND, "member", {"errcode": 60020, "errmsg": "not allow to access from your ip"}, AuthBroken),
    (GETTOKEN, "member", {"errcode": 40001, "errmsg": "invalid credential"}, AuthBroken),
    (GETTOKEN, "member", {"errcode": 40013, "errmsg": "invalid corpid"}, AuthBroken),
    (SEND, "member", {"errcode": 45009, "errmsg": "api freq out of limit"}, RateLimited),
    (ROBOT, "channel", {"errcode": 130101, "errmsg": "send too many messages"}, RateLimited),
    (ROBOT, "channel", {"errcode": 93000, "errmsg": "invalid webhook url"}, AuthBroken),
    (APPCHAT, "chat", {"errcode": 86003, "errmsg": "chatid not exist"}, TargetGone),
    (SEND, "member", {"errcode": 40058, "errmsg": "invalid parameter"}, Transient),
])
def test_wecom_errcodes_become_the_outbox_errors(wecom_api: FakeWeCom, path: str, target: str,
                                                 answer: dict[str, Any],
                                                 error: type[Exception]) -> None:
    wecom_api.fail(path, Answer(body=answer))
    where = {"member": WANGWU, "channel": Target(kind="channel", key="robot"),
             "chat": Target(kind="channel", key="wrkChat")}[target]
    with pytest.raises(error) as raised:
        asyncio.run(make_sender(wecom_api).send(where, Reply(text="x")))
    assert str(answer["errcode"]) in str(raised.value) or "wangwu" in str(raised.value)
    if error is RateLimited:
        assert raised.value.retry_after == 60  # type: ignore[attr-defined]


def test_http_failures_are_transient_or_rate_limited(wecom_api: FakeWeCom) -> None:
    wecom_api.fail(SEND, Answer(status=502, body=b"bad gateway"))
    with pytest.raises(Transient):
        asyncio.run(make_sender(wecom_api).send(WANGWU, Reply(text="x")))
    wecom_api.fail(SEND, Answer(status=429, body={}, headers={"Retry-After": "7"}))
    with pytest.raises(RateLimited) as raised:
        asyncio.run(make_sender(wecom_api).send(WANGWU, Reply(text="x")))
    assert raised.value.retry_after == 7


def test_the_robot_limit_is_kept_ahead_of_time(wecom_api: FakeWeCom) -> None:
    now = [1000.0]
    sender = make_sender(wecom_api, now=now)
    robot = Target(kind="channel", key="robot")

    async def a_minute_of_pushes() -> None:
        for n in range(20):
            await sender.send(robot, Reply(text=f"m{n}"))
            now[0] += 1
        with pytest.raises(RateLimited) as raised:
            await sender.send(robot, Reply(text="one too many"))
        assert raised.value.retry_after == 40  # when the first of the twenty leaves the minute
        assert len(wecom_api.at(ROBOT)) == 20  # refused before it was sent
        now[0] += raised.value.retry_after
        await sender.send(robot, Reply(text="later"))

    asyncio.run(a_minute_of_pushes())
    assert len(wecom_api.at(ROBOT)) == 21


def test_a_split_message_interrupted_midway_resumes_without_repeating_parts(
        wecom_api: FakeWeCom) -> None:
    sender = make_sender(wecom_api)
    long = Reply(text="\n".join(f"第{n}行 " + "数据" * 40 for n in range(120)))
    parts = split_bytes(markdown(long), ROBOT_MARKDOWN_BYTES)
    assert len(parts) >= 3
    wecom_api.fail(ROBOT, Answer(body={"errcode": 0, "errmsg": "ok"}),
                   Answer(body={"errcode": 130101, "errmsg": "send too many messages"}))
    with pytest.raises(RateLimited):
        asyncio.run(sender.send(Target(kind="channel", key="robot"), long))
    asyncio.run(sender.send(Target(kind="channel", key="robot"), long))
    delivered = [r.json["markdown"]["content"] for r in wecom_api.at(ROBOT)]
    assert delivered[0] == parts[0] and delivered[1] == parts[1]  # the second was refused
    assert delivered[2:] == parts[1:]  # the retry resumed at the refused part


def test_no_robot_configured_is_a_clear_dead_end(wecom_api: FakeWeCom) -> None:
    with pytest.raises(TargetGone, match="WECOM_WEBHOOK_KEY"):
        asyncio.run(make_sender(wecom_api, robot_key=None).send(Target(kind="channel", key="robot"),
                                                                Reply(text="x")))


def test_update_replaces_a_cards_buttons_with_the_outcome(wecom_api: FakeWeCom) -> None:
    sender = make_sender(wecom_api)
    card = Reply(text="🧾 Q7", buttons=[Button(label="同意", command="/审批 同意 Q7")])
    ref = asyncio.run(sender.send(Target(kind="member", key="lijingli"), card))
    assert ref.startswith("card|lijingli|RC-")
    asyncio.run(sender.update(ref, Reply(text="✅ Q7 已由 李经理 同意 · 10:02")))
    [update] = [r.json for r in wecom_api.at(UPDATE)]
    assert update["response_code"] == ref.split("|")[2]
    assert update["button"]["replace_name"] == "✅ Q7 已由 李经理 同意 · 10:02"


def test_a_vanished_app_chat_is_marked_dead_with_a_clear_error(engine: Engine, clock: FixedClock,
                                                        wecom_api: FakeWeCom) -> None:
    with unit_of_work(engine) as session:
        team = Team(platform="wecom", key=CORP, config={}, created_at=clock.now())
        session.add(team)
        session.flush()
        outbox.enqueue(session, team=team, kind="digest", channel="wrkGone", dedupe_key="d1",
                       payload=Reply(text="digest").model_dump(mode="json"), now=clock.now())
    wecom_api.fail(APPCHAT, Answer(body={"errcode": 86003, "errmsg": "chatid not exist"}))
    delivery = OutboxDelivery(engine, {"wecom": make_sender(wecom_api)}, clock)
    report = asyncio.run(delivery.run_once())
    assert report.dead == 1
    with unit_of_work(engine) as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert row.status == "dead" and "86003" in (row.last_error or "")


@settings(max_examples=30)
@given(text=st.text(max_size=200))
def test_inbound_parsing_survives_any_content(text: str) -> None:
    xml = payload("text_message.xml", user="u", content=text.replace("]]>", ""), create_time=1,
                  msg_id=5)
    try:
        message = Inbound.parse(xml.encode())
    except Rejected:
        return  # characters XML cannot carry are refused, not crashed on
    assert message.user == "u" and message.msg_id == "5"
