"""Daily and weekly digests to the team's channel, at the team's local time, once per period."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlmodel import Session

from commands.charts import funnel_chart
from commands.reports import digest_reply
from models import outbox
from models.config import TeamConfig, parse_clock
from models.reports import build_digest, period_of
from models.tables import Team
from models.teams import locale_of

log = logging.getLogger("dealbot.digests")


def digest_channel(team: Team, config: TeamConfig) -> str | None:
    return config.digest_channel or team.channel


def due_digests(team: Team, now: datetime) -> list[str]:
    """Which digests are due at `now` for a catch-up run: today's daily once its time has passed, and the
    weekly one on Mondays once its time has passed."""
    config = TeamConfig.model_validate(team.config or {})
    local = now.astimezone(config.tz)
    due = []
    if local.time() >= parse_clock(config.digest_time):
        due.append("daily")
    if local.weekday() == 0 and local.time() >= parse_clock(config.weekly_digest_time):
        due.append("weekly")
    return due


def write_digest(session: Session, team: Team, now: datetime, kind: str) -> bool:
    """Queue the daily (today so far) or weekly (last Monday–Sunday) digest; False when already queued
    or when the team has no channel to send it to."""
    config = TeamConfig.model_validate(team.config or {})
    channel = digest_channel(team, config)
    if not channel:
        log.info("team %s has no digest channel; set one with /team config digest_channel=…", team.id)
        return False
    locale = locale_of(team)
    today = now.astimezone(config.tz).date()
    if kind == "weekly":
        period = period_of("week", today - timedelta(days=7), config)
    else:
        period = period_of("today", today, config)
    digest = build_digest(session, team_id=team.id or 0, config=config, period=period, now=now)
    reply = digest_reply(digest, locale=locale, config=config)
    reply.image = funnel_chart(digest, locale=locale)
    return outbox.enqueue(session, team=team, kind=f"digest-{kind}", channel=channel,
                          dedupe_key=f"digest-{kind}:{team.id}:{period.first_day}",
                          payload=reply.model_dump(mode="json"), now=now)
