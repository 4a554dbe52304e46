"""Daily and weekly digests to the team's channel, at the team's local time, once per period."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from commands.charts import funnel_chart
from commands.reports import digest_reply
from models import outbox
from models.config import TeamConfig, parse_clock
from models.reports import Period, build_digest, period_of
from models.tables import Team
from models.teams import locale_of

log = logging.getLogger("dealbot.digests")


def digest_channel(team: Team, config: TeamConfig) -> str | None:
    """The configured channel, else where the team talks to the bot; WeCom app messages come from no
    chat, so a WeCom team's digests go to its group robot unless told otherwise (a DingTalk team that
    only talks to the bot one-to-one: its custom robot)."""
    if config.digest_channel or team.channel:
        return config.digest_channel or team.channel
    return "robot" if team.platform in ("wecom", "dingtalk") else None


def latest_moments(config: TeamConfig, now: datetime) -> dict[str, tuple[datetime, Period]]:
    """For each digest, the latest moment it was due at or before `now`, and the period it covers.

    A daily digest due at 18:00 covers that day; the weekly one due on Monday covers the week before.
    Working from the moment rather than from `now` keeps a late run (a job fired after midnight, a
    cron catching up in the morning) on the right day.
    """
    tz = config.tz
    local = now.astimezone(tz)
    daily_time, weekly_time = parse_clock(config.digest_time), parse_clock(config.weekly_digest_time)
    day = local.date() if local.time() >= daily_time else local.date() - timedelta(days=1)
    monday = local.date() - timedelta(days=local.weekday())
    if local < datetime.combine(monday, weekly_time, tz):
        monday -= timedelta(days=7)
    return {
        "daily": (datetime.combine(day, daily_time, tz), period_of("today", day, config)),
        "weekly": (datetime.combine(monday, weekly_time, tz), period_of("week", monday - timedelta(days=7), config)),
    }


def folded_into_weekly(kind: str, period: Period, config: TeamConfig) -> bool:
    """With quiet weekends, Saturday's and Sunday's daily digests are not sent: Monday's weekly
    digest covers those days, so the team gets one message that morning rather than three."""
    return kind == "daily" and config.quiet_weekends and period.first_day.weekday() >= 5


def due_digests(team: Team, now: datetime) -> list[str]:
    """Digests whose latest moment has passed for this team; writing one twice is a no-op, so a
    catch-up run sends what a stopped worker missed, once. A team created after that moment is not
    sent a digest of the time before it existed."""
    config = TeamConfig.model_validate(team.config or {})
    return [kind for kind, (moment, period) in latest_moments(config, now).items()
            if moment >= team.created_at and not folded_into_weekly(kind, period, config)]


def write_digest(session: Session, team: Team, now: datetime, kind: str) -> bool:
    """Queue the daily (today so far) or weekly (last Monday–Sunday) digest; False when already queued
    or when the team has no channel to send it to."""
    config = TeamConfig.model_validate(team.config or {})
    channel = digest_channel(team, config)
    if not channel:
        log.info("team %s has no digest channel; set one with /team config digest_channel=…", team.id)
        return False
    locale = locale_of(team)
    _moment, period = latest_moments(config, now)[kind]
    if folded_into_weekly(kind, period, config):
        return False
    digest = build_digest(session, team_id=team.id or 0, config=config, period=period, now=now)
    reply = digest_reply(digest, locale=locale, config=config)
    reply.image = funnel_chart(digest, locale=locale, audience="team")
    return outbox.enqueue(session, team=team, kind=f"digest-{kind}", channel=channel,
                          dedupe_key=f"digest-{kind}:{team.id}:{period.first_day}",
                          payload=reply.model_dump(mode="json"), now=now)
