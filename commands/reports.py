"""`/report [today|week|month] [@user]` (`/日报`, `/周报`): the digest on demand, and its wording,
which the scheduled digests use too."""

from __future__ import annotations

import wording
from commands.aftersale import digest_lines as aftersale_lines
from commands.args import Args
from commands.charts import funnel_chart, funnel_text
from commands.context import Ctx, UsageError
from commands.points import digest_lines
from commands.types import Reply
from models.config import TeamConfig
from models.errors import DomainError
from models.permissions import is_manager_of, rank, visible_leads
from models.reports import Digest, build_digest, period_of
from models.tables import Lead
from models.timing import waiting_hours
from wording import N_

PERIODS = {"today": "today", "day": "today", "daily": "today", "今天": "today", "今日": "today", "日报": "today",
           "week": "week", "weekly": "week", "本周": "week", "周报": "week",
           "month": "month", "monthly": "month", "本月": "month", "月报": "month"}


def report(ctx: Ctx, args: Args) -> Reply:
    scope = ctx.scope
    kind = "today"
    subject = None
    for word in args.words:
        if ctx.is_mention(word):
            subject = ctx.member(word)
        elif word.casefold() in PERIODS:
            kind = PERIODS[word.casefold()]
        else:
            raise UsageError("usage.bad_choice", text=word, choices="today, week, month, @name")
    if subject and subject.id != scope.actor.id and not is_manager_of(scope.actor, subject):
        raise DomainError("forbidden.role", action=ctx.t("action.report_other"), role="manager")
    lead_filter = visible_leads(scope.actor)
    member_ids = None
    if subject is not None:
        lead_filter = Lead.owner_id == subject.id
        member_ids = [subject.id or 0]
    elif rank(scope.actor) == 0:
        lead_filter = Lead.owner_id == scope.actor.id
        member_ids = [scope.actor.id or 0]
    period = period_of(kind, scope.today, scope.config)
    digest = build_digest(scope.session, team_id=scope.team.id or 0, config=scope.config, period=period,
                          now=scope.now, lead_filter=lead_filter, member_ids=member_ids)
    reply = digest_reply(digest, locale=ctx.locale, config=scope.config, who=subject.name if subject else None)
    audience = scope.actor.name
    if subject and subject.id != scope.actor.id:
        audience += f"-{subject.name}"
    reply.image = funnel_chart(digest, locale=ctx.locale, audience=audience)
    return reply


def digest_reply(digest: Digest, *, locale: str, config: TeamConfig, who: str | None = None) -> Reply:
    """The digest as one screen: totals, funnel, per-rep lines, what is late, what waits."""
    currency = config.currency_for(locale)

    def short(minor: int) -> str:
        return wording.money_short(minor, currency, locale)

    def say(msgid: str, /, **params: object) -> str:
        return wording.say(locale, msgid, **params)

    def say_n(singular: str, plural: str, n: int, /, **params: object) -> str:
        return wording.say_n(locale, singular, plural, n, **params)

    period = digest.period
    titles = {"today": N_("Sales daily"), "week": N_("Sales weekly"),
              "month": N_("Sales monthly")}
    title = say(titles[period.kind])
    when = wording.day(period.first_day, locale)
    if period.last_day != period.first_day:
        when += f" – {wording.day(period.last_day, locale)}"
    lines = [f"📊 **{title}{' · ' + who if who else ''}** · {when}"]
    # Asked and decided are two populations (a quote asked yesterday may be approved today), so
    # each number says what it counts rather than one reading as a part of the other.
    quotes = [say("{n} asked", n=digest.quotes_requested)]
    decided = digest.quotes_approved + digest.quotes_rejected
    if decided:
        outcomes = []
        if digest.quotes_approved:
            outcomes.append(say("{n} approved", n=digest.quotes_approved))
        if digest.quotes_rejected:
            outcomes.append(say("{n} rejected", n=digest.quotes_rejected))
        quotes.append(say(
            "{d} decided ({o})",
            d=decided,
            o=say(", ", context="commands.reports").join(outcomes),
        ))
    if digest.waiting:
        oldest = digest.waiting[0]
        quotes.append(say(
            "{n} waiting (oldest Q{q}, {h} working h)",
            n=digest.waiting_total,
            q=oldest.quote.number,
            h=waiting_hours(oldest.since, digest.now, config),
        ))
    lines.append(say(
        "New leads {n} · Follow-ups {f} · Quotes {q} · Won {won}",
        n=digest.new_leads,
        f=digest.followups,
        q=say(
                          ", ",
                          context="commands.reports",
                      ).join(quotes),
        won=short(digest.won_amount),
    ))
    lines.append(say("Funnel  ") + funnel_text(digest, locale))
    if digest.reps:
        parts = []
        for rep in digest.reps[:10]:
            part = say_n(
                "{name} {n} follow-up · {won} won",
                "{name} {n} follow-ups · {won} won",
                rep.followups,
                name=rep.member.name,
                won=short(rep.won),
            )
            if rep.target:  # a monthly target: measured against the month's won, also in a day or week digest
                percent = round(rep.month_won * 100 / rep.target)
                if period.kind == "month":
                    part += say(" / {target} ({p}%)", target=short(rep.target), p=percent)
                else:
                    part += say(
                        " · month {won} / {target} ({p}%)",
                        won=short(rep.month_won),
                        target=short(rep.target),
                        p=percent,
                    )
            parts.append(part)
        lines.append(say("By rep  ") + " | ".join(parts))
    if digest.overdue_total:
        items = " · ".join(say(
            "L{n} {name} ({owner}, {d}d)",
            n=late.lead.number,
            name=late.lead.name,
            owner=late.owner,
            d=late.days,
        ) for late in digest.overdue)
        more = " · …" if digest.overdue_total > len(digest.overdue) else ""
        lines.append(say("⚠️ Overdue follow-ups {n}: ", n=digest.overdue_total) + items + more)
    if digest.stuck_total:
        items = " · ".join(say(
            "L{n} {name} in {stage} {d}d ({owner})",
            n=late.lead.number,
            name=late.lead.name,
            stage=_stage(config, late.lead.stage, locale),
            d=late.days,
            owner=late.owner,
        ) for late in digest.stuck)
        more = " · …" if digest.stuck_total > len(digest.stuck) else ""
        lines.append(say("🐢 Stuck {n}: ", n=digest.stuck_total) + items + more)
    lines += aftersale_lines(digest.aftersale, locale=locale, config=config, kind=period.kind)
    lines += digest_lines(digest.points, locale)  # the week's process points (commands/points.py)
    return Reply(text="\n".join(lines))


def _stage(config: TeamConfig, key: str, locale: str) -> str:
    stage = config.stage(key)
    return stage.label(locale) if stage else key
