"""What a week of two teams at work turned up: a follow-up date gone by this year, a snooze that
said one day and meant another, one lead's buttons twice in a nudge, and a typo that made a
member. The `team` fixture works in English, the `zh` one in Chinese; both in Shanghai time."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from reminders.worker import Worker
from tests.chat import Chat

SH = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, tzinfo=SH)


def run_worker(chat: Chat) -> None:
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def refused(chat: Chat, line: str) -> str:
    """The answer to a line that must change nothing."""
    before = chat.snapshot()
    answer = chat.say(line)
    assert chat.snapshot() == before, line
    return answer


# --- dates gone by -------------------------------------------------------------------------------


def test_a_month_and_day_gone_by_this_year_is_refused_not_moved_to_next_year(
    team: Chat, zh: Chat
) -> None:
    for chat, lead, line in (
        (team, "/lead add Acme", "/follow L1 check in next=12/1"),
        (zh, "/线索 新建 德信集团", "/跟进 L1 再联系 下次=12/1"),
    ):
        chat.say(lead)
        chat.clock.set(at(2026, 12, 17))  # Thursday
        answer = refused(chat, line)
        if chat is team:
            assert "Tue 1 Dec has passed" in answer and "can't be in the past" in answer
            assert "2027-12-01" in answer
        else:
            assert "12月1日（周二）已经过去" in answer and "不能是过去的日期" in answer
            assert "2027年12月1日" in answer
    assert "Next: Wed 1 Dec 2027" in team.say("/follow L1 check in next=2027-12-01")
    assert "2027年12月1日（周三）" in zh.say("/跟进 L1 再联系 下次=2027年12月1日")


def test_a_day_early_next_year_is_still_read_ahead_and_shown_with_its_year(
    team: Chat, zh: Chat
) -> None:
    for chat in (team, zh):
        chat.clock.set(at(2026, 12, 30))
    team.say("/lead add Acme")
    zh.say("/线索 新建 德信集团")
    assert "Next: Tue 5 Jan 2027." in team.say("/follow L1 call next=1/5")
    assert "2027年1月5日（周二）" in zh.say("/跟进 L1 电话 下次=1/5")
    assert "Next follow-up: Tue 5 Jan 2027" in team.say("/lead show L1")
    assert "Thu 31 Dec" in team.say("/follow L1 call next=tomorrow")  # this year's: no year


def test_yesterday_is_refused_as_past_not_as_gibberish(team: Chat, zh: Chat) -> None:
    team.say("/lead add Acme")
    zh.say("/线索 新建 德信集团")
    answer = refused(team, "/follow L1 call next=yesterday")
    assert "can't be in the past" in answer and "not a date I understand" not in answer
    answer = refused(zh, "/跟进 L1 电话 下次=昨天")
    assert "不能是过去的日期" in answer and "无法识别" not in answer


# --- snoozes -------------------------------------------------------------------------------------


def nudged_days(chat: Chat, name: str, about: str, days: range) -> list[int]:
    """The days of December 2026 on which `name` was nudged about `about`, the worker run each."""
    found = []
    for day in days:
        before = len(chat.pushes(name))
        chat.clock.set(at(2026, 12, day))
        run_worker(chat)
        if any(about in push for push in chat.pushes(name)[before:]):
            found.append(day)
    return found


def test_a_week_snooze_is_quiet_seven_days_and_names_the_day_nudges_resume(
    team: Chat, zh: Chat
) -> None:
    team.clock.set(at(2026, 12, 7))
    team.say("/lead add Acme Trading")
    team.say("/follow L1 sent the brochure next=tomorrow")  # due Tue 8 Dec
    zh.say("[李四] /线索 新建 德信集团")
    zh.say("[李四] /跟进 L1 发了资料 下次=明天")
    team.clock.set(at(2026, 12, 8))
    assert team.say("/lead snooze L1 1w").startswith(
        "😴 L1 Acme Trading: nudges resume Tue 15 Dec."
    )
    assert zh.say("[李四] /线索 暂缓 L1 1周").startswith(
        "😴 L1 德信集团：12月15日（周二）起恢复提醒。"
    )
    assert "Snoozed: nudges resume Tue 15 Dec" in team.say("/lead show L1")
    assert "暂缓: 12月15日（周二）起恢复提醒" in zh.say("[李四] /线索 查看 L1")
    assert nudged_days(team, "alice", "L1 Acme", range(9, 17)) == [15]  # once per due date
    # The worker scans every team, and delivered the Chinese team's nudges through the same
    # console: 李四 too heard nothing until the 15th.
    first = [push for push in team.pushes("李四") if "L1 德信集团" in push]
    assert len(first) == 1 and "应于 12月8日（周二）跟进（已过 7 天）" in first[0]
    assert "Snoozed" not in team.say("/lead show L1")  # over


def test_a_receivables_snooze_names_the_day_payment_nudges_resume(team: Chat) -> None:
    team.clock.set(at(2026, 12, 7))
    team.say("/lead add Acme Trading")
    team.say("/contract L1 100k signed=12/1")
    team.say("/plan C1 100%@signing")
    run_worker(team)
    assert (
        team.say("/receivables snooze C1 3d")
        == "😴 C1 · Acme Trading: payment nudges resume Thu 10 Dec."
    )
    assert nudged_days(team, "alice", "C1", range(8, 12)) == [10, 11]


# --- one lead, one row of buttons ----------------------------------------------------------------


def test_a_lead_both_overdue_and_stuck_gets_its_buttons_once_in_a_batched_nudge(
    team: Chat, zh: Chat
) -> None:
    team.say("/me notify nudges digest")
    team.say("/lead add Acme Trading")
    team.say("/follow L1 sent a sample next=fri")  # Fri 27 Nov
    zh.say("/我的 通知 提醒 汇总")
    zh.say("/线索 新建 德信集团")
    zh.say("/跟进 L1 寄了样品 下次=周五")
    team.clock.set(at(2026, 12, 4, 10))  # a week late and a week in Lead
    run_worker(team)
    [nudge] = [push for push in team.pushes("alice") if "Acme" in push]
    assert "overdue" in nudge and "without progress" in nudge
    assert nudge.count("[Log follow-up L1 → /follow L1]") == 1
    assert nudge.count("[Snooze 1d → /lead snooze L1 1d]") == 1
    [nudge] = [push for push in team.pushes("张三") if "德信集团" in push]
    assert nudge.count("[写跟进 L1 → /跟进 L1]") == 1
    assert nudge.count("/线索 暂缓 L1 1天]") == 1


# --- a typo is nobody ----------------------------------------------------------------------------


def test_a_mistyped_name_is_refused_and_never_becomes_a_member(team: Chat, zh: Chat) -> None:
    for line in ("[erin] /team role @ghost manager", "[erin] /team role @carol rep manager=@ghost"):
        answer = refused(team, line)
        assert "I don't know @ghost in this team yet" in answer
    answer = refused(zh, "[王总] /团队 角色 @鬼 经理")
    assert "团队里还没有 @鬼" in answer
    assert "ghost" not in team.say("/team")
    team.say("/lead add Acme Trading value=200k")
    for line in (
        "[bob] /lead assign L1 @ghost",
        "[bob] /team delegate @ghost until=2026-12-20",
        "[erin] /team handoff @alice @ghost",
        "[bob] /target @ghost 5k",
    ):
        assert "I don't know @ghost in this team yet" in refused(team, line), line
    team.say("/quote L1 150k")
    assert [name for name in ("bob", "erin") if team.pushes(name)]  # the real approvers are asked
    assert not team.pushes("ghost")


def test_a_snooze_that_ends_today_names_the_day_as_every_date_reads(team: Chat, zh: Chat) -> None:
    team.clock.set(at(2026, 12, 8))
    team.say("/lead add Acme Trading")
    zh.say("[李四] /线索 新建 德信集团")
    assert team.say("/lead snooze L1 0d") == "Snooze until a day after today (Tue 8 Dec is not)."
    assert zh.say("[李四] /线索 暂缓 L1 0天") == "暂缓日期需要晚于今天（12月8日（周二）不行）。"
    assert "Snoozed" not in team.say("/lead show L1")
