"""What people type reaches others as text, never as markup: a lead named `<!channel>` pings
nobody on Slack, `[x](http://evil.example)` links nowhere and `<font>` recolours nothing on WeCom,
and the console prints no terminal control sequences. Through the real entry points, with the
local servers standing in for Slack's and WeCom's APIs."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import update

from models.db import unit_of_work
from models.tables import Lead
from tests.chat import Chat
from tests.test_slack import SlackHarness, arguments
from tests.test_telegram import TelegramHarness
from tests.test_wecom import WeComHarness

SLACK_NAME = "<!channel> <@U2> <https://evil.example|click>"
WECOM_NAME = "[点我](http://evil.example) <font>紧急</font> <@zhangsan>"


def _live_slack_markup(text: str) -> list[str]:
    """Slack's control sequences in a text Slack formats: `<!…>`, `<@…>`, `<http…|…>`."""
    return [
        piece for piece in ("<!channel>", "<@U2>", "<https://evil.example|click>") if piece in text
    ]


def test_slack_shows_a_typed_channel_ping_mention_and_link_as_text_everywhere(
    slack: SlackHarness,
) -> None:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U2", "/help", "")
    slack.say("U1", "/team", "role <@U2|bob> manager")
    added = slack.say("U3", "/lead", f"add {SLACK_NAME} value=120k")
    assert "L1" in added["text"]
    asked = slack.say("U3", "/quote", "L1 80k")
    slack.deliver()
    cards = [arguments(r) for r in slack.api.calls("chat.postMessage")]
    assert cards, "the approver is pushed a card"
    for message in (added, asked, *cards):
        text = message["text"]  # the notification, and what clients without blocks show
        assert _live_slack_markup(text) == [], text
        assert _live_slack_markup(json.dumps(message.get("blocks", []))) == []
    assert "&lt;!channel&gt; &lt;@U2&gt; &lt;https://evil.example|click&gt;" in added["text"]
    card = cards[-1]
    assert "&lt;!channel&gt;" in card["text"] and "&lt;!channel&gt;" in json.dumps(card["blocks"])


def _sent(wecom: WeComHarness) -> list[dict[str, Any]]:
    return [r.json for r in wecom.api.requests if r.json and r.json.get("msgtype")]


def test_wecom_shows_a_typed_link_font_and_mention_as_text(wecom: WeComHarness) -> None:
    wecom.say("zhangsan", "/帮助")
    wecom.say("lijingli", "/帮助")
    wecom.say("zhangsan", "/团队 角色 @lijingli 经理")
    wecom.say("wangwu", f"/线索 新建 {WECOM_NAME} 预计=12.5万")
    wecom.say("wangwu", "/报价 L1 8万")
    wecom.deliver()
    wecom.say("lijingli", "/审批 同意 Q1")
    wecom.deliver()
    wecom.say("wangwu", "/线索 列表")
    markdowns = [m["markdown"]["content"] for m in _sent(wecom) if m["msgtype"] == "markdown"]
    naming = [content for content in markdowns if "点我" in content]
    assert naming, markdowns
    for content in naming:
        assert "[" not in content and "<" not in content, content
        assert "［点我］(http://evil.example) ＜font＞紧急＜/font＞ ＜@zhangsan＞" in content
    cards = [m["template_card"] for m in _sent(wecom) if m["msgtype"] == "template_card"]
    shown_on_cards = [json.dumps(card, ensure_ascii=False) for card in cards]
    assert any("点我" in card for card in shown_on_cards)  # a card is plain text: shown as typed


def test_the_console_prints_no_terminal_control_sequences(team: Chat) -> None:
    assert team.reply("/lead add Acme Trading").ok
    with unit_of_work(team.engine) as session:  # stored by an older version, or by hand
        session.execute(update(Lead).values(name="Acme\x1b]0;pwned\x07\x1b[2J\x9b2J\rTrading"))
    shown = team.say("/lead show L1")
    assert "Acme]0;pwned[2J2JTrading" in shown
    assert not any(char in shown for char in "\x1b\x07\x9b\r")


def _telegram_html_problems(text: str) -> list[str]:
    """What Telegram's HTML parse mode would refuse: an entity cut short, a tag not ours, a tag
    left open or closed out of order."""
    problems = [f"broken entity at {m.start()}" for m in re.finditer(r"&(?!(?:amp|lt|gt);)", text)]
    opened: list[str] = []
    for match in re.finditer(r"<(/?)([^>]*)>?", text):
        closing, name = match.group(1), match.group(2)
        if name not in ("b", "code", "pre") or not match.group(0).endswith(">"):
            problems.append(f"unknown or cut tag {match.group(0)!r}")
        elif not closing:
            opened.append(name)
        elif not opened or opened.pop() != name:
            problems.append(f"</{name}> closes nothing open")
    return problems + [f"<{name}> never closed" for name in opened]


def test_telegram_cuts_a_reply_too_long_for_one_message_without_breaking_its_html(
    telegram: TelegramHarness,
) -> None:
    telegram.say("alice", "/team config locale=en")
    for n in range(12):  # names that grow fivefold when escaped, and our own markup in them
        assert "L" in telegram.say("alice", f"/lead add R&D {n} " + "&<>" * 60 + " **b** `c`")
    listed = telegram.say("alice", "/lead list")
    assert len(listed) <= 4096 and listed.endswith("…")
    assert "R&amp;D" in listed
    assert _telegram_html_problems(listed) == []
