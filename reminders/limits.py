"""Pacing pushes below each platform's published limits, before the platform has to say 429.

Each limit is "count per seconds" kept as a sliding window of booked send moments: a message asks for
the earliest moment it may go, which books that slot. A message whose slot is later
than now waits in the outbox until then instead of being retried in a loop. Time comes from the
injected clock, so tests move it instead of waiting. `Pacer` keeps its buckets in one process's memory;
`SharedPacer` keeps them in the database, so the serving processes that deliver their own pushes at
once and the workers that deliver the rest all book from the same windows and a limit stays true
per bot, whichever process sends.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from models.db import unit_of_work
from models.tables import PaceWindow

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|sec|m|min)?\s*$")


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Limit:
        """`20/60s`, `20/1m`, `1/1s`, `30/s` → a limit."""
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a rate like 20/60s")
        count = int(match.group(1))
        amount = float(match.group(2) or 1)
        seconds = amount * (60 if match.group(3) in ("m", "min") else 1)
        if count < 1 or seconds <= 0:
            raise ValueError(f"{text!r} must allow at least one message")
        return cls(count, seconds)

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.seconds / self.count)

    @property
    def burst(self) -> timedelta:
        return self.interval * (self.count - 1)


@dataclass
class Schedule:
    """The booked send moments of one limit for one key (a channel, a chat, the bot).

    A sliding window: at most `count` messages in any `seconds`. Only the last `count` bookings
    matter, and bookings never go back in time, so the window is exact and small.
    """

    limit: Limit
    booked: deque[datetime] = field(default_factory=deque)

    def earliest(self, now: datetime, margin: timedelta = timedelta(0)) -> datetime:
        if len(self.booked) < self.limit.count:
            return now
        return max(now, self.booked[0] + timedelta(seconds=self.limit.seconds) + margin)

    def book(self, at: datetime) -> None:
        self.booked.append(at)
        while len(self.booked) > self.limit.count:
            self.booked.popleft()


@dataclass
class PlatformLimits:
    """The limits of one platform: per member chat, per channel or group, and per bot."""

    member: list[Limit] = field(default_factory=list)
    channel: list[Limit] = field(default_factory=list)
    bot: list[Limit] = field(default_factory=list)


# The platform counts arrivals, and sends booked exactly a window apart can arrive closer than that
# (network and scheduling jitter): deployments keep each window this much wider.
ARRIVAL_MARGIN = timedelta(milliseconds=50)


class Pacer:
    def __init__(self, limits: dict[str, PlatformLimits], *,
                 margin: timedelta = timedelta(0)) -> None:
        self.limits = limits
        self.margin = margin
        self._schedules: dict[tuple[str, str, int], Schedule] = {}
        self._held: dict[tuple[str, str], datetime] = {}  # (platform, target) → the platform's retry-after
        self._tickets: dict[int, datetime] = {}  # outbox row → the slot booked for it

    def hold(self, platform: str, kind: str, key: str, until: datetime) -> None:
        """The platform answered 429: nothing more goes to this target before `until`."""
        scope = (platform, f"{kind}:{key}")
        self._held[scope] = max(until, self._held.get(scope, until))

    def held_until(self, platform: str, kind: str, key: str) -> datetime | None:
        """Until when the platform told us to leave this target alone (a 429's Retry-After)."""
        return self._held.get((platform, f"{kind}:{key}"))

    def _schedules_for(self, platform: str, kind: str, key: str) -> list[Schedule]:
        limits = self.limits.get(platform)
        if limits is None:
            return []
        found = []
        for scope, scope_limits in ((f"{kind}:{key}", limits.channel if kind == "channel" else limits.member),
                                    ("bot", limits.bot)):
            for index, limit in enumerate(scope_limits):
                found.append(self._schedules.setdefault((platform, scope, index), Schedule(limit)))
        return found

    def reserve(self, platform: str, kind: str, key: str, now: datetime, *,
                within: timedelta = timedelta(0), ticket: int | None = None) -> datetime:
        """The earliest moment a message to this target may go without breaking any limit, booked.

        A message that will wait in the outbox for a later slot keeps it under its `ticket` (the outbox
        row): when it comes back it uses that slot instead of booking another, so a burst to one chat
        is laid out once, in order, rather than re-queued on every run.
        """
        held = self._held.get((platform, f"{kind}:{key}"), now)
        if ticket is not None and ticket in self._tickets:
            slot = max(self._tickets[ticket], held)
            if slot - now <= within:
                del self._tickets[ticket]
            return slot
        schedules = self._schedules_for(platform, kind, key)
        at = max([now, held, *(schedule.earliest(now, self.margin) for schedule in schedules)])
        if ticket is None and at - now > within:
            return at  # nobody would come back for this slot: leave it free
        for schedule in schedules:
            schedule.book(at)
        if ticket is not None and at - now > within:
            self._tickets[ticket] = at
        return at


class SharedPacer:
    """A `Pacer` whose bookings, holds and tickets live in `pace_window`, one row per scope.

    Each reservation is one short transaction that locks the rows of its scopes (Postgres: `FOR
    UPDATE`, always in the same order; SQLite: every unit of work holds the write lock), replays the
    in-memory pacer on them and writes them back. So two processes never book the same slot, a 429
    one process heard holds the chat for all, and a row postponed by one process finds its slot
    waiting when another process claims it.
    """

    # A ticket whose row never came back (it went dead, or was sent by a process on an old version)
    # is forgotten after this long.
    TICKET_KEPT = timedelta(hours=1)

    def __init__(self, engine: Engine, limits: dict[str, PlatformLimits], *,
                 margin: timedelta = timedelta(0)) -> None:
        self.engine = engine
        self.limits = limits
        self.margin = margin

    def _scopes(self, platform: str, kind: str, key: str) -> list[str]:
        limits = self.limits.get(platform)
        return sorted({f"{kind}:{key}", *(["bot"] if limits and limits.bot else [])})

    def _locked(self, session: Session, platform: str, scopes: list[str]) -> dict[str, PaceWindow]:
        dialect = session.get_bind().dialect.name
        insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
        for scope in scopes:
            session.execute(insert_for(PaceWindow).values(platform=platform, scope=scope, booked=[], tickets={})
                            .on_conflict_do_nothing(index_elements=["platform", "scope"]))
        query = (select(PaceWindow).where(tuple_(col(PaceWindow.platform), col(PaceWindow.scope))
                                          .in_([(platform, scope) for scope in scopes]))
                 .order_by(col(PaceWindow.scope)))
        if dialect == "postgresql":
            query = query.with_for_update()
        return {row.scope: row for row in session.execute(query).scalars()}

    def reserve(self, platform: str, kind: str, key: str, now: datetime, *,
                within: timedelta = timedelta(0), ticket: int | None = None) -> datetime:
        """As `Pacer.reserve`, booked in the database."""
        target = f"{kind}:{key}"
        with unit_of_work(self.engine) as session:
            rows = self._locked(session, platform, self._scopes(platform, kind, key))
            local = Pacer(self.limits, margin=self.margin)
            for scope, row in rows.items():
                booked = [datetime.fromisoformat(moment) for moment in row.booked]
                for schedule_key, schedule in self._seed(local, platform, scope):
                    schedule.booked.extend(booked[-schedule.limit.count:])
                    local._schedules[schedule_key] = schedule
            window = rows[target]
            if window.held_until is not None:
                local._held[(platform, target)] = window.held_until
            local._tickets = {int(row_id): datetime.fromisoformat(slot) for row_id, slot in window.tickets.items()
                              if datetime.fromisoformat(slot) >= now - self.TICKET_KEPT}
            slot = local.reserve(platform, kind, key, now, within=within, ticket=ticket)
            for scope, row in rows.items():
                schedules = [schedule for _key, schedule in self._seed(local, platform, scope)]
                if schedules:
                    longest = max(schedules, key=lambda schedule: schedule.limit.count)
                    row.booked = [moment.isoformat() for moment in longest.booked]
            window.tickets = {str(row_id): moment.isoformat() for row_id, moment in local._tickets.items()}
            if window.held_until is not None and window.held_until <= now:
                window.held_until = None
            session.add_all(rows.values())
        return slot

    def _seed(self, local: Pacer, platform: str, scope: str) -> list[tuple[tuple[str, str, int], Schedule]]:
        """The schedules `local` keeps for `scope`: its own ones if it made them, else fresh ones."""
        limits = self.limits.get(platform)
        if limits is None:
            return []
        if scope == "bot":
            scope_limits = limits.bot
        else:
            scope_limits = limits.channel if scope.startswith("channel:") else limits.member
        found = []
        for index, limit in enumerate(scope_limits):
            schedule_key = (platform, scope, index)
            found.append((schedule_key, local._schedules.get(schedule_key) or Schedule(limit)))
        return found

    def held_until(self, platform: str, kind: str, key: str) -> datetime | None:
        """As `Pacer.held_until`, as any process heard it."""
        with unit_of_work(self.engine) as session:
            return session.execute(select(PaceWindow.held_until).where(
                col(PaceWindow.platform) == platform, col(PaceWindow.scope) == f"{kind}:{key}")).scalar()

    def hold(self, platform: str, kind: str, key: str, until: datetime) -> None:
        """The platform answered 429: nothing more goes to this target before `until`, from any
        process."""
        target = f"{kind}:{key}"
        with unit_of_work(self.engine) as session:
            window = self._locked(session, platform, [target])[target]
            window.held_until = max(until, window.held_until or until)
            session.add(window)


def default_limits(rates: dict[str, str]) -> dict[str, PlatformLimits]:
    """Each platform's limits (../shared/platforms.md), overridable per deployment."""
    def limits(*names: str) -> list[Limit]:
        return [Limit.parse(rates[name]) for name in names if rates.get(name)]

    return {
        "slack": PlatformLimits(member=limits("slack_channel"), channel=limits("slack_channel"), bot=limits("slack_bot")),
        "telegram": PlatformLimits(member=limits("telegram_chat"), channel=limits("telegram_chat", "telegram_group"),
                                   bot=limits("telegram_bot")),
        "wecom": PlatformLimits(member=[], channel=limits("wecom_robot"), bot=limits("wecom_app")),
        "feishu": PlatformLimits(member=limits("feishu_chat"), channel=limits("feishu_chat"),
                                 bot=limits("feishu_app")),
        "dingtalk": PlatformLimits(member=[], channel=limits("dingtalk_robot"), bot=limits("dingtalk_app")),
    }
