"""Slack through its real entry point: signed requests to `POST /slack/events` on the app served by
uvicorn, slack-bolt underneath, and a local HTTP server standing in for Slack's Web API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from adapters.base import Target
from adapters.slack import SlackAdapter, SlackSender
from bot.app import Bot
from bot.settings import Settings
from bot.web import create_app
from commands import Dispatcher
from commands.types import Button, Reply
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, Member, Outbox, Quote, Team
from reminders.outbox import OutboxDelivery
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer, FakeServer, Recorded

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PAYLOADS = Path(__file__).parent / "payloads" / "slack"
NAMES = {"U1": "alice", "U2": "bob", "U3": "carol", "U4": "dan"}


def arguments(request: Recorded) -> dict[str, Any]:
    return {**request.query, **request.form, **(request.json or {})}


class FakeSlack(FakeServer):
    """Slack's Web API and response URLs: records calls, answers like Slack, fails on demand."""

    def __init__(self) -> None:
        self.failures: dict[str, Answer] = {}
        self.ts = 0
        super().__init__(self.answer)

    def answer(self, request: Recorded) -> Answer:
        if request.name in self.failures:
            return self.failures.pop(request.name)
        args = arguments(request)
        if request.path.startswith("/response/") or request.path.startswith("/upload/"):
            return Answer(body={"ok": True})
        if request.name == "auth.test":
            return Answer(body={"ok": True, "team_id": "T0001", "user_id": "UBOT", "bot_id": "B1", "user": "dealbot"})
        if request.name == "users.info":
            user = args.get("user", "")
            return Answer(body={"ok": True, "user": {"id": user, "name": user.lower(),
                                                      "tz": "America/Los_Angeles",
                                                      "profile": {"display_name": NAMES.get(user, user)}}})
        if request.name == "conversations.open":
            return Answer(body={"ok": True, "channel": {"id": "D" + str(args.get("users", ""))}})
        if request.name == "chat.postMessage":
            self.ts += 1
            return Answer(body={"ok": True, "channel": args.get("channel"), "ts": f"1700000000.{self.ts:06d}"})
        if request.name == "files.getUploadURLExternal":
            return Answer(body={"ok": True, "upload_url": f"{self.url}/upload/F1", "file_id": "F1"})
        if request.name == "files.completeUploadExternal":
            return Answer(body={"ok": True, "files": [{"id": "F1", "title": "chart"}]})
        return Answer(body={"ok": True})

    def responses(self) -> list[dict[str, Any]]:
        return [request.json for request in self.requests if request.path.startswith("/response/")]


@pytest.fixture
def slack_api() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.close()


@pytest.fixture
def slack(engine: Engine, clock: FixedClock, slack_api: FakeSlack) -> Iterator[SlackHarness]:
    harness = SlackHarness(engine, clock, slack_api)
    yield harness
    harness.close()


class SlackHarness:
    def __init__(self, engine: Engine, clock: FixedClock, api: FakeSlack) -> None:
        self.api = api
        self.engine = engine
        settings = Settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=f"{api.url}/api/")
        dispatcher = Dispatcher(engine, clock)
        client = AsyncWebClient(token="xoxb-test", base_url=f"{api.url}/api/")
        adapter = SlackAdapter(dispatcher.dispatch, token="xoxb-test", signing_secret=SECRET,
                               api_url=f"{api.url}/api/", client=client)
        self.bot = Bot(settings=settings, engine=engine, clock=clock, dispatcher=dispatcher,
                       senders={"slack": adapter.sender()}, adapters=[adapter])
        self.server = LiveServer(create_app(self.bot))
        self.http = httpx.Client(base_url=self.server.url, timeout=10)
        self.responses_seen = 0

    def close(self) -> None:
        self.http.close()
        self.server.close()

    def post(self, body: bytes, content_type: str, *, secret: str = SECRET, timestamp: int | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        signature = "v0=" + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        return self.http.post("/slack/events", content=body, headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature,
            **(headers or {})})

    def command(self, user: str, command: str, text: str, *, team: str = "T0001",
                **kwargs: Any) -> httpx.Response:
        """A slash command shaped like the recorded one, typed by `user` in workspace `team`."""
        form = dict(parse_qsl((PAYLOADS / "slash_command.form").read_text().strip()))
        form.update(user_id=user, team_id=team, user_name=NAMES.get(user, user).lower(),
                    command=command, text=text,
                    response_url=f"{self.api.url}/response/{len(self.api.requests)}-{time.monotonic_ns()}")
        return self.post(urlencode(form).encode(), "application/x-www-form-urlencoded", **kwargs)

    def click(self, user: str, command: str, *, team: str = "T0001",
              channel: str | None = None) -> httpx.Response:
        payload = json.loads((PAYLOADS / "block_actions.json").read_text())
        payload["user"].update(id=user, name=NAMES[user], username=NAMES[user], team_id=team)
        payload["team"]["id"] = team
        if channel is not None:
            payload["channel"] = {"id": channel, "name": "directmessage"}
            payload["container"]["channel_id"] = channel
        payload["actions"][0]["value"] = command
        payload["trigger_id"] = f"trigger-{time.monotonic_ns()}"
        payload["response_url"] = f"{self.api.url}/response/click-{time.monotonic_ns()}"
        return self.post(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")

    def next_response(self) -> dict[str, Any]:
        """The next message the bot posted to a response_url (it answers after acking)."""
        wanted = self.responses_seen + 1
        self.api.wait_for(lambda requests: len([r for r in requests if r.path.startswith("/response/")]) >= wanted)
        self.responses_seen = wanted
        return self.api.responses()[wanted - 1]

    def say(self, user: str, command: str, text: str, *, team: str = "T0001") -> dict[str, Any]:
        answer = self.command(user, command, text, team=team)
        assert answer.status_code == 200
        return self.next_response()

    def deliver(self) -> None:
        asyncio.run(OutboxDelivery(self.engine, self.bot.senders, self.bot.clock).run_once())


def text_of(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks", []), ensure_ascii=False) + message.get("text", "")


def button_values(message: dict[str, Any]) -> list[str]:
    return [element["value"].strip() for block in message.get("blocks", []) if block["type"] == "actions"
            for element in block["elements"]]


def test_slash_command_acks_then_answers_in_channel_with_block_kit(slack: SlackHarness) -> None:
    answer = slack.command("U1", "/lead", "add Acme Trading phone=138-0013-8000 value=120k")
    assert answer.status_code == 200
    message = slack.next_response()
    assert message["response_type"] == "in_channel"
    assert "L1 Acme Trading" in message["text"] and "$120,000" in message["text"]
    assert "/follow L1" in button_values(message)
    assert slack.api.calls("users.info"), "members are named from users.info"


def test_umbrella_command_and_chinese_alias(slack: SlackHarness) -> None:
    assert "L1" in slack.say("U1", "/dealbot", "lead add Acme")["text"]
    shown = slack.say("U1", "/dealbot", "线索 查看 L1")
    assert "负责人 alice" in shown["text"]


def test_errors_are_ephemeral_to_the_person_who_typed(slack: SlackHarness) -> None:
    slack.say("U1", "/lead", "add Acme")
    message = slack.say("U1", "/quote", "L1 eighty")
    assert message["response_type"] == "ephemeral"
    assert "eighty" in message["text"] and "Usage" in message["text"]


def _nothing_stored(engine: Engine) -> bool:
    with unit_of_work(engine) as session:
        teams = session.execute(select(func.count()).select_from(Team)).scalar_one()
        logged = session.execute(select(func.count()).select_from(CommandLog)).scalar_one()
    return teams == 0 and logged == 0


@pytest.mark.parametrize("case", ["bad signature", "missing signature", "stale timestamp", "modified body"])
def test_forged_or_replayed_requests_are_rejected_before_anything_is_stored(slack: SlackHarness, case: str) -> None:
    if case == "bad signature":
        answer = slack.command("U1", "/lead", "add Forged", secret="not-the-secret")
    elif case == "stale timestamp":
        answer = slack.command("U1", "/lead", "add Replayed", timestamp=int(time.time()) - 6 * 60)
    elif case == "missing signature":
        answer = slack.http.post("/slack/events", content=b"command=%2Flead&text=add+X&team_id=T0001&user_id=U1",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        body = b"command=%2Flead&text=add+X&team_id=T0001&user_id=U1"
        stamp = str(int(time.time()))
        signature = "v0=" + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        answer = slack.http.post("/slack/events", content=body.replace(b"add+X", b"add+Y"), headers={
            "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": signature})
    assert answer.status_code == 401
    assert _nothing_stored(slack.engine)
    assert not slack.api.requests


def _team_with_a_waiting_quote(slack: SlackHarness) -> dict[str, Any]:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U2", "/help", "")
    slack.say("U1", "/team", "role <@U2|bob> manager")
    slack.say("U3", "/lead", "add Acme Trading value=120k")
    asked = slack.say("U3", "/quote", "L1 80k discount=5%")
    assert "asked bob" in asked["text"]
    slack.deliver()
    cards = [r for r in slack.api.calls("chat.postMessage") if arguments(r).get("channel") == "DU2"]
    assert cards, "the approver gets the card in a DM"
    return arguments(cards[-1])


def test_approval_card_click_runs_as_the_clicker_updates_the_card_and_tells_the_requester(slack: SlackHarness) -> None:
    card = _team_with_a_waiting_quote(slack)
    assert "/quote approve Q1" in button_values(card)
    assert slack.click("U2", "/quote approve Q1").status_code == 200
    outcome = slack.next_response()
    assert outcome.get("replace_original") is True
    assert "Q1 approved by bob" in outcome["text"]
    slack.deliver()
    told = [r for r in slack.api.calls("chat.postMessage") if arguments(r).get("channel") == "DU3"]
    assert any("Q1 approved by bob" in arguments(r)["text"] for r in told)


def test_approving_a_transfer_from_its_card_shows_the_outcome_in_place_of_the_buttons(
        slack: SlackHarness) -> None:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U3", "/lead", "add Acme Trading value=120k")
    asked = slack.say("U4", "/lead", "transfer L1 I met them at the fair")
    assert "Asked carol" in asked["text"]
    slack.deliver()
    [card] = [arguments(r) for r in slack.api.calls("chat.postMessage")
              if arguments(r).get("channel") == "DU3"]
    assert "/lead transfer approve L1" in button_values(card)
    assert slack.click("U3", "/lead transfer approve L1", channel="DU3").status_code == 200
    outcome = slack.next_response()
    assert outcome.get("replace_original") is True
    assert "now belongs to dan" in outcome["text"]


def test_a_rep_clicking_an_approve_button_is_refused_privately_and_nothing_changes(slack: SlackHarness) -> None:
    _team_with_a_waiting_quote(slack)
    slack.say("U4", "/help", "")
    assert slack.click("U4", "/quote approve Q1").status_code == 200
    refused = slack.next_response()
    assert refused["response_type"] == "ephemeral" and not refused.get("replace_original")
    assert "Only managers and admins" in refused["text"]
    listed = slack.say("U3", "/quote", "list")
    assert "waiting" in listed["text"] or "waiting" in text_of(listed)


def _q1_status_by_workspace(slack: SlackHarness) -> dict[str, str]:
    with unit_of_work(slack.engine) as session:
        rows = session.execute(select(Team.key, Quote.status).join(Quote, Quote.team_id == Team.id)
                               .where(Quote.number == 1)).all()
    return {str(key): str(status) for key, status in rows}


def test_a_card_clicked_in_a_direct_message_acts_in_the_workspace_it_came_from(
        slack: SlackHarness) -> None:
    """Slack puts the workspace in the signed envelope of every click, direct messages included:
    bob (one Enterprise Grid id in two workspaces) manages the first and is admin of the second,
    wrote last in the second, and clicks the first one's card in his DM."""
    _team_with_a_waiting_quote(slack)
    slack.say("U2", "/team", "config locale=en", team="T0002")
    slack.say("U1", "/lead", "add Beta value=120k", team="T0002")
    assert "asked bob" in slack.say("U1", "/quote", "L1 80k", team="T0002")["text"]
    slack.deliver()
    slack.say("U2", "/lead", "list", team="T0002")
    cards = [arguments(r) for r in slack.api.calls("chat.postMessage")
             if arguments(r).get("channel") == "DU2" and "Acme" in arguments(r)["text"]]
    assert "/quote approve Q1" in button_values(cards[-1])
    assert _q1_status_by_workspace(slack) == {"T0001": "pending", "T0002": "pending"}
    assert slack.click("U2", "/quote approve Q1", channel="DU2").status_code == 200
    assert "Q1 approved by bob" in slack.next_response()["text"]
    assert _q1_status_by_workspace(slack) == {"T0001": "approved", "T0002": "pending"}


def test_a_click_never_makes_the_clicker_a_member(slack: SlackHarness) -> None:
    _team_with_a_waiting_quote(slack)
    assert slack.click("U4", "/quote approve Q1", channel="DU4").status_code == 200
    refused = slack.next_response()
    assert refused["response_type"] == "ephemeral" and "not a member" in refused["text"]
    with unit_of_work(slack.engine) as session:
        assert session.execute(select(Member.user_key).where(Member.user_key == "U4")).all() == []
    assert _q1_status_by_workspace(slack) == {"T0001": "pending"}


def test_mentions_resolve_and_typed_lookalikes_do_not(slack: SlackHarness) -> None:
    slack.say("U1", "/lead", "add Acme")
    slack.say("U3", "/help", "")
    assigned = slack.say("U1", "/lead", "assign L1 <@U3|carol>")
    assert "carol" in assigned["text"] and assigned["response_type"] == "in_channel"
    spoofed = slack.say("U1", "/lead", "assign L1 &lt;@U2|boss&gt;")
    assert spoofed["response_type"] == "ephemeral" and "don't know" in spoofed["text"]


def test_app_home_shows_my_work_and_a_retried_event_is_handled_once(slack: SlackHarness) -> None:
    slack.say("U1", "/lead", "add Acme")
    body = (PAYLOADS / "app_home_opened.json").read_text().replace("U2147483697", "U1").encode()
    assert slack.post(body, "application/json").status_code == 200
    published = slack.api.wait_for(lambda requests: any(r.name == "views.publish" for r in requests))
    view = [arguments(r) for r in published if r.name == "views.publish"][0]
    assert "L1 Acme" in json.dumps(view)
    retry = slack.post(body, "application/json", headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"})
    assert retry.status_code == 200
    slack.say("U1", "/help", "")  # a later request: by now the retry has been handled too
    assert len(slack.api.calls("views.publish")) == 1


def test_healthz_answers(slack: SlackHarness) -> None:
    answer = slack.http.get("/healthz")
    assert answer.status_code == 200 and answer.json()["ok"] is True


class TestSender:
    """The outbox's Slack sender against the fake Web API."""

    def sender(self, api: FakeSlack) -> SlackSender:
        return SlackSender(AsyncWebClient(token="xoxb-test", base_url=f"{api.url}/api/"))

    def test_posts_to_channels_and_dms_and_uploads_charts(self, slack_api: FakeSlack) -> None:
        from commands.types import Image

        sender = self.sender(slack_api)
        reply = Reply(text="**Daily**", buttons=[Button(label="Open", command="/report")],
                      image=Image(png=b"\x89PNG fake", alt="funnel", filename="funnel.png"))
        ref = asyncio.run(sender.send(Target(kind="channel", key="C1"), reply))
        assert ref.startswith("C1:")
        asyncio.run(sender.send(Target(kind="member", key="U2"), Reply(text="hi")))
        posted = [arguments(r) for r in slack_api.calls("chat.postMessage")]
        assert [p["channel"] for p in posted] == ["C1", "DU2"]
        assert "*Daily*" in json.dumps(posted[0]["blocks"])
        assert slack_api.calls("files.completeUploadExternal")

    @pytest.mark.parametrize(("answer", "error"), [
        (Answer(status=429, body={"ok": False, "error": "ratelimited"}, headers={"Retry-After": "7"}), "RateLimited"),
        (Answer(body={"ok": False, "error": "channel_not_found"}), "TargetGone"),
        (Answer(body={"ok": False, "error": "invalid_auth"}), "AuthBroken"),
        (Answer(body={"ok": False, "error": "internal_error"}), "Transient"),
    ])
    def test_platform_errors_become_the_outbox_errors(self, slack_api: FakeSlack, answer: Answer, error: str) -> None:
        slack_api.failures["chat.postMessage"] = answer
        with pytest.raises(Exception) as raised:
            asyncio.run(self.sender(slack_api).send(Target(kind="channel", key="C1"), Reply(text="x")))
        assert type(raised.value).__name__ == error
        if error == "RateLimited":
            assert raised.value.retry_after == 7  # type: ignore[attr-defined]

    def test_dead_channel_is_marked_dead_with_a_clear_error(self, engine: Engine, clock: FixedClock,
                                                            slack_api: FakeSlack) -> None:
        from models import outbox

        with unit_of_work(engine) as session:
            team = Team(platform="slack", key="T0001", config={}, created_at=clock.now())
            session.add(team)
            session.flush()
            outbox.enqueue(session, team=team, kind="digest", channel="C404", dedupe_key="d1",
                           payload=Reply(text="digest").model_dump(mode="json"), now=clock.now())
        slack_api.failures["chat.postMessage"] = Answer(body={"ok": False, "error": "channel_not_found"})
        report = asyncio.run(OutboxDelivery(engine, {"slack": self.sender(slack_api)}, clock).run_once())
        assert report.dead == 1
        with unit_of_work(engine) as session:
            row = session.execute(select(Outbox)).scalar_one()
        assert row.status == "dead" and "channel_not_found" in (row.last_error or "")


def test_every_verb_family_is_a_slash_command(slack: SlackHarness) -> None:
    slack.say("U1", "/lead", "add Acme value=100k")
    slack.say("U1", "/lead", "won L1 100k")
    assert "C1" in slack.say("U1", "/contract", "L1 100k")["text"]
    slack.say("U1", "/plan", "C1 100%@2026-12-31")
    assert "C1" in text_of(slack.say("U1", "/receivables", ""))


def test_pending_quotes_each_get_their_own_row_of_buttons(slack: SlackHarness) -> None:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U3", "/lead", "add Acme")
    for amount in ("100k", "110k", "120k", "130k"):
        slack.say("U3", "/quote", f"L1 {amount}")
    listed = slack.say("U1", "/quote", "list pending")
    rows = [[element["value"].strip() for element in block["elements"]]
            for block in listed["blocks"] if block["type"] == "actions"]
    assert rows == [[f"/quote approve Q{n}", f"/quote reject Q{n}"] for n in (4, 3, 2, 1)]


def test_a_new_team_starts_in_the_timezone_slack_gives(slack: SlackHarness) -> None:
    settings = slack.say("U1", "/team", "config")
    assert "America/Los_Angeles" in text_of(settings)
