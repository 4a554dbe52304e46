"""Team-local time rules: quiet hours, weekends, and working hours between two moments."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from models.config import TeamConfig, parse_clock


def quiet_window(config: TeamConfig) -> tuple[time, time] | None:
    if not config.quiet_hours:
        return None
    start, _, end = config.quiet_hours.partition("-")
    return parse_clock(start), parse_clock(end)


def _is_quiet_local(local: datetime, config: TeamConfig) -> bool:
    if config.quiet_weekends and local.weekday() >= 5:
        return True
    window = quiet_window(config)
    if window is None:
        return False
    start, end = window
    now = local.time()
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # the window spans midnight


def is_quiet(moment: datetime, config: TeamConfig) -> bool:
    return _is_quiet_local(moment.astimezone(config.tz), config)


def next_working_moment(moment: datetime, config: TeamConfig) -> datetime:
    """`moment` itself when nobody is asleep, else when quiet hours (and the weekend) end."""
    tz = config.tz
    local = moment.astimezone(tz)
    if not _is_quiet_local(local, config):
        return moment
    window = quiet_window(config)
    end = window[1] if window else time(0, 0)
    candidate_day: date = local.date()
    for _ in range(9):  # a quiet weekend plus a night is at most a few days
        candidate = datetime.combine(candidate_day, end, tz)
        if candidate > local and not _is_quiet_local(candidate, config):
            return candidate.astimezone(UTC)
        candidate_day += timedelta(days=1)
    return moment


def working_hours_between(start: datetime, end: datetime, config: TeamConfig) -> float:
    """Hours between two moments that fall outside quiet hours (and weekends, when they are quiet).

    Walks in quarter hours: exact enough for "waiting 4 h", and bounded (a month at most).
    """
    if end <= start:
        return 0.0
    step = timedelta(minutes=15)
    limit = start + timedelta(days=31)
    cursor = start
    total = timedelta()
    while cursor < end and cursor < limit:
        piece = min(step, end - cursor)
        if not is_quiet(cursor, config):
            total += piece
        cursor += piece
    return total.total_seconds() / 3600


def waiting_hours(since: datetime, now: datetime, config: TeamConfig) -> int:
    """How long something has waited for a person, as everything the bot says it: whole working
    hours (the team's quiet hours and quiet weekends do not count)."""
    return int(working_hours_between(since, now, config))
