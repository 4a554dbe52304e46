"""The names of things — settings, lead fields, roles, values, the words after a verb — typed and
read in the team's language: a Chinese team types and reads Chinese throughout, an English team
English, and either spelling is understood in both. The clock says Thu 26 Nov 2026, 09:00."""

from __future__ import annotations

import re

from tests.chat import Chat

# English words a Chinese settings card or history must not show (names, ids and amounts may).
_ENGLISH_WORD = re.compile(r"\b(?!L\d|Q\d|CNY\b|Asia\b|Shanghai\b)[A-Za-z_]{3,}\b")


def english_words(text: str) -> list[str]:
    return _ENGLISH_WORD.findall(text)


def chinese_team(zh: Chat) -> Chat:
    assert "语言=中文" in zh.say("[王总] /团队 配置 语言=中文")
    return zh


def test_a_chinese_team_sets_and_reads_its_settings_in_chinese(zh: Chat) -> None:
    team = chinese_team(zh)
    saved = team.say("[王总] /团队 配置 自动通过=10万 允许跳过=是 分配=轮流")
    assert saved == "⚙️ 已保存：自动通过=¥100,000，允许跳过=是，分配=轮流"
    assert "已保存：停滞天数.初步沟通=5" in team.say("[王总] /团队 配置 停滞天数.初步沟通=5")
    assert "已保存：必填.方案报价=预计金额、跟进记录" in team.say(
        "[王总] /团队 配置 必填.方案报价=预计金额，跟进记录"
    )
    assert "已保存：退回公海天数=关闭" in team.say("[王总] /团队 配置 退回公海天数=关闭")
    assert "已保存：审批层级=经理 ≤ ¥500,000 · 管理员" in team.say(
        "[王总] /团队 配置 审批层级=经理:50万，管理员"
    )

    card = team.say("[王总] /团队 配置")
    for line in (
        "允许跳过: 是",
        "分配: 轮流",
        "自动通过: ¥100,000",
        "退回公海天数: 关闭",
        "语言: 中文",
        "免打扰: 20:00-08:30",
        "周末免打扰: 否",
        "审批等待: 4 小时",
    ):
        assert line in card, line
    assert (
        "阶段规则: 初步沟通：跟进记录、停滞 5 天 · 需求挖掘：联系人 · 方案报价：预计金额、跟进记录"
        in card
    )
    assert "积分规则: 跟进积分=2 按时积分=1" in card
    assert english_words(card) == [], card

    assert "已保存：阶段=线索 → 演示 → 签约" in team.say("[王总] /团队 配置 阶段=线索, 演示, 签约")
    # English keys and values still work in a Chinese team, answered in Chinese.
    assert (
        team.say("[王总] /团队 配置 allow_skip=no assignment=manual")
        == "⚙️ 已保存：允许跳过=否，分配=手动"
    )


def test_an_english_team_reads_english_and_understands_chinese(team: Chat) -> None:
    saved = team.say("[erin] /team config auto_below=10k allow_skip=yes assignment=round_robin")
    assert saved == "⚙️ Saved: auto_below=$10,000, allow_skip=yes, assignment=round_robin"
    assert (
        team.say("[erin] /team config 允许跳过=否 分配=均衡")
        == "⚙️ Saved: allow_skip=no, assignment=least_loaded"
    )
    assert "Saved: stale_days.Contacted=5" in team.say("[erin] /team config stale_days.contacted=5")
    card = team.say("[erin] /team config")
    assert "allow_skip: no" in card and "assignment: least_loaded" in card
    assert "stage rules: Contacted: followup, stale 5d" in card


def test_a_wrong_setting_is_answered_in_chinese_and_changes_nothing(zh: Chat) -> None:
    team = chinese_team(zh)
    before = team.snapshot()
    unknown = team.reply("[王总] /团队 配置 自动通道=10万")
    assert not unknown.ok
    assert (
        "不认识的设置项“自动通道”。是想设置“自动通过”吗？可用设置：时区、语言、币种" in unknown.text
    )
    assert "停滞天数.<阶段>" in unknown.text and "auto_below" not in unknown.text
    misspelt = team.reply("[王总] /团队 配置 auto_bellow=10万")
    assert "是想设置“自动通过”吗？" in misspelt.text
    for typed, complaint in [
        ("允许跳过=也许", "“也许”应为“是”或“否”。"),
        ("分配=随便", "“随便”不是可选值之一：手动、轮流、均衡、公海。"),
        ("每页条数=500", "“500”不适用于 每页条数：不能大于 50"),
        ("停滞天数=很久", "“很久”不适用于 停滞天数：需要整数"),
        (
            "必填.方案报价=魔法",
            "“魔法”不是可选值之一：联系人、电话或邮箱、预计金额、跟进记录、已审批报价。",
        ),
        ("语言=法语", "“法语”不是可选值之一：中文、英文、自动。"),
        ("阶段=线索, 线索", "设置未保存：阶段名称不能重复"),
    ]:
        answer = team.reply(f"[王总] /团队 配置 {typed}")
        assert not answer.ok and complaint in answer.text, (typed, answer.text)
        assert english_words(answer.text.split("\n")[0]) == [], answer.text
    assert team.snapshot() == before


def test_roles_are_typed_and_shown_in_chinese(zh: Chat) -> None:
    team = chinese_team(zh)
    helped = team.say("/帮助 团队")
    assert "/团队 角色 @成员 销售|经理|管理员" in helped and "rep|manager|admin" not in helped
    reports = team.say("[王总] /团队 角色 @李四 销售 经理=@李经理")
    assert reports == "👤 李四 现在是销售。汇报给 李经理。"
    assert "李四 现在是经理。" in team.say("[王总] /团队 角色 @李四 经理")
    before = team.snapshot()
    wrong = team.say("[王总] /团队 角色 @李四 老板")
    assert "“老板”不是角色。角色有：销售、经理、管理员。" in wrong and "rep" not in wrong
    assert team.snapshot() == before


def test_an_edit_names_the_fields_in_the_teams_language(zh: Chat, team: Chat) -> None:
    chinese_team(zh)
    zh.say("/线索 新建 华为技术")
    assert (
        zh.say("/线索 编辑 L1 联系人=任总 预计=15万") == "✏️ L1 已更新：联系人=任总，预计=¥150,000"
    )
    assert zh.say("/线索 编辑 L1 contact=孙总") == "✏️ L1 已更新：联系人=孙总"
    team.say("/lead add Acme")
    assert team.say("/lead edit L1 联系人=Mr Li") == "✏️ L1 updated: contact=Mr Li"
    unknown = zh.reply("/线索 编辑 L1 颜色=红")
    assert (
        "不认识的参数“颜色=”。可用参数：名称= 公司= 联系人= 电话= 邮箱= 来源= 预计= 标签="
        in unknown.text
    )


def test_buttons_of_a_chinese_team_run_chinese_commands(zh: Chat) -> None:
    team = chinese_team(zh)
    team.say("/线索 新建 华为技术 电话=13912345678")
    duplicate = team.reply("[李四] /线索 新建 华为 电话=139-1234-5678")
    [add_anyway] = [button for button in duplicate.buttons if button.label == "仍然添加"]
    assert add_anyway.command == "/线索 新建 华为 电话=139-1234-5678 强制=是"
    assert "✅ L2 华为" in team.say(f"[李四] {add_anyway.command}")

    card = team.reply("/线索 查看 L1")
    [history] = [button for button in card.buttons if button.label == "变更记录"]
    assert history.command == "/线索 查看 L1 变更记录"
    assert "操作人" in team.say(history.command)  # typed or pressed, the history is shown

    team.say("[李四] /线索 新建 小米")
    team.say("[王总] /团队 配置 每页条数=1")
    listed = team.reply("[李四] /线索 列表")
    [more] = [button for button in listed.buttons if button.label == "下一页"]
    assert more.command == "/线索 列表 我的 页=2"
    assert "第 2/2 页" in team.say(f"[李四] {more.command}")


def test_buttons_of_an_english_team_run_english_commands(team: Chat) -> None:
    team.say("/lead add Acme phone=13912345678")
    duplicate = team.reply("[carol] /lead add ACME phone=139-1234-5678")
    assert any(button.command.endswith(" force=yes") for button in duplicate.buttons)
    card = team.reply("/lead show L1")
    assert any(button.command == "/lead show L1 history" for button in card.buttons)
    assert "added it (owner alice, stage Lead)" in team.say("/lead show L1 变更记录")  # either word


def test_a_chinese_history_reads_as_sentences(zh: Chat) -> None:
    team = chinese_team(zh)
    team.say("/线索 新建 华为技术 电话=13912345678")
    team.say("/跟进 L1 已电话沟通 下次=下周一")
    team.say("/线索 推进 L1")
    team.say("/线索 编辑 L1 来源=展会")
    team.say("/线索 暂缓 L1 3天")
    team.say("[李经理] /线索 分配 L1 @李四")
    team.say("[王总] /线索 遗忘 L1")
    history = team.say("[王总] /线索 查看 L1 变更记录")
    expected = [
        "王总    删除了客户的个人信息（电话），并从另外",
        "李经理  分配给 李四（原负责人 张三）",
        "张三    暂缓提醒，11月29日（周日）起恢复",
        "张三    修改了 来源：无 → 展会",
        "张三    阶段：线索 → 初步沟通",
        "张三    记录跟进，下次跟进 11月30日（周一）",
        "张三    新建线索（负责人 张三，阶段 线索）",
    ]
    positions = [history.find(line) for line in expected]
    assert -1 not in positions, history
    assert positions == sorted(positions), "newest first"
    for raw in ("stage", "next_followup_on", "erased", "redacted", "followup", "forget"):
        assert raw not in history, raw


def test_an_english_history_reads_as_sentences(team: Chat) -> None:
    team.say("/lead add Acme phone=13912345678")
    team.say("/follow L1 called next=mon")
    team.say("/lead next L1")
    team.say("[erin] /lead forget L1")
    history = team.say("[erin] /lead show L1 history")
    assert "erin   erased the customer's personal data (phone), and removed it from" in history
    assert "alice  moved it from Lead to Contacted" in history
    assert "alice  logged a follow-up; next Mon 30 Nov" in history
    assert "erased=" not in history and "next_followup_on" not in history
