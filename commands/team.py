"""`/team …` (`/团队`): who is in the team, their roles, the team's settings, handing work over."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import wording
from commands import names
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.quotes import route_unasked
from commands.types import Reply
from models import teams
from models.config import ROLE_RANK, TeamConfig, parse_clock
from models.errors import DomainError
from models.permissions import require_role
from wording import N_


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
    member = ctx.member(args.words[0])
    wanted = names.ROLES.find(args.words[1])
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
    if not text.strip() or names.VALUES.find(text, among=("off",)):
        return []
    items = []
    for item in re.split(r"[,，、;；]", text):
        if not item.strip():
            continue
        key = names.REQUIREMENTS.find(item)
        if key is None:
            raise UsageError("usage.bad_choice", text=item.strip(), choices=names.REQUIREMENTS.labels(ctx.locale))
        items.append(key)
    return items


def _int(ctx: Ctx, text: str) -> int:
    if not text.strip().isdecimal():
        raise UsageError("usage.bad_config_value", key="", value=text, detail=ctx.say(
            "a whole number",
        ))
    return int(text)


def _int_or_off(ctx: Ctx, text: str) -> int:
    """A number of days or a limit where 0 turns it off, so `off`/`关闭` means 0."""
    return 0 if names.VALUES.find(text, among=("off", "no")) else _int(ctx, text)


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
    value = names.VALUES.find(text, among=("zh", "en", "auto"))
    if value is None:
        raise UsageError("usage.bad_choice", text=text, choices=names.VALUES.labels(ctx.locale, ("zh", "en", "auto")))
    return None if value == "auto" else value


def _grade(ctx: Ctx, text: str) -> str:
    value = text.strip().upper().removesuffix("级")
    if value not in ("A", "B", "C"):
        raise UsageError("usage.bad_choice", text=text, choices=ctx.join("ABC"))
    return value


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
    if not value or names.VALUES.find(value, among=("off", "no")):
        return None
    start, sep, end = value.partition("-")
    try:
        if not sep:
            raise ValueError(value)
        return f"{parse_clock(start):%H:%M}-{parse_clock(end):%H:%M}"
    except ValueError:
        raise UsageError("usage.bad_config_value", key="", value=text,
                         detail=ctx.say(
                             "a range like 20:00-08:30, or off",
                             context="commands.team",
                         )) from None


def _text(ctx: Ctx, text: str) -> str | None:
    return text.strip() or None


def _assignment(ctx: Ctx, text: str) -> str:
    """round_robin, manual, least_loaded or pool; the old names author and balanced still work."""
    value = names.VALUES.find(text, among=names.ASSIGNMENTS)
    if value is None:
        raise UsageError("usage.bad_choice", text=text, choices=names.VALUES.labels(ctx.locale, names.ASSIGNMENTS))
    return value


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
        role = names.ROLES.find(role_word, among=("manager", "admin"))
        if role is None or not 1 <= count <= 10:
            raise UsageError("usage.bad_config_value", key="approval_levels", value=item,
                             detail=ctx.say(
                                 "levels like manager:500k, 2*manager:1m, admin",
                                 context="commands.team",
                             ))
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


# Settings people type (names and spellings in commands/names.py) → (where in TeamConfig, how to
# read the typed value).
SETTINGS: dict[str, tuple[str, Callable[[Ctx, str], Any]]] = {
    "timezone": ("timezone", _timezone),
    "locale": ("locale", _locale),
    "currency": ("currency", _currency),
    "stages": ("stages", _stages),
    "allow_skip": ("allow_skip", lambda ctx, text: ctx.yes(text)),
    "auto_below": ("approval.auto_below", _amount),
    "manager_limit": ("approval.levels.0.up_to", _amount),
    "discount_raise": (
        "approval.discount_raise_pct",
        lambda ctx, text: str(Decimal(ctx.percent_bp(text)) / 100),
    ),
    "approval_wait_hours": ("approval.wait_hours", _hours),
    "stale_days": ("stale_days", _int),
    "followup_sla_days": ("followup_sla_days", _int),
    "pool_return_days": ("pool_return_days", _int_or_off),
    "digest_time": ("digest_time", _clock),
    "weekly_digest_time": ("weekly_digest_time", _clock),
    "digest_channel": ("digest_channel", _text),
    "quiet_hours": ("quiet_hours", _quiet_hours),
    "quiet_weekends": ("quiet_weekends", lambda ctx, text: ctx.yes(text)),
    "assignment": ("assignment", _assignment),
    "claim_limit": ("pool_claim_limit", _int_or_off),
    "transfer_wait_hours": ("transfer_wait_hours", _hours),
    "approval_levels": ("approval.levels", _levels),
    "page_size": ("page_size", _int),
    "instalment_due_days": ("instalment_due_days", _int),
    "renewal_days": ("renewal_days", _int_or_off),
    "care_after_won_days": ("care_after_won_days", _int),
    "care_days_a": ("care_days_a", _int),
    "care_days_b": ("care_days_b", _int),
    "care_days_c": ("care_days_c", _int),
    "care_default_grade": ("care_default_grade", _grade),
    # Process points per action, and what makes a follow-up too empty to earn (models/points.py).
    **{
        f"points.{key}": (f"points.{key}", _int)
        for key in (
            "followup",
            "on_time",
            "stage",
            "quote_approved",
            "won",
            "min_note",
            "burst_seconds",
            "burst_count",
        )
    },
}
assert set(SETTINGS) == set(names.SETTINGS), "every setting has its names, every name a setting"


def config(ctx: Ctx, args: Args) -> Reply:
    pairs = [*args.options.items(), *args.unknown]
    if not pairs:
        if args.words:
            raise UsageError("usage.missing", what=ctx.t("what.setting"))
        return _show_config(ctx)
    stray = [word for word in args.words if "=" not in word]
    if stray and len(pairs) == 1 and names.SETTINGS.find(pairs[0][0]) == "stages":
        # `阶段=线索, 演示, 签约`: 阶段= is also the option of other verbs, so its words arrive apart
        pairs, stray = [(pairs[0][0], " ".join([pairs[0][1], *stray]))], []
    if (
        stray
    ):  # a word without key= would otherwise be dropped silently (`stages=Lead, Demo` lost Demo)
        raise UsageError(
            "usage.bad_config_value",
            key=pairs[0][0],
            value=stray[0],
            detail=ctx.say(
                "write key=value; quote a value with spaces: \"key=a b\"",
                context="commands.team",
            ),
        )
    _need_admin(ctx)
    scope = ctx.scope
    changes: dict[str, Any] = {}
    saved: list[tuple[str, str]] = []  # (setting, stage or level) as typed, to say what was saved
    for raw_key, raw_value in pairs:
        key = names.SETTINGS.find(raw_key)
        if key is None:
            head, _, item = raw_key.partition(".")
            kind = names.PER_ITEM.find(head) if item else None
            if kind is None:
                raise _unknown_setting(ctx, raw_key)
            changes.update(_per_item(ctx, kind, item, raw_value))
            saved.append((kind, item))
            continue
        path, parse = SETTINGS[key]
        try:
            changes[path] = parse(ctx, raw_value)
        except UsageError as error:
            if error.key == "usage.bad_config_value":
                raise UsageError(
                    error.key, **{**error.params, "key": names.SETTINGS.label(key, ctx.locale)}
                ) from error
            raise
        saved.append((key, ""))
    try:
        teams.update_config(scope, changes)
    except DomainError as error:
        raise _config_refused(ctx, error, pairs) from error
    if "locale" in changes and changes["locale"]:
        ctx.locale = changes["locale"]
    values = _setting_values(ctx, scope.config)
    shown = ctx.join((
        f"{names.SETTINGS.label(key, ctx.locale)}={values[key]}"
        if not item
        else _per_item_shown(ctx, key, item)
        for key, item in saved
    ), "clause")
    return Reply(text=ctx.say("⚙️ Saved: {s}", s=shown))


def _unknown_setting(ctx: Ctx, raw_key: str) -> UsageError:
    """The settings there are, in the reader's language, and the one they most likely meant."""
    known = ctx.join(
        [names.SETTINGS.label(key, ctx.locale) for key in names.SETTINGS]
        + [names.PER_ITEM.label(key, ctx.locale) for key in names.PER_ITEM]
    )
    near = names.SETTINGS.closest(raw_key)
    hint = (
        ""
        if near is None
        else ctx.say(" Did you mean “{near}”?", near=names.SETTINGS.label(near, ctx.locale))
    )
    return UsageError("usage.unknown_config", key=raw_key[:40], known=known, hint=hint)


def _per_item(ctx: Ctx, kind: str, item: str, raw_value: str) -> dict[str, Any]:
    """`stale_days.<stage>`, `required.<stage>`, `approvers.<level>` → the change at its path."""
    config = ctx.scope.config
    if kind == "approvers":  # approvers.2=2: two signatures at level 2
        levels = config.approval.levels
        if not item.isdecimal() or not 1 <= int(item) <= len(levels):
            raise UsageError(
                "usage.bad_config_value",
                key=names.PER_ITEM.label(kind, ctx.locale),
                value=item,
                detail=ctx.say("levels are 1 to {n}", n=len(levels)),
            )
        return {f"approval.levels.{int(item) - 1}.approvers": _int(ctx, raw_value)}
    index = config.stage_index(ctx.stage(item).key)
    value = _int(ctx, raw_value) if kind == "stale_days" else _requirements(ctx, raw_value)
    return {f"stages.{index}.{kind}": value}


def _per_item_shown(ctx: Ctx, kind: str, item: str) -> str:
    config = ctx.scope.config
    if kind == "approvers":
        level = config.approval.levels[int(item) - 1]
        return f"{names.PER_ITEM.label(kind, ctx.locale).split('.')[0]}.{item}={level.approvers}"
    stage = ctx.stage(item)
    label = f"{names.PER_ITEM.label(kind, ctx.locale).split('.')[0]}.{stage.label(ctx.locale)}"
    if kind == "stale_days":
        return f"{label}={stage.stale_days}"
    return f"{label}={_requirement_labels(ctx, stage.required) or names.VALUES.label('off', ctx.locale)}"


def _requirement_labels(ctx: Ctx, required: list[str]) -> str:
    return names.REQUIREMENTS.labels(ctx.locale, required)


_WHOLE_RULES = {
    "stage names must be different": N_("stage names must differ from each other"),
    "at least one stage": N_("a pipeline needs at least one stage"),
    "at least one level": N_("an approval policy needs at least one level"),
}


def _config_refused(ctx: Ctx, error: DomainError, pairs: list[tuple[str, str]]) -> DomainError:
    """A value the team's settings refuse as a whole (a page size of 500), named as it was typed."""
    limits = error.params.get("limits") or {}
    path = error.params.get("path") or ""
    key = next((key for key, (where, _parse) in SETTINGS.items() if where == path), None)
    for rule, sentence in _WHOLE_RULES.items():  # rules of the settings as a whole (models/config.py)
        if rule in str(error.params.get("detail", "")):
            return DomainError("team.bad_config", detail=ctx.say(sentence))
    if key is None or not limits:
        return error
    typed = next((value for raw, value in pairs if names.SETTINGS.find(raw) == key), "")
    low = limits.get("ge", limits.get("gt"))
    high = limits.get("le", limits.get("lt"))
    if low is not None and high is not None:
        detail = ctx.say("between {a} and {b}", a=low, b=high)
    elif low is not None:
        detail = ctx.say("at least {a}", a=low)
    else:
        detail = ctx.say("at most {b}", b=high)
    return UsageError(
        "usage.bad_config_value",
        key=names.SETTINGS.label(key, ctx.locale),
        value=typed,
        detail=detail,
    )


def _setting_values(ctx: Ctx, config: TeamConfig) -> dict[str, str]:
    """Every setting's value as the settings card and the saved answer show it."""
    locale = ctx.locale
    off = names.VALUES.label("off", locale)

    def yes_no(value: bool) -> str:
        return names.VALUES.label("yes" if value else "no", locale)

    def hours(value: float) -> str:
        # The English key names its unit (`transfer_wait_hours`); the Chinese one does not.
        return wording.say(locale, "{h}", context="value.hours", h=f"{value:g}")

    approval = config.approval
    manager_limit = approval.levels[0].up_to
    values = {
        "timezone": config.timezone,
        "locale": names.VALUES.label(config.locale or "auto", locale),
        "currency": ctx.currency,
        "stages": " → ".join(stage.label(locale) for stage in config.stages),
        "allow_skip": yes_no(config.allow_skip),
        "auto_below": ctx.money(int(approval.auto_below * 100)),
        "manager_limit": ctx.money(int(manager_limit * 100)) if manager_limit else "-",
        "discount_raise": f"{approval.discount_raise_pct:g}%",
        "approval_wait_hours": hours(approval.wait_hours),
        "stale_days": str(config.stale_days),
        "followup_sla_days": str(config.followup_sla_days),
        "pool_return_days": str(config.pool_return_days) if config.pool_return_days else off,
        "digest_time": config.digest_time,
        "weekly_digest_time": config.weekly_digest_time,
        "digest_channel": config.digest_channel or "-",
        "quiet_hours": config.quiet_hours or off,
        "quiet_weekends": yes_no(config.quiet_weekends),
        "assignment": names.VALUES.label(config.assignment, locale),
        "page_size": str(config.page_size),
        "approval_levels": " · ".join(
            level_text(ctx, level.model_dump(mode="json")) for level in approval.levels
        ),
        "claim_limit": str(config.pool_claim_limit) if config.pool_claim_limit else off,
        "transfer_wait_hours": hours(config.transfer_wait_hours),
        "instalment_due_days": str(config.instalment_due_days),
        "renewal_days": str(config.renewal_days) if config.renewal_days else off,
        "care_after_won_days": str(config.care_after_won_days),
        "care_days_a": str(config.care_days_a),
        "care_days_b": str(config.care_days_b),
        "care_days_c": str(config.care_days_c),
        "care_default_grade": config.care_default_grade,
    }
    values.update(
        {f"points.{key}": str(value) for key, value in config.points.model_dump().items()}
    )
    return values


def _show_config(ctx: Ctx) -> Reply:
    config = ctx.scope.config
    values = _setting_values(ctx, config)
    label = names.SETTINGS.label
    fields = [
        (label(key, ctx.locale), value)
        for key, value in values.items()
        if not key.startswith("points.")
    ]
    # What each stage requires and its own stale-days: set with required.<stage>= and stale_days.<stage>=.
    rules = []
    for stage in config.stages:
        if not (stage.required or stage.stale_days):
            continue
        parts = [names.REQUIREMENTS.label(need, ctx.locale) for need in stage.required]
        if stage.stale_days:
            parts.append(ctx.say("stale {n}d", n=stage.stale_days))
        rules.append(
            ctx.say(
                "{stage}: {rules}",
                stage=stage.label(ctx.locale),
                rules=ctx.join(parts),
            )
        )
    if rules:
        fields.append((names.SETTING_GROUPS.label("stage rules", ctx.locale), " · ".join(rules)))
    fields.append(
        (
            names.SETTING_GROUPS.label("points", ctx.locale),
            " ".join(
                f"{label(key, ctx.locale)}={value}"
                for key, value in values.items()
                if key.startswith("points.")
            ),
        )
    )
    cmd = ctx.command("team", "config")
    return Reply(
        text=ctx.say(
            "⚙️ **Settings** — change with {cmd} key=value",
            context="commands.team",
            cmd=cmd,
        ),
        fields=fields,
    )


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
