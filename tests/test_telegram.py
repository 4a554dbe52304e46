"""Telegram through its real entry point: recorded Update JSON posted to `POST /telegram/webhook`
on the app served by uvicorn, python-telegram-bot underneath, and a local fake Bot API server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.base import Target
from adapters.telegram import TelegramAdapter, TelegramSender, keyboard, to_html
from bot.app import Bot
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from commands.types import Button, Reply
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, Lead, Member, Quote, Team
from reminders.outbox import OutboxDelivery
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer, FakeServer, Recorded
from tests.fakes.telegram import arguments, me, sent_message

TOKEN = "123456:TEST-token"
SECRET = "s3cret-Token_42"
PAYLOADS = Path(__file__).parent / "payloads" / "telegram"
GROUP = -1001234567890
PEOPLE = {
    "alice": {"id": 1111111, "is_bot": False, "first_name": "Alice", "username": "alice_w"},
    "bob": {"id": 2222222, "is_bot": False, "first_name": "Bob", "username": "bob_li"},
    "carol": {"id": 3333333, "is_bot": False, "first_name": "Carol", "username": "carol_z"},
    "dan": {"id": 4444444, "is_bot": False, "first_name": "Dan", "username": "dan_k"},
}


class FakeBotApi(FakeServer):
    def __init__(self) -> None:
        self.failures: dict[str, Answer] = {}
        self.message_id = 5000
        super().__init__(self.answer)

    def answer(self, request: Recorded) -> Answer:
        if request.name in self.failures:
            return self.failures.pop(request.name)
        args = arguments(request)
        if request.name == "getMe":
            return me()
        if request.name in ("sendMessage", "sendPhoto", "editMessageText"):
            self.message_id += 1
            return sent_message(args, message_id=self.message_id, group=GROUP)
        return Answer(body={"ok": True, "result": True})

    def sent(self) -> list[dict[str, Any]]:
        return [arguments(r) for r in self.requests if r.name == "sendMessage"]


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    fake = FakeBotApi()
    yield fake
    fake.close()


class TelegramHarness:
    def __init__(self, engine: Engine, clock: FixedClock, api: FakeBotApi) -> None:
        self.api = api
        self.engine = engine
        self.clock = clock
        settings = Settings(
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            TELEGRAM_API_URL=api.url,
            TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/webhook",
        )
        dispatcher = Dispatcher(engine, clock)
        self.adapter = TelegramAdapter.from_settings(settings, dispatcher.dispatch)
        self.bot = Bot(
            settings=settings,
            engine=engine,
            clock=clock,
            dispatcher=dispatcher,
            senders={"telegram": self.adapter.sender()},
            adapters=[self.adapter],
        )
        self.server = LiveServer(create_app(self.bot))
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        self.update_id = 20000

    def close(self) -> None:
        self.http.close()
        self.server.close()

    def post(self, update: dict[str, Any], *, secret: str | None = SECRET) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        return self.http.post("/telegram/webhook", content=json.dumps(update), headers=headers)

    def message(self, who: str, text: str, *, chat: dict[str, Any] | None = None) -> dict[str, Any]:
        self.update_id += 1
        entities = []
        if text.startswith("/"):
            entities.append({"offset": 0, "length": len(text.split()[0]), "type": "bot_command"})
        offset = 0
        for word in text.split(" "):
            if word.startswith("@") and len(word) > 1:
                entities.append({"offset": offset, "length": len(word), "type": "mention"})
            offset += len(word) + 1
        return {
            "update_id": self.update_id,
            "message": {
                "message_id": self.update_id,
                "from": PEOPLE[who],
                "date": int(time.time()),
                "text": text,
                "chat": chat or {"id": GROUP, "title": "Sales team", "type": "supergroup"},
                "entities": entities,
            },
        }

    def say(self, who: str, text: str, *, chat: dict[str, Any] | None = None) -> str:
        """Send a command as `who`; the bot's answer (HTML) as it was sent to the chat."""
        before = len(self.api.sent())
        assert self.post(self.message(who, text, chat=chat)).status_code == 200
        sent = self.api.sent()
        assert len(sent) == before + 1, f"expected one answer to {text!r}"
        return str(sent[-1]["text"])

    def press(self, who: str, data: str, *, chat: dict[str, Any] | None = None) -> httpx.Response:
        """Press a button whose callback data is `data`, on a card in `chat` (the group if None)."""
        update = json.loads((PAYLOADS / "callback_query.json").read_text())
        self.update_id += 1
        update["update_id"] = self.update_id
        update["callback_query"]["from"] = PEOPLE[who]
        update["callback_query"]["data"] = data
        if chat is not None:
            update["callback_query"]["message"]["chat"] = chat
        return self.post(update)

    def deliver(self) -> None:
        asyncio.run(OutboxDelivery(self.engine, self.bot.senders, self.clock).run_once())


@pytest.fixture
def telegram(engine: Engine, clock: FixedClock, bot_api: FakeBotApi) -> Iterator[TelegramHarness]:
    harness = TelegramHarness(engine, clock, bot_api)
    yield harness
    harness.close()


def _recorded(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / name).read_text())


def test_group_command_answers_in_the_group_in_html(telegram: TelegramHarness) -> None:
    assert telegram.post(_recorded("group_command.json")).status_code == 200
    sent = telegram.api.sent()[-1]
    assert int(sent["chat_id"]) == GROUP and sent["parse_mode"] == "HTML"
    assert "L1 Acme" in sent["text"]
    markup = (
        json.loads(sent["reply_markup"])
        if isinstance(sent["reply_markup"], str)
        else sent["reply_markup"]
    )
    prefilled = [
        b.get("switch_inline_query_current_chat") for row in markup["inline_keyboard"] for b in row
    ]
    # A button that needs more words pre-fills the input field, bound to the group's team.
    assert f"~{GROUP}." in prefilled[0] and prefilled[0].endswith(" /follow L1 "), prefilled


def test_command_addressed_to_us_works_and_to_another_bot_is_ignored(
    telegram: TelegramHarness,
) -> None:
    telegram.say("alice", "/lead add Acme")
    assert telegram.post(_recorded("command_at_bot.json")).status_code == 200
    assert "Acme" in telegram.api.sent()[-1]["text"]
    before = len(telegram.api.sent())
    assert telegram.post(telegram.message("alice", "/lead@SomeOtherBot list")).status_code == 200
    assert len(telegram.api.sent()) == before


def test_chinese_alias_as_text_when_the_bot_is_mentioned(telegram: TelegramHarness) -> None:
    assert telegram.post(_recorded("mention_text.json")).status_code == 200
    answer = telegram.api.sent()[-1]["text"]
    assert "L1 华为技术" in answer and "负责人" in answer
    before = len(telegram.api.sent())
    telegram.post(telegram.message("alice", "线索 新建 没有提到机器人"))
    assert len(telegram.api.sent()) == before, (
        "plain group chatter that does not address the bot is ignored"
    )


def test_html_is_escaped_so_names_display_as_typed(telegram: TelegramHarness) -> None:
    answer = telegram.say("alice", '/lead add "<Acme & Co>"')
    assert "&lt;Acme &amp; Co&gt;" in answer
    with unit_of_work(telegram.engine) as session:
        assert session.execute(select(Lead.name)).scalar_one() == "<Acme & Co>"


def test_private_chat_belongs_to_the_members_team(telegram: TelegramHarness) -> None:
    telegram.say("alice", "/lead add Acme")
    assert telegram.post(_recorded("private_chat.json")).status_code == 200
    sent = telegram.api.sent()[-1]
    assert int(sent["chat_id"]) == PEOPLE["alice"]["id"]
    assert "L1 Acme" in sent["text"]


def test_private_chat_of_a_stranger_is_told_to_start_in_a_group(telegram: TelegramHarness) -> None:
    update = telegram.message(
        "dan", "/me", chat={"id": PEOPLE["dan"]["id"], "type": "private", "first_name": "Dan"}
    )
    assert telegram.post(update).status_code == 200
    assert "group" in telegram.api.sent()[-1]["text"]


def _quote_waiting(telegram: TelegramHarness) -> None:
    telegram.say("alice", "/team config locale=en")
    telegram.say("bob", "/help")
    assert "bob" in telegram.say("alice", "/team role @bob_li manager").lower()
    telegram.say("carol", "/lead add Acme value=120k")
    assert "asked Bob" in telegram.say("carol", "/quote L1 80k")


def test_inline_button_press_runs_as_the_presser_and_edits_the_message(
    telegram: TelegramHarness,
) -> None:
    _quote_waiting(telegram)
    telegram.deliver()
    card = [m for m in telegram.api.sent() if int(m["chat_id"]) == PEOPLE["bob"]["id"]][-1]
    assert "/quote approve Q1" in json.dumps(card["reply_markup"])
    assert telegram.press("bob", "/quote approve Q1").status_code == 200
    answered = [arguments(r) for r in telegram.api.calls("answerCallbackQuery")]
    assert answered and "approved by Bob" in answered[-1]["text"]
    edited = [arguments(r) for r in telegram.api.calls("editMessageText")]
    assert edited and "Q1 approved by Bob" in edited[-1]["text"]
    telegram.deliver()
    assert any(
        "Q1 approved by Bob" in m["text"]
        for m in telegram.api.sent()
        if int(m["chat_id"]) == PEOPLE["carol"]["id"]
    )


OTHER_GROUP = {"id": -1009876543210, "title": "Other team", "type": "supergroup"}


def _private(who: str) -> dict[str, Any]:
    return {"id": PEOPLE[who]["id"], "type": "private", "first_name": PEOPLE[who]["first_name"]}


def _callback_data(message: dict[str, Any]) -> list[str]:
    markup = message["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    buttons = [button for row in markup["inline_keyboard"] for button in row]
    return [button["callback_data"] for button in buttons if "callback_data" in button]


def _statuses(telegram: TelegramHarness) -> dict[str, str]:
    """Each team's Q1 status, by team key."""
    with unit_of_work(telegram.engine) as session:
        rows = session.execute(
            select(Team.key, Quote.status)
            .join(Quote, Quote.team_id == Team.id)
            .where(Quote.number == 1)
        ).all()
    return {str(key): str(status) for key, status in rows}


def _bob_in_two_teams_each_with_q1(telegram: TelegramHarness) -> str:
    """Bob manages the group (its Q1 is carol's) and is admin of another (its Q1 is alice's), and
    last wrote in the other one. The approve button of the group's card, pushed to Bob privately."""
    _quote_waiting(telegram)
    telegram.say("bob", "/team config locale=en", chat=OTHER_GROUP)
    telegram.say("alice", "/lead add Beta value=120k", chat=OTHER_GROUP)
    assert "asked Bob" in telegram.say("alice", "/quote L1 80k", chat=OTHER_GROUP)
    telegram.deliver()
    telegram.say("bob", "/lead list", chat=OTHER_GROUP)
    card = [
        m
        for m in telegram.api.sent()
        if int(m["chat_id"]) == PEOPLE["bob"]["id"] and "Acme" in m["text"]
    ][-1]
    [approve] = [data for data in _callback_data(card) if "approve" in data]
    assert _statuses(telegram) == {str(GROUP): "pending", str(OTHER_GROUP["id"]): "pending"}
    return approve


def _alert(telegram: TelegramHarness) -> str:
    answered = [arguments(r) for r in telegram.api.calls("answerCallbackQuery")][-1]
    assert str(answered.get("show_alert")).lower() == "true"
    return str(answered["text"])


def test_a_card_pressed_in_a_private_chat_acts_in_the_team_it_was_pushed_for(
    telegram: TelegramHarness,
) -> None:
    approve = _bob_in_two_teams_each_with_q1(telegram)
    assert telegram.press("bob", approve, chat=_private("bob")).status_code == 200
    assert _statuses(telegram) == {str(GROUP): "approved", str(OTHER_GROUP["id"]): "pending"}
    edited = [arguments(r) for r in telegram.api.calls("editMessageText")]
    assert edited and "Q1 approved by Bob" in edited[-1]["text"]


def test_a_reject_completed_in_a_private_chat_acts_in_the_team_of_its_card(
    telegram: TelegramHarness,
) -> None:
    """Reject needs a reason, so its button pre-fills the input field; what Bob completes and
    sends privately still rejects the group's Q1, not the one of the team he wrote in last."""
    _bob_in_two_teams_each_with_q1(telegram)
    card = [
        m
        for m in telegram.api.sent()
        if int(m["chat_id"]) == PEOPLE["bob"]["id"] and "Acme" in m["text"]
    ][-1]
    markup = card["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    [prefill] = [
        b["switch_inline_query_current_chat"]
        for row in markup["inline_keyboard"]
        for b in row
        if "reject" in b.get("switch_inline_query_current_chat", "")
    ]
    sent = f"@DealTestBot {prefill}too expensive"
    assert "rejected by Bob" in telegram.say("bob", sent, chat=_private("bob"))
    assert _statuses(telegram) == {str(GROUP): "rejected", str(OTHER_GROUP["id"]): "pending"}
    forged = sent.replace(str(GROUP), str(OTHER_GROUP["id"]), 1)
    assert "did nothing" in telegram.say("bob", forged, chat=_private("bob"))


def test_a_command_typed_privately_by_someone_in_two_teams_names_the_team(
    telegram: TelegramHarness,
) -> None:
    _bob_in_two_teams_each_with_q1(telegram)
    assert "(in Other team" in telegram.say("bob", "/quote list", chat=_private("bob"))
    telegram.say("bob", "/lead list")
    assert "(in Sales team" in telegram.say("bob", "/quote list", chat=_private("bob"))
    assert "(in " not in telegram.say("carol", "/quote list", chat=_private("carol"))


def test_a_tampered_team_binding_is_refused_and_changes_nothing(telegram: TelegramHarness) -> None:
    approve = _bob_in_two_teams_each_with_q1(telegram)
    forged = approve.replace(str(GROUP), str(OTHER_GROUP["id"]), 1)
    unsigned = approve.split(" ", 1)[1]
    assert forged != approve and unsigned == "/quote approve Q1"
    head = approve.split(" ", 1)[0]  # the binding without its command, and one of 10 kB
    for data in (
        forged,
        unsigned,
        f"~{OTHER_GROUP['id']}. {unsigned}",
        "~ /quote approve Q1",
        head,
        f"~{'9' * 10_000}.{head.rpartition('.')[2]} {unsigned}",
    ):
        assert telegram.press("bob", data, chat=_private("bob")).status_code == 200
        assert "did nothing" in _alert(telegram), data
    assert _statuses(telegram) == {str(GROUP): "pending", str(OTHER_GROUP["id"]): "pending"}
    assert not telegram.api.calls("editMessageText")


def test_a_bound_button_never_makes_the_presser_a_member(telegram: TelegramHarness) -> None:
    approve = _bob_in_two_teams_each_with_q1(telegram)
    with unit_of_work(telegram.engine) as session:
        members = session.execute(select(func.count()).select_from(Member)).scalar_one()
    assert telegram.press("dan", approve, chat=_private("dan")).status_code == 200
    assert "not a member" in _alert(telegram)
    assert telegram.press("dan", approve).status_code == 200  # in the group itself, too
    assert "not a member" in _alert(telegram)
    # Nor does what he types privately next: the refused press named a team, not his team.
    assert "group" in telegram.say("dan", "/lead list", chat=_private("dan"))
    with unit_of_work(telegram.engine) as session:
        assert session.execute(select(func.count()).select_from(Member)).scalar_one() == members
    assert _statuses(telegram) == {str(GROUP): "pending", str(OTHER_GROUP["id"]): "pending"}


def test_a_rep_pressing_approve_gets_an_alert_and_nothing_changes(
    telegram: TelegramHarness,
) -> None:
    _quote_waiting(telegram)
    telegram.say("dan", "/help")
    telegram.press("dan", "/quote approve Q1")
    answered = [arguments(r) for r in telegram.api.calls("answerCallbackQuery")][-1]
    assert str(answered.get("show_alert")).lower() == "true" and "Only managers" in answered["text"]
    assert not telegram.api.calls("editMessageText")
    assert "waiting" in telegram.say("carol", "/quote list")


@pytest.mark.parametrize("secret", [None, "wrong", SECRET.upper()])
def test_webhook_without_the_right_secret_is_rejected_before_any_processing(
    telegram: TelegramHarness, secret: str | None
) -> None:
    assert telegram.post(_recorded("group_command.json"), secret=secret).status_code == 401
    with unit_of_work(telegram.engine) as session:
        assert session.execute(select(func.count()).select_from(Team)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(CommandLog)).scalar_one() == 0
    assert not telegram.api.requests


def test_duplicate_update_ids_are_processed_once(telegram: TelegramHarness) -> None:
    update = _recorded("group_command.json")
    telegram.post(update)
    telegram.post(update)
    with unit_of_work(telegram.engine) as session:
        assert session.execute(select(func.count()).select_from(Lead)).scalar_one() == 1
    assert len(telegram.api.sent()) == 1


@pytest.mark.parametrize("payload", ["edited_message.json", "sticker.json"])
def test_edits_and_stickers_do_nothing(telegram: TelegramHarness, payload: str) -> None:
    assert telegram.post(_recorded(payload)).status_code == 200
    assert not telegram.api.sent()
    with unit_of_work(telegram.engine) as session:
        assert session.execute(select(func.count()).select_from(Lead)).scalar_one() == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"no": "update"}'])
def test_malformed_bodies_get_a_clean_400(telegram: TelegramHarness, body: bytes) -> None:
    answer = telegram.http.post(
        "/telegram/webhook", content=body, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert answer.status_code == 400


def test_an_update_whose_text_no_utf8_spells_gets_a_clean_400_and_changes_nothing(
    telegram: TelegramHarness,
) -> None:
    """A lone surrogate, escaped in the JSON, in a button's data or a message: it could be neither
    checked, stored nor answered, so the update is refused whole."""
    approve = _bob_in_two_teams_each_with_q1(telegram)
    sent = len(telegram.api.sent())
    head = approve.split(" ", 1)[0]
    for data in (
        f"{head} /quote approve Q1\ud800",
        "~\ud800.x /quote approve Q1",
        "/quote approve Q1\ud800",
    ):
        assert telegram.press("bob", data, chat=_private("bob")).status_code == 400, data
    assert telegram.post(telegram.message("carol", "/lead add Gamma\ud800")).status_code == 400
    assert _statuses(telegram) == {str(GROUP): "pending", str(OTHER_GROUP["id"]): "pending"}
    assert len(telegram.api.sent()) == sent and not telegram.api.calls("answerCallbackQuery")
    assert "Gamma" not in telegram.say("carol", "/lead list")


def test_rendering_limits() -> None:
    long_command = "/lead add " + "x" * 80 + " force=yes"
    markup = keyboard(
        Reply(
            text="t",
            buttons=[
                Button(label="Approve", command="/quote approve Q7"),
                Button(label="Add anyway", command=long_command),
            ],
        )
    )
    assert markup is not None
    buttons = [button for row in markup.inline_keyboard for button in row]
    assert buttons[0].callback_data == "/quote approve Q7"
    assert (
        buttons[1].callback_data is None
        and buttons[1].switch_inline_query_current_chat == long_command + " "
    )
    assert to_html(Reply(text="**Q7** <b>")) == "<b>Q7</b> &lt;b&gt;"


class TestSender:
    def test_sends_messages_and_photos(self, bot_api: FakeBotApi) -> None:
        from commands.types import Image

        sender = TelegramSender(TOKEN, bot_api.url)
        ref = asyncio.run(
            sender.send(
                Target(kind="channel", key=str(GROUP)),
                Reply(text="digest", image=Image(png=b"\x89PNG", alt="funnel")),
            )
        )
        assert ref.startswith(f"{GROUP}:")
        assert bot_api.calls("sendPhoto")

    @pytest.mark.parametrize(
        ("answer", "error"),
        [
            (
                Answer(
                    status=429,
                    body={
                        "ok": False,
                        "error_code": 429,
                        "description": "Too Many Requests: retry after 17",
                        "parameters": {"retry_after": 17},
                    },
                ),
                "RateLimited",
            ),
            (
                Answer(
                    status=403,
                    body={
                        "ok": False,
                        "error_code": 403,
                        "description": "Forbidden: bot was blocked by the user",
                    },
                ),
                "TargetGone",
            ),
            (
                Answer(
                    status=400,
                    body={
                        "ok": False,
                        "error_code": 400,
                        "description": "Bad Request: chat not found",
                    },
                ),
                "TargetGone",
            ),
            (
                Answer(
                    status=401, body={"ok": False, "error_code": 401, "description": "Unauthorized"}
                ),
                "AuthBroken",
            ),
            (
                Answer(
                    status=502, body={"ok": False, "error_code": 502, "description": "Bad Gateway"}
                ),
                "Transient",
            ),
        ],
    )
    def test_errors_map_to_the_outbox(
        self, bot_api: FakeBotApi, answer: Answer, error: str
    ) -> None:
        bot_api.failures["sendMessage"] = answer
        with pytest.raises(Exception) as raised:
            asyncio.run(
                TelegramSender(TOKEN, bot_api.url).send(
                    Target(kind="member", key="42"), Reply(text="x")
                )
            )
        assert type(raised.value).__name__ == error
        if error == "RateLimited":
            assert raised.value.retry_after == 17  # type: ignore[attr-defined]


def test_set_webhook_registers_the_secret_and_the_menu_in_both_languages(
    bot_api: FakeBotApi,
) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path as _Path

    dealbot = _Path(sys.executable).with_name("dealbot")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "SLACK_", "WECOM_", "DEALBOT_"))
    }
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=bot_api.url,
        TELEGRAM_WEBHOOK_SECRET=SECRET,
        TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/webhook",
    )
    done = subprocess.run(
        [str(dealbot), "telegram", "set-webhook"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    webhook = arguments(bot_api.calls("setWebhook")[0])
    assert (
        webhook["url"] == "https://bot.example.com/telegram/webhook"
        and webhook["secret_token"] == SECRET
    )
    menus = [arguments(r) for r in bot_api.calls("setMyCommands")]
    assert {m.get("language_code") for m in menus} == {None, "zh"}
    commands = [
        m["commands"] if isinstance(m["commands"], list) else json.loads(m["commands"])
        for m in menus
    ]
    assert any("线索" in command["description"] for menu in commands for command in menu)


def test_every_verb_family_is_a_telegram_command(telegram: TelegramHarness) -> None:
    telegram.say("alice", "/lead add Acme value=100k")
    telegram.say("alice", "/lead won L1 100k")
    assert "C1" in telegram.say("alice", "/contract L1 100k")
    telegram.say("alice", "/plan C1 100%@2026-12-31")
    assert "C1" in telegram.say("alice", "/receivables")


def test_pending_quotes_each_get_their_own_keyboard_row(telegram: TelegramHarness) -> None:
    telegram.say("alice", "/team config locale=en")
    telegram.say("carol", "/lead add Acme")
    for amount in ("100k", "110k", "120k", "130k"):
        telegram.say("carol", f"/quote L1 {amount}")
    telegram.say("alice", "/quote list pending")
    sent = telegram.api.sent()[-1]
    markup = sent["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    rows = [
        [
            (button.get("callback_data") or button["switch_inline_query_current_chat"]).strip()
            for button in row
        ]
        for row in markup["inline_keyboard"]
    ]
    # Each button's data is its command, bound to the team: `~<team>.<mac> <command>`.
    rows = [
        [data.split(" ", 1)[1] if data.startswith("~") else data for data in row] for row in rows
    ]
    assert rows == [[f"/quote approve Q{n}", f"/quote reject Q{n}"] for n in (4, 3, 2, 1)]
