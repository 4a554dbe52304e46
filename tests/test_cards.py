"""Every card tells the truth: once a quote or a transfer request is decided, withdrawn or closed,
every message the bot sent about it (the approvers' cards, a delegate's copy) is edited through the
outbox — the outcome, who decided, no buttons — and a later click on one changes nothing. Cards of a
quote that needs several signatures show who has signed so far. Slack, Telegram and WeCom through
their real HTTP entry points and fake platform APIs, Feishu and DingTalk too; a click in Slack's App
Home is answered."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.base import Target, Unchangeable
from commands.types import Reply
from models.clock import FixedClock
from models.db import unit_of_work
from models.outbox import enqueue
from models.tables import AuditEvent, Outbox, Quote, Team
from reminders.outbox import OutboxDelivery
from tests.chat import Chat
from tests.fakes.http import Answer
from tests.fakes.telegram import arguments as bot_arguments
from tests.test_dingtalk import CARD_UPDATE as DINGTALK_CARD_UPDATE
from tests.test_dingtalk import DingTalkHarness, card_buttons, card_text
from tests.test_feishu import MESSAGES as FEISHU_MESSAGES
from tests.test_feishu import NAMES as FEISHU
from tests.test_feishu import FeishuHarness
from tests.test_feishu import shown as feishu_shown
from tests.test_slack import NAMES, SlackHarness, arguments, button_values, text_of
from tests.test_telegram import PEOPLE, TelegramHarness
from tests.test_wecom import UPDATE, WeComHarness, shown

PAYLOADS = Path(__file__).parent / "payloads" / "slack"


def quote_row(engine: Engine) -> tuple[str, int | None, int]:
    """Q1's status, who decided it, and how many decisions its history holds."""
    with unit_of_work(engine) as session:
        quote = session.execute(select(Quote).where(Quote.number == 1)).scalar_one()
        decisions = session.execute(
            select(func.count()).where(
                AuditEvent.entity == "quote",
                AuditEvent.entity_id == quote.id,
                AuditEvent.action.in_(["approve", "reject"]),  # type: ignore[attr-defined]
            )
        ).scalar_one()
        return quote.status, quote.decided_by_id, int(decisions)


# --- Slack ------------------------------------------------------------------------------------


def slack_team(slack: SlackHarness, *, two_signatures: bool = False) -> None:
    """alice (admin) asks for Q1; bob and carol (managers) are asked; bob hands his approvals to
    dan while he is away, so dan gets a copy of the card too."""
    slack.say("U1", "/team", "config locale=en")
    for user in ("U2", "U3", "U4"):
        slack.say(user, "/help", "")
    slack.say("U1", "/team", "role <@U2|bob> manager")
    slack.say("U1", "/team", "role <@U3|carol> manager")
    if two_signatures:
        slack.say("U1", "/team", "config approval_levels=2*manager")
    slack.say("U1", "/lead", "add Acme Trading value=120k")
    asked = slack.say("U1", "/quote", "L1 80k")
    assert "bob, carol" in asked["text"], asked["text"]
    if not two_signatures:
        slack.say("U2", "/team", "delegate <@U4|dan> until=2026-12-20")
    slack.deliver()


def slack_cards(slack: SlackHarness) -> dict[str, dict[str, Any]]:
    """The card each DM got, by channel: its arguments, with the ts Slack gave it."""
    cards = {}
    for request in slack.api.calls("chat.postMessage"):
        args = arguments(request)
        if "/quote approve Q1" in button_values(args):
            cards[args["channel"]] = args
    return cards


def slack_edits(slack: SlackHarness) -> dict[str, dict[str, Any]]:
    """The last chat.update of each channel."""
    return {arguments(r)["channel"]: arguments(r) for r in slack.api.calls("chat.update")}


def posted_ts(slack: SlackHarness, channel: str) -> list[str]:
    """The ts the fake gave each chat.postMessage to `channel`, in order."""
    stamps = []
    for number, request in enumerate(slack.api.calls("chat.postMessage"), start=1):
        if arguments(request).get("channel") == channel:
            stamps.append(f"1700000000.{number:06d}")
    return stamps


def test_slack_an_approval_by_button_edits_the_other_cards(slack: SlackHarness) -> None:
    slack_team(slack)
    cards = slack_cards(slack)
    assert set(cards) == {"DU2", "DU3", "DU4"}  # bob, carol, and dan as bob's delegate
    assert slack.click("U3", "/quote approve Q1", channel="DU3").status_code == 200
    assert "Q1 approved by carol" in slack.next_response()["text"]
    slack.deliver()
    edits = slack_edits(slack)
    for channel in ("DU2", "DU4"):
        edit = edits[channel]
        assert edit["ts"] in posted_ts(slack, channel)
        assert "Q1 approved by carol" in edit["text"]
        assert button_values(edit) == []  # nothing left to press
        assert "Acme Trading" in text_of(edit)  # still says what it was about
    before = quote_row(slack.engine)
    assert before[0] == "approved"
    # A click on a card opened before the edit reached it changes nothing.
    assert slack.click("U2", "/quote approve Q1", channel="DU2").status_code == 200
    assert "already approved by carol" in slack.next_response()["text"]
    assert quote_row(slack.engine) == before
    slack.deliver()
    assert len(slack.api.calls("chat.update")) == len(edits)  # each card edited once


def test_slack_closing_the_lead_edits_the_quote_and_transfer_cards(slack: SlackHarness) -> None:
    slack_team(slack)
    transfer = slack.say("U3", "/lead", "transfer L1 I met them at the fair")
    assert "Asked alice" in transfer["text"]
    slack.deliver()
    [request_card] = [
        arguments(r)
        for r in slack.api.calls("chat.postMessage")
        if arguments(r)["channel"] == "DU1" and "asks for L1" in arguments(r)["text"]
    ]
    assert "/lead transfer approve L1" in button_values(request_card)
    slack.say("U1", "/lead", "lost L1 went with a competitor")
    slack.deliver()
    edits = slack_edits(slack)
    for channel in ("DU2", "DU3", "DU4"):
        assert "Q1 withdrawn" in edits[channel]["text"] and button_values(edits[channel]) == []
    assert "request for L1 Acme Trading is closed" in edits["DU1"]["text"]
    assert button_values(edits["DU1"]) == []
    assert slack.click("U2", "/quote approve Q1", channel="DU2").status_code == 200
    assert "withdrawn" in slack.next_response()["text"]
    assert quote_row(slack.engine)[0] == "withdrawn"


def test_slack_two_signatures_show_progress_on_every_card(slack: SlackHarness) -> None:
    slack_team(slack, two_signatures=True)
    assert set(slack_cards(slack)) == {"DU2", "DU3"}
    assert slack.click("U2", "/quote approve Q1", channel="DU2").status_code == 200
    slack.next_response()
    slack.deliver()
    carol = slack_edits(slack)["DU3"]
    assert "1 of 2 managers: bob ✔" in carol["text"]
    assert "/quote approve Q1" in button_values(carol)  # carol still has to sign
    bob = slack_edits(slack)["DU2"]
    assert "1 of 2 managers: bob ✔" in bob["text"] and button_values(bob) == []
    assert slack.click("U3", "/quote approve Q1", channel="DU3").status_code == 200
    slack.next_response()
    slack.deliver()
    bob = slack_edits(slack)["DU2"]
    assert "Q1 approved by carol" in bob["text"] and button_values(bob) == []


def home_click(slack: SlackHarness, user: str, command: str, surface: str) -> None:
    """A click in the App Home or a modal: block_actions with a view and no response_url."""
    payload = json.loads((PAYLOADS / f"block_actions_{surface}.json").read_text())
    payload["user"].update(id=user, name=NAMES[user], username=NAMES[user])
    payload["actions"][0]["value"] = command
    payload["trigger_id"] = f"trigger-{time.monotonic_ns()}"
    body = urlencode({"payload": json.dumps(payload)}).encode()
    assert slack.post(body, "application/x-www-form-urlencoded").status_code == 200


def test_slack_a_click_in_the_app_home_refreshes_it_and_answers_in_the_dm(
    slack: SlackHarness,
) -> None:
    slack_team(slack)
    home_click(slack, "U3", "/quote approve Q1", "home")
    slack.api.wait_for(lambda requests: any(r.name == "views.publish" for r in requests))
    told = slack.api.wait_for(
        lambda requests: any(
            r.name == "chat.postMessage"
            and arguments(r)["channel"] == "DU3"
            and "Q1 approved by carol" in arguments(r)["text"]
            for r in requests
        )
    )
    [home] = [arguments(r) for r in told if r.name == "views.publish"]
    view = home["view"] if isinstance(home["view"], dict) else json.loads(home["view"])
    assert home["user_id"] == "U3" and view["type"] == "home"
    assert quote_row(slack.engine)[0] == "approved"


def test_slack_a_click_in_a_modal_updates_it_and_answers_in_the_dm(slack: SlackHarness) -> None:
    slack_team(slack)
    home_click(slack, "U2", "/quote approve Q1", "modal")
    requests = slack.api.wait_for(
        lambda requests: (
            any(r.name == "views.update" for r in requests)
            and any(
                arguments(r).get("channel") == "DU2"
                and "approved by bob" in arguments(r).get("text", "")
                for r in requests
                if r.name == "chat.postMessage"
            )
        )
    )
    [modal] = [arguments(r) for r in requests if r.name == "views.update"]
    assert modal["view_id"] == "V0MODAL01" and "approved by bob" in json.dumps(modal["view"])


# --- Telegram ---------------------------------------------------------------------------------


def private(who: str) -> dict[str, Any]:
    return {"id": PEOPLE[who]["id"], "type": "private", "first_name": PEOPLE[who]["first_name"]}


def telegram_team(telegram: TelegramHarness) -> dict[str, int]:
    """As on Slack, in a group: Bob and Carol are asked, Dan stands in for Bob. Each card's
    message id, by person."""
    telegram.say("alice", "/team config locale=en")
    for who in ("bob", "carol", "dan"):
        telegram.say(who, "/help")
    telegram.say("alice", "/team role @bob_li manager")
    telegram.say("alice", "/team role @carol_z manager")
    telegram.say("alice", "/lead add Acme Trading value=120k")
    assert "Bob, Carol" in telegram.say("alice", "/quote L1 80k")
    telegram.say("bob", "/team delegate @dan_k until=2026-12-20")
    telegram.deliver()
    return telegram_cards(telegram, "Acme Trading")


def telegram_cards(telegram: TelegramHarness, text: str) -> dict[str, int]:
    ids = {}
    for request in telegram.api.calls("sendMessage"):
        args = bot_arguments(request)
        people = [name for name, person in PEOPLE.items() if person["id"] == int(args["chat_id"])]
        if text in str(args["text"]) and markup_of(args) and people:
            ids[people[0]] = telegram_message_id(telegram, request)
    return ids


def telegram_approve(telegram: TelegramHarness, who: str) -> str:
    """The approve button's callback data on the card `who` got (sealed with its team)."""
    for request in telegram.api.calls("sendMessage"):
        args = bot_arguments(request)
        if int(args["chat_id"]) == PEOPLE[who]["id"]:
            for button in markup_of(args):
                if "approve" in button.get("callback_data", ""):
                    return str(button["callback_data"])
    raise AssertionError(f"no approve button was sent to {who}")


def telegram_message_id(telegram: TelegramHarness, wanted: Any) -> int:
    """The message id the fake gave a send (it counts every send and edit from 5001)."""
    sends = [
        r
        for r in telegram.api.requests
        if r.name in ("sendMessage", "sendPhoto", "editMessageText")
    ]
    return 5001 + next(index for index, request in enumerate(sends) if request is wanted)


def telegram_edits(telegram: TelegramHarness) -> dict[int, dict[str, Any]]:
    return {
        int(bot_arguments(r)["chat_id"]): bot_arguments(r)
        for r in telegram.api.calls("editMessageText")
    }


def markup_of(args: dict[str, Any]) -> list[Any]:
    markup = args.get("reply_markup")
    if not markup:
        return []
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return [button for row in markup["inline_keyboard"] for button in row]


def test_telegram_an_approval_by_button_edits_the_other_cards(telegram: TelegramHarness) -> None:
    cards = telegram_team(telegram)
    assert set(cards) == {"bob", "carol", "dan"}
    approve = telegram_approve(telegram, "carol")
    assert telegram.press("carol", approve, chat=private("carol")).status_code == 200
    assert quote_row(telegram.engine)[0] == "approved"
    telegram.deliver()
    edits = telegram_edits(telegram)
    for who in ("bob", "dan"):
        edit = edits[PEOPLE[who]["id"]]
        assert int(edit["message_id"]) == cards[who]
        assert "Q1 approved by Carol" in edit["text"] and markup_of(edit) == []
    before = quote_row(telegram.engine)
    assert (
        telegram.press("bob", telegram_approve(telegram, "bob"), chat=private("bob")).status_code
        == 200
    )
    answered = [bot_arguments(r) for r in telegram.api.calls("answerCallbackQuery")][-1]
    assert "already approved by Carol" in answered["text"]
    assert quote_row(telegram.engine) == before


def test_telegram_closing_the_lead_edits_the_quote_and_transfer_cards(
    telegram: TelegramHarness,
) -> None:
    cards = telegram_team(telegram)
    telegram.say("carol", "/lead transfer L1 I met them at the fair")
    telegram.deliver()
    [asked] = telegram_cards(telegram, "asks for L1").values()
    telegram.say("alice", "/lead lost L1 went with a competitor")
    telegram.deliver()
    edits = telegram_edits(telegram)
    for who in ("bob", "carol", "dan"):
        edit = edits[PEOPLE[who]["id"]]
        assert int(edit["message_id"]) in (cards[who], asked) and markup_of(edit) == []
    alice = edits[PEOPLE["alice"]["id"]]
    assert (
        int(alice["message_id"]) == asked and "closed" in alice["text"] and markup_of(alice) == []
    )
    assert "Q1 withdrawn" in edits[PEOPLE["bob"]["id"]]["text"]


def test_telegram_a_card_too_old_to_edit_is_left_alone(telegram: TelegramHarness) -> None:
    telegram_team(telegram)
    telegram.press("carol", telegram_approve(telegram, "carol"), chat=private("carol"))
    assert quote_row(telegram.engine)[0] == "approved"
    refused = Answer(
        status=400,
        body={
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: message can't be edited",
        },
    )
    telegram.api.failures["editMessageText"] = refused
    report = asyncio.run(
        OutboxDelivery(telegram.engine, telegram.bot.senders, telegram.clock).run_once()
    )
    assert report.dropped == 1 and report.dead == 0 and report.retried == 0
    with unit_of_work(telegram.engine) as session:
        dropped = session.execute(select(Outbox).where(Outbox.status == "dropped")).scalar_one()
    assert dropped.kind == "edit" and "can't be edited" in (dropped.last_error or "")
    calls = len(telegram.api.calls("editMessageText"))
    telegram.clock.advance(hours=2)
    telegram.deliver()
    assert len(telegram.api.calls("editMessageText")) == calls  # not tried again


# --- WeCom ------------------------------------------------------------------------------------


def wecom_team(wecom: WeComHarness) -> dict[str, dict[str, Any]]:
    """张三 (admin) asks for Q1; 李经理 and 王五 (managers) are asked; 李经理 hands his approvals to
    messense. Each card's message/send body with the response_code WeCom answered."""
    wecom.say("zhangsan", "/帮助")
    for user in ("lijingli", "wangwu", "messense"):
        wecom.say(user, "/帮助")
    wecom.say("zhangsan", "/团队 角色 @lijingli 经理")
    wecom.say("zhangsan", "/团队 角色 @wangwu 经理")
    wecom.say("zhangsan", "/线索 新建 华为技术 预计=12.5万")
    assert "李经理" in shown(wecom.say("zhangsan", "/报价 L1 8万"))
    wecom.say("lijingli", "/团队 代理 @messense 至=2026-12-20")
    wecom.deliver()
    return {
        user: wecom.message_to(user, "Q1 · 华为技术", msgtype="template_card")
        for user in ("lijingli", "wangwu", "messense")
    }


def wecom_codes(wecom: WeComHarness) -> dict[str, str]:
    """The response_code WeCom answered each approval card with, by user, as the outbox kept it."""
    with unit_of_work(wecom.engine) as session:
        refs = session.execute(
            select(Outbox.message_ref).where(Outbox.kind == "approval")
        ).scalars()
        return {ref.split("|")[1]: ref.split("|")[2] for ref in refs if ref}


def test_wecom_an_approval_by_button_closes_the_other_cards(wecom: WeComHarness) -> None:
    cards = wecom_team(wecom)
    sent_codes = wecom_codes(wecom)
    assert all(code.startswith("RC-") for code in sent_codes.values())
    card = cards["wangwu"]["template_card"]
    click = wecom.click(
        "wangwu", "/审批 同意 Q1", task_id=card["task_id"], response_code="RC-click"
    )
    assert wecom.post_xml(click).status_code == 200
    wecom.api.wait_for(
        lambda rs: any(r.path == UPDATE and r.json["response_code"] == "RC-click" for r in rs)
    )
    wecom.deliver()
    updates = {
        r.json["userids"][0]: r.json
        for r in wecom.api.at(UPDATE)
        if r.json["response_code"] != "RC-click"
    }
    for user in ("lijingli", "messense"):
        assert updates[user]["response_code"] == sent_codes[user]
        assert "Q1 已由 王五 同意" in updates[user]["button"]["replace_name"]
    before = quote_row(wecom.engine)
    late = wecom.click(
        "lijingli",
        "/审批 同意 Q1",
        task_id=cards["lijingli"]["template_card"]["task_id"],
        response_code="RC-late",
    )
    assert wecom.post_xml(late).status_code == 200
    assert "Q1 已于 09:00 被 王五同意" in shown(wecom.message_to("lijingli", "Q1 已于"))
    assert quote_row(wecom.engine) == before
    assert not [r for r in wecom.api.at(UPDATE) if r.json["response_code"] == "RC-late"]


# --- the outbox's edits -----------------------------------------------------------------------


def test_an_edit_waits_for_its_message_and_gives_way_to_a_newer_one(
    engine: Engine, clock: FixedClock
) -> None:
    chat = Chat(engine, clock)
    with unit_of_work(engine) as session:
        team = Team(platform="console", key="acme", config={}, created_at=clock.now())
        session.add(team)
        session.flush()
        enqueue(
            session,
            team=team,
            kind="approval",
            dedupe_key="card",
            channel="sales",
            payload={
                "text": "🧾 Q7",
                "buttons": [{"label": "Approve", "command": "/quote approve Q7"}],
            },
            now=clock.now(),
            about=["quote:7"],
        )
        card = session.execute(select(Outbox)).scalar_one()
        from models.outbox import revise

        first = revise(
            session,
            card,
            payload={"text": "☑ Q7 · 1 of 2"},
            state="1",
            now=clock.now(),
            only_subject=True,
            closed=False,
        )
        second = revise(
            session,
            card,
            payload={"text": "✅ Q7 approved by carol · 09:00"},
            state="2",
            now=clock.now(),
            only_subject=True,
            closed=False,
        )
        again = revise(
            session,
            card,
            payload={"text": "✅ Q7 approved by carol · 09:00"},
            state="2",
            now=clock.now(),
            only_subject=True,
            closed=False,
        )
    assert (first, second, again) == ("edit", "edit", "known")
    chat.deliver()
    assert chat.lines == [
        "→ sales: 🧾 Q7\n  [Approve → /quote approve Q7]",
        "↻ sales: ✅ Q7 approved by carol · 09:00",
    ]
    with unit_of_work(engine) as session:
        statuses = sorted(session.execute(select(Outbox.kind, Outbox.status)).all())
    assert statuses == [("approval", "sent"), ("edit", "dropped"), ("edit", "sent")]


# --- console: a reminder about several quotes -------------------------------------------------


def test_a_reminder_about_two_quotes_loses_only_the_decided_ones_buttons(team: Chat) -> None:
    from tests.test_teamwork_approvals import run_worker

    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    chat.say("/quote L1 90k")
    chat.clock.advance(hours=6)
    run_worker(chat)
    [reminder] = [push for push in chat.pushes("bob") if "Approvals waiting for you (2)" in push]
    assert "/quote approve Q1" in reminder and "/quote approve Q2" in reminder
    chat.clock.advance(minutes=2)
    chat.say("[bob] /quote approve Q1")
    edits = [line for line in chat.lines if line.startswith("↻ bob: ✅ Q1 approved by bob")]
    assert len(edits) == 2  # the card, and the reminder
    [edited] = [edit for edit in edits if "Approvals waiting" in edit]
    assert "/quote approve Q1" not in edited and "/quote approve Q2" in edited


def test_wecom_closing_the_lead_closes_the_quote_and_transfer_cards(wecom: WeComHarness) -> None:
    wecom_team(wecom)
    assert wecom.post_xml(wecom.text("messense", "/线索 转移 L1 我认识他们")).status_code == 200
    wecom.message_to("messense", "已请 张三")
    wecom.deliver()
    wecom.message_to("zhangsan", "申请接手", msgtype="template_card")
    codes = {
        ref.split("|")[1]: ref.split("|")[2]
        for ref in outbox_refs(wecom.engine, ("approval", "transfer"))
    }
    assert wecom.post_xml(wecom.text("zhangsan", "/线索 输单 L1 预算取消")).status_code == 200
    wecom.message_to("zhangsan", "已输单")
    wecom.deliver()
    updates = {
        r.json["response_code"]: r.json["button"]["replace_name"] for r in wecom.api.at(UPDATE)
    }
    for user in ("lijingli", "wangwu", "messense"):
        assert "Q1 已撤回" in updates[codes[user]]
    assert "转移申请已关闭" in updates[codes["zhangsan"]]
    late = wecom.click("wangwu", "/审批 同意 Q1", task_id="t-late", response_code="RC-late")
    assert wecom.post_xml(late).status_code == 200
    wecom.message_to("wangwu", "无需审批")
    assert quote_row(wecom.engine)[0] == "withdrawn"


def outbox_refs(engine: Engine, kinds: tuple[str, ...]) -> list[str]:
    with unit_of_work(engine) as session:
        query = select(Outbox.message_ref).where(Outbox.kind.in_(kinds))  # type: ignore[attr-defined]
        return [ref for ref in session.execute(query).scalars() if ref]


# --- Feishu -----------------------------------------------------------------------------------


def feishu_team(feishu: FeishuHarness, *, two_signatures: bool = False) -> dict[str, str]:
    """张三 (admin) asks for Q1; 李经理 and 王五 (managers) are asked. The message id Feishu gave
    each card, by open_id."""
    for user in ("ou_zhangsan", "ou_lijingli", "ou_wangwu"):
        feishu.say(user, "/帮助")
    for user in ("ou_lijingli", "ou_wangwu"):
        feishu.say(
            "ou_zhangsan", "/团队 角色 @_user_1 经理", mentions={"@_user_1": (user, FEISHU[user])}
        )
    if two_signatures:
        feishu.say("ou_zhangsan", "/团队 设置 approval_levels=2*manager")
    feishu.say("ou_zhangsan", "/线索 新建 华为技术 预计=12.5万")
    asked = feishu_shown(feishu.say("ou_zhangsan", "/报价 L1 8万"))
    assert "李经理" in asked and "王五" in asked, asked
    feishu.deliver()
    cards = {}
    for request, message_id in feishu.api.message_ids:
        body = request.json or {}
        if body.get("msg_type") == "interactive" and "/审批 同意 Q1" in body["content"]:
            cards[body["receive_id"]] = message_id
    return cards


def feishu_edits(feishu: FeishuHarness) -> dict[str, dict[str, Any]]:
    """The last PATCH of each message, by message id, its card decoded."""
    return {
        r.path.rsplit("/", 1)[-1]: json.loads((r.json or {})["content"])
        for r in list(feishu.api.requests)
        if r.method == "PATCH" and r.path.startswith(FEISHU_MESSAGES + "/")
    }


def feishu_card_text(card: dict[str, Any]) -> tuple[str, list[str]]:
    """A card's markdown, and the commands of its buttons."""
    return feishu_shown({"msg_type": "interactive", "content": card}), [
        action["value"]["command"]
        for element in card["elements"]
        for action in element.get("actions", [])
    ]


def test_feishu_an_approval_by_button_edits_the_other_card(feishu: FeishuHarness) -> None:
    cards = feishu_team(feishu)
    assert set(cards) == {"ou_lijingli", "ou_wangwu"}
    click = feishu.click("ou_wangwu", "/审批 同意 Q1", message_id=cards["ou_wangwu"])
    assert feishu.post(click).json() == {}
    feishu.api.wait_for(lambda rs: any(r.method == "PATCH" for r in rs))  # the clicked card
    assert quote_row(feishu.engine)[0] == "approved"
    feishu.deliver()
    edited, buttons = feishu_card_text(feishu_edits(feishu)[cards["ou_lijingli"]])
    assert "Q1 已由 王五 同意" in edited and "华为技术" in edited
    assert buttons == []  # nothing left to press
    before, patches = quote_row(feishu.engine), feishu_patches(feishu)
    # A click on the card before the edit reached it changes nothing, and is told so.
    late = feishu.click("ou_lijingli", "/审批 同意 Q1", message_id=cards["ou_lijingli"])
    assert feishu.post(late).json() == {}
    feishu.api.wait_for(
        lambda _: any("王五同意" in feishu_shown(m) for m in feishu.api.sent("ou_lijingli", "text"))
    )
    assert quote_row(feishu.engine) == before
    feishu.deliver()
    assert feishu_patches(feishu) == patches


def feishu_patches(feishu: FeishuHarness) -> int:
    return len([r for r in list(feishu.api.requests) if r.method == "PATCH"])


def test_feishu_two_signatures_keep_the_buttons_of_who_has_yet_to_sign(
    feishu: FeishuHarness,
) -> None:
    cards = feishu_team(feishu, two_signatures=True)
    click = feishu.click("ou_lijingli", "/审批 同意 Q1", message_id=cards["ou_lijingli"])
    assert feishu.post(click).json() == {}
    feishu.api.wait_for(lambda _: feishu_patches(feishu) > 0)  # the clicked card
    feishu.deliver()
    edited, buttons = feishu_card_text(feishu_edits(feishu)[cards["ou_wangwu"]])
    assert "李经理 ✔" in edited and "/审批 同意 Q1" in buttons  # 王五 still has to sign
    edited, buttons = feishu_card_text(feishu_edits(feishu)[cards["ou_lijingli"]])
    assert "李经理 ✔" in edited and buttons == []


def test_feishu_a_text_message_is_not_edited(feishu: FeishuHarness) -> None:
    sender = feishu.adapter.sender()
    ref = asyncio.run(sender.send(Target(kind="member", key="ou_wangwu"), Reply(text="Q1")))
    with pytest.raises(Unchangeable):
        asyncio.run(sender.update(ref, Reply(text="✅ Q1")))
    assert not [r for r in feishu.api.requests if r.method == "PATCH"]


# --- DingTalk ---------------------------------------------------------------------------------


def dingtalk_team(
    dingtalk: DingTalkHarness, *, two_signatures: bool = False
) -> dict[str, dict[str, Any]]:
    """As on Feishu: 张三 asks, 李经理 and 王五 are asked. Each card as sent, by staffId."""
    for user in ("zhangsan", "lijingli", "wangwu"):
        dingtalk.say(user, "/帮助")
    dingtalk.say("zhangsan", "/团队 角色 @李经理 经理", at=("lijingli",))
    dingtalk.say("zhangsan", "/团队 角色 @王五 经理", at=("wangwu",))
    if two_signatures:
        dingtalk.say("zhangsan", "/团队 设置 approval_levels=2*manager")
    dingtalk.say("zhangsan", "/线索 新建 华为技术 预计=12.5万")
    dingtalk.say("zhangsan", "/报价 L1 8万")
    dingtalk.deliver()
    return {
        user: card
        for user in ("lijingli", "wangwu")
        for card in dingtalk.api.to(user)
        if card["msgKey"] == "card" and "/审批 同意 Q1" in card_buttons(card)
    }


def dingtalk_edits(dingtalk: DingTalkHarness) -> dict[str, dict[str, Any]]:
    """The last PUT of each card, by cardBizId, its data decoded."""
    return {
        (r.json or {})["cardBizId"]: json.loads((r.json or {})["cardData"])
        for r in dingtalk.api.at(DINGTALK_CARD_UPDATE)
        if r.method == "PUT"
    }


def test_dingtalk_an_approval_by_button_edits_the_other_card(dingtalk: DingTalkHarness) -> None:
    cards = dingtalk_team(dingtalk)
    assert set(cards) == {"lijingli", "wangwu"}
    clicked, other = cards["wangwu"]["cardBizId"], cards["lijingli"]["cardBizId"]
    assert dingtalk.post(dingtalk.click("wangwu", "/审批 同意 Q1", clicked)).status_code == 200
    dingtalk.api.wait_for(lambda _: clicked in dingtalk_edits(dingtalk))
    assert quote_row(dingtalk.engine)[0] == "approved"
    dingtalk.deliver()
    edit = dingtalk_edits(dingtalk)[other]
    assert "Q1 已由 王五 同意" in card_text(edit) and "华为技术" in card_text(edit)
    assert card_buttons(edit) == []  # nothing left to press
    before, puts = quote_row(dingtalk.engine), len(dingtalk.api.at(DINGTALK_CARD_UPDATE))
    # A click on the card before the edit reached it changes nothing, and is told so.
    assert dingtalk.post(dingtalk.click("lijingli", "/审批 同意 Q1", other)).status_code == 200
    dingtalk.api.wait_for(
        lambda _: any("王五同意" in m.get("text", "") for m in dingtalk.api.to("lijingli"))
    )
    assert quote_row(dingtalk.engine) == before
    dingtalk.deliver()
    assert len(dingtalk.api.at(DINGTALK_CARD_UPDATE)) == puts


def test_dingtalk_two_signatures_keep_the_buttons_of_who_has_yet_to_sign(
    dingtalk: DingTalkHarness,
) -> None:
    cards = dingtalk_team(dingtalk, two_signatures=True)
    clicked, other = cards["lijingli"]["cardBizId"], cards["wangwu"]["cardBizId"]
    assert dingtalk.post(dingtalk.click("lijingli", "/审批 同意 Q1", clicked)).status_code == 200
    dingtalk.api.wait_for(lambda _: clicked in dingtalk_edits(dingtalk))
    dingtalk.deliver()
    edit = dingtalk_edits(dingtalk)[other]
    assert "李经理 ✔" in card_text(edit) and "/审批 同意 Q1" in card_buttons(edit)
    edit = dingtalk_edits(dingtalk)[clicked]
    assert "李经理 ✔" in card_text(edit) and card_buttons(edit) == []
    assert quote_row(dingtalk.engine)[0] == "pending"


def test_dingtalk_closing_the_lead_edits_the_quote_cards(dingtalk: DingTalkHarness) -> None:
    cards = dingtalk_team(dingtalk)
    dingtalk.say("zhangsan", "/线索 输单 L1 预算取消")
    dingtalk.deliver()
    edits = dingtalk_edits(dingtalk)
    for user in ("lijingli", "wangwu"):
        edit = edits[cards[user]["cardBizId"]]
        assert "Q1 已撤回" in card_text(edit) and card_buttons(edit) == []
    assert quote_row(dingtalk.engine)[0] == "withdrawn"


def test_dingtalk_a_markdown_message_is_not_edited(dingtalk: DingTalkHarness) -> None:
    sender = dingtalk.adapter.sender()
    ref = asyncio.run(sender.send(Target(kind="member", key="wangwu"), Reply(text="Q1")))
    with pytest.raises(Unchangeable):
        asyncio.run(sender.update(ref, Reply(text="✅ Q1")))
    assert not dingtalk.api.at(DINGTALK_CARD_UPDATE)


def test_feishu_a_card_too_old_to_edit_is_left_alone(feishu: FeishuHarness) -> None:
    cards = feishu_team(feishu)
    click = feishu.click("ou_wangwu", "/审批 同意 Q1", message_id=cards["ou_wangwu"])
    assert feishu.post(click).json() == {}
    feishu.api.wait_for(lambda _: feishu_patches(feishu) > 0)  # the clicked card
    too_old = Answer(
        status=400,
        body={"code": 230031, "msg": "Message can only be modified within 14 days after sending."},
    )
    feishu.api.fail(f"{FEISHU_MESSAGES}/{cards['ou_lijingli']}", too_old)
    asyncio.run(OutboxDelivery(feishu.engine, feishu.bot.senders, feishu.clock).run_once())
    with unit_of_work(feishu.engine) as session:
        edits = session.execute(select(Outbox).where(Outbox.kind == "edit")).scalars().all()
        dropped = [edit for edit in edits if edit.status == "dropped"]
    assert len(dropped) == 1 and "230031" in (dropped[0].last_error or "")
    assert all(edit.status in ("sent", "dropped") for edit in edits)  # none waits for a retry
    patches = feishu_patches(feishu)
    feishu.clock.advance(hours=2)
    feishu.deliver()
    assert feishu_patches(feishu) == patches  # not tried again
