"""A Chinese team's week, typed with Chinese command words only, and the rule that decides which
language the bot answers in. The fixture clock says Thursday 26 Nov 2026, 09:00 in Shanghai."""

from __future__ import annotations

from tests.chat import Chat


def test_a_chinese_team_end_to_end(zh: Chat) -> None:
    members = zh.reply("[王总] /团队")
    assert "4 名成员" in members.text and ["张三", "销售", "李经理"] in members.table

    added = zh.say("/线索 新建 华为技术 电话=13912345678 预计=12.5万 来源=展会")
    assert "✅ L1 华为技术 · 负责人 你 · 阶段 线索 · 预计 ¥125,000" in added
    assert "[写跟进 → /跟进 L1]  [报价 → /报价 L1]" in added

    for line in ("/线索 新建 华为 电话=139-1234-5678", "/线索 新建 深圳华为 电话=+86 139 1234 5678",
                 "/线索 新建 华为技术有限公司"):
        duplicate = zh.say(f"[李四] {line}")
        assert "⚠️ 疑似撞单：L1 华为技术（负责人 张三，阶段 线索），未添加。" in duplicate, line
        assert f"[仍然添加 → {line} 强制=是]" in duplicate
    assert "我的线索：暂无。" in zh.say("[李四] /线索 列表")

    logged = zh.say("/跟进 L1 已电话沟通，客户要方案 下次=下周一 方式=电话")
    assert "📝 L1 已记录跟进，下次跟进：11月30日（周一）" in logged
    card = zh.say("/线索 查看 L1")
    assert "L1 华为技术 · 线索 · 负责人 张三" in card and "下次跟进: 11月30日（周一）" in card
    assert "09:00 张三 (电话): 已电话沟通，客户要方案" in card and "预计金额: ¥125,000" in card

    asked = zh.say("/报价 L1 80万 折扣=25%")
    assert "🧾 Q1 · L1 华为技术：¥800,000（折扣 25%）。需要 2 级审批（至管理员），已先通知 李经理。" in asked
    assert "升一级" not in asked  # 80万 already needs the top level: the discount cannot raise it
    [card_for_manager] = zh.pushes("李经理")
    assert "Q1 · 华为技术 · ¥800,000（折扣 25%） · 申请人 张三" in card_for_manager
    assert "[同意 → /审批 同意 Q1]  [驳回 → /审批 驳回 Q1]" in card_for_manager
    assert zh.pushes("王总") == []

    assert "不能审批自己提交的报价。" in zh.say("/审批 同意 Q1")
    assert "只有经理和管理员可以审批报价。" in zh.say("[李四] /审批 同意 Q1")
    first = zh.say("[李经理] /审批 同意 Q1 可以")
    assert "✅ Q1：李经理 已同意 · 09:00。等待管理员审批，已通知 王总。" in first
    assert "[同意 → /审批 同意 Q1]" in zh.pushes("王总")[-1]
    assert "Q1 需要管理员级别审批，你的权限不够。" in zh.say("[李经理] /审批 同意 Q1")
    assert "✅ Q1 已由 王总 同意 · 09:00" in zh.say("[王总] /审批 同意 Q1")
    assert "Q1 已由 王总 同意" in zh.pushes("张三")[-1] and "L1 华为技术" in zh.pushes("张三")[-1]
    assert "Q1 已于 09:00 被 王总同意。" in zh.say("[李经理] /审批 同意 Q1")
    assert "报价: Q1 ¥800,000 同意" in zh.say("/线索 查看 L1")

    raised = zh.say("/报价 L1 30万 折扣=25%")  # a manager's amount, raised by the discount
    assert "Q2 · L1 华为技术：¥300,000（折扣 25%）。需要 2 级审批（至管理员，折扣超过 20%，升一级）" in raised
    assert "❌ Q2 已被 李经理 驳回 · 09:00：折扣太大" in zh.say("[李经理] /审批 驳回 Q2 折扣太大")
    assert "❌ Q2 已被 李经理 驳回 · 09:00：折扣太大" in zh.pushes("张三")[-1]

    daily = zh.say("/日报")
    assert "📊 销售日报 · 11月26日（周四）" in daily
    assert "新线索 1 · 跟进 1 · 报价 申请 2，审批 2（同意 1，驳回 1） · 赢单 ¥0" in daily
    assert "漏斗  线索 1 → 初步沟通 0（0%） → 需求挖掘 0" in daily and "李四" not in daily
    weekly = zh.say("[李经理] /周报")
    assert "📊 销售周报 · 11月23日（周一） – 11月29日（周日）" in weekly and "按成员  张三 跟进 1" in weekly

    assert "只有经理可以设置目标。" in zh.say("/目标 @张三 200万")
    assert "🎯 张三 2026-11 目标：¥2,000,000。" in zh.say("[李经理] /目标 @张三 200万")
    assert "赢单：¥800,000" in zh.say("/线索 赢单 L1")
    progress = zh.reply("/目标")
    assert "2026-11 目标完成情况" in progress.text and ["张三", "¥800,000", "¥2,000,000", "40%"] in progress.table

    helped = zh.say("/帮助 报价")
    assert "/审批 同意 <Q> [备注]" in helped and "示例：/报价 L1 80万 折扣=25%" in helped
    assert "只有管理员可以管理团队。" in zh.say("/团队 配置 locale=zh")
    assert "⚙️ 已保存：语言=中文" in zh.say("[王总] /团队 配置 locale=zh")
    assert "团队设置" in zh.say("[王总] /team config")  # the team's language now wins over the command's


def test_without_a_locale_each_command_is_answered_in_its_own_language(zh: Chat) -> None:
    english = zh.say("/lead add Acme Trading value=120k")
    assert "L1 Acme Trading — yours, stage Lead" in english
    chinese = zh.say("/线索 新建 华为技术")
    assert "L2 华为技术 · 负责人 你 · 阶段 线索" in chinese
    assert "Your leads — 2" in zh.say("/lead list") and "我的线索" in zh.say("/线索 列表")
    assert "Missing a reason." in zh.say("/lead lost L1") and "缺少原因" in zh.say("/线索 输单 L1")

    assert "Saved: locale=en" in zh.say("[王总] /团队 配置 locale=en")
    listed = zh.say("/线索 列表")
    assert "Your leads — 2 (page 1/1)" in listed and "我的" not in listed
    assert "Missing a reason." in zh.say("/线索 输单 L1")
    assert "Saved: locale=zh" not in zh.say("[王总] /team config locale=zh")
    assert "我的线索" in zh.say("/lead list")
