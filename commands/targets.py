"""`/target @user <amount> [month]` (`/目标`): monthly targets, shown against what was won."""

from __future__ import annotations

import re

from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Reply
from models import targets
from models.horizon import RECORD_YEARS, latest_plan, years_from

_MONTH = re.compile(r"^(?:(\d{4})[-/.年])?(\d{1,2})月?$")


def parse_month(ctx: Ctx, text: str | None) -> str:
    """`2026-12`, `12`, `12月`, `2026年12月` → '2026-12'; a bare month means this year."""
    today = ctx.scope.today
    if not text:
        return today.strftime("%Y-%m")
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise UsageError("usage.bad_month", text=text)
    year = int(match.group(1) or today.year)
    month = f"{year:04d}-{int(match.group(2)):02d}"
    first = years_from(today, -RECORD_YEARS).strftime("%Y-%m")
    last = latest_plan(today).strftime("%Y-%m")
    if not first <= month <= last:
        raise UsageError("usage.month_out_of_range", month=month, first=first, last=last)
    return month


def target(ctx: Ctx, args: Args) -> Reply:
    mentions = [w for w in args.words if ctx.is_mention(w)]
    rest = [w for w in args.words if not ctx.is_mention(w)]
    if not mentions:
        if len(rest) > 1:
            raise UsageError("usage.missing", what=ctx.t("what.member"))
        return _show(ctx, parse_month(ctx, rest[0] if rest else None))
    member = ctx.member(mentions[0])
    amount = ctx.amount(rest[0] if rest else None)
    month = parse_month(ctx, rest[1] if len(rest) > 1 else None)
    targets.set_target(ctx.scope, member, month=month, amount=amount)
    return Reply(text=ctx.say(
        "🎯 {who}'s target for {month}: {amount}.",
        who=member.name,
        month=month,
        amount=ctx.money(amount),
    ))


def _show(ctx: Ctx, month: str) -> Reply:
    scope = ctx.scope
    # Reps see their own line; managers and admins the whole team's.
    only = [scope.actor.id or 0] if scope.actor.role == "rep" else None
    rows = targets.progress(scope.session, team_id=scope.team.id or 0, month=month, tz=scope.config.tz,
                            member_ids=only)
    if not rows:
        return Reply(text=ctx.say(
            "No targets or wins for {m} yet. Set one: /target @name 500k",
            m=month,
        ))
    table = [[ctx.say("Who", context="commands.targets"), ctx.say("Won", context="commands.targets"), ctx.say("Target"), "%"]]
    for row in rows:
        table.append([row.member.name, ctx.money(row.won), ctx.money(row.target) if row.target else "-",
                      f"{row.percent}%" if row.percent is not None else "-"])
    return Reply(text=ctx.say("🎯 **Targets {m}**", m=month), table=table)
