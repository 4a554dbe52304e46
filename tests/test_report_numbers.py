"""The numbers a team acts on, read as a manager and a rep read them: one funnel (leads that
reached at least each stage, then won) in the text and the chart alike, sub-counts that never
exceed their total, one waiting time in every message of a run, a rep's numbers equal to the rep's
line in the team's digest, money lines only when they say something, one Monday message for a
quiet weekend, and a chart per reader that a Chinese team reads in Chinese where a font allows."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime
from pathlib import Path

import pytest

from models.clock import FixedClock
from models.config import TeamConfig
from models.db import unit_of_work
from models.reports import build_digest, period_of
from models.tables import Team
from reminders.worker import Worker
from tests.chat import Chat
from tests.test_digests import TEAM, act, at, digests, run_worker

EN_FUNNEL = (
    "Funnel  Lead 4 → Contacted 3 (75%) → Qualified 1 (33%) → Proposal 1 (100%) → Contract 1 (100%)"
    " → Delivery 1 (100%) → Won 1 (100%)"
)


ZH_TEAM = (
    "/团队 配置 语言=zh",
    "[bob] /帮助",
    "/团队 角色 @bob manager",
    "[carol] /帮助",
    "[erin] /帮助",
    "/团队 角色 @erin admin",
    "/团队 角色 @alice rep",
)


def four_leads(chat: Chat) -> None:
    """L1 alice → Contacted; L2 carol stays in Lead; L3 dan → Contacted and back to Lead; L4 alice,
    won from Contacted. Reached at least: Lead 4, Contacted 3 (L1, L3, L4), then only the won L4."""
    act(
        chat,
        at(26, 10),
        "/lead add A1 value=100k",
        "/follow L1 call",
        "/lead next L1",
        "[carol] /lead add C1",
        "[dan] /lead add D1",
        "[dan] /follow L3 call",
        "[dan] /lead next L3",
        "[dan] /lead stage L3 lead",
        "/lead add A2 value=80k",
        "/follow L4 call",
        "/lead next L4",
        "/lead won L4 80k",
    )


def test_the_funnel_counts_leads_that_reached_each_stage_then_won(team: Chat) -> None:
    four_leads(team)
    report = team.say("[bob] /report")
    assert EN_FUNNEL in report
    # The chart draws the same numbers its caption says.
    assert f"🖼 {EN_FUNNEL.removeprefix('Funnel  ')}:" in report
    # A rep's own funnel: dan's L3 reached Contacted before it went back; nothing after a 0 has a %.
    dan = team.say("[dan] /report")
    assert (
        "Funnel  Lead 1 → Contacted 1 (100%) → Qualified 0 (0%) → Proposal 0 → Contract 0"
        " → Delivery 0 → Won 0"
    ) in dan
    assert "reached at least each stage" in team.say("/help report")


def test_the_funnel_in_chinese(chat: Chat) -> None:
    act(chat, at(26, 9), *ZH_TEAM)
    act(
        chat,
        at(26, 10),
        "/线索 新建 华为 预计=10万",
        "/跟进 L1 电话沟通",
        "/线索 推进 L1",
        "/线索 新建 小米",
        "/线索 赢单 L1 8万",
    )
    report = chat.say("[bob] /日报")
    funnel = (
        "线索 2 → 初步沟通 1（50%） → 需求挖掘 1（100%） → 方案报价 1（100%） → 合同签订 1（100%）"
        " → 实施交付/回款 1（100%） → 赢单 1（100%）"
    )
    assert f"漏斗  {funnel}" in report
    assert "到达过各阶段" in chat.say("/帮助 报表")


def carols_quotes(team: Chat) -> None:
    """Thursday carol asks for Q1 and Q2 (both need a manager); Friday bob approves both and carol
    asks for Q3, still waiting."""
    act(
        team, at(26, 10), "[carol] /lead add C1", "[carol] /quote L1 120k", "[carol] /quote L1 130k"
    )
    act(
        team,
        at(27, 10),
        "[bob] /quote approve Q1",
        "[bob] /quote approve Q2",
        "[carol] /quote L1 110k",
    )


def test_quotes_say_what_each_number_counts(team: Chat) -> None:
    carols_quotes(team)
    carol = team.say("[bob] /report @carol")
    assert "Quotes 1 asked, 2 decided (2 approved), 1 waiting (oldest Q3, 0 working h)" in carol


def test_quotes_say_what_each_number_counts_in_chinese(chat: Chat) -> None:
    act(chat, at(26, 9), *ZH_TEAM)
    act(
        chat,
        at(26, 10),
        "[carol] /线索 新建 小米",
        "[carol] /报价 L1 12万",
        "[carol] /报价 L1 13万",
    )
    act(chat, at(27, 10), "[bob] /审批 同意 Q1", "[bob] /审批 同意 Q2", "[carol] /报价 L1 11万")
    assert "报价 申请 1，审批 2（同意 2），待审批 1（最久 Q3，0 个工作小时）" in chat.say(
        "[bob] /日报 @carol"
    )


@pytest.mark.parametrize(
    ("setup", "lines", "reminded", "waited", "in_digest"),
    [
        (
            TEAM,
            ("[carol] /lead add C1", "[carol] /quote L1 120k"),
            "waiting for you",
            "waiting 19 working h",
            "1 waiting (oldest Q1, 19 working h)",
        ),
        (
            ZH_TEAM,
            ("[carol] /线索 新建 小米", "[carol] /报价 L1 12万"),
            "等待你审批",
            "已等待 19 个工作小时",
            "待审批 1（最久 Q1，19 个工作小时）",
        ),
    ],
    ids=["en", "zh"],
)
def test_one_waiting_time_in_every_message_of_a_run(
    chat: Chat,
    setup: list[str],
    lines: tuple[str, ...],
    reminded: str,
    waited: str,
    in_digest: str,
) -> None:
    """Q1 waits from Thu 10:00 to Fri 18:00: 32 hours on the wall, 19½ of them working hours
    (quiet 20:00–08:30). The reminder and the digest of the same run say the same number."""
    act(chat, at(26, 9), *setup)
    act(chat, at(26, 10), *lines)
    chat.clock.set(at(27, 18))
    run_worker(chat)
    [reminder] = [push for push in chat.pushes("bob") if reminded in push]
    assert waited in reminder
    [digest] = digests(chat)
    assert in_digest in digest


def test_a_reps_numbers_agree_with_the_teams(team: Chat) -> None:
    """alice adds L1 and follows it up twice; bob gives it to carol, who follows it up once."""
    act(
        team,
        at(26, 10),
        "/lead add A1",
        "/follow L1 call",
        "/follow L1 visit",
        "[bob] /lead assign L1 @carol",
        "[carol] /follow L1 took over",
    )
    team.clock.set(at(26, 18))
    run_worker(team)
    [digest] = digests(team)
    assert "alice 2 follow-ups" in digest and "carol 1 follow-up" in digest
    assert "New leads 1 · Follow-ups 2 ·" in team.say("[bob] /report @alice")
    assert "New leads 0 · Follow-ups 1 ·" in team.say("[bob] /report @carol")
    assert "New leads 1 · Follow-ups 2 ·" in team.say("/report")


def test_a_reps_numbers_agree_with_the_teams_in_chinese(chat: Chat) -> None:
    act(chat, at(26, 9), *ZH_TEAM)
    act(
        chat,
        at(26, 10),
        "/线索 新建 华为",
        "/跟进 L1 电话",
        "/跟进 L1 拜访",
        "[bob] /线索 分配 L1 @carol",
        "[carol] /跟进 L1 接手",
    )
    assert "alice 跟进 2" in chat.say("[bob] /日报") and "carol 跟进 1" in chat.say("[bob] /日报")
    assert "新线索 1 · 跟进 2 ·" in chat.say("[bob] /日报 @alice")
    assert "新线索 0 · 跟进 1 ·" in chat.say("[bob] /日报 @carol")


def paid_up(chat: Chat) -> None:
    """C1 (alice, 100k signed Mon 23 Nov, up for renewal on 19 Dec) was paid in full that day:
    nothing due or paid since."""
    act(
        chat,
        at(23, 10),
        "/lead add Acme",
        "/contract L1 100k start=2025-12-20 end=2026-12-19",
        "/plan C1 100%@signing",
        "/paid C1 100k",
    )


def test_money_lines_only_when_they_say_something(team: Chat) -> None:
    paid_up(team)
    team.clock.set(at(26, 18))
    report = team.say("[bob] /report")
    # The renewal is news; the money is not: nothing planned or paid today, all that is due paid.
    assert "🔁 Renewals due 1" in report and "💰" not in report
    team.clock.set(at(27, 10))
    act(
        team,
        at(27, 10),
        "[carol] /lead add Beta",
        "[carol] /contract L2 200k",
        "[carol] /plan C2 50%@signing 50%@2026-11-28",
        "[carol] /paid C2 50k",
    )
    money = next(
        line for line in team.say("[bob] /report week").splitlines() if line.startswith("💰")
    )
    # Collected 150k of the week's 300k plan; of what fell due so far (100k + 100k) 150k is paid.
    assert money.startswith(
        "💰 Collected this week $150,000 / plan $300,000 (50%)"
        " · of all that fell due so far, 75% is paid"
    )


def test_money_lines_only_when_they_say_something_in_chinese(chat: Chat) -> None:
    act(chat, at(23, 9), "/团队 配置 语言=zh")
    act(
        chat,
        at(23, 10),
        "/线索 新建 华为",
        "/合同 L1 10万 start=2025-12-20 end=2026-12-19",
        "/回款计划 C1 100%@signing",
        "/回款 C1 10万",
    )
    chat.clock.set(at(26, 18))
    report = chat.say("/日报")
    assert "🔁 待续约 1" in report and "💰" not in report
    act(
        chat,
        at(27, 10),
        "/线索 新建 小米",
        "/合同 L2 20万",
        "/回款计划 C2 50%@signing 50%@2026-11-28",
        "/回款 C2 5万",
    )
    money = next(line for line in chat.say("/周报").splitlines() if line.startswith("💰"))
    assert money.startswith(
        "💰 本周回款 ¥150,000 / 计划 ¥300,000（50%） · 截至目前到期的款项已收 75%"
    )


@pytest.mark.parametrize("locale", ["en", "zh"])
def test_a_quiet_weekend_gets_one_monday_message(chat: Chat, locale: str) -> None:
    act(
        chat,
        at(27, 9),
        f"/team config locale={locale} quiet_weekends=yes timezone=Asia/Shanghai",
        "/lead add A1",
        "/follow L1 call",
    )
    for moment in (at(27, 18, 5), at(28, 18, 5), at(29, 18, 5), at(30, 9, 5)):
        chat.clock.set(moment)
        run_worker(chat)
    sent = digests(chat)
    titles = [text.splitlines()[0] for text in sent]
    friday, monday = (
        ("Sales daily · Fri 27 Nov", "Sales weekly")
        if locale == "en"
        else ("销售日报 · 11月27日", "销售周报")
    )
    assert len(sent) == 2, titles
    assert friday in titles[0] and monday in titles[1]


def chart_of(text: str) -> Path:
    match = re.search(r"🖼 .*: (\S+\.png)$", text, re.M)
    assert match, text
    return Path(match.group(1))


def test_each_reader_has_their_own_chart(team: Chat) -> None:
    four_leads(team)
    bob = team.say("[bob] /report")
    bob_chart = chart_of(bob).read_bytes()
    alice = team.say("/report")
    assert chart_of(alice) != chart_of(bob)
    assert chart_of(bob).read_bytes() == bob_chart  # alice's report left bob's chart alone
    assert chart_of(team.say("[bob] /report @alice")) not in (chart_of(alice), chart_of(bob))


def test_chart_axis_counts_whole_leads(team: Chat) -> None:
    from commands.charts import funnel_figure

    act(team, at(26, 10), "/lead add A1", "/lead add A2", "/follow L1 call", "/lead next L1")
    figure = funnel_figure(digest_of(team), locale="en")
    figure.canvas.draw()
    ticks = [label.get_text() for label in figure.axes[0].get_xticklabels() if label.get_text()]
    assert ticks and all(re.fullmatch(r"\d+", tick) for tick in ticks), ticks


def digest_of(chat: Chat):  # noqa: ANN201 - the domain's digest, as /report builds it for an admin
    with unit_of_work(chat.engine) as session:
        team = session.get(Team, 1)
        config = TeamConfig.model_validate(team.config or {})
        now = chat.clock.now()
        return build_digest(
            session,
            team_id=1,
            config=config,
            period=period_of("today", now.astimezone(config.tz).date(), config),
            now=now,
        )


def test_a_chinese_team_gets_a_chinese_chart_where_a_font_allows(
    chat: Chat, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from commands.charts import font_for, funnel_figure

    act(chat, at(26, 9), "/团队 配置 语言=zh", "/线索 新建 华为", "/跟进 L1 电话", "/线索 推进 L1")
    caplog.set_level(logging.DEBUG)
    report = chat.say("/日报")
    assert (
        "🖼 线索 1 → 初步沟通 1（100%）" in report
    )  # the caption is the reader's language either way
    figure = funnel_figure(digest_of(chat), locale="zh")
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    if font_for("销售漏斗线索初步沟通需求挖掘方案报价合同签订实施交付/回款赢单"):
        assert labels[:2] == ["线索", "初步沟通"] and labels[-1] == "赢单"
    else:  # no font draws Chinese here: English labels, and the log says so once
        assert labels[:2] == ["Lead", "Contacted"]
        said = [r for r in caplog.records if r.name == "dealbot.charts"]
        assert len(said) <= 1 and all("fonts-noto-cjk" in r.getMessage() for r in said)
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]
    assert "findfont" not in capsys.readouterr().err


def test_no_font_for_the_labels_falls_back_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A Tangut letter: no machine this runs on draws it, so this is the fallback a machine without a
    # Chinese font takes.
    from commands.charts import font_for

    caplog.set_level(logging.WARNING, logger="dealbot.charts")
    assert font_for("销售漏斗\U00017000") is None
    assert font_for("销售漏斗\U00017000") is None
    [said] = [r for r in caplog.records if r.name == "dealbot.charts"]
    assert "fonts-wqy-microhei" in said.getMessage()


class RunningClock(FixedClock):
    """A clock that moves on an hour each time it is read, as a real one does in a slow run."""

    def now(self) -> datetime:
        return self.advance(hours=1)


def test_a_worker_run_measures_everything_at_one_moment(team: Chat) -> None:
    # A midday digest, so every hour the clock moves on is a working hour.
    act(
        team,
        at(26, 10),
        "[erin] /team config digest_time=12:00",
        "[carol] /lead add C1",
        "[carol] /quote L1 120k",
    )
    clock = RunningClock(at(27, 12))
    asyncio.run(Worker(team.engine, clock, team.delivery).run_once())
    team.clock.set(clock.now())  # deliver what the run wrote, as of after it
    team.deliver()
    [reminder] = [push for push in team.pushes("bob") if "waiting for you" in push]
    [digest] = digests(team)
    waited = re.search(r"waiting (\d+) working h", reminder)
    assert waited, reminder
    assert f"oldest Q1, {waited.group(1)} working h" in digest
