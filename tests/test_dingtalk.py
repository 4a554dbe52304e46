"""DingTalk through its real entry point: robot callbacks signed as DingTalk signs them, posted to
`/dingtalk/callback` on the app served by uvicorn, and a local HTTP server standing in for
DingTalk's API (oauth2 accessToken, robot messages, interactive cards, media upload, the custom
robot) and for the messages' sessionWebhooks."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import AuthBroken, RateLimited, Target, TargetGone
from adapters.dingtalk import (
    DingTalkAdapter,
    DingTalkApi,
    DingTalkSender,
    session_webhook_allowed,
    webhook_token,
)
from adapters.wecom import RobotWindow
from bot.app import Bot, build, keep_commands
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from commands.types import Image, Reply
from models import outbox
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, InboundDelivery, Outbox, Quote, Team
from reminders.limits import ARRIVAL_MARGIN, Pacer, default_limits
from reminders.outbox import OutboxDelivery
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer, FakeServer, Recorded

PAYLOADS = Path(__file__).parent / "payloads" / "dingtalk"
CLIENT_ID = "dingxq4kbm2uatrrd8vf"
SECRET = "app-secret-never-logged-Zx81"
ROBOT_TOKEN = "c0ffee0123456789abcdef"
ROBOT_SECRET = "SEC0123456789abcdef0123456789abcdef"
CORP = "ding8f7c3b1a2e9d4c5b"
GROUP = "cidJ3dQ4E1Kx5vTq0eW8mYbZg=="
BOT_ID = "$:LWCP_v1:$Kp3bq0Yw0J1ZgD4e4pU8ZBbvuaGDpFqA"
TOKEN = "/v1.0/oauth2/accessToken"
TO_USER = "/v1.0/robot/oToMessages/batchSend"
TO_GROUP = "/v1.0/robot/groupMessages/send"
CARD = "/v1.0/im/v1.0/robot/interactiveCards/send"
CARD_UPDATE = "/v1.0/im/robots/interactiveCards"
UPLOAD = "/media/upload"
CUSTOM = "/robot/send"
SESSION = "/robot/sendBySession"
GATEWAY = "/v1.0/gateway/connections/open"
NAMES = {"zhangsan": "张三", "lijingli": "李经理", "wangwu": "王五"}


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """The documented algorithm, written out here apart from the adapter's."""
    digest = hmac.new(secret.encode(), (timestamp + "\n" + secret).encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


class FakeDingTalk(FakeServer):
    """DingTalk's API and sessionWebhooks: answers as DingTalk does, checks the access token and
    the custom robot's signature, fails on demand (per path, in order)."""

    def __init__(self) -> None:
        self.failures: dict[str, list[Answer]] = {}
        self.tokens = itertools.count(1)
        self.issued: set[str] = set()
        self.gateway = ""  # the Stream mode WebSocket the gateway hands out
        self.lock = threading.Lock()
        super().__init__(self.answer)

    def fail(self, path: str, *answers: Answer) -> None:
        self.failures.setdefault(path, []).extend(answers)

    def answer(self, request: Recorded) -> Answer:
        with self.lock:
            if self.failures.get(request.path):
                return self.failures[request.path].pop(0)
            if request.path == TOKEN:
                body = request.json or {}
                if (body.get("appKey"), body.get("appSecret")) != (CLIENT_ID, SECRET):
                    return Answer(
                        400,
                        {
                            "code": "invalidClientIdOrSecret",
                            "message": "无效的clientId或者clientSecret",
                        },
                    )
                token = f"TOKEN-{next(self.tokens)}"
                self.issued.add(token)
                return Answer(body={"accessToken": token, "expireIn": 7200})
        if request.path == SESSION:
            return Answer(body={"errcode": 0, "errmsg": "ok"})
        if request.path == GATEWAY:
            body = request.json or {}
            if (body.get("clientId"), body.get("clientSecret")) != (CLIENT_ID, SECRET):
                return Answer(
                    401, {"code": "InvalidAuthentication", "message": "clientId or clientSecret"}
                )
            return Answer(body={"endpoint": self.gateway, "ticket": "ticket-1"})
        if request.path == CUSTOM:
            stamp = request.query.get("timestamp", "")
            if request.query.get("access_token") != ROBOT_TOKEN:
                return Answer(body={"errcode": 300001, "errmsg": "token is not exist"})
            if request.query.get("sign") != dingtalk_sign(ROBOT_SECRET, stamp):
                return Answer(body={"errcode": 310000, "errmsg": "sign not match"})
            return Answer(body={"errcode": 0, "errmsg": "ok"})
        if request.path == UPLOAD:
            if request.query.get("access_token") not in self.issued:
                return Answer(body={"errcode": 40014, "errmsg": "不合法的access_token"})
            return Answer(
                body={"errcode": 0, "errmsg": "ok", "type": "image", "media_id": "@lADPchart"}
            )
        if request.headers.get("x-acs-dingtalk-access-token") not in self.issued:
            return Answer(401, {"code": "InvalidAuthentication", "message": "不合法的access_token"})
        if request.path == TO_USER:
            return Answer(
                body={
                    "processQueryKey": "pqk",
                    "invalidStaffIdList": [],
                    "flowControlledStaffIdList": [],
                }
            )
        if request.path == CARD_UPDATE:
            return Answer(body={"success": True, "result": True})
        return Answer(body={"processQueryKey": "pqk"})

    def at(self, path: str) -> list[Recorded]:
        return [request for request in list(self.requests) if request.path == path]

    def to(self, user: str) -> list[dict[str, Any]]:
        """What reached `user` one-to-one: messages (msgKey, param) and cards."""
        found = []
        for request in list(self.requests):
            body = request.json or {}
            if request.path == TO_USER and user in body.get("userIds", []):
                found.append({"msgKey": body["msgKey"], **json.loads(body["msgParam"])})
            elif (
                request.path == CARD
                and json.loads(body.get("singleChatReceiver") or "{}").get("userId") == user
            ):
                found.append(
                    {
                        "msgKey": "card",
                        "cardBizId": body["cardBizId"],
                        **json.loads(body["cardData"]),
                    }
                )
        return found


def card_text(card: dict[str, Any]) -> str:
    return "\n".join(
        [card["header"]["title"]["text"], *(part.get("text", "") for part in card["contents"])]
    )


def card_buttons(card: dict[str, Any]) -> list[str]:
    return [
        action["id"]
        for part in card["contents"]
        if part["type"] == "action"
        for action in part["actions"]
    ]


@pytest.fixture
def api() -> Iterator[FakeDingTalk]:
    fake = FakeDingTalk()
    yield fake
    fake.close()


class DingTalkHarness:
    """The app as deployed (settings → `DingTalkAdapter.from_settings`), served by uvicorn, and
    DingTalk's side: signing and posting robot callbacks."""

    def __init__(self, engine: Engine, clock: FixedClock, api: FakeDingTalk) -> None:
        self.api = api
        self.engine = engine
        self.clock = clock
        self.settings = Settings.model_validate(
            {
                "DINGTALK_CLIENT_ID": CLIENT_ID,
                "DINGTALK_CLIENT_SECRET": SECRET,
                "DINGTALK_WEBHOOK_TOKEN": f"{api.url}/robot/send?access_token={ROBOT_TOKEN}",
                "DINGTALK_WEBHOOK_SECRET": ROBOT_SECRET,
                "DINGTALK_API_URL": api.url,
            }
        )
        self.dispatcher = Dispatcher(engine, clock)
        dispatch = self.dispatcher.dispatch
        # A spy that calls through: every reply, as the inbox hands each kept command to dispatch.
        self.dispatcher.dispatch = lambda invocation, **kwargs: self._handle(
            dispatch(invocation, **kwargs)
        )  # type: ignore[method-assign]
        self.handled: list[Reply] = []
        self._handled = threading.Condition()
        self.adapter = DingTalkAdapter.from_settings(self.settings, self.dispatcher.dispatch)
        self.bot = Bot(
            settings=self.settings,
            engine=engine,
            clock=clock,
            dispatcher=self.dispatcher,
            senders={"dingtalk": self.adapter.sender()},
            adapters=[self.adapter],
        )
        keep_commands(
            self.bot, lease=timedelta(seconds=30)
        )  # commands kept until answered, as deployed
        self.server = LiveServer(create_app(self.bot))
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        self.msg_ids = itertools.count(1)
        self.statements = 0
        self.let_go = 0  # kept commands answered and deleted
        self._executed = threading.Condition()
        event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with self._executed:
            self.statements += 1
            self.let_go += statement.lstrip().upper().startswith("DELETE FROM INBOUND_COMMAND")
            self._executed.notify_all()

    def wait_let_go(self, count: int) -> None:
        """Block until `count` kept commands were answered: nothing more runs for them."""
        with self._executed:
            assert self._executed.wait_for(lambda: self.let_go >= count, timeout=10)

    def _handle(self, reply: Reply) -> Reply:
        with self._handled:
            self.handled.append(reply)
            self._handled.notify_all()
        return reply

    def wait_handled(self, count: int) -> list[Reply]:
        with self._handled:
            assert self._handled.wait_for(lambda: len(self.handled) >= count, timeout=10)
            return list(self.handled)

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._count)
        self.http.close()
        self.server.close()

    def message(
        self,
        user: str,
        text: str,
        *,
        group: bool = True,
        msg_id: str | None = None,
        at: tuple[str, ...] = (),
        **fields: Any,
    ) -> dict[str, Any]:
        recorded = json.loads(
            (PAYLOADS / ("group_text.json" if group else "single_text.json")).read_text()
        )
        body = copy.deepcopy(recorded)
        body.update(
            senderStaffId=user,
            senderNick=NAMES.get(user, user),
            text={"content": text},
            msgId=msg_id or f"msg{next(self.msg_ids):08d}==",
            createAt=now_ms(),
            sessionWebhookExpiredTime=now_ms() + 90 * 60 * 1000,
            sessionWebhook=f"{self.api.url}{SESSION}?session=s-{user}",
        )
        if group:
            body["atUsers"] = [{"dingtalkId": BOT_ID}] + [
                {"dingtalkId": f"$:LWCP_v1:${staff}", "staffId": staff} for staff in at
            ]
        body.update(fields)
        return body

    def click(self, user: str, action: str, card: str) -> dict[str, Any]:
        body = json.loads((PAYLOADS / "card_callback.json").read_text())
        body.update(
            userId=user,
            outTrackId=card,
            content=json.dumps({"cardPrivateData": {"actionIds": [action], "params": {}}}),
        )
        return body

    def post(
        self,
        body: dict[str, Any] | bytes,
        *,
        timestamp: int | None = None,
        sign: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        stamp = str(timestamp if timestamp is not None else now_ms())
        sent = {
            "timestamp": stamp,
            "sign": sign if sign is not None else dingtalk_sign(SECRET, stamp),
        }
        content = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        return self.http.post(
            "/dingtalk/callback",
            content=content,
            headers=headers
            if headers is not None
            else {**sent, "Content-Type": "application/json"},
        )

    def say(self, user: str, text: str, **kwargs: Any) -> int:
        """Post a message; the number of replies dispatched once it was handled."""
        before = len(self.handled)
        answer = self.post(self.message(user, text, **kwargs))
        assert answer.status_code == 200 and answer.content == b""
        return len(self.wait_handled(before + 1))

    def session_posts(self, user: str) -> list[dict[str, Any]]:
        return [r.json for r in self.api.at(SESSION) if r.query.get("session") == f"s-{user}"]

    def deliver(self) -> None:
        asyncio.run(OutboxDelivery(self.engine, self.bot.senders, self.clock).run_once())


@pytest.fixture
def dingtalk(engine: Engine, clock: FixedClock, api: FakeDingTalk) -> Iterator[DingTalkHarness]:
    harness = DingTalkHarness(engine, clock, api)
    yield harness
    harness.close()


def _nothing_stored(engine: Engine) -> bool:
    with unit_of_work(engine) as session:
        counts = [
            session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Team, CommandLog, InboundDelivery, Outbox)
        ]
    return counts == [0, 0, 0, 0]


# --- answering in the chat ---------------------------------------------------------------------


def test_a_zh_command_in_a_group_is_answered_through_its_session_webhook(
    dingtalk: DingTalkHarness,
) -> None:
    dingtalk.say("zhangsan", "线索 新建 华为技术 预计=12.5万")
    dingtalk.api.wait_for(lambda _: bool(dingtalk.api.at(CARD)))  # buttons: a card, through the API
    [card] = [r.json for r in dingtalk.api.at(CARD)]
    assert card["openConversationId"] == GROUP and card["robotCode"] == CLIENT_ID
    assert "L1 华为技术" in card_text(json.loads(card["cardData"]))
    dingtalk.say("zhangsan", " 线索 列表")
    dingtalk.api.wait_for(lambda _: bool(dingtalk.session_posts("zhangsan")))
    [answer] = dingtalk.session_posts("zhangsan")
    assert answer["msgtype"] == "markdown" and "华为技术" in answer["markdown"]["text"]
    assert "团队线索" in answer["markdown"]["title"]
    # The sessionWebhook is its own credential: no access token travels with it.
    [session] = dingtalk.api.at(SESSION)
    assert "x-acs-dingtalk-access-token" not in session.headers
    with unit_of_work(dingtalk.engine) as db:
        team = db.execute(select(Team)).scalar_one()
    assert (team.platform, team.key, team.channel) == ("dingtalk", CORP, GROUP)


def test_private_answers_in_a_group_go_to_the_person_and_one_to_one_through_the_session(
    dingtalk: DingTalkHarness,
) -> None:
    dingtalk.say("zhangsan", "/帮助")
    dingtalk.api.wait_for(lambda _: bool(dingtalk.api.to("zhangsan")))
    [help_text] = dingtalk.api.to("zhangsan")
    assert help_text["msgKey"] == "sampleMarkdown" and "/线索" in help_text["text"]
    assert not dingtalk.api.at(SESSION)  # the group's session would show it to everyone
    dingtalk.say("zhangsan", "/帮助", group=False)
    dingtalk.api.wait_for(lambda _: bool(dingtalk.session_posts("zhangsan")))
    assert "/线索" in dingtalk.session_posts("zhangsan")[0]["markdown"]["text"]


def test_an_at_mention_names_the_member_dingtalk_listed(dingtalk: DingTalkHarness) -> None:
    dingtalk.say("zhangsan", "/帮助")
    dingtalk.say("lijingli", "/帮助")
    dingtalk.say("zhangsan", "/团队 角色 @李经理 经理", at=("lijingli",))
    dingtalk.api.wait_for(lambda _: len(dingtalk.api.at(SESSION)) >= 1)
    assert "李经理" in dingtalk.api.at(SESSION)[-1].json["markdown"]["text"]
    with unit_of_work(dingtalk.engine) as db:
        lines = list(db.execute(select(col(CommandLog.outcome))).scalars())
    assert lines[-1] == "ok"


# --- refused before anything happens ------------------------------------------------------------


def _refused(dingtalk: DingTalkHarness, case: str) -> httpx.Response:
    body = dingtalk.message("zhangsan", "线索 新建 机密客户 电话=13900000000")
    stale = now_ms() - 6 * 60 * 1000
    if case == "forged sign":
        return dingtalk.post(body, sign=dingtalk_sign("not-the-secret", str(now_ms())))
    if case == "stale timestamp":
        return dingtalk.post(body, timestamp=stale, sign=dingtalk_sign(SECRET, str(stale)))
    if case == "timestamp from the future":
        ahead = now_ms() + 6 * 60 * 1000
        return dingtalk.post(body, timestamp=ahead, sign=dingtalk_sign(SECRET, str(ahead)))
    if case == "seconds, not milliseconds":
        seconds = str(int(time.time()))
        return dingtalk.post(body, timestamp=int(seconds), sign=dingtalk_sign(SECRET, seconds))
    if case == "no headers":
        return dingtalk.post(body, headers={"Content-Type": "application/json"})
    if case == "not json":
        return dingtalk.post(b"\xff{not json")
    if case == "no staff id":
        return dingtalk.post({**body, "senderStaffId": ""})
    raise AssertionError(case)


REFUSED = {
    "forged sign": 401,
    "stale timestamp": 401,
    "timestamp from the future": 401,
    "seconds, not milliseconds": 401,
    "no headers": 401,
    "not json": 400,
    "no staff id": 400,
}


def test_forged_stale_or_malformed_callbacks_are_refused_before_the_database(
    dingtalk: DingTalkHarness,
) -> None:
    for case, status in REFUSED.items():  # one server for every case: the file stays fast
        assert _refused(dingtalk, case).status_code == status, case
        assert dingtalk.statements == 0 and not dingtalk.api.requests and not dingtalk.handled, case
    assert _nothing_stored(dingtalk.engine)


def test_a_replayed_msg_id_is_answered_without_touching_the_database(
    dingtalk: DingTalkHarness,
) -> None:
    body = dingtalk.message("zhangsan", "线索 列表", msg_id="msgReplayed==")
    assert dingtalk.post(body).status_code == 200
    dingtalk.wait_let_go(1)
    before = dingtalk.statements
    # The same message again, freshly signed (the sign covers the timestamp only).
    assert dingtalk.post(body).status_code == 200
    assert dingtalk.statements == before  # answered before any query
    dingtalk.say(
        "zhangsan", "线索 列表"
    )  # a new message afterwards: anything the replay caused is done
    dingtalk.api.wait_for(lambda _: len(dingtalk.api.at(SESSION)) == 2)
    assert len(dingtalk.handled) == 2
    with unit_of_work(dingtalk.engine) as db:
        outcomes = list(db.execute(select(col(CommandLog.outcome))).scalars())
    assert outcomes == ["ok", "ok"]


def test_a_session_webhook_elsewhere_is_never_posted_to(dingtalk: DingTalkHarness) -> None:
    evil = FakeServer(lambda request: Answer(body={"errcode": 0}))
    try:
        dingtalk.say("zhangsan", "线索 列表", sessionWebhook=f"{evil.url}{SESSION}?session=stolen")
        dingtalk.api.wait_for(lambda _: bool(dingtalk.api.at(TO_GROUP)))
        [sent] = [r.json for r in dingtalk.api.at(TO_GROUP)]
        assert (
            sent["openConversationId"] == GROUP
            and "团队线索" in json.loads(sent["msgParam"])["text"]
        )
        assert not evil.requests and not dingtalk.api.at(SESSION)
    finally:
        evil.close()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://oapi.dingtalk.com/robot/sendBySession?session=abc", True),
        ("http://oapi.dingtalk.com/robot/sendBySession?session=abc", False),
        ("https://oapi.dingtalk.com.evil.example/robot/sendBySession?session=abc", False),
        ("https://oapi.dingtalk.com@evil.example/robot/sendBySession?session=abc", False),
        ("https://evil.example/robot/sendBySession?session=abc", False),
        ("https://oapi.dingtalk.com:8443/robot/sendBySession?session=abc", False),
        ("https://oapi.dingtalk.com/robot/send?access_token=abc", False),
        ("https://oapi.dingtalk.com/robot/sendBySession/../send?session=abc", False),
        ("https://oapi.dingtalk.com[/robot/sendBySession", False),
    ],
)
def test_only_dingtalks_own_session_webhook_is_accepted(url: str, allowed: bool) -> None:
    assert session_webhook_allowed(url, "https://api.dingtalk.com") is allowed


# --- cards --------------------------------------------------------------------------------------


def _team_with_a_waiting_quote(dingtalk: DingTalkHarness) -> dict[str, Any]:
    dingtalk.say("zhangsan", "/帮助")  # the first member: admin
    dingtalk.say("lijingli", "/帮助")
    dingtalk.say("zhangsan", "/团队 角色 @李经理 经理", at=("lijingli",))
    dingtalk.say("wangwu", "/线索 新建 华为技术 预计=12.5万")
    dingtalk.say("wangwu", "/报价 L1 8万")
    dingtalk.deliver()
    [card] = [m for m in dingtalk.api.to("lijingli") if m["msgKey"] == "card"]
    return card


def test_a_button_click_approves_the_quote_and_the_card_shows_the_decision(
    dingtalk: DingTalkHarness,
) -> None:
    card = _team_with_a_waiting_quote(dingtalk)
    assert "Q1 · 华为技术" in card_text(card)
    assert card_buttons(card) == ["/审批 同意 Q1", "/审批 驳回 Q1"]
    assert (
        dingtalk.post(
            dingtalk.click("lijingli", card_buttons(card)[0], card["cardBizId"])
        ).status_code
        == 200
    )
    dingtalk.api.wait_for(lambda _: bool(dingtalk.api.at(CARD_UPDATE)))
    [update] = [r for r in dingtalk.api.at(CARD_UPDATE)]
    assert update.method == "PUT" and update.json["cardBizId"] == card["cardBizId"]
    updated = json.loads(update.json["cardData"])
    assert "Q1 已由 李经理 同意" in card_text(updated) and card_buttons(updated) == []
    with unit_of_work(dingtalk.engine) as db:
        assert db.execute(select(Quote.status)).scalar_one() == "approved"
    dingtalk.deliver()
    told = [m for m in dingtalk.api.to("wangwu") if "Q1 已由 李经理 同意" in m.get("text", "")]
    assert told
    # The same click delivered again runs once and edits nothing more.
    before = len(dingtalk.handled)
    assert (
        dingtalk.post(
            dingtalk.click("lijingli", card_buttons(card)[0], card["cardBizId"])
        ).status_code
        == 200
    )
    dingtalk.say("lijingli", "/帮助", group=False)  # afterwards: anything the repeat caused is done
    with dingtalk._handled:
        dingtalk._handled.wait_for(
            lambda: any(not r.duplicate for r in dingtalk.handled[before:]), timeout=10
        )
    ran = [reply.text for reply in dingtalk.handled[before:] if not reply.duplicate]
    assert len(ran) == 1 and ran[0].startswith(
        "**dealbot**"
    )  # the help; the click did not run again
    # At most the click's own replacement and the outbox's edit of the same card, both settled.
    updates = dingtalk.api.at(CARD_UPDATE)
    assert 1 <= len(updates) <= 2
    assert {u.json["cardBizId"] for u in updates} == {card["cardBizId"]}
    assert all(card_buttons(json.loads(u.json["cardData"])) == [] for u in updates)


def test_a_refused_click_is_told_to_the_clicker_and_the_card_stays(
    dingtalk: DingTalkHarness,
) -> None:
    card = _team_with_a_waiting_quote(dingtalk)
    dingtalk.post(dingtalk.click("wangwu", card_buttons(card)[0], card["cardBizId"]))
    dingtalk.api.wait_for(
        lambda _: any(
            "不能审批自己提交的报价" in m.get("text", "") for m in dingtalk.api.to("wangwu")
        )
    )
    assert not dingtalk.api.at(CARD_UPDATE)


# --- outbound: pacing, throttling, tokens, digests ---------------------------------------------


def make_sender(api: FakeDingTalk, *, now: list[float] | None = None) -> DingTalkSender:
    clock = now if now is not None else [1000.0]
    client = DingTalkApi(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        robot_code="",
        base_url=api.url,
        webhook_token=ROBOT_TOKEN,
        webhook_secret=ROBOT_SECRET,
        monotonic=lambda: clock[0],
    )
    return DingTalkSender(client, robot=RobotWindow(20, 60, monotonic=lambda: clock[0]))


def _team(engine: Engine, clock: FixedClock) -> Team:
    with unit_of_work(engine) as session:
        team = Team(platform="dingtalk", key=CORP, config={}, created_at=clock.now())
        session.add(team)
        session.flush()
        session.expunge(team)
    return team


def test_the_digest_with_its_chart_reaches_the_group(
    engine: Engine, clock: FixedClock, api: FakeDingTalk
) -> None:
    png = b"\x89PNG\r\n\x1a\n fake chart"
    digest = Reply(
        text="📊 **销售日报** · 11月26日（周四）",
        table=[["成员", "跟进"], ["张三", "3"]],
        image=Image(png=png, alt="漏斗"),
    )
    team = _team(engine, clock)
    with unit_of_work(engine) as session:
        outbox.enqueue(
            session,
            team=session.get(Team, team.id),
            kind="digest-daily",
            channel=GROUP,
            dedupe_key="digest:1",
            payload=digest.model_dump(mode="json"),
            now=clock.now(),
        )
    report = asyncio.run(OutboxDelivery(engine, {"dingtalk": make_sender(api)}, clock).run_once())
    assert report.sent == 1
    sent = [r.json for r in api.at(TO_GROUP)]
    assert [m["msgKey"] for m in sent] == ["sampleMarkdown", "sampleImageMsg"]
    assert all(m["openConversationId"] == GROUP for m in sent)
    assert "销售日报" in json.loads(sent[0]["msgParam"])["text"]
    assert json.loads(sent[1]["msgParam"]) == {"photoURL": "@lADPchart"}
    [upload] = api.at(UPLOAD)
    assert upload.form["media"] == f"<{len(png)} bytes>" and upload.query["type"] == "image"


def test_the_days_digest_with_its_chart_goes_to_the_group_the_team_talks_in(
    dingtalk: DingTalkHarness,
) -> None:
    from reminders.digests import write_digest

    dingtalk.say("zhangsan", "线索 新建 华为技术 预计=12.5万")
    dingtalk.wait_let_go(1)
    evening = dingtalk.clock.advance(hours=9)  # 18:00 in Shanghai: the daily digest is due
    with unit_of_work(dingtalk.engine) as session:
        assert write_digest(session, session.execute(select(Team)).scalar_one(), evening, "daily")
    dingtalk.deliver()
    sent = [r.json for r in dingtalk.api.at(TO_GROUP)]
    assert [m["msgKey"] for m in sent] == ["sampleMarkdown", "sampleImageMsg"]
    assert {m["openConversationId"] for m in sent} == {GROUP}
    text = json.loads(sent[0]["msgParam"])["text"]
    assert "销售日报" in text and "新线索 1" in text
    [upload] = dingtalk.api.at(UPLOAD)
    assert (
        upload.form["media"] != "<0 bytes>"
        and json.loads(sent[1]["msgParam"])["photoURL"] == "@lADPchart"
    )


def test_a_custom_robot_gets_the_digest_signed(api: FakeDingTalk) -> None:
    ref = asyncio.run(
        make_sender(api).send(Target(kind="channel", key="robot"), Reply(text="📊 周报"))
    )
    [post] = api.at(CUSTOM)
    assert post.query["access_token"] == ROBOT_TOKEN and ref == "robot|1"
    assert abs(int(post.query["timestamp"]) - now_ms()) < 60_000  # signed now, in milliseconds
    assert post.json["markdown"]["text"] == "📊 周报" and not api.at(TOKEN)


def test_the_custom_robot_is_paced_in_the_outbox(
    engine: Engine, clock: FixedClock, api: FakeDingTalk
) -> None:
    team = _team(engine, clock)
    with unit_of_work(engine) as session:
        for n in range(21):
            outbox.enqueue(
                session,
                team=session.get(Team, team.id),
                kind="notice",
                channel="robot",
                dedupe_key=f"n{n}",
                payload=Reply(text=f"m{n}").model_dump(mode="json"),
                now=clock.now(),
            )
    pacer = Pacer(default_limits(Settings().rates), margin=ARRIVAL_MARGIN)
    delivery = OutboxDelivery(engine, {"dingtalk": make_sender(api)}, clock, pacer=pacer)
    report = asyncio.run(delivery.run_once())
    assert (report.sent, report.postponed) == (20, 1) and len(api.at(CUSTOM)) == 20
    with unit_of_work(engine) as session:
        waiting = session.execute(
            select(Outbox).where(col(Outbox.status) == "pending")
        ).scalar_one()
    assert waiting.next_attempt_at >= clock.now() + timedelta(seconds=59)


def test_the_custom_robots_throttle_code_holds_pushes_for_ten_minutes(
    engine: Engine, clock: FixedClock, api: FakeDingTalk
) -> None:
    api.fail(
        CUSTOM,
        Answer(body={"errcode": 410100, "errmsg": "send too fast, exceed 20 times per minute"}),
    )
    team = _team(engine, clock)
    with unit_of_work(engine) as session:
        outbox.enqueue(
            session,
            team=session.get(Team, team.id),
            kind="notice",
            channel="robot",
            dedupe_key="n",
            payload=Reply(text="m").model_dump(mode="json"),
            now=clock.now(),
        )
    report = asyncio.run(OutboxDelivery(engine, {"dingtalk": make_sender(api)}, clock).run_once())
    assert report.postponed == 1 and report.sent == 0
    with unit_of_work(engine) as session:
        row = session.execute(select(Outbox)).scalar_one()
    assert row.status == "pending" and row.next_attempt_at >= clock.now() + timedelta(minutes=10)


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        (
            TO_USER,
            Answer(403, {"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "too fast"}),
        ),
        (TO_USER, Answer(429, {}, {"Retry-After": "7"})),
        (TO_USER, Answer(body={"processQueryKey": "p", "flowControlledStaffIdList": ["wangwu"]})),
    ],
)
def test_dingtalks_throttling_answers_become_waits(
    api: FakeDingTalk, path: str, answer: Answer
) -> None:
    api.fail(path, answer)
    with pytest.raises(RateLimited) as raised:
        asyncio.run(make_sender(api).send(Target(kind="member", key="wangwu"), Reply(text="x")))
    assert raised.value.retry_after == (7 if answer.status == 429 else raised.value.retry_after)


def test_refusals_become_the_outbox_errors(api: FakeDingTalk) -> None:
    api.fail(TO_USER, Answer(body={"processQueryKey": "p", "invalidStaffIdList": ["nobody"]}))
    with pytest.raises(TargetGone):
        asyncio.run(make_sender(api).send(Target(kind="member", key="nobody"), Reply(text="x")))
    api.fail(CUSTOM, Answer(body={"errcode": 310000, "errmsg": "sign not match"}))
    with pytest.raises(AuthBroken):
        asyncio.run(make_sender(api).send(Target(kind="channel", key="robot"), Reply(text="x")))


def test_the_token_is_fetched_once_refreshed_before_expiry_and_when_refused(
    api: FakeDingTalk,
) -> None:
    now = [1000.0]
    sender = make_sender(api, now=now)
    member = Target(kind="member", key="wangwu")

    async def sends() -> None:
        for n in range(3):
            await sender.send(member, Reply(text=f"m{n}"))
        assert len(api.at(TOKEN)) == 1
        now[0] += 7200 - 299  # inside the last five minutes of its two hours
        await sender.send(member, Reply(text="later"))
        assert len(api.at(TOKEN)) == 2
        api.issued.clear()  # DingTalk revoked it
        await sender.send(member, Reply(text="after revocation"))
        assert len(api.at(TOKEN)) == 3

    asyncio.run(sends())
    headers = [r.headers["x-acs-dingtalk-access-token"] for r in api.at(TO_USER)]
    assert headers == ["TOKEN-1"] * 3 + ["TOKEN-2", "TOKEN-2", "TOKEN-3"]


def test_update_replaces_a_cards_content(api: FakeDingTalk) -> None:
    sender = make_sender(api)
    ref = asyncio.run(
        sender.send(
            Target(kind="channel", key=GROUP),
            Reply(text="Q7 待审批", buttons=[{"label": "同意", "command": "/审批 同意 Q7"}]),
        )
    )
    assert ref.startswith("card|")
    asyncio.run(sender.update(ref, Reply(text="✅ Q7 已由 李经理 同意", settles=True)))
    [update] = api.at(CARD_UPDATE)
    assert update.json["cardBizId"] == ref.partition("|")[2]
    assert card_buttons(json.loads(update.json["cardData"])) == []


def test_a_command_whose_receiver_died_is_answered_in_its_conversation(
    dingtalk: DingTalkHarness,
) -> None:
    """The inbox answers kept commands another process received: through the sessionWebhook while
    it lasts, then through the robot API."""
    answer_to = {
        "user": "zhangsan",
        "chat": GROUP,
        "webhook": f"{dingtalk.api.url}{SESSION}?session=s-kept",
        "expires": now_ms() + 60_000,
        "card": None,
    }
    asyncio.run(
        dingtalk.adapter.answer_later(
            answer_to, Reply(text="✅ L1 华为技术"), timedelta(seconds=40)
        )
    )
    [kept] = [r.json for r in dingtalk.api.at(SESSION)]
    assert "L1 华为技术" in kept["markdown"]["text"]
    expired = {**answer_to, "expires": now_ms() - 1}
    asyncio.run(
        dingtalk.adapter.answer_later(expired, Reply(text="✅ L2 腾讯"), timedelta(hours=2))
    )
    [late] = [r.json for r in dingtalk.api.at(TO_GROUP)]
    assert late["openConversationId"] == GROUP and "L2 腾讯" in json.loads(late["msgParam"])["text"]


def test_the_webhook_setting_takes_the_url_dingtalk_shows_or_the_token() -> None:
    url = "https://oapi.dingtalk.com/robot/send?access_token=abc123"
    assert webhook_token(url) == webhook_token("abc123") == "abc123"


def test_dealbot_run_picks_dingtalk_up_when_configured(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"DINGTALK_CLIENT_ID": CLIENT_ID, "DINGTALK_CLIENT_SECRET": SECRET}
    )
    bot = build(settings, database_url=f"sqlite:///{tmp_path / 'run.db'}")
    assert "dingtalk" in settings.platforms and "dingtalk" in bot.senders
    assert bot.inbox is not None and "dingtalk" in bot.inbox.answerers
    paths = [route.path for route in create_app(bot).routes]
    assert "/dingtalk/callback" in paths


def test_dealbot_registers_the_card_callback_url(
    api: FakeDingTalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    for name, value in {
        "DINGTALK_CLIENT_ID": CLIENT_ID,
        "DINGTALK_CLIENT_SECRET": SECRET,
        "DINGTALK_API_URL": api.url,
    }.items():
        monkeypatch.setenv(name, value)
    done = CliRunner().invoke(
        app, ["dingtalk", "register-card-callback", "https://bot.example/dingtalk/callback"]
    )
    assert done.exit_code == 0, done.output
    [register] = api.at("/v1.0/card/callbacks/register")
    assert register.json == {
        "callbackRouteKey": CLIENT_ID,
        "callbackUrl": "https://bot.example/dingtalk/callback",
        "forceUpdate": True,
    }
    assert register.headers["x-acs-dingtalk-access-token"] == "TOKEN-1"


def test_stream_mode_receives_over_the_sdks_websocket_acknowledges_and_answers(
    dingtalk: DingTalkHarness,
) -> None:
    """The official SDK's client against a local gateway: the connection is opened with the app's
    credentials at DINGTALK_API_URL, a robot message arrives as a CALLBACK frame, is acknowledged
    on the socket, and answered through its sessionWebhook."""
    from websockets.asyncio.server import ServerConnection, serve

    message = dingtalk.message("zhangsan", "线索 列表")
    frame = {
        "specVersion": "1.0",
        "type": "CALLBACK",
        "headers": {
            "topic": "/v1.0/im/bot/messages/get",
            "messageId": "frame-1",
            "time": str(now_ms()),
            "contentType": "application/json",
            "appId": "app-1",
        },
        "data": json.dumps(message, ensure_ascii=False),
    }

    async def scenario() -> dict[str, Any]:
        acked: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def gateway(connection: ServerConnection) -> None:
            await connection.send(json.dumps(frame, ensure_ascii=False))
            answer = json.loads(await connection.recv())
            if not acked.done():
                acked.set_result(answer)
            await connection.wait_closed()

        async with serve(gateway, "127.0.0.1", 0) as server:
            dingtalk.api.gateway = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/connect"
            await dingtalk.adapter.start_stream()
            try:
                ack = await asyncio.wait_for(acked, 10)
                await asyncio.to_thread(dingtalk.wait_let_go, 1)  # answered, and let go of
            finally:
                await dingtalk.adapter.stop_stream()
        return ack

    ack = asyncio.run(scenario())
    assert ack["code"] == 200 and ack["headers"]["messageId"] == "frame-1"
    [opened] = dingtalk.api.at(GATEWAY)
    assert opened.json["clientId"] == CLIENT_ID
    assert {s["topic"] for s in opened.json["subscriptions"]} == {
        "/v1.0/im/bot/messages/get",
        "/v1.0/card/instances/callback",
    }
    [answer] = dingtalk.session_posts("zhangsan")
    assert "团队线索" in answer["markdown"]["title"]
