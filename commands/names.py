"""The names of things people type and read — team settings, lead fields, roles, values and the
words after a verb — each in English here, in Chinese in the wording catalog (msgctxt
`name.<table>`).

One table per kind. Parsing accepts every spelling a table holds (its key, both names and the other
spellings people use); display shows the reader's language. A name added here is understood and
shown at once, so typing and reading cannot drift apart.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace

import wording


@dataclass(frozen=True)
class Name:
    key: str  # what the code and the database use
    en: str
    also: tuple[str, ...] = ()  # other spellings people type
    zh: str = ""  # from the catalog (msgctxt `name.<table>`), filled in by the table

    def label(self, locale: str) -> str:
        return self.zh if locale == "zh" else self.en

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.key, self.en, self.zh, *self.also)


class Names:
    """One kind of name: find a key by any spelling, show a key in a language."""

    def __init__(self, kind: str, *names: Name) -> None:
        context = f"name.{kind}"
        names = tuple(
            replace(name, zh=wording.say("zh", name.en, context=context)) for name in names
        )
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
        labels = [self.label(key, locale) for key in (keys if keys is not None else self.names)]
        return sep.join(labels) if sep is not None else wording.join(locale, labels)

    def closest(self, text: str) -> str | None:
        """The key whose spelling is nearest a mistyped one (`auto_bellow` → auto_below)."""
        found = difflib.get_close_matches(
            text.strip().casefold(), self._by_spelling, n=1, cutoff=0.6
        )
        return self._by_spelling[found[0]] if found else None


# --- team settings (`/team config key=value`, `/团队 配置 设置项=值`) ------------------
SETTINGS = Names(
    "settings",
    Name("timezone", "timezone", ("tz",)),
    Name("locale", "locale", ("language", "lang")),
    Name("currency", "currency", ("货币",)),
    Name("stages", "stages", ("pipeline", "销售阶段")),
    Name("allow_skip", "allow_skip", ("跳过阶段",)),
    Name("auto_below", "auto_below", ("自动审批", "自动通过额度")),
    Name("manager_limit", "manager_limit", ("经理审批额度",)),
    Name("discount_raise", "discount_raise", ("折扣升级线",)),
    Name("approval_wait_hours", "approval_wait_hours", ("审批等待小时",)),
    Name("stale_days", "stale_days"),
    Name("followup_sla_days", "followup_sla_days", ("跟进时限天数", "逾期上报天数")),
    Name("pool_return_days", "pool_return_days", ("回收公海天数", "公海回收")),
    Name("digest_time", "digest_time"),
    Name("weekly_digest_time", "weekly_digest_time"),
    Name("digest_channel", "digest_channel", ("日报群",)),
    Name("quiet_hours", "quiet_hours", ("免打扰时段",)),
    Name("quiet_weekends", "quiet_weekends"),
    Name("assignment", "assignment", ("assign", "分配规则")),
    Name("claim_limit", "claim_limit"),
    Name("transfer_wait_hours", "transfer_wait_hours", ("转移等待小时",)),
    Name("approval_levels", "approval_levels"),
    Name("page_size", "page_size", ("每页",)),
    Name("instalment_due_days", "instalment_due_days", ("回款提醒天数",)),
    Name("renewal_days", "renewal_days", ("续约提醒天数",)),
    Name("care_after_won_days", "care_after_won_days", ("赢单后回访天数",)),
    Name("care_days_a", "care_days_a", ("a级回访间隔",)),
    Name("care_days_b", "care_days_b", ("b级回访间隔",)),
    Name("care_days_c", "care_days_c", ("c级回访间隔",)),
    Name("care_default_grade", "care_default_grade", ("默认等级",)),
    Name("points.followup", "points.followup"),
    Name("points.on_time", "points.on_time"),
    Name("points.stage", "points.stage"),
    Name("points.quote_approved", "points.quote_approved"),
    Name("points.won", "points.won"),
    Name("points.min_note", "points.min_note"),
    Name("points.burst_seconds", "points.burst_seconds"),
    Name("points.burst_count", "points.burst_count"),
)
# Settings of one stage or one approval level: `stale_days.<stage>=`, `停滞天数.<阶段>=` …
PER_ITEM = Names(
    "per_item",
    Name("stale_days", "stale_days.<stage>", ("停滞天数",)),
    Name("required", "required.<stage>", ("必填", "要求", "必需")),
    Name("approvers", "approvers.<level>", ("审批人数",)),
)
# What the settings card calls its lines that are not one setting.
SETTING_GROUPS = Names(
    "setting_groups",
    Name("stage rules", "stage rules"),
    Name("points", "points"),
)

# --- what a stage may require (`required.<stage>=contact, value`) ----------------------
REQUIREMENTS = Names(
    "requirements",
    Name("contact", "contact"),
    Name("phone_or_email", "phone_or_email", ("电话", "邮箱", "phone", "email")),
    Name("value", "value", ("预计", "金额")),
    Name("followup", "followup", ("跟进", "follow-up")),
    Name("approved_quote", "approved_quote", ("审批通过的报价", "报价")),
)

# --- a lead's fields: options typed, columns imported, changes shown -------------------
LEAD_FIELDS = Names(
    "lead_fields",
    Name("name", "name", ("客户名称", "客户")),
    Name("company", "company"),
    Name("contact", "contact"),
    Name("phone", "phone", ("手机", "tel")),
    Name("email", "e-mail", ("mail", "email")),
    Name("source", "source"),
    Name("value", "value", ("预计金额", "金额")),
    Name("tag", "tag"),
    Name("owner", "owner", ("owner_id",)),
    Name("stage", "stage"),
    Name("status", "status"),
    Name("won_amount", "won amount"),
    Name("lost_reason", "lost reason"),
    Name("next_followup_on", "next follow-up", ("next_followup",)),
    Name("snoozed_until", "nudges resume"),
    Name("created_on", "created"),
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
    "options",
    Name("next", "next", ("下次跟进",)),
    Name("via", "via"),
    Name("discount", "discount"),
    Name("force", "force"),
    Name("page", "page", ("页码",)),
    Name("manager", "manager"),
)

# --- roles -----------------------------------------------------------------------------
ROLES = Names(
    "roles",
    Name("rep", "rep", ("sales", "reps")),
    Name("manager", "manager", ("主管", "managers")),
    Name("admin", "admin", ("总监", "admins")),
)

# --- values typed after `=` ------------------------------------------------------------
VALUES = Names(
    "values",
    Name("yes", "yes", ("y", "true", "on", "1", "对", "开", "开启")),
    Name("no", "no", ("n", "false", "0", "不")),
    Name("off", "off", ("none", "关", "无", "-")),
    Name("auto", "auto", ("automatic",)),
    Name("manual", "manual", ("author", "人工")),
    Name("round_robin", "round_robin", ("roundrobin", "rr", "轮询", "round robin")),
    Name("least_loaded", "least_loaded", ("balanced", "最少", "least loaded")),
    Name("pool", "pool"),
    Name("zh", "zh", ("cn", "chinese", "汉语")),
    Name("en", "en", ("english", "英语")),
)
ASSIGNMENTS = ("manual", "round_robin", "least_loaded", "pool")

# --- kinds of records (what an erasure reached) ----------------------------------------
RECORDS = Names(
    "records",
    Name("follow-ups", "follow-ups"),
    Name("quotes", "quotes"),
    Name("approval steps", "approval steps"),
    Name("signatures", "signatures"),
    Name("payments", "payments"),
    Name("transfers", "transfers"),
    Name("audit events", "audit events"),
    Name("pushes", "pushes"),
    Name("held notices", "held notices"),
    Name("command log lines", "command log lines"),
    Name("answers waiting", "answers waiting"),
)

# --- words after a verb that are neither ids nor free text -----------------------------
WORDS = Names(
    "words",
    Name("history", "history", ("历史", "log", "记录", "日志")),
    # which leads `/lead list` shows
    Name("mine", "mine", ("my",)),
    Name("team", "team", ("all", "全部")),
    Name("pool", "pool"),
    Name("overdue", "overdue", ("超期",)),
    Name("won", "won"),
    Name("lost", "lost"),
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
