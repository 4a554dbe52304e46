"""A rep replays the approve button of a manager's approval card (taken from a message sent to
someone else) on every platform: a button is only its command, run as the person who clicks, so the
rep is refused privately, the card is not touched and nothing changes."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.engine import Engine

from models.db import unit_of_work
from models.tables import Quote
from tests.attacks.conftest import domain, eventually, logged
from tests.test_slack import SlackHarness, arguments
from tests.test_slack import button_values as slack_buttons
from tests.test_telegram import PEOPLE, TelegramHarness
from tests.test_wecom import UPDATE, WeComHarness, shown


def _pending(engine: Engine) -> bool:
    with unit_of_work(engine) as session:
        return session.execute(select(Quote.status)).scalar_one() == "pending"


def test_slack_rep_clicking_the_managers_approve_button_is_refused(slack: SlackHarness) -> None:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U2", "/help", "")
    slack.say("U1", "/team", "role <@U2|bob> manager")
    slack.say("U3", "/lead", "add Acme Trading value=120k")
    slack.say("U3", "/quote", "L1 80k")
    slack.say("U4", "/help", "")
    slack.deliver()
    card = [
        arguments(r)
        for r in slack.api.calls("chat.postMessage")
        if arguments(r).get("channel") == "DU2"
    ][-1]
    [approve] = [value for value in slack_buttons(card) if "approve" in value]
    before, count = domain(slack.engine), logged(slack.engine)
    assert slack.click("U4", approve).status_code == 200
    refused = slack.next_response()
    eventually(lambda: logged(slack.engine) == count + 1)
    assert refused["response_type"] == "ephemeral" and not refused.get("replace_original")
    assert "Only managers and admins" in refused["text"]
    assert domain(slack.engine) == before and _pending(slack.engine)
    assert not slack.api.calls("chat.update")


def test_telegram_rep_pressing_the_managers_approve_button_is_refused(
    telegram: TelegramHarness,
) -> None:
    telegram.say("alice", "/team config locale=en")
    telegram.say("bob", "/help")
    telegram.say("alice", "/team role @bob_li manager")
    telegram.say("carol", "/lead add Acme value=120k")
    telegram.say("carol", "/quote L1 80k")
    telegram.say("dan", "/help")
    telegram.deliver()
    card = [m for m in telegram.api.sent() if int(m["chat_id"]) == PEOPLE["bob"]["id"]][-1]
    markup = card["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    [approve] = [
        button["callback_data"]
        for row in markup["inline_keyboard"]
        for button in row
        if "approve" in button.get("callback_data", "")
    ]
    before = domain(telegram.engine)
    assert telegram.press("dan", approve).status_code == 200
    alert = [arguments(r) for r in telegram.api.calls("answerCallbackQuery")][-1]
    assert str(alert.get("show_alert")).lower() == "true" and "Only managers" in alert["text"]
    assert not telegram.api.calls("editMessageText")
    assert domain(telegram.engine) == before and _pending(telegram.engine)


def test_wecom_rep_clicking_the_managers_card_with_its_response_code_is_refused(
    wecom: WeComHarness,
) -> None:
    wecom.say("zhangsan", "/帮助")
    wecom.say("lijingli", "/帮助")
    wecom.say("zhangsan", "/团队 角色 @lijingli 经理")
    wecom.say("wangwu", "/线索 新建 华为技术 预计=12.5万")
    wecom.say("wangwu", "/报价 L1 8万")
    wecom.say("messense", "/帮助")
    wecom.deliver()
    card = wecom.message_to("lijingli", "Q1 · 华为技术", msgtype="template_card")["template_card"]
    approve = card["button_list"][0]["key"]
    before = domain(wecom.engine)
    # The rep sends the manager's button key, with a response code lifted from another message.
    click = wecom.click("messense", approve, task_id=card["task_id"], response_code="RC-stolen")
    assert wecom.post_xml(click).status_code == 200
    told = wecom.message_to("messense", "只有经理")
    assert "Q1" in shown(told) or "审批" in shown(told)
    assert not wecom.api.at(UPDATE)
    assert domain(wecom.engine) == before and _pending(wecom.engine)
