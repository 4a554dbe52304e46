"""Customers' personal data (PIPL / GDPR): `/lead forget L1` erases it everywhere and keeps what the
reports count; `dealbot export --personal-data …` finds everything held about one person; and no
phone number or e-mail address reaches a log line or a metric, whatever path a command takes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import logging
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from adapters.console import render
from bot import logs
from bot.app import Bot, build
from bot.settings import Settings
from bot.web import create_app
from commands.inbox import Inbox
from commands.types import Image, Reply
from models import outbox, privacy
from models.clock import FixedClock
from models.db import create_schema, unit_of_work
from models.tables import AuditEvent, FollowUp, Lead, Member, Outbox, Quote, SQLModel, Team
from tests.chat import Chat
from tests.fakes.asgi import LiveServer
from tests.fakes.http import Answer
from tests.test_cli import clean_env, dealbot_executable
from tests.test_slack import PAYLOADS as SLACK_PAYLOADS
from tests.test_slack import FakeSlack
from tests.test_telegram import PEOPLE, FakeBotApi

PHONE, NEW_PHONE, OTHER_PHONE = "138-0013-8000", "+86 139 1234 5678", "137 0000 0000"
EMAIL, HOME_EMAIL = "li.wei@acme.example", "lw@home.example"
# What must be gone after forgetting L1, in every form it was typed in.
GONE = (
    "13800138000",
    "138-0013-8000",
    "13912345678",
    "139 1234 5678",
    "139-1234-5678",
    "li.wei@",
    "lw@home",
    "Mr Li",
)


def _everything(engine: Engine, *, but: tuple[str, int] | None = None) -> str:
    """Every row of every table as text (one row left out by table name and id)."""
    with unit_of_work(engine) as session:
        rows = []
        for table in SQLModel.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                if but and table.name == but[0] and row.get("id") == but[1]:
                    continue
                rows.append(json.dumps(dict(row), default=str, ensure_ascii=False))
    return "\n".join(rows)


@pytest.fixture
def customer(team: Chat) -> Chat:
    """carol's customer L1 (contact, phone changed once, two e-mails in a note, a quote, a push
    waiting), dan's unrelated L2, and L3 — carol's second lead with L1's first phone."""
    for line in [
        f"[carol] /lead add Acme Trading contact=Mr Li phone={PHONE} email={EMAIL} value=120k",
        f"[carol] /lead edit L1 phone={NEW_PHONE}",
        f"[carol] /follow L1 called Mr Li on 13800138000, mail {EMAIL} or {HOME_EMAIL}; "
        "budget 1500000 for 2026-12-01 next=tomorrow",
        "[carol] /quote L1 80k call 139-1234-5678 first",
        f"[dan] /lead add Beta Foods contact=Ms Wu phone={OTHER_PHONE}",
        "[dan] /follow L2 rang 13700000000 next=tomorrow",
        "[carol] /lead add Acme Second phone=13800138000 force=yes",
    ]:
        assert team.reply(line).ok, line
    with unit_of_work(team.engine) as session:
        acme = session.execute(select(Team)).scalar_one()
        bob = session.execute(select(Member).where(Member.user_key == "bob")).scalar_one()
        image = Image(png=b"\x89PNG 13800138000", alt="chart")
        for key, status in (("waiting", "pending"), ("went", "sent")):
            outbox.enqueue(
                session,
                team=acme,
                kind="test",
                dedupe_key=key,
                member=bob,
                now=team.clock.now(),
                payload=Reply(text=f"Call Mr Li at {PHONE} or {EMAIL}", image=image).model_dump(
                    mode="json"
                ),
            )
            session.execute(update(Outbox).where(Outbox.dedupe_key == key).values(status=status))
    return team


def test_forget_erases_the_customer_everywhere_and_keeps_the_numbers(customer: Chat) -> None:
    assert customer.reply("[bob] /quote approve Q1").ok  # decided: forgetting withdraws nothing
    report_before = customer.say("[erin] /report month")
    answer = customer.say("[erin] /lead forget L1")
    assert (
        "L1 Acme Trading: the customer's personal data is erased (contact, phone, e-mail)" in answer
    )
    assert "L3 had the same phone or e-mail" in answer
    with unit_of_work(customer.engine) as session:
        lead = session.execute(select(Lead).where(Lead.number == 1)).scalar_one()
        twin = session.execute(select(Lead).where(Lead.number == 3)).scalar_one()
        note = session.execute(
            select(FollowUp.note).where(FollowUp.lead_id == lead.id)
        ).scalar_one()
        quote = session.execute(select(Quote).where(Quote.lead_id == lead.id)).scalar_one()
        forgot = session.execute(
            select(AuditEvent).where(AuditEvent.action == "forget")
        ).scalar_one()
        erin = session.execute(select(Member).where(Member.user_key == "erin")).scalar_one()
    assert (lead.contact, lead.phone, lead.email, lead.norm_phone, lead.norm_email) == (None,) * 5
    assert (lead.name, lead.value, lead.stage, lead.status) == (
        "Acme Trading",
        12_000_000,
        "lead",
        "open",
    )
    assert (
        note
        == "called [contact] on [phone], mail [email] or [email]; budget 1500000 for 2026-12-01"
    )
    assert quote.note == "call [phone] first" and quote.amount == 8_000_000
    assert forgot.actor_id == erin.id and forgot.after == {
        "erased": ["contact", "phone", "email"],
        "redacted": forgot.after["redacted"],
    }
    # The two pushes written above, the approval card bob got, which showed the quote's note, and
    # the edit that closed that card once he approved.
    assert forgot.after["redacted"]["follow-ups"] == 1 and forgot.after["redacted"]["pushes"] == 4
    # Nothing anywhere still names the customer, except L3, a lead of its own the admin was told of.
    left = _everything(customer.engine, but=("lead", twin.id or 0))
    for value in GONE:
        assert value not in left, value
    assert twin.phone == "13800138000"
    # The other customer is untouched; the reports count the same.
    assert OTHER_PHONE in left and "rang 13700000000" in left and "Ms Wu" in left
    assert customer.say("[erin] /report month") == report_before
    shown = customer.say("[carol] /lead show L1")
    assert "Acme Trading" in shown and "[contact]" in shown and "Mr Li" not in shown


def test_pushes_keep_their_images_and_the_waiting_one_goes_out_redacted(customer: Chat) -> None:
    customer.say("[erin] /lead forget L1")
    with unit_of_work(customer.engine) as session:
        rows = {row.dedupe_key: row for row in session.execute(select(Outbox)).scalars()}
    waiting = Reply.model_validate(rows["waiting"].payload)
    assert waiting.text == "Call [contact] at [phone] or [email]"
    assert waiting.image is not None and waiting.image.png == b"\x89PNG 13800138000"


def test_an_answer_still_to_go_out_when_the_customer_is_forgotten_goes_out_without_them(
    customer: Chat,
) -> None:
    """The server that ran `/lead show L1` died before answering; the answer, given later by the
    worker, names the customer no more than the lead does."""
    inbox = Inbox(customer.engine, customer.dispatcher, customer.clock)
    shown = customer.adapter.invocation("[carol] /lead show L1")
    shown = shown.model_copy(update={"delivery_id": "show-before-forget"})
    kept = asyncio.run(inbox.receive(shown, {"user": "carol"}))
    assert "Mr Li" in render(asyncio.run(inbox.run(kept, shown)))
    assert "answers waiting 1" in customer.say("[erin] /lead forget L1")
    answers: list[str] = []

    async def answer_later(where: dict[str, Any], reply: Reply, age: timedelta) -> None:
        answers.append(render(reply))

    inbox.answerers["console"] = answer_later
    customer.clock.advance(minutes=5)
    asyncio.run(inbox.recover_once())
    (answer,) = answers
    assert "L1 Acme Trading" in answer and "[contact]" in answer
    for value in GONE:
        assert value not in answer, value


@pytest.mark.parametrize("who", ["carol", "bob", "alice"])
def test_only_an_admin_may_forget(customer: Chat, who: str) -> None:
    before = customer.snapshot()
    reply = customer.adapter.dispatch(customer.adapter.invocation(f"[{who}] /lead forget L1"))
    assert not reply.ok and "Only an admin can erase a customer's personal data" in reply.text
    assert customer.snapshot() == before


def test_forget_in_chinese(chat: Chat) -> None:
    for line in [
        "/帮助",
        "/线索 新建 华为技术 联系人=王经理 电话=13912345678",
        "/跟进 L1 王经理说下周签 下次=明天",
    ]:
        assert chat.reply(line).ok, line
    answer = chat.say("/线索 遗忘 L1")
    assert "L1 华为技术：客户的个人信息已删除（联系人、电话）" in answer
    with unit_of_work(chat.engine) as session:
        assert session.execute(select(FollowUp.note)).scalar_one() == "[contact]说下周签"
    assert "13912345678" not in _everything(chat.engine)
    refused = chat.reply("/线索 遗忘 L1 L2")
    assert not refused.ok


# --- subject access ----------------------------------------------------------------------------


def test_subject_access_finds_everything_about_one_person(customer: Chat) -> None:
    with unit_of_work(customer.engine) as session:
        found = privacy.subject_access(session, "+86 (138) 0013 8000")
        by_mail = privacy.subject_access(session, "LI.WEI@ACME.EXAMPLE")
        nobody = privacy.subject_access(session, "nobody@nowhere.example")
    # L1 (its phone was changed away, the history still holds it) and L3 (the same phone now).
    assert [entry["lead"]["number"] for entry in found["leads"]] == [3, 1]
    l1 = found["leads"][1]
    assert l1["lead"]["email"] == EMAIL and l1["team"]["key"] == "acme"
    assert (
        "budget 1500000" in l1["follow_ups"][0]["note"] and l1["quotes"][0]["amount"] == 8_000_000
    )
    assert {event["action"] for event in l1["history"]} >= {"add", "edit", "followup"}
    assert any(PHONE in line["text"] for line in found["mentioned_in"]["command_log"])
    assert found["mentioned_in"]["pushes"]
    assert [entry["lead"]["number"] for entry in by_mail["leads"]] == [1]
    assert nobody["leads"] == [] and nobody["mentioned_in"] == {}
    json.dumps(found)  # plain JSON, ready to hand over
    with pytest.raises(ValueError):
        privacy.subject_of("call me")


def test_dealbot_export_personal_data_prints_it(customer: Chat, tmp_path: Path) -> None:
    url = str(customer.engine.url)
    done = subprocess.run(
        [dealbot_executable(), "export", "--personal-data", "li.wei@acme.example", "--db", url],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["kind"] == "email" and printed["leads"][0]["lead"]["name"] == "Acme Trading"
    out = tmp_path / "sar.json"
    done = subprocess.run(
        [
            dealbot_executable(),
            "export",
            "--personal-data",
            "13912345678",
            "--out",
            str(out),
            "--db",
            url,
        ],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["leads"][0]["lead"]["number"] == 1


# --- logs and metrics -----------------------------------------------------------------------------

# Contact details in the forms people type them, each with the fragments that must never appear in
# a log line or a metric (the same digits or local part in any other spelling would be found too).
ASCII = {
    "+86 139-4417-2851": ("139-4417-2851", "13944172851", "4417-2851"),
    "13944172851": ("13944172851",),
    "１３９４４１７２８５１": ("１３９４４", "４４１７"),
    "(0755) 1334-4558": ("1334-4558", "13344558"),
    "+1 (415) 555-8765": ("555-8765", "5558765"),
    "zhu.bajie@huaguo.example": ("zhu.bajie",),
    "Sun.Wukong@TianTing.Example": ("Sun.Wukong", "sun.wukong"),
}
IDN = {"shaseng@例子.公司": ("shaseng",), "沙僧@例子.公司": ("沙僧@",)}


@pytest.fixture
def loud_bot(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FixedClock
) -> Iterator[tuple[Bot, httpx.Client, FakeSlack, io.StringIO]]:
    """The app as deployed with Slack and Telegram, everything logged (at the level the test is
    parametrised with) into one stream."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    logs.configure(request.param, stream)
    slack, telegram = FakeSlack(), FakeBotApi()
    settings = Settings.model_validate(
        {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret",
            "SLACK_API_URL": f"{slack.url}/api/",
            "TELEGRAM_BOT_TOKEN": "123456:TEST-token",
            "TELEGRAM_WEBHOOK_SECRET": "hook",
            "TELEGRAM_WEBHOOK_URL": "https://x.example/telegram/webhook",
            "TELEGRAM_API_URL": telegram.url,
        }
    )
    bot = build(
        settings, clock=clock, database_url=f"sqlite:///{tmp_path / 'loud.db'}", migrate=False
    )
    create_schema(bot.engine)
    server = LiveServer(create_app(bot))
    client = httpx.Client(base_url=server.url, timeout=10)
    try:
        yield bot, client, slack, stream
    finally:
        client.close()
        server.close()
        slack.close()
        telegram.close()
        bot.engine.dispose()
        root.handlers, _ = saved[0], root.setLevel(saved[1])
        logs.stdlib_defaults()


def _slack(
    client: httpx.Client, slack: FakeSlack, user: str, text: str, *, secret: str = "secret"
) -> None:
    """A signed slash command, as Slack sends it; returns once its answer is out."""
    form = dict(parse_qsl((SLACK_PAYLOADS / "slash_command.form").read_text().strip()))
    form.update(
        user_id=user,
        command="/lead",
        text=text,
        response_url=f"{slack.url}/response/{time.monotonic_ns()}",
    )
    body = urlencode(form).encode()
    stamp = str(int(time.time()))
    signature = (
        "v0="
        + hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    )
    wanted = len(slack.responses()) + 1
    assert (
        client.post(
            "/slack/events",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": stamp,
                "X-Slack-Signature": signature,
            },
        ).status_code
        == 200
    )
    slack.wait_for(
        lambda requests: len([r for r in requests if r.path.startswith("/response/")]) >= wanted
    )


def _telegram(client: httpx.Client, update_id: int, text: str, *, secret: str = "hook") -> None:
    """A group message, as Telegram's webhook sends it."""
    update = {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "from": PEOPLE["alice"],
            "date": int(time.time()),
            "text": text,
            "chat": {"id": -100777, "title": "Sales", "type": "supergroup"},
            "entities": [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}],
        },
    }
    assert (
        client.post(
            "/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret}
        ).status_code
        == 200
    )


def _exercise(bot: Bot, client: httpx.Client, slack: FakeSlack, contacts: list[str]) -> str:
    """Commands carrying the contacts through every path (success, refusal, error, crash, pushes,
    a platform error quoting them), and /metrics afterwards; returns the metrics text."""
    for n, contact in enumerate(contacts):
        key = "email" if "@" in contact else "phone"
        _slack(client, slack, "U1", f"add Customer {n} {key}={contact} force=yes")
        _slack(client, slack, "U1", f"edit L{n + 1} contact=Zhu {contact}")
        _slack(client, slack, "U1", f"show L{n + 1}")
        _slack(client, slack, "U1", f"lost L99 moved to {contact}")  # an error, quoting it back
        _telegram(client, 500 + n, f"/lead add Customer {n} {key}={contact} force=yes")
        _telegram(client, 600 + n, f"/lead nonsense {contact}")
    with unit_of_work(bot.engine) as session:
        team = session.execute(select(Team).where(Team.platform == "slack")).scalar_one()
        outbox.enqueue(
            session,
            team=team,
            kind="test",
            dedupe_key="pii",
            channel="C1",
            now=bot.clock.now(),
            payload=Reply(text=" ".join(contacts)).model_dump(mode="json"),
        )
    slack.failures["chat.postMessage"] = Answer(
        body={"ok": False, "error": "invalid_arguments", "detail": " ".join(contacts)}
    )
    asyncio.run(bot.delivery().run_once())
    original = bot.dispatcher.engine
    try:  # a crash inside a command: its traceback quotes the failed statement's parameters
        bot.dispatcher.engine = _BrokenEngine(original, " ".join(contacts))  # type: ignore[assignment]
        _slack(client, slack, "U1", f"add Crash phone={contacts[0]}")
    finally:
        bot.dispatcher.engine = original
    return client.get("/metrics").text


def _leaks(output: str, contacts: dict[str, tuple[str, ...]]) -> list[str]:
    fragments = [fragment for found in contacts.values() for fragment in found]
    return [line[:300] for line in output.splitlines() if any(f in line for f in fragments)]


@pytest.mark.parametrize("loud_bot", ["INFO"], indirect=True)
def test_no_phone_or_email_reaches_a_log_line_or_a_metric(loud_bot: Any) -> None:
    bot, client, slack, stream = loud_bot
    metrics = _exercise(bot, client, slack, list(ASCII))
    output = stream.getvalue()
    assert '"command"' in output and "command failed" in output  # the log did capture it all
    assert _leaks(output, ASCII) == []
    assert _leaks(metrics, ASCII) == []


@pytest.mark.parametrize("loud_bot", ["INFO"], indirect=True)
def test_internationalised_email_addresses_are_masked_too(loud_bot: Any) -> None:
    bot, client, slack, stream = loud_bot
    _exercise(bot, client, slack, [*IDN, "13944172851"])
    assert _leaks(stream.getvalue(), IDN) == []


@pytest.mark.parametrize("loud_bot", ["DEBUG"], indirect=True)
def test_library_debug_lines_mask_them_too(loud_bot: Any) -> None:
    bot, client, slack, stream = loud_bot
    _exercise(bot, client, slack, list(ASCII))
    assert _leaks(stream.getvalue(), ASCII) == []


class _BrokenEngine:
    """An engine whose connections fail with the command's contact details in the message."""

    def __init__(self, engine: Engine, detail: str) -> None:
        self._engine, self._detail = engine, detail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def connect(self) -> Any:
        raise RuntimeError(f"database refused INSERT ... parameters: ({self._detail!r})")
