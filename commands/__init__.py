"""Every chat verb, registered in one list you can read top to bottom.

The first family whose word matches the command's first word wins; within it, the first verb whose
word matches the second word; otherwise the family's default verb (name ""). That is the whole rule.
Adapters call `Dispatcher.dispatch(invocation) -> Reply` and nothing else.
"""

from __future__ import annotations

from commands import (  # issue 8: /report export, /report points
    aftersale,
    exchange,
    followups,
    help,
    leads,
    me,
    points,
    privacy,  # issue 10: /lead forget
    quotes,
    reports,
    targets,
    team,
    teamwork,  # issue 8: transfers, delegation, personal settings
)
from commands.registry import Family, Verb

FAMILIES: list[Family] = [
    Family("lead", ("lead", "线索", "leads", "客户"), "register, list and move leads", "登记、查看、推进线索"),
    Family("follow", ("follow", "跟进", "fu", "followup"), "log a follow-up and the next date", "记录跟进和下次跟进日期"),
    Family("quote", ("quote", "报价", "审批", "quotes"), "quotes and their approval", "报价与审批"),
    Family("report", ("report", "日报", "周报", "月报", "报表"), "the digest on demand", "随时查看日报/周报",
           implied={"日报": ("today",), "周报": ("week",), "月报": ("month",)}),
    Family("target", ("target", "目标", "targets"), "monthly targets against won", "月度目标与完成"),
    Family("team", ("team", "团队"), "members, roles, settings, handoff", "成员、角色、设置、交接"),
    Family("me", ("me", "我的", "mine"), "my leads, overdue follow-ups, approvals for me", "我的线索、逾期与待审批"),
    Family("contract", ("contract", "合同", "contracts"), "contracts on won leads",
           "合同登记与查看"),
    Family("plan", ("plan", "回款计划", "付款计划"), "a contract's payment plan", "合同回款计划"),
    Family("paid", ("paid", "回款", "payment", "收款"), "record money received", "登记回款"),
    Family("receivables", ("receivables", "应收", "ar", "应收款"), "what is owed, with ageing",
           "应收账款与账龄"),
    Family("care", ("care", "回访", "售后"), "after-sales care of customers", "客户售后回访"),
    Family("help", ("help", "帮助", "?", "start"), "this help", "帮助"),
]

LEAD_FIELDS = frozenset({"company", "contact", "phone", "email", "source", "value", "tag"})

VERBS: list[Verb] = [
    Verb("lead", "add", ("add", "new", "新建", "添加", "新增"), leads.add,
         "/lead add <name> [company=] [contact=] [phone=] [email=] [source=] [value=] [tag=] [owner=@x] [force=yes]",
         "/线索 新建 <名称> [公司=] [联系人=] [电话=] [邮箱=] [来源=] [预计=] [标签=] [负责人=@x] [强制=是]",
         "/lead add Acme Trading phone=138-0013-8000 value=120k source=fair",
         "/线索 新建 华为技术 电话=13912345678 预计=12.5万 来源=展会",
         LEAD_FIELDS | {"owner", "force"}),
    Verb("lead", "list", ("list", "ls", "列表", "查询"), leads.list_,
         "/lead list [mine|team|pool|overdue|won|lost] [stage=<stage>] [page=<n>]",
         "/线索 列表 [我的|团队|公海|逾期|赢单|输单] [阶段=<阶段>] [页=<n>]",
         "/lead list overdue", "/线索 列表 公海", frozenset({"stage", "page"})),
    Verb("lead", "show", ("show", "view", "查看", "详情"), leads.show,
         "/lead show <L> [history]", "/线索 查看 <L> [变更记录]", "/lead show L12",
         "/线索 查看 L3"),
    Verb("lead", "stage", ("stage", "阶段"), leads.stage,
         "/lead stage <L> <stage>", "/线索 阶段 <L> <阶段>", "/lead stage L12 proposal", "/线索 阶段 L3 方案报价"),
    Verb("lead", "next", ("next", "advance", "推进", "下一阶段"), leads.next_,
         "/lead next <L>", "/线索 推进 <L>", "/lead next L12", "/线索 推进 L3"),
    Verb("lead", "assign", ("assign", "分配"), leads.assign,
         "/lead assign <L> @user", "/线索 分配 <L> @成员", "/lead assign L12 @carol", "/线索 分配 L3 @李四"),
    Verb("lead", "claim", ("claim", "领取"), leads.claim,
         "/lead claim <L>", "/线索 领取 <L>", "/lead claim L12", "/线索 领取 L3"),
    Verb("lead", "release", ("release", "释放"), leads.release,
         "/lead release <L>", "/线索 释放 <L>", "/lead release L12", "/线索 释放 L3"),
    Verb("lead", "won", ("won", "win", "赢单", "成交"), leads.won,
         "/lead won <L> [amount]", "/线索 赢单 <L> [金额]", "/lead won L12 80k", "/线索 赢单 L3 80万"),
    Verb("lead", "lost", ("lost", "lose", "输单", "丢单"), leads.lost,
         "/lead lost <L> <reason>", "/线索 输单 <L> <原因>", "/lead lost L12 went with a competitor",
         "/线索 输单 L3 选择了竞品"),
    Verb("lead", "snooze", ("snooze", "暂缓", "稍后"), leads.snooze,
         "/lead snooze <L> [1d|3d|1w|<date>]", "/线索 暂缓 <L> [1天|3天|1周|<日期>]", "/lead snooze L12 3d",
         "/线索 暂缓 L3 下周一"),
    Verb("lead", "edit", ("edit", "set", "update", "编辑", "修改"), leads.edit,
         "/lead edit <L> [name=] [company=] [contact=] [phone=] [email=] [source=] [value=] [tag=]",
         "/线索 编辑 <L> [名称=] [公司=] [联系人=] [电话=] [邮箱=] [来源=] [预计=] [标签=]",
         "/lead edit L12 contact=Mr Li value=150k", "/线索 编辑 L3 联系人=王经理 预计=15万",
         LEAD_FIELDS | {"name"}),
    Verb("follow", "", (), followups.follow,
         "/follow <L> <note> [next=<when>] [via=call|visit|wechat|email|meeting]",
         "/跟进 <L> <内容> [下次=<日期>] [方式=电话|拜访|微信|邮件|会议]",
         "/follow L12 demo went well, they want a quote next=fri via=visit",
         "/跟进 L3 已电话沟通，客户要方案 下次=下周一", frozenset({"next", "via"})),
    Verb("quote", "approve", ("approve", "ok", "同意", "批准", "通过"), quotes.approve,
         "/quote approve <Q> [note]", "/审批 同意 <Q> [备注]", "/quote approve Q7 ok for this quarter", "/审批 同意 Q5"),
    Verb("quote", "reject", ("reject", "deny", "驳回", "拒绝"), quotes.reject,
         "/quote reject <Q> <reason>", "/审批 驳回 <Q> <原因>", "/quote reject Q7 discount too deep",
         "/审批 驳回 Q5 折扣太大"),
    Verb("quote", "list", ("list", "ls", "pending", "列表", "待审批"), quotes.list_,
         "/quote list [pending]", "/报价 列表 [待审批]", "/quote list pending", "/报价 列表 待审批"),
    Verb("quote", "", (), quotes.create,
         "/quote <L> <amount> [discount=<pct>] [note]", "/报价 <L> <金额> [折扣=<百分比>] [备注]",
         "/quote L12 80k discount=5%", "/报价 L3 80万 折扣=25%", frozenset({"discount"})),
    Verb("report", "", (), reports.report,
         "/report [today|week|month] [@user]", "/日报 · /周报 · /报表 [今天|本周|本月] [@成员]",
         "/report week", "/周报"),
    Verb("target", "", (), targets.target,
         "/target [@user <amount>] [month]", "/目标 [@成员 <金额>] [月份]", "/target @alice 2m 2026-12", "/目标 @张三 200万 12月"),
    Verb("team", "role", ("role", "角色"), team.role,
         "/team role @user rep|manager|admin [manager=@boss]", "/团队 角色 @成员 销售|经理|管理员 [经理=@上级]",
         "/team role @bob manager", "/团队 角色 @李四 经理", frozenset({"manager"})),
    Verb("team", "config", ("config", "settings", "set", "配置", "设置"), team.config,
         "/team config [<key>=<value> …]", "/团队 配置 [<设置项>=<值> …]",
         "/team config locale=zh timezone=Asia/Shanghai", "/团队 配置 日报时间=18:00 免打扰=20:00-08:30",
         frozenset(team.SETTINGS)),
    Verb("team", "handoff", ("handoff", "handover", "交接"), team.handoff,
         "/team handoff @from @to", "/团队 交接 @原负责人 @新负责人", "/team handoff @alice @carol", "/团队 交接 @张三 @李四"),
    Verb("team", "", ("members", "list", "成员"), team.show,
         "/team", "/团队", "/team", "/团队"),
    Verb("me", "", (), me.dashboard, "/me", "/我的", "/me", "/我的"),
    # --- teamwork: transfers, delegation, notification settings, points (issue 8) ---
    Verb("lead", "transfer", ("transfer", "转移", "转交", "申请转移"), teamwork.transfer,
         "/lead transfer <L> <reason> · /lead transfer approve|reject|cancel <L> [note]",
         "/线索 转移 <L> <原因> · /线索 转移 同意|驳回|撤回 <L> [备注]",
         "/lead transfer L12 I met them at the fair last week", "/线索 转移 L3 客户是我在展会上认识的"),
    Verb("quote", "show", ("show", "view", "查看", "详情"), quotes.show,
         "/quote show <Q>", "/报价 查看 <Q>", "/quote show Q7", "/报价 查看 Q5"),
    Verb("team", "delegate", ("delegate", "deputy", "代理", "委托"), teamwork.delegate,
         "/team delegate [@user until=<date> [from=<date>] [for=@approver] | off]",
         "/团队 代理 [@成员 至=<日期> [从=<日期>] [代=@审批人] | 取消]",
         "/team delegate @li until=2026-12-20", "/团队 代理 @李四 至=2026-12-20", frozenset({"until", "from", "for"})),
    Verb("me", "notify", ("notify", "notifications", "通知"), teamwork.notify,
         "/me notify [nudges|approvals|updates|all] realtime|digest|off",
         "/我的 通知 [提醒|审批|动态|全部] 实时|汇总|关闭", "/me notify nudges realtime", "/我的 通知 提醒 汇总"),
    Verb("me", "quiet", ("quiet", "dnd", "免打扰"), teamwork.quiet,
         "/me quiet <21:00-08:00>|off|team", "/我的 免打扰 <21:00-08:00>|关闭|团队", "/me quiet 21:00-08:00",
         "/我的 免打扰 21:00-08:00"),
    Verb("me", "lang", ("lang", "language", "locale", "语言"), teamwork.lang,
         "/me lang zh|en|team", "/我的 语言 中文|英文|团队", "/me lang zh", "/我的 语言 英文"),
    Verb("me", "timezone", ("timezone", "tz", "时区"), teamwork.timezone,
         "/me timezone <Area/City>|team", "/我的 时区 <地区/城市>|团队", "/me timezone Europe/Berlin",
         "/我的 时区 Asia/Shanghai"),
    Verb("me", "silent", ("silent", "静默"), teamwork.silent,
         "/me silent on|off", "/我的 静默 开|关", "/me silent on", "/我的 静默 开"),
    Verb("me", "settings", ("settings", "prefs", "设置"), teamwork.settings,
         "/me settings", "/我的 设置", "/me settings", "/我的 设置"),
    Verb("report", "points", ("points", "score", "积分", "过程积分"), points.points,
         "/report points [today|week|month] [@user]", "/报表 积分 [今天|本周|本月] [@成员]",
         "/report points week", "/报表 积分 本周"),
    Verb("report", "export", ("export", "导出"), exchange.export,
         "/report export [leads|followups|quotes] [xlsx|csv]", "/报表 导出 [线索|跟进|报价] [xlsx|csv]",
         "/report export", "/报表 导出 线索 csv"),
    # --- after the signature: contracts, payment plans, receivables, care (issue 9) ---
    Verb("contract", "show", ("show", "view", "查看", "详情"), aftersale.show,
         "/contract show <C>", "/合同 查看 <C>", "/contract show C2", "/合同 查看 C2"),
    Verb("contract", "edit", ("edit", "set", "编辑", "修改"), aftersale.edit,
         "/contract edit <C> [signed=] [start=] [end=] [delivered=] [accepted=] [no=] [amount=]",
         "/合同 编辑 <C> [签订=] [开始=] [到期=] [交付=] [验收=] [编号=] [金额=]",
         "/contract edit C2 delivered=today", "/合同 编辑 C2 交付=今天",
         aftersale.CONTRACT_OPTIONS),
    Verb("contract", "", (), aftersale.contract,
         "/contract <L> [amount] [signed=<date>] [start=<date>] [end=<date>] [no=<number>]",
         "/合同 <L> [金额] [签订=<日期>] [开始=<日期>] [到期=<日期>] [编号=<合同号>]",
         "/contract L3 500k signed=2026-11-20 end=2027-11-19 no=HT-001",
         "/合同 L3 50万 签订=2026-11-20 到期=2027-11-19 编号=HT-001", aftersale.CONTRACT_OPTIONS),
    Verb("plan", "", (), aftersale.plan,
         "/plan <C> <share>@<when> … (30%@signing, 50k@2026-12-31; "
         "when: a date or signing|start|delivery|acceptance|end)",
         "/回款计划 <C> <比例或金额>@<时间> …（30%@签约、50万@2026-12-31；"
         "时间：日期或 签约|开始|交付|验收|到期）",
         "/plan C2 30%@signing 40%@2026-12-31 30%@acceptance",
         "/回款计划 C2 30%@签约 40%@2026-12-31 30%@验收"),
    Verb("paid", "", (), aftersale.paid,
         "/paid <C> <amount> [date] [note]", "/回款 <C> <金额> [日期] [备注]",
         "/paid C2 150000 yesterday wire transfer", "/回款 C2 15万 昨天 银行转账"),
    Verb("receivables", "snooze", ("snooze", "暂缓", "稍后"), aftersale.snooze,
         "/receivables snooze <C> [3d|<date>]", "/应收 暂缓 <C> [3天后|<日期>]",
         "/receivables snooze C2 3d", "/应收 暂缓 C2 3天后"),
    Verb("receivables", "", (), aftersale.receivables,
         "/receivables [mine|team] [overdue]", "/应收 [我的|团队] [逾期]", "/receivables overdue",
         "/应收 逾期"),
    Verb("care", "", (), aftersale.care,
         "/care <L> <note> [grade=A|B|C] [via=call|visit|wechat|email|meeting]",
         "/回访 <L> <内容> [等级=A|B|C] [方式=电话|拜访|微信|邮件|会议]",
         "/care L3 called, all good, wants a training grade=A",
         "/回访 L3 电话回访，客户满意 等级=A",
         aftersale.CARE_OPTIONS),
    # --- privacy (issue 10) ---
    Verb("lead", "forget", ("forget", "erase", "遗忘", "删除个人信息"), privacy.forget,
         "/lead forget <L>", "/线索 遗忘 <L>", "/lead forget L3", "/线索 遗忘 L3"),
    Verb("help", "", (), help.help_, "/help [command]", "/帮助 [命令]", "/help quote", "/帮助 报价"),
]


def find_family(word: str) -> Family | None:
    lowered = word.casefold()
    for family in FAMILIES:
        if lowered in family.words:
            return family
    return None


def closest_family(word: str) -> Family | None:
    """The family a mistyped command word most likely meant (`leed` → lead), if any is close."""
    import difflib

    spellings = {spelling: family for family in FAMILIES for spelling in family.words}
    found = difflib.get_close_matches(word.lstrip("/").casefold(), spellings, n=1, cutoff=0.6)
    return spellings[found[0]] if found else None


from commands.dispatch import Dispatcher  # noqa: E402  (the dispatcher reads the lists above)

__all__ = ["FAMILIES", "VERBS", "Dispatcher", "closest_family", "find_family"]
