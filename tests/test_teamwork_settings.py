"""Personal notification settings: `/me notify realtime|digest|off` per kind, `/me quiet`,
`/me lang`, `/me timezone`, `/me silent`. Defaults are quiet (nudges: one message per run);
approvals others ask of you are never fully silenced and never held. In the `team` fixture alice,
carol and dan are reps, bob the manager, erin an admin; the team's quiet hours are 20:00–08:30
(Shanghai)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from models.db import unit_of_work
from models.tables import AuditEvent, Member
from reminders.worker import Worker
from tests.chat import Chat

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def at(day: int, hour: int = 9, minute: int = 0, month: int = 11, tz: ZoneInfo = SH) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=tz)


def run_worker(chat: Chat) -> None:
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def since(chat: Chat, name: str, count: int) -> list[str]:
    return chat.pushes(name)[count:]


def overdue_and_stuck(chat: Chat, *names: str) -> None:
    """Leads of alice due Fri 27 Nov and never moved: overdue and stuck by Fri 4 Dec."""
    for number, name in enumerate(names, start=1):
        chat.say(f"/lead add {name}")
        chat.say(f"/follow L{number} sent a brochure next=fri")


def test_by_default_each_person_gets_one_nudge_message_per_run(team: Chat) -> None:
    chat = team
    overdue_and_stuck(chat, "Acme Trading", "Beta Foods")
    chat.clock.set(at(4, 10, month=12))
    run_worker(chat)
    [nudge] = chat.pushes("alice")
    assert nudge.startswith("⏰ Follow-ups overdue (2)\n"
                            "· L1 Acme Trading — due Fri 27 Nov (7d ago)\n"
                            "· L2 Beta Foods — due Fri 27 Nov (7d ago)\n"
                            "🐢 Deals without progress (2)")
    [summary] = chat.pushes("bob")
    assert "Your team's follow-ups overdue past 2 days (2)" in summary
    assert "Stuck deals in your team (2)" in summary


def test_nudges_in_realtime_come_in_one_message_a_row_of_buttons_per_fact(team: Chat) -> None:
    chat = team
    assert chat.say("/me notify nudges realtime") == "🔔 Saved: nudges realtime."
    assert chat.say("[bob] /me notify nudges off") == "🔔 Saved: nudges off."
    overdue_and_stuck(chat, "Acme Trading", "Beta Foods")
    chat.clock.set(at(4, 10, month=12))
    run_worker(chat)
    assert chat.pushes("alice") == [
        "⏰ Follow-ups overdue (2)\n"
        "· L1 Acme Trading — due Fri 27 Nov (7d ago)\n· L2 Beta Foods — due Fri 27 Nov (7d ago)\n"
        "🐢 Deals without progress (2)\n"
        "· L1 Acme Trading — 8 days in Lead\n· L2 Beta Foods — 8 days in Lead\n"
        "  [Log follow-up L1 → /follow L1]  [Snooze 1d → /lead snooze L1 1d]\n"
        "  [Log follow-up L2 → /follow L2]  [Snooze 1d → /lead snooze L2 1d]",
    ]
    assert chat.pushes("bob") == []
    chat.say("[bob] /me notify nudges digest")  # what was skipped is not sent later
    run_worker(chat)
    assert chat.pushes("bob") == []


def test_approvals_others_ask_for_are_never_fully_silenced(team: Chat) -> None:
    chat = team
    before = chat.snapshot()
    refused = chat.say("[bob] /me notify approvals off")
    assert refused == ("Approvals others ask of you can't be turned off. "
                       "Use digest to get them batched: "
                       "/me notify approvals digest")
    assert chat.snapshot() == before
    everything = chat.say("[bob] /me notify off")
    assert everything == ("🔔 Saved: nudges off, approvals digest (one message per run), "
                          "updates off. "
                          "Approvals others ask of you can't be turned off: they come as a digest.")

    chat.clock.set(at(26, 22))  # night, and bob reads approvals as a digest
    chat.say("/lead add Acme Trading")
    assert "asked bob" in chat.say("/quote L1 80k")
    assert chat.pushes("bob") == []
    run_worker(chat)  # the next run brings it, at night too: a person asked
    [batch] = chat.pushes("bob")
    assert batch.startswith("🧾 Approvals asked of you (1)\n"
                            "· 🧾 Q1 · Acme Trading · $80,000 · by alice")
    assert "[Approve → /quote approve Q1]  [Reject → /quote reject Q1]" in batch
    run_worker(chat)
    assert len(chat.pushes("bob")) == 1


def test_updates_can_be_turned_off_or_batched_with_the_nudges(team: Chat) -> None:
    chat = team
    chat.say("/me notify updates off")
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    chat.say("[bob] /quote approve Q1")
    assert chat.pushes("alice") == []  # the decision was an update, and updates are off

    chat.say("[carol] /me notify updates digest")
    chat.say("[carol] /lead add Carol Co")
    chat.say("[carol] /follow L2 call next=fri")
    chat.say("[bob] /lead add Delta owner=@carol")
    assert chat.pushes("carol") == []
    chat.clock.set(at(30, 10))
    run_worker(chat)
    [one] = chat.pushes("carol")
    assert "⏰ Follow-ups overdue (1)" in one
    assert "📥 Leads given to you (1)\n· 📥 L3 Delta is yours now (from bob)." in one
    with unit_of_work(chat.engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == "prefs").order_by(col(AuditEvent.id))
        events = session.exec(query)
        assert [(e.before, e.after) for e in events] == [
            ({"updates": "realtime"}, {"updates": "off"}),
            ({"updates": "realtime"}, {"updates": "digest"})]


def test_own_quiet_hours_replace_the_teams_for_what_can_wait(team: Chat) -> None:
    chat, clock = team, team.clock
    assert chat.say("/me quiet 22:00-07:00") == ("🌙 Quiet 22:00-07:00: nudges and updates wait "
                                                 "until it ends; "
                                                 "approvals people ask of you don't.")
    chat.say("[bob] /me quiet 21:00-08:00")
    overdue_and_stuck(chat, "Acme Trading")

    clock.set(at(28, 21))  # the team is quiet; alice is not yet
    run_worker(chat)
    assert [p for p in chat.pushes("alice") if "Follow-ups overdue" in p]

    chat.say("/lead add Beta Foods")
    clock.set(at(28, 23))
    chat.say("/quote L2 80k")  # a person asks bob at night: delivered now
    assert "[Approve → /quote approve Q1]" in chat.pushes("bob")[-1]
    chat.say("[bob] /quote approve Q1")  # the decision is an update: alice sleeps until 07:00
    assert [p for p in chat.pushes("alice") if "Q1" in p] == []
    clock.set(at(29, 6, 59))
    chat.deliver()
    assert [p for p in chat.pushes("alice") if "Q1" in p] == []
    clock.set(at(29, 7, 1))
    chat.deliver()
    # read the next morning: the time says which day it was
    assert [p for p in chat.pushes("alice") if "Q1 approved by bob · 11-28 23:00" in p]

    assert chat.say("/me quiet off") == "🌙 No quiet hours for you: nudges arrive any time."
    assert chat.say("/me quiet team") == "🌙 You follow the team's quiet hours (20:00-08:30)."


def test_my_language_for_replies_errors_and_pushes(team: Chat) -> None:
    chat = team
    assert chat.say("/me lang zh") == "🌐 以后用中文和你交流。"
    added = chat.say("/lead add Acme Trading")
    assert added.startswith("✅ L1 Acme Trading · 负责人 你 · 阶段 线索")
    assert chat.say("/quote L1 eighty").startswith("❓ “eighty”不是有效金额。")
    assert chat.say("/quote L1 80k") == \
        "🧾 Q1 · L1 Acme Trading：US$80,000。需要经理审批，已通知 bob。"
    # bob reads English
    assert chat.pushes("bob")[-1].startswith("🧾 Q1 · Acme Trading · $80,000 · by alice")
    assert chat.say("[bob] /quote approve Q1") == "✅ Q1 approved by bob · 09:00"
    assert chat.pushes("alice")[-1] == "✅ Q1 已由 bob 同意 · 09:00\nL1 Acme Trading · US$80,000"
    chat.say("/follow L1 call back next=fri")
    chat.clock.set(at(30, 10))
    run_worker(chat)
    assert chat.pushes("alice")[-1].startswith("⏰ 逾期未跟进（1）\n"
                                               "· L1 Acme Trading — 应于 11月27日（周五）跟进")
    assert chat.say("/me lang team") == "🌐 I'll use the team's language with you."


def test_my_timezone_for_times_and_quiet_hours(team: Chat) -> None:
    chat = team
    assert chat.say("/me timezone America/New_York") == \
        "🕒 Your timezone: America/New_York (now 20:00)."
    chat.say("/me quiet 22:00-07:00")  # New York nights
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    chat.clock.set(at(26, 12))  # 23:00 in New York
    chat.say("[bob] /quote approve Q1")
    assert [p for p in chat.pushes("alice") if "Q1" in p] == []
    chat.clock.set(at(26, 7, 1, tz=NY))
    chat.deliver()
    # her clock, not bob's, and read the next morning: the time says which day it was
    assert chat.pushes("alice")[-1].startswith("✅ Q1 approved by bob · 11-25 23:00")
    assert "Timezone: America/New_York" in chat.say("/me settings")


def test_my_settings_card_and_wrong_settings(team: Chat) -> None:
    chat = team
    card = chat.say("/me settings")
    for line in ("nudges: digest (one message per run)", "approvals: realtime", "updates: realtime",
                 "Quiet hours: team's (20:00-08:30)", "Language: team's",
                 "Timezone: team's (Asia/Shanghai)",
                 "Silent approver: no"):
        assert line in card
    assert "Change: /me notify nudges realtime|digest|off" in card
    assert chat.say("/me notify") == card
    before = chat.snapshot()
    for line, expected in [
        ("/me notify loudly",
         "“loudly” is not one of: nudges, approvals, updates, all · realtime, digest, off."),
        ("/me notify nudges", "Missing realtime, digest or off."),
        ("/me quiet 25:00-08:00", "“25:00-08:00” is not one of: 21:00-08:00, off, team."),
        ("/me quiet", "Missing 21:00-08:00, off, team."),
        ("/me lang fr", "“fr” is not one of: zh, en, team."),
        ("/me timezone Mars/Base",
         "“Mars/Base” is not a timezone. Timezones look like Asia/Shanghai"),
        ("/me silent maybe", "“maybe” should be yes or no."),
    ]:
        answer = chat.say(line)
        assert expected in answer, (line, answer)
        assert "Usage: /me" in answer or "用法：/我的" in answer, answer
    assert chat.snapshot() == before


def test_chinese_settings(chat: Chat) -> None:
    """A team that has not set its language: Chinese commands are answered in Chinese."""
    assert chat.say("[carol] /我的 通知 提醒 实时") == "🔔 已保存：提醒 实时。"
    assert chat.say("[carol] /我的 免打扰 21:00-08:00").startswith("🌙 免打扰 21:00-08:00")
    assert chat.say("[carol] /我的 静默 开").startswith("🤫 静默审批人")
    card = chat.say("[carol] /我的 设置")
    assert "提醒: 实时" in card and "免打扰: 21:00-08:00" in card and "静默审批: 是" in card
    before = chat.snapshot()
    wrong = chat.say("[carol] /我的 通知 大声")
    assert wrong.startswith("❓ “大声”不是可选值之一") and "用法：/我的 通知" in wrong
    assert chat.snapshot() == before
    with unit_of_work(chat.engine) as session:
        carol = session.exec(select(Member).where(Member.name == "carol")).one()
        events = list(session.exec(select(AuditEvent).where(AuditEvent.entity == "member",
                                                            AuditEvent.entity_id == carol.id,
                                                            AuditEvent.action == "prefs")))
        assert len(events) == 3
