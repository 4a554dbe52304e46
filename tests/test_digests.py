"""The daily and weekly digests against numbers worked out by hand from a known week of activity, the
same numbers on demand with `/report`, the zh wording, the funnel chart, and the digest time."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reminders.worker import Worker, WorkerReport
from tests.chat import Chat

SH = ZoneInfo("Asia/Shanghai")
TEAM = ["/team config locale=en timezone=Asia/Shanghai", "[bob] /help", "/team role @bob manager", "[carol] /help", "[dan] /help",
        "[erin] /help", "/team role @erin admin", "/team role @alice rep"]


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def run_worker(chat: Chat) -> WorkerReport:
    return asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def digests(chat: Chat) -> list[str]:
    """Digests delivered to the team's channel (the console channel)."""
    return [push for push in chat.pushes("console") if push.startswith("📊")]


def lines_of(text: str) -> dict[str, str]:
    """A digest by its lines' first words, without the chart line (its path differs per render)."""
    found = {}
    for line in text.splitlines():
        if line.strip().startswith("🖼"):
            continue
        key = line.split(" ", 1)[0] if not line.startswith(("By rep", "New leads")) else line[:6]
        found[key] = line
    return found


def rep_says(part: str, followups: int, won: str, target: str | None) -> bool:
    """One rep's part of the "By rep" line: follow-ups, won in the period, and the target when one is set."""
    said = re.match(rf"{followups} follow-ups? · {re.escape(won)} won", part) is not None
    return said and (target in part if target else "/" not in part)


def chart_path(text: str) -> Path:
    match = re.search(r"🖼 .*: (\S+\.png)$", text, re.M)
    assert match, text
    return Path(match.group(1))


def act(chat: Chat, moment: datetime, *lines: str) -> None:
    chat.clock.set(moment)
    for line in lines:
        answer = chat.say(line)
        assert not answer.startswith(("Only", "⚠", "❓")), f"{line!r} → {answer}"


@pytest.fixture
def week(chat: Chat) -> Chat:
    """The week of Mon 23 – Sun 29 Nov 2026 (Shanghai) up to Friday morning.

    Leads: L1 Oldco (alice, from the week before, untouched in Lead), L2 Acme (alice: Proposal, Q1 80k
    approved, won 80k Thu), L3 Beta (carol: Proposal, Q2 60k rejected), L4 Gamma (carol: Contacted, lost
    Thu), L5 Delta (dan: Qualified, Q3 150k waiting since Thu 11:00), L6 Epsilon (carol, won 45k Fri from
    Lead), L7 Zeta (dan, new on Fri, Contacted). Targets for November: alice 200k, carol 100k.
    """
    act(chat, at(18, 10), *TEAM, "/lead add Oldco value=50k", "[erin] /target @alice 200k",
        "[erin] /target @carol 100k")
    act(chat, at(23, 10), "/lead add Acme value=120k contact=Li", "[carol] /lead add Beta value=80k contact=Wang",
        "/follow L2 intro call next=wed", "[carol] /follow L3 sent the deck next=fri")
    act(chat, at(24, 10), "[carol] /lead add Gamma value=30k", "[dan] /lead add Delta value=200k contact=Zhao",
        "[carol] /follow L4 call next=thu", "[dan] /follow L5 call next=sat", "[carol] /lead next L4",
        "[carol] /lead next L3", "[carol] /lead next L3", "[dan] /lead next L5", "[dan] /lead next L5",
        "/lead next L2", "/lead next L2", "/lead next L2")
    act(chat, at(25, 10), "[carol] /lead next L3", "/quote L2 80k", "[carol] /quote L3 60k",
        "/follow L1 checking in next=thu", "[carol] /lead add Epsilon value=40k")
    act(chat, at(26, 11), "[bob] /quote approve Q1", "[bob] /quote reject Q2 too low", "[dan] /quote L5 150k",
        "/lead next L2", "/lead won L2", "[carol] /lead lost L4 went with a competitor")
    act(chat, at(27, 10), "[carol] /lead won L6 45k", "[carol] /follow L3 chased the signature next=sat",
        "[dan] /lead add Zeta value=10k", "[dan] /follow L7 intro", "[dan] /lead next L7")
    return chat


def test_daily_digest_at_18_00_once_with_the_days_numbers(week: Chat) -> None:
    chat = week
    chat.clock.set(at(27, 17, 59))
    run_worker(chat)  # the worker never ran before: it catches up with the latest daily and weekly digests
    [thursday] = [d for d in digests(chat) if "Sales daily" in d]
    assert thursday.startswith("📊 Sales daily · Thu 26 Nov")
    assert [d.splitlines()[0] for d in digests(chat) if "weekly" in d] == ["📊 Sales weekly · Mon 16 Nov – Sun 22 Nov"]

    chat.clock.set(at(27, 18))
    assert run_worker(chat).digests == 1
    chat.clock.set(at(27, 18, 30))
    second_run = run_worker(chat)
    chat.clock.set(at(27, 23, 59))
    run_worker(chat)
    [_thursday, digest] = [d for d in digests(chat) if "Sales daily" in d]

    got = lines_of(digest)
    assert got["📊"] == "📊 Sales daily · Fri 27 Nov"
    # Friday: L7 is new; carol (L3) and dan (L7) followed up; no quote asked or decided; carol won 45k;
    # Q3 has waited since Thu 11:00: 9 + 9.5 working hours (quiet 20:00–08:30).
    assert got["New le"] == ("New leads 1 · Follow-ups 2 · Quotes 0 asked, 1 waiting (oldest Q3, 18 working h)"
                             " · Won $45K")
    # Reached: 7 leads; Contacted 6 (all but L1); Qualified 4 (L2 L3 L5 L6); Proposal 3; Contract 2; Delivery 2
    # (won leads count as through the whole pipeline, L4 was lost in Contacted); won 2.
    assert got["Funnel"] == ("Funnel  Lead 7 → Contacted 6 (86%) → Qualified 4 (67%)"
                             " → Proposal 3 (75%)"
                             " → Contract 2 (67%) → Delivery 2 (100%) → Won 2 (100%)")
    reps = dict(part.split(" ", 1) for part in got["By rep"].removeprefix("By rep  ").split(" | "))
    assert list(reps) == ["carol", "dan", "alice"]  # most won first, then most follow-ups
    assert rep_says(reps["carol"], 1, "$45K", "$45K / $100K (45%)")
    assert rep_says(reps["dan"], 1, "$0", None)
    assert rep_says(reps["alice"], 0, "$0", "$80K / $200K (40%)")  # the month's won against the target
    assert got["⚠️"] == "⚠️ Overdue follow-ups 1: L1 Oldco (alice, 1d)"
    assert got["🐢"] == "🐢 Stuck 1: L1 Oldco in Lead 9d (alice)"

    chart = chart_path(digest)
    assert chart.exists() and chart.read_bytes().startswith(b"\x89PNG")

    chat.clock.set(at(27, 18))
    on_demand = chat.say("[erin] /report today")
    assert lines_of(on_demand) == got
    assert chart_path(on_demand).read_bytes().startswith(b"\x89PNG")
    # A rep asking sees the same day narrowed to their own leads.
    mine = lines_of(chat.say("[carol] /report today"))
    assert mine["New le"].startswith("New leads 0 · Follow-ups 1 · Quotes 0") and "Won $45K" in mine["New le"]

    assert second_run.digests == 0  # what `dealbot worker --once` reports


def test_weekly_digest_on_monday_09_00_covers_monday_to_sunday(week: Chat) -> None:
    chat = week
    act(chat, at(29, 23, 30), "[dan] /lead add Eta")  # Sunday night: still in the week
    chat.clock.set(at(29, 23, 59))
    asked = lines_of(chat.say("[erin] /report week"))
    act(chat, at(30, 0, 10), "[dan] /follow L8 first call")  # Monday: next week already

    def weeklies() -> list[str]:
        return [d for d in digests(chat) if "Sales weekly" in d]

    chat.clock.set(at(30, 8, 59))
    run_worker(chat)  # catching up: the week of 16 Nov (due last Monday) and Sunday's daily
    assert [d.splitlines()[0] for d in weeklies()] == ["📊 Sales weekly · Mon 16 Nov – Sun 22 Nov"]
    chat.clock.set(at(30, 9))
    assert run_worker(chat).digests == 1
    chat.clock.set(at(30, 12))
    run_worker(chat)
    [_before, weekly] = weeklies()

    got = lines_of(weekly)
    assert got["📊"] == "📊 Sales weekly · Mon 23 Nov – Sun 29 Nov"
    # New: L2..L8 (L1 is from the week before). Follow-ups: alice 2 (L2, L1), carol 3 (L3, L4, L3),
    # dan 2 (L5, L7); dan's Monday call on L8 is next week's. Quotes Q1 Q2 Q3; won 80k + 45k.
    # Q3 waited Thu 11:00 → Mon 09:00: 18.5 + 2 + 11.5 + 11.5 + 0.5 = 44 working hours.
    assert got["New le"] == ("New leads 7 · Follow-ups 7 · Quotes 3 asked,"
                             " 2 decided (1 approved, 1 rejected),"
                             " 1 waiting (oldest Q3, 44 working h) · Won $125K")
    # Reached: 8 leads; Contacted 6 → 75%; Qualified 4 → 67%; Proposal 3 → 75%; Contract 2 → 67%; Delivery 2.
    assert got["Funnel"] == ("Funnel  Lead 8 → Contacted 6 (75%) → Qualified 4 (67%)"
                             " → Proposal 3 (75%)"
                             " → Contract 2 (67%) → Delivery 2 (100%) → Won 2 (100%)")
    reps = dict(part.split(" ", 1) for part in got["By rep"].removeprefix("By rep  ").split(" | "))
    assert list(reps) == ["alice", "carol", "dan"]
    assert rep_says(reps["alice"], 2, "$80K", "$80K / $200K (40%)")
    assert rep_says(reps["carol"], 3, "$45K", "$45K / $100K (45%)")
    assert rep_says(reps["dan"], 2, "$0", None)
    # Monday 30 Nov: L1 was due Thu (4 days), L3 and L5 on Sat (2 days); only L1 sat still for 7+ days.
    assert got["⚠️"] == "⚠️ Overdue follow-ups 3: L1 Oldco (alice, 4d) · L3 Beta (carol, 2d) · L5 Delta (dan, 2d)"
    assert got["🐢"] == "🐢 Stuck 1: L1 Oldco in Lead 11d (alice)"
    assert chart_path(weekly).read_bytes().startswith(b"\x89PNG")

    # `/report week` on Sunday night showed the same week's numbers (only the waiting hours moved on).
    assert asked["📊"] == got["📊"]
    assert asked["New le"] == got["New le"].replace("44 working h", "43 working h")
    assert asked["Funnel"] == got["Funnel"] and asked["By rep"] == got["By rep"]
    # Monday's own daily digest is not due in the morning: only Sunday's, caught up once.
    assert [p.splitlines()[0] for p in digests(chat) if "Sales daily" in p] == ["📊 Sales daily · Sun 29 Nov"]


def test_zh_team_gets_its_digest_in_chinese(chat: Chat) -> None:
    act(chat, at(26, 9), "/团队 配置 语言=zh", "[bob] /帮助", "/团队 角色 @bob manager",
        "/线索 新建 华为技术 预计=12万", "/跟进 L1 已电话沟通 下次=明天")
    chat.clock.set(at(26, 18))
    run_worker(chat)
    [digest] = digests(chat)
    got = lines_of(digest)
    assert got["📊"] == "📊 销售日报 · 11月26日（周四）"
    assert got["新线索"] == "新线索 1 · 跟进 1 · 报价 申请 0 · 赢单 ¥0"
    assert got["漏斗"] == "漏斗  线索 1 → 初步沟通 0（0%） → 需求挖掘 0 → 方案报价 0 → 合同签订 0 → 实施交付/回款 0 → 赢单 0"
    assert "alice 跟进 1" in got["按成员"]
    assert chart_path(digest).read_bytes().startswith(b"\x89PNG")
    assert lines_of(chat.say("/日报")) == got


def test_digest_time_moves_with_the_team_setting(chat: Chat) -> None:
    act(chat, at(26, 9), *TEAM, "[erin] /team config digest_time=17:30", "/lead add Acme value=10k")
    chat.clock.set(at(26, 17, 29))
    run_worker(chat)
    assert digests(chat) == []
    chat.clock.set(at(26, 17, 30))
    run_worker(chat)
    chat.clock.set(at(26, 18))
    run_worker(chat)
    [digest] = digests(chat)
    assert "Sales daily · Thu 26 Nov" in digest and "New leads 1" in digest
    chat.clock.set(at(27, 17, 30))  # the next day has its own
    run_worker(chat)
    assert len(digests(chat)) == 2 and "Fri 27 Nov" in digests(chat)[-1]
