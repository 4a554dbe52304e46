"""Running the team from chat: roles, settings, handing work over, and who the admins are."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from bot.app import build
from bot.settings import Settings
from commands import team as team_commands
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import AuditEvent
from tests.chat import Chat


def test_roles_are_set_by_admins_and_the_last_admin_stays(chat: Chat) -> None:
    chat.say("/team config locale=en")  # alice is the first member: the admin
    chat.say("[bob] /help")
    chat.say("[carol] /help")
    assert "Only an admin can change the team." in chat.say("[bob] /team role @bob admin")
    assert "You are the team's only admin; make someone else admin first." in chat.say("/team role @alice rep")
    assert "bob is now admin." in chat.say("/team role @bob admin")
    assert "alice is now rep." in chat.say("/team role @alice rep")
    assert "Only an admin can change the team." in chat.say("/team role @bob rep")

    assert "I don't know @dan in this team yet" in chat.say("[bob] /team role @dan manager")
    chat.say("[dan] /help")  # people join by writing to the bot, not by being named
    chat.say("[erin] /help")
    assert "dan is now manager." in chat.say("[bob] /team role @dan manager")
    assert "carol is now rep. Reports to dan." in chat.say("[bob] /team role @carol rep manager=@dan")
    assert "“alice: rep” is not a role" in chat.say("[bob] /team role @carol rep manager=@alice")
    assert "Nobody can be their own manager." in chat.say("[bob] /team role @dan manager manager=@dan")
    assert "“boss” is not a role. Roles: rep, manager, admin." in chat.say("[bob] /team role @carol boss")
    assert "Missing a role." in chat.say("[bob] /team role @carol")
    assert "erin is now manager." in chat.say("[bob] /团队 角色 @erin 经理")  # Chinese words, English team

    members = chat.reply("[carol] /team")
    assert "acme** — 5 members" in members.text
    assert members.table[1:] == [["alice", "rep", "-"], ["bob", "admin", "-"], ["carol", "rep", "dan"],
                                 ["dan", "manager", "-"], ["erin", "manager", "-"]]


SETTINGS = [  # what is typed → what the settings card shows afterwards
    ("timezone=Europe/Berlin", "timezone: Europe/Berlin"),
    ("currency=eur", "currency: EUR"),
    ("stages=Lead, Demo, Signed", "stages: Lead → Demo → Signed"),
    ("allow_skip=yes", "allow_skip: yes"),
    ("auto_below=10k", "auto_below: €10,000"),
    ("manager_limit=1.2m", "manager_limit: €1,200,000"),
    ("discount_raise=15%", "discount_raise: 15%"),
    ("approval_wait_hours=6h", "approval_wait_hours: 6"),
    ("stale_days=10", "stale_days: 10"),
    ("followup_sla_days=3", "followup_sla_days: 3"),
    ("pool_return_days=30", "pool_return_days: 30"),
    ("digest_time=17:30", "digest_time: 17:30"),
    ("weekly_digest_time=8:00", "weekly_digest_time: 08:00"),
    ("digest_channel=#sales", "digest_channel: #sales"),
    ("quiet_hours=21:00-08:00", "quiet_hours: 21:00-08:00"),
    ("quiet_weekends=yes", "quiet_weekends: yes"),
    ("assignment=balanced", "assignment: least_loaded"),  # the old name, stored as the new one
    ("assign=round_robin", "assignment: round_robin"),
    ("page_size=5", "page_size: 5"),
    ("stale_days.demo=3", "stage rules: Demo: stale 3d"),
    ("required.signed=value,contact", "Signed: value, contact"),
    ("日报时间=19:00", "digest_time: 19:00"),
    ("claim_limit=5", "claim_limit: 5"),
    ("transfer_wait_hours=8", "transfer_wait_hours: 8"),
    ("instalment_due_days=5", "instalment_due_days: 5"),
    ("renewal_days=0", "renewal_days: off"),
    ("care_after_won_days=3", "care_after_won_days: 3"),
    ("care_days_a=14", "care_days_a: 14"),
    ("care_days_b=45", "care_days_b: 45"),
    ("care_days_c=120", "care_days_c: 120"),
    ("care_default_grade=a", "care_default_grade: A"),
]


def test_every_setting_round_trips_into_the_settings_card(team: Chat) -> None:
    shown = team.say("[carol] /team config")  # everyone may look
    assert "locale: en" in shown and "stages: Lead → Contacted → Qualified → Proposal → Contract → Delivery" in shown
    assert "Only an admin can change the team." in team.say("[bob] /team config stale_days=3")
    for typed, expected in SETTINGS:
        assert "Saved" in team.say(f"[erin] /team config {typed}"), typed
        assert expected in team.say("[erin] /team config"), typed
    assert "已保存：语言=中文" in team.say("[erin] /team config locale=zh")  # answered in the new language
    assert "语言: 中文" in team.say("[erin] /team config")
    team.say("[erin] /team config locale=auto")
    assert "locale: auto" in team.say("[erin] /team config")


def test_the_settings_card_shows_every_setting_one_can_change(team: Chat) -> None:
    shown = team.say("[carol] /team config")
    hidden = [key for key in team_commands.SETTINGS
              if key != "assign" and f"{key}:" not in shown and f"{key}=" not in shown]
    assert hidden == []


def test_wrong_settings_say_what_is_wrong_and_change_nothing(team: Chat) -> None:
    before = team.snapshot()
    for typed, complaint in [
        ("timezone=Mars/Base", "Mars/Base"),
        ("digest_time=25:00", "18:00"),
        ("quiet_hours=late", "20:00-08:30"),
        ("page_size=0", "page_size"),
        ("stale_days=soon", "“soon” doesn't fit stale_days: a whole number"),
        ("currency=euros", "euros"),
        ("locale=fr", "“fr” is not one of: zh, en, auto"),
        ("required.contract=magic", "“magic” is not one of: contact, phone_or_email, value"),
        ("stale_days.nowhere=3", "“nowhere” is not a stage of this team"),
        ("colour=blue", "I don't know the setting “colour”"),
        ("stale_days=5 page_size=8 extra", "“extra” doesn't fit"),
    ]:
        answer = team.reply(f"[erin] /team config {typed}")
        assert not answer.ok and complaint.casefold() in answer.text.casefold(), (typed, answer.text)
    assert team.snapshot() == before


def test_handoff_moves_open_leads_and_pending_quotes_and_tells_both(team: Chat, engine: Engine) -> None:
    team.say("[carol] /lead add Acme")          # L1
    team.say("[carol] /lead add Zenith")        # L2
    team.say("[carol] /lead add Closed value=5k")
    team.say("[carol] /lead won L3")             # closed: stays with carol
    team.say("[dan] /lead add Dan's own")       # L4
    team.say("[carol] /quote L1 80k")           # Q1 waiting
    team.say("[carol] /quote L2 10k")           # Q2 approved automatically: stays carol's

    assert "Only a manager can hand work over." in team.say("[dan] /team handoff @carol @alice")
    assert "Hand over to someone else." in team.say("[bob] /team handoff @carol @carol")
    assert "erin doesn't report to you" in team.say("[bob] /team handoff @erin @carol")
    moved = team.say("[bob] /team handoff @carol @alice")
    assert "carol → alice: 2 open leads (L1, L2) and 1 pending quote moved." in moved
    assert any("carol → alice" in push for push in team.pushes("carol"))
    assert any("carol → alice" in push for push in team.pushes("alice"))

    assert "L1 Acme · Lead · owner alice" in team.say("/lead show L1")
    assert "L3 Closed · won · owner carol" in team.say("[carol] /lead show L3")
    assert "L4 Dan's own · Lead · owner dan" in team.say("[bob] /lead show L4")
    assert "Your leads: none." in team.say("[carol] /lead list")
    history = team.say("[bob] /lead show L2 history")
    assert history.count("handed over from carol to alice") == 1
    quotes = team.reply("/quote list")
    assert [row[0] + " " + row[3] for row in quotes.table[1:]] == ["Q1 alice"]
    with unit_of_work(engine) as session:
        events = session.execute(select(AuditEvent.entity, func.count()).where(AuditEvent.action == "handoff")
                                 .group_by(AuditEvent.entity)).all()
    assert sorted(events) == [("lead", 2), ("quote", 1)]

    team.say("[bob] /quote approve Q1")
    assert "Q1 approved by bob" in team.pushes("alice")[-1]  # the new owner hears the decision
    assert "0 open leads (-) and 0 pending quotes" in team.say("[bob] /team handoff @carol @dan")


def test_deployment_admins_decide_who_is_admin(engine: Engine, clock: FixedClock) -> None:
    chat = Chat(engine, clock, admins=["console:bob"])
    chat.say("/help")  # alice comes first, but she is not listed: a rep
    chat.say("[bob] /help")
    chat.say("[carol] /help")
    assert "Only an admin can change the team." in chat.say("/team role @carol manager")
    assert "carol is now manager." in chat.say("[bob] /team role @carol manager")
    assert "alice is now admin." in chat.say("[bob] /team role @alice admin")
    assert chat.reply("[bob] /team").table[1:] == [["alice", "admin", "-"], ["bob", "admin", "-"],
                                                    ["carol", "manager", "-"]]


def test_a_deployment_admin_is_admin_only_on_the_platform_named(engine: Engine,
                                                                clock: FixedClock) -> None:
    """`telegram:bob` is someone on Telegram; the console's bob is another person, and an entry
    without a platform names nobody (while still keeping the first member from becoming admin)."""
    for number, admins in enumerate((["telegram:bob"], ["bob"], ["bob", "telegram:bob"])):
        chat = Chat(engine, clock, team=f"team{number}", admins=admins)
        chat.say("/help")
        refused = chat.say("[bob] /team role @alice manager")
        assert "Only an admin can change the team." in refused, admins
        assert chat.reply("[bob] /team").table[1:] == [["alice", "rep", "-"], ["bob", "rep", "-"]]


def test_unqualified_admin_entries_are_named_at_start_up(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        build(Settings(DEALBOT_ADMINS="boss, console:ann, Uxyz9", DEALBOT_DATABASE_URL="sqlite://"))
    warned = [r.getMessage() for r in caplog.records if "DEALBOT_ADMINS" in r.getMessage()]
    assert len(warned) == 1 and "boss, Uxyz9" in warned[0] and "ann" not in warned[0]


def test_without_deployment_admins_the_first_member_is_admin(chat: Chat) -> None:
    chat.say("/team config locale=en")
    chat.say("[bob] /help")
    assert chat.reply("/team").table[1:] == [["alice", "admin", "-"], ["bob", "rep", "-"]]
