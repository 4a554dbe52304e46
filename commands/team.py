"""`/team …` (`/团队`): who is in the team, their roles, the team's settings, handing work over."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from commands.args import KEY_ALIASES, Args
from commands.context import Ctx, UsageError
from commands.quotes import route_unasked
from commands.types import Reply
from models import teams
from models.config import REQUIREMENTS, ROLE_RANK, parse_clock
from models.errors import DomainError
from models.permissions import require_role

ROLES = {"rep": "rep", "sales": "rep", "销售": "rep", "manager": "manager", "经理": "manager", "主管": "manager",
         "admin": "admin", "管理员": "admin", "总监": "admin"}


def _need_admin(ctx: Ctx) -> None:
    if ROLE_RANK.get(ctx.scope.actor.role, 0) < ROLE_RANK["admin"]:
        raise DomainError("forbidden.role", action=ctx.t("action.team"), role="admin")


def show(ctx: Ctx, args: Args) -> Reply:
    if args.words:
        raise UsageError("usage.unknown_sub", word=args.words[0][:40], family=ctx.say("team"))
    scope = ctx.scope
    people = teams.members(scope.session, scope.team)
    by_id = {m.id: m for m in people}
    table = [[ctx.say("Member"), ctx.say("Role"), ctx.say("Manager")]]
    for member in people:
        manager = by_id.get(member.manager_id)
        table.append([member.name, ctx.role_label(member.role), manager.name if manager else "-"])
    return Reply(text=ctx.say_n("👥 **{team}** — {n} member", "👥 **{team}** — {n} members",
                                   len(people), team=scope.team.name), table=table)


def role(ctx: Ctx, args: Args) -> Reply:
    _need_admin(ctx)
    if len(args.words) < 2:
        raise UsageError("usage.missing", what=ctx.t("what.role") if args.words else ctx.t("what.member"))
    member = ctx.member(args.words[0], create=True)
    wanted = ROLES.get(args.words[1].casefold())
    if wanted is None:
        raise UsageError("usage.bad_role", text=args.words[1])
    manager = ctx.member(args.options["manager"]) if args.options.get("manager") else None
    if manager is not None and ROLE_RANK[manager.role] < ROLE_RANK["manager"]:
        raise UsageError("usage.bad_role", text=f"{manager.name}: {ctx.role_label(manager.role)}")
    teams.set_role(ctx.scope, member, wanted, manager=manager)
    if ROLE_RANK[wanted] >= ROLE_RANK["manager"]:
        route_unasked(ctx)  # quotes that waited for nobody go to the new approver
    text = ctx.say("👤 {who} is now {role}.", who=member.name, role=ctx.role_label(wanted))
    if manager:
        text += ctx.say(" Reports to {m}.", m=manager.name)
    return Reply(text=text)


def _amount(ctx: Ctx, text: str) -> str:
    return str(Decimal(ctx.amount(text)) / 100)


def _stages(ctx: Ctx, text: str) -> list[dict[str, Any]]:
    names = [name.strip() for name in text.replace("，", ",").replace("→", ",").split(",") if name.strip()]
    if not names:
        raise UsageError("usage.missing", what=ctx.t("what.stage"))
    config = ctx.scope.config
    stages = []
    for name in names:
        existing = config.find_stage(name)
        if existing and not name.isdigit():
            stages.append(existing.model_dump())
        else:
            stages.append({"key": name, "zh": name, "en": name, "required": [], "stale_days": None})
    return stages


def _requirements(ctx: Ctx, text: str) -> list[str]:
    if text.casefold() in ("none", "无", "-", ""):
        return []
    items = [item.strip() for item in text.replace("，", ",").split(",") if item.strip()]
    for item in items:
        if item not in REQUIREMENTS:
            raise UsageError("usage.bad_choice", text=item, choices=", ".join(REQUIREMENTS))
    return items


def _int(ctx: Ctx, text: str) -> int:
    if not text.strip().isdecimal():
        raise UsageError("usage.bad_config_value", key="", value=text, detail=ctx.say(
            "a whole number",
        ))
    return int(text)


def _hours(ctx: Ctx, text: str) -> float:
    try:
        value = float(text.removesuffix("h").removesuffix("小时"))
    except ValueError:
        value = -1
    if not 0 < value <= 720:
        raise UsageError("usage.bad_config_value", key="", value=text, detail=ctx.say(
            "hours, like 4",
        ))
    return value


def _locale(ctx: Ctx, text: str) -> str | None:
    value = {"zh": "zh", "中文": "zh", "cn": "zh", "en": "en", "english": "en", "英文": "en", "auto": None}
    if text.casefold() not in value:
        raise UsageError("usage.bad_choice", text=text, choices="zh, en, auto")
    return value[text.casefold()]


def _choice(*choices: str) -> Callable[[Ctx, str], str]:
    def parse(ctx: Ctx, text: str) -> str:
        if text.casefold() not in choices:
            raise UsageError("usage.bad_choice", text=text, choices=", ".join(choices))
        return text.casefold()
    return parse


def _timezone(ctx: Ctx, text: str) -> str:
    value = text.strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UsageError("usage.bad_timezone", text=text) from None
    return value


def _currency(ctx: Ctx, text: str) -> str | None:
    value = text.strip().upper()
    if value and not (len(value) == 3 and value.isascii() and value.isalpha()):
        raise UsageError("usage.bad_config_value", key="", value=text,
                         detail=ctx.say("a currency code like CNY or USD"))
    return value or None


def _clock(ctx: Ctx, text: str) -> str:
    try:
        return parse_clock(text).strftime("%H:%M")
    except ValueError:
        raise UsageError("usage.bad_config_value", key="", value=text,
                         detail=ctx.say("a time of day like 18:00")) from None


def _quiet_hours(ctx: Ctx, text: str) -> str | None:
    value = text.strip()
    if value.casefold() in ("", "off", "none", "关", "关闭", "无"):
        return None
    start, sep, end = value.partition("-")
    try:
        if not sep:
            raise ValueError(value)
        return f"{parse_clock(start):%H:%M}-{parse_clock(end):%H:%M}"
    except ValueError:
        raise UsageError("usage.bad_config_value", key="", value=text,
                         detail=ctx.say("a range like 20:00-08:30, or off")) from None


def _text(ctx: Ctx, text: str) -> str | None:
    return text.strip() or None


_ASSIGN = {"round_robin": "round_robin", "roundrobin": "round_robin", "rr": "round_robin", "轮流": "round_robin",
           "轮询": "round_robin", "manual": "manual", "author": "manual", "手动": "manual", "least_loaded": "least_loaded",
           "balanced": "least_loaded", "最少": "least_loaded", "均衡": "least_loaded", "pool": "pool", "公海": "pool"}


def _assignment(ctx: Ctx, text: str) -> str:
    """round_robin, manual, least_loaded or pool; the old names author and balanced still work."""
    value = _ASSIGN.get(text.strip().casefold())
    if value is None:
        raise UsageError("usage.bad_choice", text=text, choices="round_robin, manual, least_loaded, pool")
    return value


_LEVEL_ROLES = {"manager": "manager", "managers": "manager", "经理": "manager", "主管": "manager",
                "admin": "admin", "admins": "admin", "管理员": "admin", "总监": "admin"}


def _levels(ctx: Ctx, text: str) -> list[dict[str, Any]]:
    """`manager:500k, 2*manager:1m, admin` — each level's role, how many must sign, and its limit."""
    levels = []
    items = [item.strip() for item in text.replace("，", ",").split(",") if item.strip()]
    for item in items:
        who, _, limit = item.replace("≤", ":").replace("<=", ":").partition(":")
        who = who.strip()
        match = (re.fullmatch(r"(\d+)\s*[x×*]?\s*(\D+)", who) or re.fullmatch(r"(\D+?)\s*[x×*]\s*(\d+)", who))
        count, role_word = (1, who) if match is None else (
            (int(match.group(1)), match.group(2)) if match.group(1).isdigit() else (int(match.group(2)), match.group(1)))
        role = _LEVEL_ROLES.get(role_word.strip().casefold())
        if role is None or not 1 <= count <= 10:
            raise UsageError("usage.bad_config_value", key="approval_levels", value=item,
                             detail=ctx.say("levels like manager:500k, 2*manager:1m, admin"))
        up_to = _amount(ctx, limit.strip()) if limit.strip() else None
        levels.append({"role": role, "up_to": up_to, "approvers": count})
    if not levels:
        raise UsageError("usage.missing", what=ctx.say("approval levels"))
    return levels


def level_text(ctx: Ctx, level: dict[str, Any]) -> str:
    """`2× manager ≤ $1,000,000`: one approval level as the settings card shows it."""
    text = ctx.role_label(level["role"])
    if int(level.get("approvers") or 1) > 1:
        text = f"{level['approvers']}× {text}"
    if level.get("up_to") is not None:
        text += f" ≤ {ctx.money(int(Decimal(str(level['up_to'])) * 100))}"
    return text


# Settings people type → (where in TeamConfig, how to read the typed value).
SETTINGS: dict[str, tuple[str, Callable[[Ctx, str], Any]]] = {
    "timezone": ("timezone", _timezone),
    "locale": ("locale", _locale),
    "currency": ("currency", _currency),
    "stages": ("stages", _stages),
    "allow_skip": ("allow_skip", lambda ctx, text: ctx.yes(text)),
    "auto_below": ("approval.auto_below", _amount),
    "manager_limit": ("approval.levels.0.up_to", _amount),
    "discount_raise": ("approval.discount_raise_pct", lambda ctx, text: str(Decimal(ctx.percent_bp(text)) / 100)),
    "approval_wait_hours": ("approval.wait_hours", _hours),
    "stale_days": ("stale_days", _int),
    "followup_sla_days": ("followup_sla_days", _int),
    "pool_return_days": ("pool_return_days", _int),
    "digest_time": ("digest_time", _clock),
    "weekly_digest_time": ("weekly_digest_time", _clock),
    "digest_channel": ("digest_channel", _text),
    "quiet_hours": ("quiet_hours", _quiet_hours),
    "quiet_weekends": ("quiet_weekends", lambda ctx, text: ctx.yes(text)),
    "assign": ("assignment", _assignment),
    "assignment": ("assignment", _assignment),
    "claim_limit": ("pool_claim_limit", _int),
    "transfer_wait_hours": ("transfer_wait_hours", _hours),
    "approval_levels": ("approval.levels", _levels),
    "page_size": ("page_size", _int),
    "instalment_due_days": ("instalment_due_days", _int),
    "renewal_days": ("renewal_days", _int),
    "care_after_won_days": ("care_after_won_days", _int),
    "care_days_a": ("care_days_a", _int),
    "care_days_b": ("care_days_b", _int),
    "care_days_c": ("care_days_c", _int),
    "care_default_grade": ("care_default_grade",
                           lambda ctx, text: _choice("a", "b", "c")(ctx, text).upper()),
    # Process points per action, and what makes a follow-up too empty to earn (models/points.py).
    **{f"points.{key}": (f"points.{key}", _int) for key in (
        "followup", "on_time", "stage", "quote_approved", "won", "min_note", "burst_seconds", "burst_count")},
}
SETTING_ALIASES = {"时区": "timezone", "语言": "locale", "币种": "currency", "阶段": "stages", "日报时间": "digest_time",
                   "日报频道": "digest_channel", "免打扰": "quiet_hours", "分配": "assignment", "停滞天数": "stale_days",
                   "自动通过": "auto_below", "经理额度": "manager_limit"}
SETTING_ALIASES.update({"分配规则": "assign", "领取上限": "claim_limit", "审批层级": "approval_levels",
                        "转移等待": "transfer_wait_hours"})
SETTING_ALIASES.update({"跟进积分": "points.followup", "按时积分": "points.on_time", "推进积分": "points.stage",
                        "报价积分": "points.quote_approved", "赢单积分": "points.won"})
PER_STAGE = {"stale_days": "stale_days", "required": "required"}


def config(ctx: Ctx, args: Args) -> Reply:
    pairs = [*args.options.items(), *args.unknown]
    if not pairs:
        if args.words:
            raise UsageError("usage.missing", what=ctx.t("what.setting"))
        return _show_config(ctx)
    stray = [word for word in args.words if "=" not in word]
    if stray:  # a word without key= would otherwise be dropped silently (`stages=Lead, Demo` lost Demo)
        raise UsageError("usage.bad_config_value", key=pairs[0][0], value=stray[0],
                         detail=ctx.say("write key=value; quote a value with spaces: \"key=a b\""))
    _need_admin(ctx)
    scope = ctx.scope
    changes: dict[str, Any] = {}
    for raw_key, raw_value in pairs:
        key = SETTING_ALIASES.get(raw_key, KEY_ALIASES.get(raw_key, raw_key)).casefold()
        head, _, stage_name = key.partition(".")
        if head == "approvers" and stage_name:  # approvers.2=2: two signatures at level 2
            levels = scope.config.approval.levels
            if not stage_name.isdecimal() or not 1 <= int(stage_name) <= len(levels):
                raise UsageError("usage.bad_config_value", key=key, value=raw_value,
                                 detail=ctx.say("levels are 1 to {n}", n=len(levels)))
            changes[f"approval.levels.{int(stage_name) - 1}.approvers"] = _int(ctx, raw_value)
            continue
        if stage_name and head in PER_STAGE:
            stage = ctx.stage(stage_name)
            index = scope.config.stage_index(stage.key)
            value = _int(ctx, raw_value) if head == "stale_days" else _requirements(ctx, raw_value)
            changes[f"stages.{index}.{PER_STAGE[head]}"] = value
            continue
        if key not in SETTINGS:
            known = ", ".join([*SETTINGS, "stale_days.<stage>", "required.<stage>", "approvers.<level>"])
            raise UsageError("usage.unknown_config", key=raw_key, known=known)
        path, parse = SETTINGS[key]
        try:
            changes[path] = parse(ctx, raw_value)
        except UsageError as error:
            if error.key == "usage.bad_config_value":
                raise UsageError(error.key, **{**error.params, "key": key}) from error
            raise
    _before, after = teams.update_config(scope, changes)
    if "locale" in changes and changes["locale"]:
        ctx.locale = changes["locale"]
    shown = ", ".join(f"{path}={_shown(value, ctx)}" for path, value in after.items())
    return Reply(text=ctx.say("⚙️ Saved: {s}", s=shown))


def _shown(value: Any, ctx: Ctx | None = None) -> str:
    if isinstance(value, list):
        if ctx is not None and value and isinstance(value[0], dict) and "role" in value[0]:
            return " · ".join(level_text(ctx, level) for level in value)  # approval levels
        return " → ".join(item.get("key", str(item)) if isinstance(item, dict) else str(item) for item in value)
    return str(value)


def _show_config(ctx: Ctx) -> Reply:
    config = ctx.scope.config
    stages = " → ".join(stage.label(ctx.locale) for stage in config.stages)
    fields = [
        ("timezone", config.timezone), ("locale", config.locale or "auto"), ("currency", ctx.currency),
        ("stages", stages), ("allow_skip", "yes" if config.allow_skip else "no"),
        ("auto_below", ctx.money(int(config.approval.auto_below * 100))),
        ("manager_limit", ctx.money(int(config.approval.levels[0].up_to * 100)) if config.approval.levels[0].up_to else "-"),
        ("discount_raise", f"{config.approval.discount_raise_pct:g}%"),
        ("approval_wait_hours", f"{config.approval.wait_hours:g}"),
        ("stale_days", str(config.stale_days)), ("followup_sla_days", str(config.followup_sla_days)),
        ("pool_return_days", str(config.pool_return_days) if config.pool_return_days else "off"),
        ("digest_time", config.digest_time), ("weekly_digest_time", config.weekly_digest_time),
        ("digest_channel", config.digest_channel or "-"),
        ("quiet_hours", config.quiet_hours or "off"), ("quiet_weekends", "yes" if config.quiet_weekends else "no"),
        ("assignment", config.assignment), ("page_size", str(config.page_size)),
        ("approval_levels", " · ".join(level_text(ctx, level.model_dump(mode="json"))
                                       for level in config.approval.levels)),
        ("claim_limit", str(config.pool_claim_limit) if config.pool_claim_limit else "off"),
        ("transfer_wait_hours", f"{config.transfer_wait_hours:g}"),
        ("instalment_due_days", str(config.instalment_due_days)),
        ("renewal_days", str(config.renewal_days) if config.renewal_days else "off"),
        ("care_after_won_days", str(config.care_after_won_days)),
        ("care_days_a", str(config.care_days_a)), ("care_days_b", str(config.care_days_b)),
        ("care_days_c", str(config.care_days_c)), ("care_default_grade", config.care_default_grade),
    ]
    # What each stage requires and its own stale-days: set with required.<stage>= and stale_days.<stage>=.
    rules = [f"{stage.label(ctx.locale)}: " + ", ".join(
        [*stage.required, *([f"stale {stage.stale_days}d"] if stage.stale_days else [])])
        for stage in config.stages if stage.required or stage.stale_days]
    if rules:
        fields.append(("stage rules", " · ".join(rules)))
    fields.append(("points", " ".join(f"points.{k}={v}" for k, v in config.points.model_dump().items())))
    cmd = "/团队 配置" if ctx.zh else "/team config"
    return Reply(text=ctx.say("⚙️ **Settings** — change with {cmd} key=value", cmd=cmd),
                 fields=fields)


def handoff(ctx: Ctx, args: Args) -> Reply:
    require_role(ctx.scope.actor, "manager", "handoff")
    if len(args.words) < 2:
        raise UsageError("usage.missing", what=ctx.t("what.member"))
    source, target = ctx.member(args.words[0]), ctx.member(args.words[1])
    moved_leads, moved_quotes = teams.handoff(ctx.scope, source, target)
    refs = ", ".join(f"L{lead.number}" for lead in moved_leads[:20]) or "-"
    leads_moved = ctx.say_n("{n} open lead ({refs})", "{n} open leads ({refs})",
                            len(moved_leads), refs=refs)
    quotes_moved = ctx.say_n("{n} pending quote", "{n} pending quotes", len(moved_quotes))
    text = ctx.say(
        "🔁 {a} → {b}: {leads} and {quotes} moved.",
        a=source.name,
        b=target.name,
        leads=leads_moved,
        quotes=quotes_moved,
    )
    stamp = ctx.scope.now.strftime("%Y%m%d%H%M%S%f")
    for person in (source, target):
        ctx.notify(person, kind="handoff", key=f"handoff:{source.id}:{target.id}:{stamp}:{person.id}",
                   reply=Reply(text=text))
    return Reply(text=text)
