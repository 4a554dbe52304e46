"""Process points (过程积分): what each action earns under the team's settings, what earns nothing,
the ranking in `/report points` and in the weekly digest, and the same numbers recomputed from the
audit trail. The fixture clock says Thursday 26 Nov 2026, 09:00 in Shanghai; the week is
Mon 23 – Sun 29 Nov."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import select

from models.config import TeamConfig
from models.db import unit_of_work
from models.points import awards, note_weight, ranking
from models.reports import period_of
from models.tables import Team
from reminders.worker import Worker
from tests.chat import Chat

SH = ZoneInfo("Asia/Shanghai")
HEADER = ["#", "Member", "Points", "Follow-ups", "On time", "Stages", "Quotes", "Won"]


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=SH)


def act(chat: Chat, moment: datetime, *lines: str) -> None:
    """Type lines at a moment, one minute apart (so none repeats the one before)."""
    chat.clock.set(moment)
    for line in lines:
        answer = chat.say(line)
        assert not answer.startswith(("❓", "⚠", "Only", "Sorry")), f"{line!r} → {answer}"
        chat.clock.advance(minutes=1)


def board(chat: Chat, line: str = "[bob] /report points") -> list[list[str]]:
    """The ranking table as shown, header first."""
    return chat.reply(line).table


def totals(chat: Chat, line: str = "[bob] /report points") -> dict[str, int]:
    return {row[1]: int(row[2]) for row in board(chat, line)[1:]}


def week_of_work(chat: Chat) -> None:
    """alice: a follow-up (2), two new stages (3 + 3), a quote bob approves (5), a win (10) = 23;
    carol: two follow-ups (2 + 2), the second on its planned day (+1) = 5."""
    act(
        chat,
        at(26, 9),
        "/lead add Acme value=120k contact=Li",  # L1 alice
        "/follow L1 called Li, wants a demo next week",  # +2
        "/lead next L1",  # Contacted +3
        "[carol] /lead add Beta",  # L2 carol
        "[carol] /follow L2 sent the deck and the price list next=fri",
    )  # +2, due Fri 27
    act(
        chat,
        at(27, 10),
        "[carol] /follow L2 walked their CTO through the deck",  # +2, on its day +1
        "/lead next L1",  # Qualified +3
        "/quote L1 80k",  # a manager must approve
        "[bob] /quote approve Q1",  # +5 to alice
        "/lead won L1",
    )  # +10


def test_each_action_scores_as_configured(team: Chat) -> None:
    week_of_work(team)
    assert board(team) == [
        HEADER,
        ["1", "alice", "23", "1", "0", "2", "1", "1"],
        ["2", "carol", "5", "2", "1", "0", "0", "0"],
    ]
    shown = team.say("[bob] /report points")
    assert "🏅 Points · Mon 23 Nov – Sun 29 Nov" in shown
    assert "Follow-up 2 (+1 on time) · new stage 3 · quote approved 5 · won 10." in shown

    # The settings are the team's own; the whole week is scored again under them.
    saved = team.say("[erin] /team config points.won=20 跟进积分=1")
    assert "⚙️ Saved: points.won=20, points.followup=1" in saved
    assert totals(team) == {"alice": 32, "carol": 3}
    assert "points.followup=1 points.on_time=1 points.stage=3" in team.say("[erin] /team config")
    assert "❓" in team.say("[erin] /team config points.won=-5")
    assert "points.burst_count" in team.say("[erin] /team config points.burst_count=1")
    assert totals(team) == {"alice": 32, "carol": 3}


def test_empty_actions_earn_nothing(team: Chat) -> None:
    act(team, at(26, 9), "[dan] /lead add Gamma value=50k contact=Wu", "[dan] /lead add Delta")
    # A note of a few characters, in either language, or one character repeated, is not work.
    act(
        team,
        at(26, 10),
        "[dan] /follow L1 ok",
        "[dan] /follow L1 已沟通",
        "[dan] /follow L1 ..........",
        "[dan] /follow L1 aaaaaaaaaaaaaaaa",
    )
    assert board(team) == []
    assert "Nobody has earned points in this period yet." in team.say("[bob] /report points")

    # Ten follow-ups on one lead in a minute earn nothing, however long their notes.
    team.clock.set(at(26, 11))
    for n in range(10):
        team.say(f"[dan] /follow L1 long note number {n} about the customer's budget")
        team.clock.advance(seconds=5)
    assert board(team) == []

    # Two in a minute (a correction) count once; a follow-up a minute later counts again.
    team.clock.set(at(26, 12))
    team.say("[dan] /follow L2 met the buyer, budget approved for Q1")
    team.clock.advance(seconds=30)
    team.say("[dan] /follow L2 met the buyer, budget approved for Q1 (typo)")
    assert totals(team) == {"dan": 2}
    team.clock.advance(seconds=61)
    team.say("[dan] /follow L2 the buyer asked for references, sent two")
    assert totals(team) == {"dan": 4}

    # Going back and forth through the pipeline earns each stage once.
    act(
        team,
        at(26, 13),
        "[dan] /lead next L1",
        "[dan] /lead stage L1 lead",
        "[dan] /lead next L1",
        "[dan] /lead next L1",
        "[dan] /lead stage L1 contacted",
        "[dan] /lead next L1",
    )
    assert totals(team) == {"dan": 10}  # Contacted 3 + Qualified 3

    # A quote approved automatically, or on its requester's own authority, earns nothing.
    act(team, at(26, 14), "[dan] /quote L1 30k")
    assert "approved" in team.say("[dan] /quote list")
    assert totals(team) == {"dan": 10}


def test_the_on_time_extra_needs_a_plan_from_an_earlier_day_kept_by_its_date(team: Chat) -> None:
    act(
        team,
        at(26, 9),
        "[carol] /lead add Epsilon",
        "[carol] /follow L1 first call with the owner next=today",
    )  # no plan before: no extra
    # Planned this morning for today: kept, but a plan made the same day earns no extra.
    act(team, at(26, 15), "[carol] /follow L1 second call, they want samples next=sat")
    # Sunday, after the planned Saturday: late.
    act(team, at(29, 10), "[carol] /follow L1 samples arrived, they like them next=2026-11-30")
    assert board(team, "[carol] /report points week")[1][1:5] == ["carol", "6", "3", "0"]
    act(team, at(30, 10), "[carol] /follow L1 ordered a trial batch")  # on the planned Monday
    assert board(team, "[carol] /report points today")[1][1:5] == ["carol", "3", "1", "1"]


def test_ranking_in_report_points_and_the_weekly_digest(team: Chat) -> None:
    week_of_work(team)
    act(team, at(27, 11), "[dan] /lead add Zeta", "[dan] /follow L3 intro call, they buy in spring")
    # A rep sees the team's ranking; a person's own line or, for a manager, anyone's.
    assert totals(team, "/report points") == {"alice": 23, "carol": 5, "dan": 2}
    assert board(team, "[carol] /report points @carol")[1][1:3] == ["carol", "5"]
    assert "Only a manager" in team.say("[dan] /report points @carol")
    assert totals(team, "[bob] /report points today") == {"alice": 18, "carol": 3, "dan": 2}
    assert totals(team, "[bob] /report points month") == {"alice": 23, "carol": 5, "dan": 2}
    assert "🏅 Points  alice 23 · carol 5 · dan 2" in team.say("[bob] /report week").splitlines()
    # A rep's own weekly report ranks only them, like the rest of it.
    assert "🏅 Points  carol 5" in team.say("[carol] /report week").splitlines()
    assert "🏅" not in team.say("[bob] /report today")

    team.clock.set(at(30, 9))  # Monday: the weekly digest covers 23–29 Nov
    asyncio.run(Worker(team.engine, team.clock, team.delivery).run_once())
    [weekly] = [push for push in team.pushes("console") if "Sales weekly · Mon 23 Nov" in push]
    assert "🏅 Points  alice 23 · carol 5 · dan 2" in weekly.splitlines()
    daily = [push for push in team.pushes("console") if "Sales daily" in push]
    assert daily and all("🏅" not in push for push in daily)


def test_a_chinese_team_sees_its_ranking_in_chinese(chat: Chat) -> None:
    act(
        chat,
        at(26, 9),
        "/团队 配置 语言=zh",
        "/线索 新建 华为技术 联系人=王经理",
        "/跟进 L1 已电话沟通，客户要方案",
    )
    reply = chat.reply("/报表 积分")
    assert reply.table == [
        ["#", "成员", "积分", "跟进", "按时", "推进", "报价获批", "赢单"],
        ["1", "alice", "2", "1", "0", "0", "0", "0"],
    ]
    shown = chat.say("/报表 积分")
    assert "🏅 过程积分 · 11月23日（周一） – 11月29日（周日）" in shown
    assert "跟进 2 分（按时 +1）" in shown and "1  alice  2" in shown


def test_recomputed_from_the_audit_trail_equals_the_live_numbers(team: Chat) -> None:
    live: list[dict[str, int]] = []
    steps = [
        (at(26, 9), "/lead add Acme value=120k contact=Li"),
        (at(26, 9, 5), "/follow L1 called Li, wants a demo next week next=fri"),
        (at(26, 9, 10), "/lead next L1"),
        (at(26, 9, 15), "[carol] /lead add Beta"),
        (at(26, 9, 20), "[carol] /follow L2 sent the deck and the price list"),
        (at(27, 10), "/follow L1 demo done, the CFO joined"),
        (at(27, 10, 5), "/lead next L1"),
        (at(27, 10, 10), "/quote L1 80k"),
        (at(27, 10, 15), "[bob] /quote approve Q1"),
        (at(27, 10, 20), "/lead won L1"),
    ]
    for moment, line in steps:
        act(team, moment, line)
        live.append(totals(team))
    assert live[-1] == {"alice": 26, "carol": 2}  # 2 + 3 + (2 + 1) + 3 + 5 + 10; carol 2
    assert [step.get("alice", 0) for step in live] == [0, 2, 5, 5, 5, 8, 11, 11, 16, 26]

    # A new process (a fresh dispatcher, nothing cached) scores the same from the audit trail.
    assert totals(Chat(team.engine, team.clock)) == live[-1]
    with unit_of_work(team.engine) as session:
        acme = session.exec(select(Team)).one()
        config = TeamConfig.model_validate(acme.config)
        week = period_of("week", at(27, 12).date(), config)
        found = awards(session, team_id=acme.id or 0, config=config, start=week.start, end=week.end)
        by_name = {
            line.member.name: line.points
            for line in ranking(
                session, team_id=acme.id or 0, config=config, start=week.start, end=week.end
            )
        }
        days = [period_of("today", at(day, 12).date(), config) for day in (26, 27)]
        per_day = [
            ranking(session, team_id=acme.id or 0, config=config, start=p.start, end=p.end)
            for p in days
        ]
    assert by_name == live[-1]
    assert sum(award.points for award in found) == sum(live[-1].values())
    assert [award.action for award in found if award.points] == [
        "followup",
        "stage",
        "followup",
        "followup",
        "on_time",
        "stage",
        "quote_approved",
        "won",
    ]
    summed: dict[str, int] = {}
    for lines in per_day:
        for line in lines:
            summed[line.member.name] = summed.get(line.member.name, 0) + line.points
    assert summed == live[-1]  # the days add up to the week


def test_note_weight_counts_chinese_double_and_ignores_punctuation() -> None:
    assert note_weight("ok") == 0
    assert note_weight("已电话沟通") == 10
    assert note_weight("called Li") == 8
    assert note_weight("!!!???....") == 0
    assert note_weight("aaaaaaaaaaaaaaaaaaaa") == 0
