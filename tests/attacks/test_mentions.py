"""Mention spoofing: text that looks like a mention but that the platform did not mark up names
nobody. Only mentions the adapter resolved from the platform's own markup count, so a hand-typed
`<@U2|boss>` on Slack, an `@username` on Telegram without a mention entity, or an `@userid` WeCom
does not know are answered "I don't know …" and change nothing."""

from __future__ import annotations

from tests.attacks.conftest import domain
from tests.test_slack import SlackHarness
from tests.test_telegram import TelegramHarness
from tests.test_wecom import WeComHarness, shown


def test_slack_hand_typed_mention_markup_names_nobody(slack: SlackHarness) -> None:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U2", "/help", "")
    slack.say("U3", "/help", "")
    slack.say("U1", "/lead", "add Acme")
    before = domain(slack.engine)
    # Slack escapes what people type: `<@U2|boss>` typed by hand arrives as `&lt;@U2|boss&gt;`.
    for text in ("assign L1 &lt;@U2|boss&gt;", "assign L1 &lt;@U3&gt;", "assign L1 @U2"):
        refused = slack.say("U1", "/lead", text)
        assert refused["response_type"] == "ephemeral" and "don't know" in refused["text"], text
    promoted = slack.say("U3", "/team", "role &lt;@U3|carol&gt; admin")
    assert promoted["response_type"] == "ephemeral"
    assert domain(slack.engine) == before


def test_telegram_at_text_without_a_mention_entity_names_nobody(telegram: TelegramHarness) -> None:
    telegram.say("alice", "/team config locale=en")
    telegram.say("bob", "/help")
    telegram.say("alice", "/lead add Acme")
    before = domain(telegram.engine)
    update = telegram.message("alice", "/team role @bob_li admin")
    update["message"]["entities"] = [
        e for e in update["message"]["entities"] if e["type"] != "mention"
    ]
    assert telegram.post(update).status_code == 200
    answer = telegram.api.sent()[-1]["text"]
    assert "know @bob_li" in answer
    # A mention entity that points elsewhere than the text it covers is not trusted either.
    update = telegram.message("alice", "/lead assign L1 @bob_li")
    update["message"]["entities"] = [
        {"offset": 0, "length": 5, "type": "bot_command"},
        {"offset": 0, "length": 5, "type": "mention"},
    ]
    assert telegram.post(update).status_code == 200
    assert "know @bob_li" in telegram.api.sent()[-1]["text"]
    assert domain(telegram.engine) == before


def test_wecom_at_an_unknown_userid_names_nobody(wecom: WeComHarness) -> None:
    wecom.say("zhangsan", "/帮助")
    wecom.say("zhangsan", "/线索 新建 华为技术")
    before = domain(wecom.engine)
    refused = wecom.say("zhangsan", "/线索 分配 L1 @nobody_here")
    assert "@nobody_here" in shown(refused) and "没有" in shown(refused)
    assert domain(wecom.engine) == before
