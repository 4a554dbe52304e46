"""Command rate limits per member and per team, so one runaway script cannot starve its team or
spend the platform's quota.

A sliding window of admitted commands per member (platform, user) and per team (platform, team).
A command over either limit changes nothing; the first one in a window is answered with a friendly
"slow down" in the user's language, the ones after it get no answer at all until the window frees
(answering each would spend the very platform quota the limit protects). A command refused by its
member limit does not count against the team's, so one member's flood never blocks the others.

Time is the injected clock. The windows live in this process's memory: with N `serve` replicas a
member may reach up to N times the limit, which is still a limit.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import wording
from commands.types import Invocation, Reply
from reminders.limits import Limit

MAX_KEYS = 50_000  # members and teams remembered; the least recently seen are forgotten first

_WORDS = {
    "member": {
        "en": "🐢 Slow down a little: you sent more than {count} commands in {window}. "
        "Try again in {wait} s; the commands in between were not run.",
        "zh": "🐢 请慢一点：你在{window}内发送的命令超过 {count} 条。"
        "请 {wait} 秒后再试，期间的命令没有执行。",
    },
    "team": {
        "en": "🐢 Your team is sending more than {count} commands in {window}. "
        "Try again in {wait} s; the commands in between were not run.",
        "zh": "🐢 团队在{window}内发送的命令超过 {count} 条。"
        "请 {wait} 秒后再试，期间的命令没有执行。",
    },
}


def parse_rate(text: str | None) -> Limit | None:
    """`20/60s` → a limit; empty, `0` or `off` → no limit."""
    if text is None or text.strip().casefold() in ("", "0", "off", "none", "no"):
        return None
    return Limit.parse(text)


def _window(seconds: float, locale: str) -> str:
    if seconds % 60 == 0:
        minutes = int(seconds // 60)
        if locale == "zh":
            return "1 分钟" if minutes == 1 else f"{minutes} 分钟"
        return "a minute" if minutes == 1 else f"{minutes} minutes"
    return wording.say(locale, "{seconds:g} s", seconds=seconds)


class _Windows:
    """Admitted moments per key, newest last, at most `limit.count` of them."""

    def __init__(self, limit: Limit) -> None:
        self.limit = limit
        self.span = timedelta(seconds=limit.seconds)
        self.seen: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()

    def wait(self, key: tuple[str, str], now: datetime) -> timedelta:
        """How long until `key` may run another command; zero when it may now."""
        moments = self.seen.get(key)
        if moments is None or len(moments) < self.limit.count:
            return timedelta(0)
        return max(moments[0] + self.span - now, timedelta(0))

    def admit(self, key: tuple[str, str], now: datetime) -> None:
        moments = self.seen.get(key)
        if moments is None:
            moments = self.seen[key] = deque(maxlen=self.limit.count)
        self.seen.move_to_end(key)
        moments.append(now)
        while len(self.seen) > MAX_KEYS:
            self.seen.popitem(last=False)


@dataclass(frozen=True)
class Held:
    """A command the throttle stopped: the level that stopped it and whether to say so."""

    level: str  # member | team
    wait: timedelta
    tell: bool


class Throttle:
    def __init__(self, *, member: Limit | None, team: Limit | None) -> None:
        self.member = _Windows(member) if member else None
        self.team = _Windows(team) if team else None
        # member → when they were last told to slow down
        self._told: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._lock = threading.Lock()  # commands run on worker threads

    @classmethod
    def from_settings(cls, settings: Any) -> Throttle | None:
        """The limits `DEALBOT_MEMBER_RATE` and `DEALBOT_TEAM_RATE` set; None if both are off."""
        member, team = parse_rate(settings.member_rate), parse_rate(settings.team_rate)
        return cls(member=member, team=team) if member or team else None

    def check(self, invocation: Invocation, now: datetime) -> Held | None:
        """Admit the command (None), or say which limit holds it back."""
        member_key = (invocation.platform, invocation.user_key)
        team_key = (invocation.platform, invocation.team_key) if invocation.team_key else None
        with self._lock:
            level, wait = None, timedelta(0)
            if self.member is not None:
                wait = self.member.wait(member_key, now)
                level = "member" if wait else None
            if level is None and self.team is not None and team_key is not None:
                wait = self.team.wait(team_key, now)
                level = "team" if wait else None
            if level is None:
                if self.member is not None:
                    self.member.admit(member_key, now)
                if self.team is not None and team_key is not None:
                    self.team.admit(team_key, now)
                return None
            windows = self.member if level == "member" else self.team
            assert windows is not None
            told = self._told.get(member_key)
            tell = told is None or now - told >= windows.span or now < told
            if tell:
                self._told[member_key] = now
                self._told.move_to_end(member_key)
                while len(self._told) > MAX_KEYS:
                    self._told.popitem(last=False)
            return Held(level=level, wait=wait, tell=tell)

    def reply(self, held: Held, locale: str) -> Reply:
        """The friendly answer, or no answer at all (`duplicate`: adapters stay silent)."""
        if not held.tell:
            return Reply(text="", ok=False, private=True, duplicate=True)
        windows = self.member if held.level == "member" else self.team
        assert windows is not None
        words = _WORDS[held.level]
        text = words.get(locale, words["en"]).format(
            count=windows.limit.count,
            window=_window(windows.limit.seconds, locale),
            wait=max(1, math.ceil(held.wait.total_seconds())),
        )
        return Reply(text=text, ok=False, private=True)
