"""The names of things people type and read — team settings, lead fields, roles, values and the
words after a verb — each in English and Chinese.

One table per kind. Parsing accepts every spelling a table holds (its key, both names and the other
spellings people use); display shows the reader's language. A name added here is understood and
shown at once, so typing and reading cannot drift apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Name:
    key: str  # what the code and the database use
    en: str
    zh: str
    also: tuple[str, ...] = ()  # other spellings people type

    def label(self, locale: str) -> str:
        return self.zh if locale == "zh" else self.en

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.key, self.en, self.zh, *self.also)


class Names:
    """One kind of name: find a key by any spelling, show a key in a language."""

    def __init__(self, *names: Name) -> None:
        self.names = {name.key: name for name in names}
        self._by_spelling: dict[str, str] = {}
        for name in names:
            for spelling in name.spellings:
                self._by_spelling.setdefault(spelling.casefold(), name.key)

    def __contains__(self, key: object) -> bool:
        return key in self.names

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.names)

    def find(self, text: str, among: Iterable[str] | None = None) -> str | None:
        """The key `text` spells (any language, any case), if one of `among` (default: all)."""
        key = self._by_spelling.get(text.strip().casefold())
        if key is None or (among is not None and key not in tuple(among)):
            return None
        return key

    def label(self, key: str, locale: str) -> str:
        name = self.names.get(key)
        return name.label(locale) if name else key

    def labels(self, locale: str, keys: Iterable[str] | None = None, sep: str | None = None) -> str:
        """Several names as one list in the reader's language (`是、否` / `yes, no`)."""
        joiner = sep if sep is not None else ("、" if locale == "zh" else ", ")
        return joiner.join(
            self.label(key, locale) for key in (keys if keys is not None else self.names)
        )

    def closest(self, text: str) -> str | None:
        """The key whose spelling is nearest a mistyped one (`auto_bellow` → auto_below)."""
        found = difflib.get_close_matches(
            text.strip().casefold(), self._by_spelling, n=1, cutoff=0.6
        )
        return self._by_spelling[found[0]] if found else None


# --- team settings (`/team config key=value`, `/团队 配置 设置项=值`) ------------------
SETTINGS = Names(
    Name("timezone", "timezone", "时区", ("tz",)),
    Name("locale", "locale", "语言", ("language", "lang")),
    Name("currency", "currency", "币种", ("货币",)),
    Name("stages", "stages", "阶段", ("pipeline", "销售阶段")),
    Name("allow_skip", "allow_skip", "允许跳过", ("跳过阶段",)),
    Name("auto_below", "auto_below", "自动通过", ("自动审批", "自动通过额度")),
    Name("manager_limit", "manager_limit", "经理额度", ("经理审批额度",)),
    Name("discount_raise", "discount_raise", "折扣升级", ("折扣升级线",)),
    Name("approval_wait_hours", "approval_wait_hours", "审批等待", ("审批等待小时",)),
    Name("stale_days", "stale_days", "停滞天数"),
    Name("followup_sla_days", "followup_sla_days", "跟进时限", ("跟进时限天数", "逾期上报天数")),
    Name("pool_return_days", "pool_return_days", "退回公海天数", ("回收公海天数", "公海回收")),
    Name("digest_time", "digest_time", "日报时间"),
    Name("weekly_digest_time", "weekly_digest_time", "周报时间"),
    Name("digest_channel", "digest_channel", "日报频道", ("日报群",)),
    Name("quiet_hours", "quiet_hours", "免打扰", ("免打扰时段",)),
    Name("quiet_weekends", "quiet_weekends", "周末免打扰"),
    Name("assignment", "assignment", "分配", ("assign", "分配规则")),
    Name("claim_limit", "claim_limit", "领取上限"),
    Name("transfer_wait_hours", "transfer_wait_hours", "转移等待", ("转移等待小时",)),
    Name("approval_levels", "approval_levels", "审批层级"),
    Name("page_size", "page_size", "每页条数", ("每页",)),
    Name("instalment_due_days", "instalment_due_days", "回款提前提醒", ("回款提醒天数",)),
    Name("renewal_days", "renewal_days", "续约提前提醒", ("续约提醒天数",)),
    Name("care_after_won_days", "care_after_won_days", "首次回访天数", ("赢单后回访天数",)),
    Name("care_days_a", "care_days_a", "A级回访间隔", ("a级回访间隔",)),
    Name("care_days_b", "care_days_b", "B级回访间隔", ("b级回访间隔",)),
    Name("care_days_c", "care_days_c", "C级回访间隔", ("c级回访间隔",)),
    Name("care_default_grade", "care_default_grade", "默认客户等级", ("默认等级",)),
    Name("points.followup", "points.followup", "跟进积分"),
    Name("points.on_time", "points.on_time", "按时积分"),
    Name("points.stage", "points.stage", "推进积分"),
    Name("points.quote_approved", "points.quote_approved", "报价积分"),
    Name("points.won", "points.won", "赢单积分"),
    Name("points.min_note", "points.min_note", "积分最短内容"),
    Name("points.burst_seconds", "points.burst_seconds", "连刷间隔秒数"),
    Name("points.burst_count", "points.burst_count", "连刷次数"),
)
# Settings of one stage or one approval level: `stale_days.<stage>=`, `停滞天数.<阶段>=` …
PER_ITEM = Names(
    Name("stale_days", "stale_days.<stage>", "停滞天数.<阶段>", ("停滞天数",)),
    Name("required", "required.<stage>", "必填.<阶段>", ("必填", "要求", "必需")),
    Name("approvers", "approvers.<level>", "审批人数.<层级>", ("审批人数",)),
)
# What the settings card calls its lines that are not one setting.
SETTING_GROUPS = Names(
    Name("stage rules", "stage rules", "阶段规则"),
    Name("points", "points", "积分规则"),
)

# --- what a stage may require (`required.<stage>=contact, value`) ----------------------
REQUIREMENTS = Names(
    Name("contact", "contact", "联系人"),
    Name("phone_or_email", "phone_or_email", "电话或邮箱", ("电话", "邮箱", "phone", "email")),
    Name("value", "value", "预计金额", ("预计", "金额")),
    Name("followup", "followup", "跟进记录", ("跟进", "follow-up")),
    Name("approved_quote", "approved_quote", "已审批报价", ("审批通过的报价", "报价")),
)

# --- a lead's fields: options typed, columns imported, changes shown -------------------
LEAD_FIELDS = Names(
    Name("name", "name", "名称", ("客户名称", "客户")),
    Name("company", "company", "公司"),
    Name("contact", "contact", "联系人"),
    Name("phone", "phone", "电话", ("手机", "tel")),
    Name("email", "e-mail", "邮箱", ("mail", "email")),
    Name("source", "source", "来源"),
    Name("value", "value", "预计", ("预计金额", "金额")),
    Name("tag", "tag", "标签"),
    Name("owner", "owner", "负责人", ("owner_id",)),
    Name("stage", "stage", "阶段"),
    Name("status", "status", "状态"),
    Name("won_amount", "won amount", "赢单金额"),
    Name("lost_reason", "lost reason", "输单原因"),
    Name("next_followup_on", "next follow-up", "下次跟进", ("next_followup",)),
    Name("snoozed_until", "snoozed until", "暂缓至"),
    Name("created_on", "created", "创建日期"),
)

# The fields people type as options (`/lead add … 电话=…`, `/lead list 阶段=…`).
TYPED_FIELDS = (
    "name",
    "company",
    "contact",
    "phone",
    "email",
    "source",
    "value",
    "tag",
    "owner",
    "stage",
)

# --- the other options verbs take (`next=`, `下次=` …) ---------------------------------
OPTIONS = Names(
    Name("next", "next", "下次", ("下次跟进",)),
    Name("via", "via", "方式"),
    Name("discount", "discount", "折扣"),
    Name("force", "force", "强制"),
    Name("page", "page", "页", ("页码",)),
    Name("manager", "manager", "经理"),
)

# --- roles -----------------------------------------------------------------------------
ROLES = Names(
    Name("rep", "rep", "销售", ("sales", "reps")),
    Name("manager", "manager", "经理", ("主管", "managers")),
    Name("admin", "admin", "管理员", ("总监", "admins")),
)

# --- values typed after `=` ------------------------------------------------------------
VALUES = Names(
    Name("yes", "yes", "是", ("y", "true", "on", "1", "对", "开", "开启")),
    Name("no", "no", "否", ("n", "false", "0", "不")),
    Name("off", "off", "关闭", ("none", "关", "无", "-")),
    Name("auto", "auto", "自动", ("automatic",)),
    Name("manual", "manual", "手动", ("author", "人工")),
    Name("round_robin", "round_robin", "轮流", ("roundrobin", "rr", "轮询", "round robin")),
    Name("least_loaded", "least_loaded", "均衡", ("balanced", "最少", "least loaded")),
    Name("pool", "pool", "公海"),
    Name("zh", "zh", "中文", ("cn", "chinese", "汉语")),
    Name("en", "en", "英文", ("english", "英语")),
)
ASSIGNMENTS = ("manual", "round_robin", "least_loaded", "pool")

# --- kinds of records (what an erasure reached) ----------------------------------------
RECORDS = Names(
    Name("follow-ups", "follow-ups", "跟进"),
    Name("quotes", "quotes", "报价"),
    Name("approval steps", "approval steps", "审批"),
    Name("signatures", "signatures", "签批"),
    Name("payments", "payments", "回款"),
    Name("transfers", "transfers", "转移申请"),
    Name("audit events", "audit events", "变更记录"),
    Name("pushes", "pushes", "推送"),
    Name("held notices", "held notices", "待汇总通知"),
    Name("command log lines", "command log lines", "命令记录"),
    Name("answers waiting", "answers waiting", "待发回复"),
)

# --- words after a verb that are neither ids nor free text -----------------------------
WORDS = Names(
    Name("history", "history", "变更记录", ("历史", "log", "记录", "日志")),
    # which leads `/lead list` shows
    Name("mine", "mine", "我的", ("my",)),
    Name("team", "team", "团队", ("all", "全部")),
    Name("pool", "pool", "公海"),
    Name("overdue", "overdue", "逾期", ("超期",)),
    Name("won", "won", "赢单"),
    Name("lost", "lost", "输单"),
)
LEAD_LISTS = ("mine", "team", "pool", "overdue", "won", "lost")


def option_aliases() -> dict[str, str]:
    """Every spelling of an option key → its key, for the command-line splitter."""
    typed = [*OPTIONS.names.values(), *(LEAD_FIELDS.names[key] for key in TYPED_FIELDS)]
    return {
        spelling: name.key
        for name in typed
        for spelling in (name.zh, *name.also)
        if spelling != "owner_id"
    }


def option_label(key: str, locale: str) -> str:
    """An option key as the reader types it (`phone` → 电话)."""
    table = OPTIONS if key in OPTIONS else LEAD_FIELDS
    return table.label(key, locale)


def option_list(keys: Iterable[str], locale: str) -> str:
    """`company= contact=` / `公司= 联系人=`: the options a verb takes, to say what it knows."""
    return " ".join(f"{option_label(key, locale)}=" for key in keys)
