"""Floods: per-member and per-team command rate limits. Over a limit a command changes nothing; the
first one is told to slow down (in the user's language), the rest get no answer until the window
frees, so a runaway script spends neither the team's turn nor the platform's quota. The time the
burst takes is measured in bench/floods.py; these tests check only what happens."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.app import build
from bot.settings import Settings
from commands.throttle import Throttle, parse_rate
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import CommandLog, Lead
from reminders.limits import Limit
from tests.attacks.conftest import eventually, logged
from tests.chat import Chat
from tests.test_slack import SlackHarness
from tests.test_telegram import TelegramHarness

LEDGERS = ("command_log", "inbound_delivery")


def limited(chat: Chat, *, member: str | None, team: str | None) -> Chat:
    chat.dispatcher.throttle = Throttle(member=parse_rate(member), team=parse_rate(team))
    return chat


def domain(chat: Chat) -> dict[str, list[tuple]]:
    return {name: rows for name, rows in chat.snapshot().items() if name not in LEDGERS}


def leads(engine: Engine) -> int:
    with unit_of_work(engine) as session:
        return len(session.execute(select(Lead.id)).all())


def test_the_21st_command_in_a_minute_is_told_to_slow_down_and_changes_nothing(chat: Chat) -> None:
    limited(chat, member="20/60s", team=None)
    for n in range(20):
        assert chat.reply(f"/lead add Customer {n} force=yes").ok, n
    before = domain(chat)
    told = chat.reply("/lead add One Too Many force=yes")
    assert not told.ok and told.private
    assert told.text.startswith(
        "🐢 Slow down a little: you sent more than 20 commands in a minute."
    )
    assert "Try again in 60 s" in told.text
    assert domain(chat) == before
    # Told once: what follows in the same window gets no answer at all, and does nothing either.
    for _ in range(5):
        quiet = chat.reply("/lead add Still Too Many force=yes")
        assert quiet.duplicate and not quiet.ok and quiet.text == ""
    assert domain(chat) == before
    # Other members are unaffected.
    assert chat.reply("[bob] /lead add Bob's Customer").ok
    # A minute after the first command the window has room again.
    chat.clock.advance(seconds=59)
    assert chat.reply("/lead add Not Yet force=yes").duplicate
    chat.clock.advance(seconds=1)
    assert chat.reply("/lead add Welcome Back force=yes").ok
    assert "Welcome Back" not in str(before) and leads(chat.engine) == 22


def test_throttled_commands_are_kept_in_the_command_log(chat: Chat) -> None:
    limited(chat, member="2/60s", team=None)
    for _ in range(4):
        chat.reply("/help")
    with unit_of_work(chat.engine) as session:
        outcomes = list(
            session.execute(
                select(CommandLog.outcome, CommandLog.error).order_by(col(CommandLog.id))
            ).all()
        )
    assert outcomes == [
        ("ok", None),
        ("ok", None),
        ("throttled", "member"),
        ("throttled", "member"),
    ]


def test_slow_down_is_said_in_the_users_language(chat: Chat) -> None:
    limited(chat, member="3/60s", team=None)
    for _ in range(3):
        assert chat.reply("/帮助").ok
    told = chat.reply("/线索 列表")
    assert told.text.startswith("🐢 请慢一点：你在1 分钟内发送的命令超过 3 条。请 60 秒后再试")


def test_a_team_limit_holds_the_whole_team_and_no_other(engine: Engine, clock: FixedClock) -> None:
    acme = Chat(engine, clock, team="acme")
    globex = Chat(engine, clock, team="globex", user="zoe")
    shared = Throttle(member=Limit.parse("100/60s"), team=Limit.parse("30/60s"))
    acme.dispatcher.throttle = globex.dispatcher.throttle = shared
    for n in range(30):
        assert acme.reply(f"[user{n % 10}] /help").ok, n
    before = domain(acme)
    told = acme.reply("[newcomer] /lead add Late Co")
    assert told.text.startswith("🐢 Your team is sending more than 30 commands in a minute.")
    assert domain(acme) == before
    assert acme.reply("[newcomer] /help").duplicate  # told once
    assert acme.reply("[user1] /help").text.startswith("🐢 Your team")  # told once per member
    assert globex.reply("/lead add Globex Customer").ok  # another team has its own budget


def test_one_members_flood_does_not_use_up_the_teams_budget(chat: Chat) -> None:
    limited(chat, member="5/60s", team="15/60s")
    results = [chat.reply(f"/lead add Flood {n} force=yes") for n in range(50)]
    assert sum(r.ok for r in results) == 5
    for who in ("bob", "carol"):
        assert all(chat.reply(f"[{who}] /help").ok for _ in range(5)), who


def settings(**values: str) -> Settings:
    """Settings from these values only (not the environment the tests run in)."""
    return Settings.model_validate(values)


def test_limits_come_from_settings() -> None:
    throttle = Throttle.from_settings(
        settings(DEALBOT_MEMBER_RATE="3/10s", DEALBOT_TEAM_RATE="off")
    )
    assert throttle is not None and throttle.team is None
    assert throttle.member is not None and throttle.member.limit == Limit(3, 10.0)
    assert (
        Throttle.from_settings(settings(DEALBOT_MEMBER_RATE="off", DEALBOT_TEAM_RATE="0")) is None
    )
    with pytest.raises(ValueError):
        Throttle.from_settings(settings(DEALBOT_MEMBER_RATE="lots"))
    assert (settings().member_rate, settings().team_rate) == ("60/60s", "600/60s")


def test_build_gives_the_dispatcher_the_configured_throttle_and_lease(tmp_path: Path) -> None:
    bot = build(
        settings(DEALBOT_MEMBER_RATE="7/60s", DEALBOT_OUTBOX_LEASE_SECONDS="5"),
        database_url=f"sqlite:///{tmp_path}/t.db",
        migrate=False,
    )
    assert bot.dispatcher.throttle is not None and bot.dispatcher.throttle.member is not None
    assert bot.dispatcher.throttle.member.limit == Limit(7, 60.0)
    assert bot.delivery().lease == timedelta(seconds=5)


# --- through the platforms' real entry points ---------------------------------------------------


def test_a_telegram_burst_from_one_member(telegram: TelegramHarness) -> None:
    telegram.bot.dispatcher.throttle = Throttle(member=Limit.parse("20/60s"), team=None)
    for n in range(25):
        assert (
            telegram.post(telegram.message("alice", f"/lead add Burst {n} force=yes")).status_code
            == 200
        )
    sent = [message["text"] for message in telegram.api.sent()]
    assert len(sent) == 21 and "Slow down" in sent[-1]
    assert leads(telegram.engine) == 20
    telegram.say("bob", "/lead list")  # another member of the group is answered as usual


def test_slack_commands_from_one_member(slack: SlackHarness) -> None:
    slack.bot.dispatcher.throttle = Throttle(member=Limit.parse("20/60s"), team=None)
    answers = [slack.say("U1", "/lead", f"add Burst {n} force=yes") for n in range(21)]
    assert "Slow down" in answers[-1]["text"] and answers[-1]["response_type"] == "ephemeral"
    for n in range(4):  # no answer at all to these: the next one Slack sees is bob's
        assert slack.command("U1", "/lead", f"add Quiet {n} force=yes").status_code == 200
    assert "L21" in slack.say("U2", "/lead", "add Bob Co")["text"]
    eventually(lambda: logged(slack.engine) == 26)
    assert leads(slack.engine) == 21 and len(slack.api.responses()) == 22
