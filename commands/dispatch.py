"""The one door into the verbs: an `Invocation` in, a `Reply` out, never an exception."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

import wording
from commands import FAMILIES, VERBS, find_family, names
from commands.args import Args, normalize_line, split, tokenize
from commands.context import Ctx, UsageError
from commands.help import did_you_mean, personal_example
from commands.quotes import route_unasked
from commands.registry import ParsedCommand
from commands.throttle import Throttle
from commands.types import Invocation, Reply
from models import inbox, outbox, teams
from models.clock import Clock
from models.config import ROLE_RANK
from models.db import unit_of_work
from models.errors import DomainError
from models.normalize import direction_controls
from models.permissions import rank
from models.scope import Scope
from models.tables import CommandLog, Member, Team
from wording import message as translate

log = logging.getLogger("dealbot.commands")

_CJK = re.compile(r"[\u3400-\u9fff]")
MAX_LINE = 6000


def guess_locale(text: str) -> str | None:
    return "zh" if _CJK.search(text) else None


def parse_command(text: str) -> ParsedCommand:
    """Find the verb a line names; the rest becomes its words and options."""
    line = normalize_line(text)
    if controls := direction_controls(line):
        # They make a name show as something else (`Acme\u202emoc.live`): refused, and said where.
        raise UsageError("usage.direction_control", chars=", ".join(controls))
    tokens = tokenize(line)
    if not tokens:
        return ParsedCommand(verb=None, family=None, args=Args(), locale=None)
    word = tokens[0].lstrip("/").split("@", 1)[0]
    family = find_family(word)
    locale = "zh" if _CJK.search(word) else ("en" if family else None)
    if family is None:
        return ParsedCommand(verb=None, family=None, args=Args(words=tokens), locale=guess_locale(text))
    rest = [*family.implied.get(word, ()), *tokens[1:]]
    verbs = [verb for verb in VERBS if verb.family == family.name]
    chosen = None
    if rest:
        sub = rest[0].casefold()
        for verb in verbs:
            if verb.name and (sub == verb.name or sub in verb.words):
                chosen, rest = verb, rest[1:]
                if _CJK.search(sub):
                    locale = "zh"
                break
    if chosen is None:
        chosen = next((verb for verb in verbs if verb.name == ""), None)
    args = split(rest, chosen.options) if chosen else Args(words=rest)
    return ParsedCommand(verb=chosen, family=family, args=args, locale=locale)


def _remember_where_team_talks(team: Team, channel: str | None, locale: str | None) -> None:
    """The channel and language pushes use when the team has not configured them."""
    if channel and not team.channel:
        team.channel = channel
    if locale and team.last_locale != locale:
        team.last_locale = locale


@dataclass(frozen=True)
class Handled:
    """What an observer (metrics, logs) hears of each command: never its text, which may hold a
    phone number or an e-mail address."""

    platform: str
    team_key: str
    verb: str  # "lead add"; "unknown" when no verb matched; "-" when the line was never parsed
    outcome: str  # ok | refused | error | crash | duplicate | no team
    error: str | None
    duration_ms: float


CommandObserver = Callable[[Handled], None]


class Attempt:
    """One command on its way through the dispatcher: what the log and the observers hear of it."""

    def __init__(self, invocation: Invocation, now: datetime) -> None:
        self.invocation = invocation
        self.started = time.perf_counter()
        self.now = now
        self.team_key = invocation.team_key
        # What the line or the platform says of the person's language; None when neither says.
        self.hint = invocation.locale if invocation.locale in ("zh", "en") else \
            guess_locale(invocation.text)
        self.locale = self.hint or "en"
        self.parsed: ParsedCommand | None = None
        self.outcome = "ok"  # ok | refused | error | crash | duplicate | no team | throttled
        self.error: str | None = None

    @property
    def ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)


PLATFORMS = ("slack", "telegram", "wecom", "feishu", "dingtalk", "console")


def admins_by_platform(entries: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """`DEALBOT_ADMINS` entries (`telegram:12345`, `slack:U123`) by platform. An entry without a
    known platform names nobody: the same id may belong to someone else on another platform."""
    found: dict[str, list[str]] = {}
    for entry in entries:
        platform, _, key = entry.strip().partition(":")
        if platform in PLATFORMS and key.strip():
            found.setdefault(platform, []).append(key.strip())
    return {platform: tuple(keys) for platform, keys in found.items()}


def unqualified_admins(entries: Sequence[str]) -> list[str]:
    return [e.strip() for e in entries if e.strip() and not admins_by_platform([e])]


class _RanElsewhere(Exception):
    """The received command was settled by another runner: this run must leave no trace."""


class Dispatcher:
    """Holds what every command needs (database, clock, deployment's admins) and runs commands."""

    def __init__(self, engine: Engine, clock: Clock, *, admins: Sequence[str] = (),
                 observer: CommandObserver | None = None, throttle: Throttle | None = None,
                 at_once: int | None = None, timezone: str | None = None) -> None:
        """`at_once`: how many commands may run at the same time (None: no limit). Adapters run
        each command in a thread; past the database's useful concurrency, more threads only fight
        for the GIL and for locks, and the server's event loop (acks, health checks) starves.
        `timezone`: a new team's (DEALBOT_TIMEZONE) when the platform gives none of its own."""
        self.engine = engine
        self._slots = threading.BoundedSemaphore(at_once) if at_once else contextlib.nullcontext()
        self.clock = clock
        self.admins = tuple(admins)
        self._admins = admins_by_platform(self.admins)
        self.observer = observer
        self.throttle = throttle  # per-member and per-team command rate limits
        self._known: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        # How long a runner keeps a received command it ran, to answer it (models.inbox).
        self.inbox_lease = timedelta(seconds=30)
        self.timezone = timezone

    def admins_on(self, platform: str) -> tuple[str, ...]:
        """The user keys the deployment names admin on `platform`. When it names admins at all
        (on any platform, or only in entries it ignores), nobody becomes admin by being first:
        the never-matching key keeps that rule without naming anyone."""
        if not self.admins:
            return ()
        return self._admins.get(platform) or ("\0",)

    def _register(self, invocation: Invocation, now: datetime, locale: str) -> bool:
        """First contact creates the team and the member in a transaction of their own, so that a
        first command that fails still leaves the person registered (and the first one admin).
        A button press never does: it acts only for people already in the team."""
        identity = (invocation.platform, invocation.team_key, invocation.user_key)
        if not invocation.team_key or identity in self._known or invocation.press is not None:
            return False
        with unit_of_work(self.engine) as session:
            team = teams.get_or_create_team(session, platform=invocation.platform, key=invocation.team_key,
                                            name=invocation.team_name, now=now,
                                            currency="CNY" if locale == "zh" else "USD",
                                            timezone=self._new_team_timezone(invocation, locale))
            joined = teams.find_member(session, team, invocation.user_key) is None
            teams.ensure_member(session, team, user_key=invocation.user_key, name=invocation.user_name, now=now,
                                admins=self.admins_on(invocation.platform),
                                handle=invocation.user_handle)
        self._known[identity] = None
        if len(self._known) > 10_000:
            self._known.popitem(last=False)
        return joined

    def _new_team_timezone(self, invocation: Invocation, locale: str) -> str:
        """The platform's own word for its user's timezone, else the deployment's, else the
        language's: Asia/Shanghai for a team that first speaks Chinese, UTC otherwise."""
        if invocation.timezone:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError, OSError):
                ZoneInfo(invocation.timezone)
                return invocation.timezone
        return self.timezone or ("Asia/Shanghai" if locale == "zh" else "UTC")

    def dispatch(self, invocation: Invocation, *, inbox_id: int | None = None) -> Reply:
        """`inbox_id`: the received command (models.inbox) this runs; it is settled with the
        command's own work, and when it had run already this answers a duplicate."""
        with self._slots:
            return self._dispatch(invocation, inbox_id)

    def _dispatch(self, invocation: Invocation, inbox_id: int | None = None) -> Reply:
        attempt = Attempt(invocation, self.clock.now())
        reply, logged = self._attempt(attempt, inbox_id)
        if not logged and not self._record(attempt, reply, inbox_id):
            attempt.outcome, reply = "duplicate", Reply(text="", duplicate=True)
        self._observe(attempt)
        return reply

    def _attempt(self, attempt: Attempt, inbox_id: int | None) -> tuple[Reply, bool]:
        """The reply, and whether the command log row committed with the command's own work."""
        invocation = attempt.invocation
        try:
            # Before any database work: a flood costs only its command log rows.
            held = self.throttle.check(invocation, attempt.now) if self.throttle is not None else None
            if held is not None and self.throttle is not None:
                attempt.outcome, attempt.error = "throttled", held.level
                return self.throttle.reply(held, attempt.locale), False
            if self._register(invocation, attempt.now, attempt.locale):
                self._route_to_newcomer(attempt)
            with unit_of_work(self.engine) as session:
                reply = self._run(session, attempt)
                # One commit, not two: a command that ran is logged with its work (a failed one
                # rolls back, and is logged on its own below).
                session.add(self._log_row(attempt))
                if reply.team_key is None and attempt.team_key:
                    # Buttons on the answer act in the team the command ran in, wherever pressed.
                    reply = reply.model_copy(update={"team_key": attempt.team_key})
                if inbox_id is not None and not self._settle(session, inbox_id, reply):
                    raise _RanElsewhere
            return reply, True
        except _RanElsewhere:
            # Taken over by another server or worker after our lease ran out, and run there.
            attempt.outcome, attempt.error = "duplicate", None
            return Reply(text="", duplicate=True), False
        except DomainError as error:
            attempt.outcome, attempt.error = "error", error.key
            return self._error_reply(error, attempt.locale, attempt.parsed), False
        except Exception:
            ref = uuid.uuid4().hex[:8]
            attempt.outcome, attempt.error = "crash", ref
            log.exception("command failed (ref %s)", ref)
            return Reply(text=translate(attempt.locale, "error.internal", ref=ref), ok=False,
                         private=True), False

    def _settle(self, session: Session, inbox_id: int, reply: Reply) -> bool:
        return inbox.settle(session, inbox_id, reply=reply.model_dump(mode="json"),
                            now=self.clock.now(), lease=self.inbox_lease)

    def _run(self, session: Session, attempt: Attempt) -> Reply:
        """The command in its unit of work; what becomes of it is noted on `attempt`."""
        invocation, now = attempt.invocation, attempt.now
        if invocation.delivery_id and not outbox.first_delivery(
                session, platform=invocation.platform, key=invocation.delivery_id, now=now):
            attempt.outcome = "duplicate"
            return Reply(text="", duplicate=True)
        if invocation.press is not None:
            pressed = self._presser(session, attempt)
            if isinstance(pressed, Reply):
                return pressed
            team, member = pressed
        elif invocation.team_key:
            team = teams.get_or_create_team(session, platform=invocation.platform,
                                            key=invocation.team_key, name=invocation.team_name, now=now)
        else:
            found = teams.home_team(session, platform=invocation.platform, user_key=invocation.user_key)
            if found is None:
                attempt.outcome = "no team"
                return Reply(text=translate(attempt.locale, "error.no_team"), ok=False, private=True)
            team, attempt.team_key = found, found.key
        if invocation.press is None:
            member = teams.ensure_member(session, team, user_key=invocation.user_key,
                                         name=invocation.user_name, now=now,
                                         admins=self.admins_on(invocation.platform),
                                         handle=invocation.user_handle)
        scope = Scope(session=session, team=team, actor=member, now=now)
        parsed = attempt.parsed = parse_command(invocation.text)
        # A line that says nothing of its language (`/leed`) is answered in the team's.
        locale = scope.config.locale or parsed.locale or attempt.hint or team.last_locale or "en"
        ctx = Ctx(inv=invocation, scope=scope, locale=locale,
                  admins=self.admins_on(invocation.platform))
        attempt.locale = ctx.locale  # the member's own language (/me lang) words errors too
        if len(invocation.text) > MAX_LINE:
            raise UsageError("usage.too_long", what="message", length=len(invocation.text), limit=MAX_LINE)
        if parsed.verb is None:
            if parsed.family is not None:
                if parsed.args.words:
                    family = ctx.command(parsed.family.name).lstrip("/")
                    raise UsageError("usage.unknown_sub", word=parsed.args.words[0][:40], family=family)
                raise UsageError("usage.missing", what=ctx.say("what to do"))
            first = parsed.args.words[0] if parsed.args.words else ""
            raise UsageError("usage.unknown_verb", word=first[:40], hint=did_you_mean(ctx, first))
        try:
            reply = parsed.verb.handler(ctx, parsed.args)
        except UsageError as error:
            # Worded while the session is open; after a failed statement (Postgres) it cannot
            # read the person's ids, and the plain example stands.
            with contextlib.suppress(SQLAlchemyError):
                error.example = personal_example(ctx, parsed.verb)
            raise
        attempt.locale = ctx.locale
        # A press may come from a private chat: that is no channel of the team's.
        channel = invocation.channel if invocation.press is None else None
        _remember_where_team_talks(team, channel, parsed.locale)
        if not reply.ok:
            attempt.outcome = "refused"
        if not invocation.team_key and invocation.press is None and teams.teams_of(
                session, platform=invocation.platform, user_key=invocation.user_key) > 1:
            # Typed in a private chat by someone in several teams: say which one it acted in.
            reply = reply.model_copy(update={"text": reply.text + "\n" + ctx.say(
                "(in {team} — write in another team's group to act there)",
                team=team.name,
            )})
        return reply

    def _route_to_newcomer(self, attempt: Attempt) -> None:
        """Someone who may approve quotes just joined: the quotes that waited for such a person go
        to them now, in a transaction of their own, whatever becomes of their first command."""
        invocation = attempt.invocation
        try:
            with unit_of_work(self.engine) as session:
                team = teams.find_team(session, platform=invocation.platform,
                                       key=invocation.team_key)
                member = teams.find_member(session, team, invocation.user_key) if team else None
                if team is None or member is None or rank(member) < ROLE_RANK["manager"]:
                    return
                scope = Scope(session=session, team=team, actor=member, now=attempt.now)
                ctx = Ctx(inv=invocation, scope=scope, locale=scope.config.locale or attempt.locale,
                          admins=self.admins_on(invocation.platform))
                route_unasked(ctx)
        except Exception:
            log.exception("could not route waiting quotes to a new member")

    def _presser(self, session: Session, attempt: Attempt) -> tuple[Team, Member] | Reply:
        """A button acts in the team it was bound to, for someone already a member of it: never in
        the team the presser last wrote in, never creating a team or a member. A binding that does
        not verify, or none where the chat names no team, is refused and changes nothing."""
        invocation = attempt.invocation
        refusals = {"forged": "button.forged", "unbound": "button.unbound"}
        refusal = refusals.get(invocation.press or "")
        if refusal is None:
            team = teams.find_team(session, platform=invocation.platform,
                                   key=invocation.team_key) if invocation.team_key else None
            member = teams.find_member(session, team, invocation.user_key) if team else None
            if team is not None and member is not None:
                attempt.team_key = team.key
                return team, member
            refusal = "button.not_member"
        attempt.outcome, attempt.error = "refused", refusal
        return Reply(text=translate(attempt.locale, refusal), ok=False, private=True)

    def _observe(self, attempt: Attempt) -> None:
        if self.observer is None:
            return
        parsed = attempt.parsed
        verb = "-" if parsed is None else "unknown" if parsed.verb is None else \
            f"{parsed.verb.family} {parsed.verb.name}".strip()
        try:
            self.observer(Handled(platform=attempt.invocation.platform, team_key=attempt.team_key, verb=verb,
                                  outcome=attempt.outcome, error=attempt.error, duration_ms=attempt.ms))
        except Exception:
            log.exception("the command observer failed")

    def _error_reply(self, error: DomainError, locale: str, parsed: ParsedCommand | None) -> Reply:
        params = dict(error.params)
        if error.key == "forbidden.role" and wording.has(f"role.a.{params.get('role')}"):
            params["role"] = translate(locale, f"role.a.{params['role']}")  # "Only an admin can …"
        elif params.get("role") in names.ROLES:  # some callers pass the role already worded
            params["role"] = names.ROLES.label(params["role"], locale)
        if error.key == "forbidden.role":
            action_key = f"action.{params.get('action')}"
            if wording.has(action_key):
                params["action"] = translate(locale, action_key)
        for name, value in params.items():  # a date the domain names reads as every date does
            if isinstance(value, date) and not isinstance(value, datetime):
                params[name] = wording.day(value, locale, self.clock.now().date())
        text = translate(locale, error.key, **params)
        if isinstance(error, UsageError):
            text = "❓ " + text
            if parsed and parsed.verb and error.key != "usage.unknown_sub":
                text += "\n" + translate(locale, "usage.form", usage=parsed.verb.usage(locale))
                example = error.example or parsed.verb.example(locale)
                text += "\n" + translate(locale, "usage.example", example=example)
            elif parsed and parsed.family:
                usages = [v.usage(locale) for v in VERBS if v.family == parsed.family.name]
                text += "\n" + translate(locale, "usage.form", usage="").rstrip() + "\n" + "\n".join(f"· {u}" for u in usages)
            elif error.key == "usage.unknown_verb":
                words = " ".join(f"/{f.words[1] if locale == 'zh' else f.name}" for f in FAMILIES)
                text += "\n" + words
        return Reply(text=text, ok=False, private=True)

    def _log_row(self, attempt: Attempt) -> CommandLog:
        invocation = attempt.invocation
        return CommandLog(platform=invocation.platform, team_key=attempt.team_key, user_key=invocation.user_key,
                          channel=invocation.channel, text=invocation.text[:20000].replace("\x00", ""),
                          received_at=self.clock.now(), outcome=attempt.outcome, error=attempt.error,
                          duration_ms=attempt.ms)

    def _record(self, attempt: Attempt, reply: Reply, inbox_id: int | None = None) -> bool:
        """Keep every line typed, whatever became of it; a failure here must not cost the reply.
        A received command that failed is settled with its log row; False when it had run
        elsewhere meanwhile (then this attempt is a duplicate, and nothing is logged)."""
        try:
            with unit_of_work(self.engine) as session:
                if inbox_id is not None and not reply.duplicate \
                        and not self._settle(session, inbox_id, reply):
                    return False
                session.add(self._log_row(attempt))
        except Exception:
            log.exception("could not record the command")
        return True
