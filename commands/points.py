"""`/report points [today|week|month] [@user]` (`/报表 积分`): the process points (过程积分)
ranking, and its line in the weekly digest. The scoring rules live in `models/points.py`."""

from __future__ import annotations

import wording
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Reply
from models.config import PointsConfig
from models.errors import DomainError
from models.permissions import is_manager_of
from models.points import ACTIONS, PointsLine, ranking
from models.reports import period_of
from wording import N_

PERIODS = {
    "today": "today", "day": "today", "今天": "today", "今日": "today",
    "week": "week", "本周": "week", "周": "week",
    "month": "month", "本月": "month", "月": "month",
}  # fmt: skip
_HEADERS = ["#", N_("Member"), N_("Points"), N_("Follow-ups"),
            N_("On time"), N_("Stages"), N_("Quotes"),
            N_("Won")]


def points(ctx: Ctx, args: Args) -> Reply:
    """The ranking for a period (this week unless told), or one person's line."""
    scope = ctx.scope
    kind, subject = "week", None
    for word in args.words:
        if ctx.is_mention(word):
            subject = ctx.member(word)
        elif word.casefold() in PERIODS:
            kind = PERIODS[word.casefold()]
        else:
            raise UsageError("usage.bad_choice", text=word, choices="today, week, month, @name")
    if subject and subject.id != scope.actor.id and not is_manager_of(scope.actor, subject):
        raise DomainError(
            "forbidden.role", action=ctx.t("action.report_other"), role="manager"
        )
    period = period_of(kind, scope.today, scope.config)
    lines = ranking(
        scope.session,
        team_id=scope.team.id or 0,
        config=scope.config,
        start=period.start,
        end=period.end,
        member_ids=[subject.id or 0] if subject else None,
    )
    when = ctx.day(period.first_day)
    if period.last_day != period.first_day:
        when += f" – {ctx.day(period.last_day)}"
    title = ctx.say(
        "🏅 **Points**{who} · {when}",
        when=when,
        who=f" · {subject.name}" if subject else "",
    )
    rules = rules_line(ctx, scope.config.points)
    if not lines:
        empty = ctx.say("Nobody has earned points in this period yet.")
        return Reply(text=f"{title}\n{empty}\n{rules}")
    table = [[ctx.say(header, context="points table") for header in _HEADERS]]
    for place, line in enumerate(lines, start=1):
        table.append(
            [
                str(place),
                line.member.name,
                str(line.points),
                *(str(line.counts[action]) for action in ACTIONS),
            ]
        )
    return Reply(text=f"{title}\n{rules}", table=table)


def rules_line(ctx: Ctx, rules: PointsConfig) -> str:
    """What earns what, and what earns nothing, so the ranking never surprises anyone."""
    return ctx.say(
        "Follow-up {f} (+{o} on time) · new stage {s} · quote approved {q} · won {w}. Notes under "
        "{m} characters and repeats on a lead within {b}s earn nothing. Change: /team config "
        "points.won=20",
        f=rules.followup,
        o=rules.on_time,
        s=rules.stage,
        q=rules.quote_approved,
        w=rules.won,
        m=rules.min_note,
        b=rules.burst_seconds,
    )


def digest_lines(lines: list[PointsLine], locale: str) -> list[str]:
    """The weekly digest's ranking line (none when nobody earned points)."""
    if not lines:
        return []
    ranked = " · ".join(f"{line.member.name} {line.points}" for line in lines[:10])
    more = " · …" if len(lines) > 10 else ""
    return [wording.say(locale, "🏅 Points  ") + ranked + more]
