"""Commands typed the way people type them: Chinese punctuation, words spread over spaces, amounts,
discounts and dates in Chinese, half-remembered stage names and verbs. The fixture clock says
Thursday 26 Nov 2026, 09:00 in Shanghai."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from adapters.console import ConsoleAdapter
from bot.app import build
from bot.settings import Settings
from models.clock import FixedClock
from reminders.worker import Worker
from tests.chat import Chat


def test_full_width_colon_and_comma_separate_options(chat: Chat) -> None:
    added = chat.say("/线索 新建 字节跳动 电话：13600001234")
    assert "L1 字节跳动" in added and "电话" not in added.split("\n")[0].split("字节跳动")[1][:3]
    assert "13600001234" in chat.say("/线索 查看 L1")
    duplicate = chat.say("[李四] /线索 新建 字节 电话：136-0000-1234")
    assert "撞单" in duplicate and "L1 字节跳动" in duplicate

    added = chat.say("/线索 新建 华为 预计=5万 ，来源=朋友")
    assert "L2 华为 ·" in added and "¥50,000" in added
    card = chat.say("/线索 查看 L2")
    assert "朋友" in card and "，来源" not in card
    added = chat.say("/线索 新建 小米 预计=8万，来源=展会，联系人=雷总")
    card = chat.say("/线索 查看 L3")
    assert "L3 小米 ·" in added and "展会" in card and "雷总" in card and "¥80,000" in card


def test_a_comma_before_an_option_only_separates(chat: Chat) -> None:
    added = chat.say("/线索 新建 华为， 来源=朋友")
    assert "L1 华为 ·" in added and "华为，" not in added
    chat.say("/team config locale=en")
    added = chat.say("/lead add Acme value=50k, source=fair")
    assert "L2 Acme — " in added and "¥50,000" in added
    added = chat.say("/lead add Beta value=60k , source=fair")
    assert "L3 Beta — " in added and "¥60,000" in added


def test_a_comma_or_colon_inside_a_note_stays_part_of_it(chat: Chat) -> None:
    chat.say("/线索 新建 华为")
    chat.say("/跟进 L1 客户说：预算不够，下周再谈 下次=明天")
    assert "客户说：预算不够，下周再谈" in chat.say("/线索 查看 L1")


def test_a_date_typed_in_several_words(chat: Chat) -> None:
    chat.say("/team config locale=en")
    chat.say("/lead add Acme")
    assert "Next: Mon 30 Nov." in chat.say("/follow L1 intro call next=next mon")
    assert "Next: Mon 30 Nov." in chat.say("/follow L1 sent the deck next=next week")
    card = chat.say("/lead show L1")
    assert "intro call" in card and "sent the deck" in card


def test_chinese_dates_people_write(chat: Chat) -> None:
    chat.say("/线索 新建 华为")
    assert "下次跟进：12月2日（周三）" in chat.say("/跟进 L1 电话沟通 下次=下周 三")
    assert "下次跟进：12月7日（周一）" in chat.say("/跟进 L1 发了方案 下次=下下周一")
    assert "下次跟进：11月30日（周一）" in chat.say("/跟进 L1 再约 下次=下周")
    assert "下周 = 下周一" in chat.say("/帮助")


def test_chinese_amounts_people_write(chat: Chat) -> None:
    for typed, shown in (
        ("12万5", "¥125,000"),
        ("三万", "¥30,000"),
        ("三百万", "¥3,000,000"),
        ("1.5亿", "¥150,000,000"),
    ):
        assert f"预计 {shown}" in chat.say(f"/线索 新建 客户{typed} 预计={typed}"), typed


def test_chinese_numbers_that_make_no_amount_or_discount_are_refused(chat: Chat) -> None:
    chat.say("/线索 新建 华为")
    before = chat.snapshot()
    for amount in ("1万2亿", "3万4万", "十十", "五十三百", "1.5万5", "万万", "亿亿", "9" * 20):
        refused = chat.say(f"/报价 L1 {amount}")
        assert "❓" in refused and "不是有效金额" in refused, amount
    for discount in ("百分之十十", "百分之一百五十", "0折", "10折"):
        refused = chat.say(f"/报价 L1 3万 折扣={discount}")
        assert "❓" in refused and "不是 0 到 100 之间的百分比" in refused, discount
    assert chat.snapshot() == before
    chat.say("/team config locale=en")
    before = chat.snapshot()
    refused = chat.say("/quote L1 1万2亿")
    assert "❓" in refused and "is not an amount" in refused
    refused = chat.say("/quote L1 30k discount=百分之十十")
    assert "❓" in refused and "is not a percentage" in refused
    assert chat.snapshot() == before


def test_chinese_discounts_and_an_ambiguous_fraction(chat: Chat) -> None:
    chat.say("/线索 新建 华为")
    assert "折扣 20%" in chat.say("/报价 L1 3万 折扣=8折")
    assert "折扣 10%" in chat.say("/报价 L1 3万 折扣=百分之十")
    before = chat.snapshot()
    asked = chat.say("/报价 L1 3万 折扣=0.2")
    assert "❓" in asked and "20%" in asked and "0.2%" in asked
    assert chat.snapshot() == before
    chat.say("/team config locale=en")
    before = chat.snapshot()
    asked = chat.say("/quote L1 30k discount=0.2")
    assert "❓" in asked and "discount=20%" in asked and "discount=0.2%" in asked
    assert chat.snapshot() == before


def test_a_stage_by_the_beginning_of_its_name(chat: Chat) -> None:
    chat.say("/team config allow_skip=yes")
    chat.say("/线索 新建 华为 联系人=王总 预计=5万")
    chat.say("/报价 L1 3万")
    chat.say("/跟进 L1 电话沟通")
    assert "已进入“合同签订”" in chat.say("/线索 阶段 L1 合同")
    before = chat.snapshot()
    closing = chat.say("/线索 阶段 L1 赢单")
    assert "❓" in closing and "/线索 赢单 L1" in closing
    assert chat.snapshot() == before
    chat.say("/team config locale=en")
    assert "is now in Proposal" in chat.say("/lead stage L1 prop")
    closing = chat.say("/lead stage L1 lost")
    assert "❓" in closing and "/lead lost L1" in closing


def test_a_mistyped_command_gets_a_suggestion(chat: Chat) -> None:
    chat.say("/team config locale=en")
    assert "Did you mean /lead?" in chat.say("/leed add Acme")
    assert "Did you mean /quote?" in chat.say("/qoute L1 5k")
    assert "Did you mean" not in chat.say("/xyzzy")
    assert chat.counts()["lead"] == 0
    chat.say("/team config locale=zh")
    assert "/线索" in chat.say("/线所 新建 华为")


def test_a_line_in_no_language_is_answered_in_the_teams(engine: Engine, clock: FixedClock) -> None:
    """A Chinese team that never set its language, typing a command word with a slip in it: the
    answer is in Chinese, the language the team writes in, not English."""
    chat = Chat(engine, clock, team="深圳分公司", user="张三")
    chat.say("/线索 新建 华为")
    answer = chat.say("/leed")
    assert "/线索" in answer and "Did you mean" not in answer


def test_help_for_a_word_it_does_not_know(chat: Chat) -> None:
    chat.say("/team config locale=en")
    answer = chat.say("/help nonsense")
    assert "I don't know “nonsense”" in answer and "/lead" in answer and "/quote" in answer
    assert "Did you mean /report?" in chat.say("/help reprot")
    chat.say("/team config locale=auto")
    answer = chat.say("/帮助 乱码")
    assert "没有“乱码”这个命令" in answer and "/线索" in answer


def test_an_amount_in_another_currency_is_refused(chat: Chat) -> None:
    chat.say("/team config locale=en")
    chat.say("/lead add Acme")
    before = chat.snapshot()
    refused = chat.say("/lead edit L1 value=¥300000")
    assert "❓" in refused and "USD" in refused and "/team config currency=" in refused
    assert chat.snapshot() == before
    assert "$300,000" in chat.say("/lead edit L1 value=$300000")
    chat.say("/team config currency=CNY")
    assert "¥300,000" in chat.say("/lead show L1")
    assert "❓" in chat.say("/quote L1 $5000") and "CNY" in chat.say("/quote L1 $5000")
    assert "¥5,000" in chat.say("/quote L1 ¥5000")


def test_a_chinese_team_refuses_dollars(chat: Chat) -> None:
    chat.say("/线索 新建 华为")
    refused = chat.say("/报价 L1 $5000")
    assert "不是本团队的币种 CNY" in refused and "/团队 配置 币种=" in refused
    assert chat.counts()["quote"] == 0


def test_a_new_teams_timezone(engine: Engine, clock: FixedClock) -> None:
    english = Chat(engine, clock, team="english")
    english.say("/team config locale=en")
    assert "timezone: UTC" in english.say("/team config")
    chinese = Chat(engine, clock, team="中文团队", user="张三")
    assert "时区: Asia/Shanghai" in chinese.say("/团队 配置")
    berlin = Chat(engine, clock, team="berlin", timezone="Europe/Berlin")
    berlin.say("/team config locale=en")
    assert "timezone: Europe/Berlin" in berlin.say("/team config")


def test_an_approver_who_signs_every_level_is_told_so(team: Chat) -> None:
    team.say("[bob] /lead add Acme")
    asked = team.say("[bob] /quote L1 600k")
    assert "Needs 2 approvals up to admin — erin can sign both at once; asked erin." in asked
    assert "approved" in team.say("[erin] /quote approve Q1").casefold()
    team.say("[carol] /lead add Beta")
    assert "asked bob first" in team.say("[carol] /quote L2 600k")


def test_the_reason_for_an_extra_level_sits_in_one_bracket(chat: Chat) -> None:
    chat.say("/帮助")
    chat.say("[李经理] /帮助")
    chat.say("/团队 角色 @李经理 经理")
    chat.say("[张三] /帮助")
    chat.say("/团队 角色 @张三 销售")
    chat.say("[张三] /线索 新建 华为")
    raised = chat.say("[张三] /报价 L1 30万 折扣=25%")
    assert "需要 2 级审批（至管理员，折扣超过 20%，升一级），已先通知 李经理。" in raised
    assert "）（" not in raised


def test_a_wrong_phone_email_or_timezone_is_named_for_what_it_is(team: Chat) -> None:
    team.say("/lead add Acme")
    before = team.snapshot()
    assert "“abc” is not a phone number" in team.say("/lead edit L1 phone=abc")
    assert "“x@” is not an e-mail address" in team.say("/lead edit L1 email=x@")
    refused = team.say("[erin] /team config timezone=Mars/Olympus")
    assert "“Mars/Olympus” is not a timezone" in refused
    assert "“Mars/Olympus” is not a timezone" in team.say("/me timezone Mars/Olympus")
    assert team.snapshot() == before
    team.say("[erin] /team config locale=zh")
    assert "“abc”不是电话号码" in team.say("/线索 编辑 L1 电话=abc")
    assert "“火星”不是时区" in team.say("[erin] /团队 配置 时区=火星")


def test_pending_quotes_each_get_their_own_row_of_buttons(team: Chat) -> None:
    team.say("[carol] /lead add Acme")
    for amount in ("100k", "110k", "120k", "130k"):
        team.say(f"[carol] /quote L1 {amount}")
    listed = team.say("[bob] /quote list pending")
    rows = [line.strip() for line in listed.splitlines() if line.strip().startswith("[")]
    assert rows == [
        f"[Approve → /quote approve Q{n}]  [Reject → /quote reject Q{n}]" for n in (4, 3, 2, 1)
    ]


def test_realtime_nudges_come_in_one_message_per_person_and_run(chat: Chat) -> None:
    chat.say("/帮助")
    chat.say("[张三] /我的 通知 提醒 实时")
    for name in ("华为", "小米", "字节", "腾讯", "阿里", "京东"):
        chat.say(f"[张三] /线索 新建 {name}")
    chat.clock.set(datetime(2026, 12, 8, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())
    [message] = chat.pushes("张三")
    assert "🐢 长时间未推进的商机（6）" in message
    assert [line for line in message.splitlines() if line.strip().startswith("[")] == [
        f"  [写跟进 L{n} → /跟进 L{n}]  [暂缓 1 天 → /线索 暂缓 L{n} 1天]" for n in range(1, 7)
    ]


def test_examples_use_the_readers_own_ids(team: Chat) -> None:
    for name in ("Acme", "Beta", "Gamma"):
        team.say(f"[carol] /lead add {name}")
    team.say("[carol] /quote L2 10k")
    assert "Example: /lead stage L3 proposal" in team.say("[carol] /lead stage L3")
    help_text = team.say("[carol] /help quote")
    assert "Example: /quote L3 80k discount=5%" in help_text
    assert "Example: /quote show Q1" in help_text
    assert "Example: /quote approve Q1 ok for this quarter" in team.say("[bob] /help quote")
    assert "Example: /lead show L12" in team.say("[dan] /help lead")  # dan has no lead yet


def test_quote_help_usage_and_example_agree(chat: Chat) -> None:
    answer = chat.say("/帮助 报价")
    assert "/报价 列表 [待审批]" in answer and "示例：/报价 列表 待审批" in answer
    assert "/审批 列表 待审批" not in answer


def test_dealbot_timezone_is_a_new_teams_timezone(tmp_path: Path, clock: FixedClock) -> None:
    settings = Settings(DEALBOT_TIMEZONE="Europe/Berlin")
    bot = build(settings, clock=clock, database_url=f"sqlite:///{tmp_path / 'tz.db'}")
    console = ConsoleAdapter(bot.dispatcher.dispatch, clock, team="berlin", user="alice")
    console.say("/team config locale=en")
    assert "timezone: Europe/Berlin" in console.say("/team config")
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        Settings(DEALBOT_TIMEZONE="Mars/Olympus")
