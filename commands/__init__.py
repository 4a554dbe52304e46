"""Every chat verb, registered in one list you can read top to bottom.

The first family whose word matches the command's first word wins; within it, the first verb whose
word matches the second word; otherwise the family's default verb (name ""). That is the whole rule.
Adapters call `Dispatcher.dispatch(invocation) -> Reply` and nothing else.
"""

from __future__ import annotations

from commands import (  # one module per family of verbs
    aftersale,
    exchange,
    followups,
    help,
    leads,
    me,
    points,
    privacy,  # /lead forget, personal-data export
    quotes,
    reports,
    targets,
    team,
    teamwork,  # transfers, delegation, personal settings
)
from commands.registry import Family, Verb
from wording import N_

FAMILIES: list[Family] = [
    Family("lead", ("lead", "线索", "leads", "客户"), N_("register, list and move leads")),
    Family("follow", ("follow", "跟进", "fu", "followup"), N_("log a follow-up and the next date")),
    Family("quote", ("quote", "报价", "审批", "quotes"), N_("quotes and their approval")),
    Family("report", ("report", "日报", "周报", "月报", "报表"), N_("the digest on demand"),
           implied={"日报": ("today",), "周报": ("week",), "月报": ("month",)}),
    Family("target", ("target", "目标", "targets"), N_("monthly targets against won")),
    Family("team", ("team", "团队"), N_("members, roles, settings, handoff")),
    Family("me", ("me", "我的", "mine"), N_("my leads, overdue follow-ups, approvals for me")),
    Family("contract", ("contract", "合同", "contracts"), N_("contracts on won leads")),
    Family("plan", ("plan", "回款计划", "付款计划"), N_("a contract's payment plan")),
    Family("paid", ("paid", "回款", "payment", "收款"), N_("record money received")),
    Family("receivables", ("receivables", "应收", "ar", "应收款"), N_("what is owed, with ageing")),
    Family("care", ("care", "回访", "售后"), N_("after-sales care of customers")),
    Family("help", ("help", "帮助", "?", "start"), N_("this help")),
]

LEAD_FIELDS = frozenset({"company", "contact", "phone", "email", "source", "value", "tag"})

VERBS: list[Verb] = [
    Verb("lead", "add", ("add", "new", "新建", "添加", "新增"), leads.add,
         N_("/lead add <name> [company=] [contact=] [phone=] [email=] [source=] [value=] [tag=] [owner=@x] [force=yes]"),
         N_("/lead add Acme Trading phone=138-0013-8000 value=120k source=fair"),
         LEAD_FIELDS | {"owner", "force"}),
    Verb("lead", "list", ("list", "ls", "列表", "查询"), leads.list_,
         N_("/lead list [mine|team|pool|overdue|won|lost] [stage=<stage>] [page=<n>]"),
         N_("/lead list overdue"), frozenset({"stage", "page"})),
    Verb("lead", "show", ("show", "view", "查看", "详情"), leads.show,
         N_("/lead show <L> [history]"), N_("/lead show L12")),
    Verb("lead", "stage", ("stage", "阶段"), leads.stage,
         N_("/lead stage <L> <stage>"), N_("/lead stage L12 proposal")),
    Verb("lead", "next", ("next", "advance", "推进", "下一阶段"), leads.next_,
         N_("/lead next <L>"), N_("/lead next L12")),
    Verb("lead", "assign", ("assign", "分配"), leads.assign,
         N_("/lead assign <L> @user"), N_("/lead assign L12 @carol")),
    Verb("lead", "claim", ("claim", "领取"), leads.claim,
         N_("/lead claim <L>"), N_("/lead claim L12")),
    Verb("lead", "release", ("release", "释放"), leads.release,
         N_("/lead release <L>"), N_("/lead release L12")),
    Verb("lead", "won", ("won", "win", "赢单", "成交"), leads.won,
         N_("/lead won <L> [amount]"), N_("/lead won L12 80k")),
    Verb("lead", "lost", ("lost", "lose", "输单", "丢单"), leads.lost,
         N_("/lead lost <L> <reason>"), N_("/lead lost L12 went with a competitor")),
    Verb("lead", "snooze", ("snooze", "暂缓", "稍后"), leads.snooze,
         N_("/lead snooze <L> [1d|3d|1w|<date>]"), N_("/lead snooze L12 3d")),
    Verb("lead", "edit", ("edit", "set", "update", "编辑", "修改"), leads.edit,
         N_("/lead edit <L> [name=] [company=] [contact=] [phone=] [email=] [source=] [value=] [tag=]"),
         N_("/lead edit L12 contact=Mr Li value=150k"),
         LEAD_FIELDS | {"name"}),
    Verb("follow", "", (), followups.follow,
         N_("/follow <L> <note> [next=<when>] [via=call|visit|wechat|email|meeting]"),
         N_("/follow L12 demo went well, they want a quote next=fri via=visit"), frozenset({"next", "via"})),
    Verb("quote", "approve", ("approve", "ok", "同意", "批准", "通过"), quotes.approve,
         N_("/quote approve <Q> [note]"), N_("/quote approve Q7 ok for this quarter")),
    Verb("quote", "reject", ("reject", "deny", "驳回", "拒绝"), quotes.reject,
         N_("/quote reject <Q> <reason>"), N_("/quote reject Q7 discount too deep")),
    Verb("quote", "list", ("list", "ls", "pending", "列表", "待审批"), quotes.list_,
         N_("/quote list [pending]"), N_("/quote list pending")),
    Verb("quote", "", (), quotes.create,
         N_("/quote <L> <amount> [discount=<pct>] [note]"),
         N_("/quote L12 80k discount=5%"), frozenset({"discount"})),
    Verb("report", "", (), reports.report,
         N_("/report [today|week|month] [@user]"),
         N_("/report week")),
    Verb("target", "", (), targets.target,
         N_("/target [@user <amount>] [month]"), N_("/target @alice 2m 2026-12")),
    Verb("team", "role", ("role", "角色"), team.role,
         N_("/team role @user rep|manager|admin [manager=@boss]"),
         N_("/team role @bob manager"), frozenset({"manager"})),
    Verb("team", "config", ("config", "settings", "set", "配置", "设置"), team.config,
         N_("/team config [<key>=<value> …]"),
         N_("/team config locale=zh timezone=Asia/Shanghai"),
         frozenset(team.SETTINGS)),
    Verb("team", "handoff", ("handoff", "handover", "交接"), team.handoff,
         N_("/team handoff @from @to"), N_("/team handoff @alice @carol")),
    Verb("team", "", ("members", "list", "成员"), team.show,
         N_("/team"), N_("/team")),
    Verb("me", "", (), me.dashboard, N_("/me"), N_("/me")),
    # --- teamwork: transfers, delegation, notification settings, points ---
    Verb("lead", "transfer", ("transfer", "转移", "转交", "申请转移"), teamwork.transfer,
         N_("/lead transfer <L> <reason> · /lead transfer approve|reject|cancel <L> [note]"),
         N_("/lead transfer L12 I met them at the fair last week")),
    Verb("quote", "show", ("show", "view", "查看", "详情"), quotes.show,
         N_("/quote show <Q>"), N_("/quote show Q7")),
    Verb("team", "delegate", ("delegate", "deputy", "代理", "委托"), teamwork.delegate,
         N_("/team delegate [@user until=<date> [from=<date>] [for=@approver] | off]"),
         N_("/team delegate @li until=2026-12-20"), frozenset({"until", "from", "for"})),
    Verb("me", "notify", ("notify", "notifications", "通知"), teamwork.notify,
         N_("/me notify [nudges|approvals|updates|all] realtime|digest|off"), N_("/me notify nudges realtime")),
    Verb("me", "quiet", ("quiet", "dnd", "免打扰"), teamwork.quiet,
         N_("/me quiet <21:00-08:00>|off|team"), N_("/me quiet 21:00-08:00")),
    Verb("me", "lang", ("lang", "language", "locale", "语言"), teamwork.lang,
         N_("/me lang zh|en|team"), N_("/me lang zh")),
    Verb("me", "timezone", ("timezone", "tz", "时区"), teamwork.timezone,
         N_("/me timezone <Area/City>|team"), N_("/me timezone Europe/Berlin")),
    Verb("me", "silent", ("silent", "静默"), teamwork.silent,
         N_("/me silent on|off"), N_("/me silent on")),
    Verb("me", "settings", ("settings", "prefs", "设置"), teamwork.settings,
         N_("/me settings"), N_("/me settings")),
    Verb("report", "points", ("points", "score", "积分", "过程积分"), points.points,
         N_("/report points [today|week|month] [@user]"),
         N_("/report points week")),
    Verb("report", "export", ("export", "导出"), exchange.export,
         N_("/report export [leads|followups|quotes] [xlsx|csv]"),
         N_("/report export")),
    # --- after the signature: contracts, payment plans, receivables, care ---
    Verb("contract", "show", ("show", "view", "查看", "详情"), aftersale.show,
         N_("/contract show <C>"), N_("/contract show C2")),
    Verb("contract", "edit", ("edit", "set", "编辑", "修改"), aftersale.edit,
         N_("/contract edit <C> [signed=] [start=] [end=] [delivered=] [accepted=] [no=] [amount=]"),
         N_("/contract edit C2 delivered=today"),
         aftersale.CONTRACT_OPTIONS),
    Verb("contract", "", (), aftersale.contract,
         N_("/contract <L> [amount] [signed=<date>] [start=<date>] [end=<date>] [no=<number>]"),
         N_("/contract L3 500k signed=2026-11-20 end=2027-11-19 no=HT-001"), aftersale.CONTRACT_OPTIONS),
    Verb("plan", "", (), aftersale.plan,
         N_("/plan <C> <share>@<when> … (30%@signing, 50k@2026-12-31; "
         "when: a date or signing|start|delivery|acceptance|end)"),
         N_("/plan C2 30%@signing 40%@2026-12-31 30%@acceptance")),
    Verb("paid", "", (), aftersale.paid,
         N_("/paid <C> <amount> [date] [note]"),
         N_("/paid C2 150000 yesterday wire transfer")),
    Verb("receivables", "snooze", ("snooze", "暂缓", "稍后"), aftersale.snooze,
         N_("/receivables snooze <C> [3d|<date>]"),
         N_("/receivables snooze C2 3d")),
    Verb("receivables", "", (), aftersale.receivables,
         N_("/receivables [mine|team] [overdue]"), N_("/receivables overdue")),
    Verb("care", "", (), aftersale.care,
         N_("/care <L> <note> [grade=A|B|C] [via=call|visit|wechat|email|meeting]"),
         N_("/care L3 called, all good, wants a training grade=A"),
         aftersale.CARE_OPTIONS),
    # --- privacy: erasure of a customer's personal data ---
    Verb("lead", "forget", ("forget", "erase", "遗忘", "删除个人信息"), privacy.forget,
         N_("/lead forget <L>"), N_("/lead forget L3")),
    Verb("help", "", (), help.help_, N_("/help [command]"), N_("/help quote")),
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
