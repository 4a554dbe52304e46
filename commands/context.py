"""What every verb gets: the invocation, the domain scope, the reply language, and small helpers
that turn typed words into domain values or a friendly usage error."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import models.tables  # noqa: F401  (every table first: models.teams → models.scope read them)
import wording
from commands import names, words
from commands.parsing_values import (
    amount_currencies,
    parse_amount,
    parse_date,
    parse_percent,
    passed_date,
)
from commands.types import Button, Invocation, Reply
from models import teams, teamwork
from models.config import Stage
from models.errors import DomainError
from models.horizon import years_from
from models.scope import Scope
from models.tables import Lead, Member, Quote
from models.timing import next_working_moment


class UsageError(DomainError):
    """The command line itself was wrong; the answer adds the verb's correct form and an example
    (with the person's own ids when the verb could word one)."""

    example: str | None = None


_LEAD_REF = re.compile(r"^[Ll#]?(\d{1,9})$")
_QUOTE_REF = re.compile(r"^[Qq#]?(\d{1,9})$")
MAX_TEXT = 2000
MAX_FIELD = 200


@dataclass
class Ctx:
    inv: Invocation
    scope: Scope
    locale: str
    admins: Sequence[str] = ()
    # The reader's own settings (`/me lang`, `/me timezone` …), and the language the team would use.
    prefs: teamwork.Prefs = field(init=False, default=teamwork.DEFAULT_PREFS)
    team_locale: str = field(init=False, default="en")
    # The day the reader reads what is worded (a push held overnight is read the next day);
    # date.min when unknown (batched for later), so that every time shown carries its day.
    read_on: date | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.team_locale = self.locale
        self.prefs = teamwork.prefs_of(self.scope.session, self.scope.actor.id)
        if self.prefs.lang:
            self.locale = self.prefs.lang

    def for_reader(self, member: Member) -> Ctx:
        """This command's context worded for someone else: their language and timezone, else the team's."""
        reader = copy.copy(self)
        reader.prefs = teamwork.prefs_of(self.scope.session, member.id)
        reader.locale = reader.prefs.lang or self.team_locale
        reader.read_on = None
        return reader

    @property
    def tz(self) -> ZoneInfo:
        return self.prefs.tz or self.scope.config.tz

    # --- words -----------------------------------------------------------------------------------
    def t(self, key: str, **params: Any) -> str:
        return wording.message(self.locale, key, **params)

    def say(self, msgid: str, /, **params: Any) -> str:
        """The catalog's sentence whose English is `msgid`, in the reader's language."""
        return wording.say(self.locale, msgid, **params)

    def join(self, items: Any, kind: str = "list") -> str:
        return wording.join(self.locale, items, kind)

    def command(self, family: str, verb: str = "", *more: str | tuple[str, ...]) -> str:
        """A command as this reader types it (`/lead claim` · `/线索 领取`)."""
        return words.command(self.locale, family, verb, *more)

    def say_n(self, singular: str, plural: str, n: int, /, **params: Any) -> str:
        """A sentence that depends on the count `n` (`{n}` in it): 1 member, 2 members."""
        return wording.say_n(self.locale, singular, plural, n, **params)

    @property
    def zh(self) -> bool:
        return self.locale == "zh"

    @property
    def currency(self) -> str:
        return self.scope.config.currency_for(self.locale)

    def money(self, minor: int | None) -> str:
        return wording.money(minor, self.currency, self.locale)

    def quote_amount(self, quote: Quote) -> str:
        """A quote's amount with its discount, the same on every line that shows it."""
        return wording.quote_amount(quote.amount, quote.discount_bp, self.currency, self.locale)

    def money_short(self, minor: int) -> str:
        return wording.money_short(minor, self.currency, self.locale)

    def day(self, value: date | None) -> str:
        return wording.day(value, self.locale, self.scope.today) if value else "-"

    def clock(self, moment: Any) -> str:
        today = self.read_on or self.scope.now.astimezone(self.tz).date()
        return wording.clock(moment, self.tz, today)

    def stage_label(self, key: str) -> str:
        stage = self.scope.config.stage(key)
        return stage.label(self.locale) if stage else key

    def role_label(self, role: str) -> str:
        return names.ROLES.label(role, self.locale)

    def member_name(self, member_id: int | None) -> str:
        if member_id is None:
            return self.t("word.pool")
        member = self.scope.session.get(Member, member_id)
        return member.name if member else "?"

    def lead_label(self, lead: Lead) -> str:
        return f"L{lead.number} {lead.name}"

    # --- typed words → values --------------------------------------------------------------------
    def lead_number(self, token: str | None) -> int:
        if not token:
            raise UsageError("usage.missing", what=self.t("what.lead"))
        match = _LEAD_REF.match(token.strip())
        if not match:
            raise UsageError("usage.bad_lead_ref", text=token)
        return int(match.group(1))

    def quote_number(self, token: str | None) -> int:
        if not token:
            raise UsageError("usage.missing", what=self.t("what.quote"))
        match = _QUOTE_REF.match(token.strip())
        if not match:
            raise UsageError("usage.bad_quote_ref", text=token)
        return int(match.group(1))

    def amount(self, text: str | None, *, what: str = "what.amount") -> int:
        """An amount in minor units; zero and negative amounts are refused here."""
        if not text:
            raise UsageError("usage.missing", what=self.t(what))
        value = parse_amount(text)
        if value is None or value <= 0:
            raise UsageError("usage.bad_amount", text=text)
        minor = int((value * 100).to_integral_value())
        typed_in = amount_currencies(text)
        if typed_in is not None and self.currency not in typed_in:
            # ¥300000 in a dollar team is not $300,000: refuse rather than convert or relabel.
            raise UsageError("usage.wrong_currency", text=text, currency=self.currency,
                             example=self.money(minor),
                             command=self.say("/team config currency="))
        return minor

    def percent_bp(self, text: str, *, key: str | None = None) -> int:
        value = parse_percent(text)
        if value is None:
            raise UsageError("usage.bad_percent", text=text)
        if 0 < value < 1 and text.strip().replace(" ", "") == str(value):
            # 0.2 may mean 20 % (a fraction) or 0.2 %: ask rather than guess.
            raise UsageError("usage.ambiguous_percent", text=text,
                             key=key or self.say("discount"),
                             whole=f"{(value * 100).normalize():f}")
        return int((value * 100).to_integral_value())

    def date(self, text: str) -> date:
        """A day ahead, for a plan: one gone by is refused as such, never moved to next year."""
        today = self.scope.today
        passed = passed_date(text, today)
        if passed is not None:
            if passed.year == today.year and (today - passed).days > 3:
                # A month and day a few weeks gone may be meant for next year: say how to write it.
                again = years_from(passed, 1)
                written = self.say("{y}-{m:02d}-{d:02d}", y=again.year, m=again.month, d=again.day)
                raise UsageError("date.passed_this_year", day=self.day(passed), again=written)
            raise UsageError("date.in_past", day=self.day(passed))
        value = parse_date(text, today)
        if value is None:
            raise UsageError("usage.bad_date", text=text)
        return value

    def yes(self, text: str) -> bool:
        value = names.VALUES.find(text, among=("yes", "no", "off"))
        if value is None:
            raise UsageError("usage.yes_no", text=text)
        return value == "yes"

    def bounded(self, text: str, *, what: str, limit: int = MAX_TEXT) -> str:
        if len(text) > limit:
            raise UsageError("usage.too_long", what=self.t(what), length=len(text), limit=limit)
        return text

    def stage(self, text: str) -> Stage:
        """A stage by key, name or position, or by the beginning of a name that no other stage
        shares (`合同` → 合同签订, `prop` → Proposal)."""
        stage = self.scope.config.find_stage(text)
        if stage is not None:
            return stage
        wanted = text.strip().casefold()
        starting = [s for s in self.scope.config.stages if wanted and any(
            name.casefold().startswith(wanted) for name in (s.key, s.zh, s.en))]
        if len(starting) == 1:
            return starting[0]
        names = self.say(
            ", ",
        ).join(s.label(self.locale) for s in starting or self.scope.config.stages)
        raise UsageError("usage.bad_stage", text=text, stages=names)

    def is_mention(self, token: str) -> bool:
        return token in self.inv.mentions

    def member(self, token: str | None) -> Member:
        """The member a mention names. Only mentions the platform resolved count: typed look-alikes don't."""
        if not token:
            raise UsageError("usage.missing", what=self.t("what.member"))
        mention = self.inv.mentions.get(token)
        if mention is None:
            raise UsageError("usage.unknown_member", name=token)
        if mention.user_key and mention.user_key == self.inv.user_key:
            return self.scope.actor
        session, team = self.scope.session, self.scope.team
        if not mention.user_key:
            by_handle = teams.find_member_by_handle(session, team, mention.handle or "") if mention.handle else None
            if by_handle is None:
                raise UsageError("usage.unknown_member", name=token)
            return by_handle
        found = teams.find_member(session, team, mention.user_key)
        if found:
            return found
        # Never made here: a typo in a console or a stranger named in a chat is nobody's seat in
        # the team; people join by writing to the bot once.
        raise UsageError("usage.unknown_member", name=token)

    # --- pushes to other people ------------------------------------------------------------------
    def notify(self, member: Member, *, kind: str, key: str, reply: Reply | Callable[[Ctx], Reply],
               to_self: bool = False, about: tuple[str, ...] = ()) -> None:
        """Tell someone else, through the outbox, in the same transaction as the change.

        `reply` may be a function of the reader's context, to word it in their language. Their own
        settings apply: a kind they turned off is dropped, a digest kind waits for their next batched
        message, and their own quiet hours hold it — except a decision someone asks of them.
        `to_self`: the actor too (a card for a decision that waited for them to join).
        `about`: the decisions the push asks for (`commands.cards`): their outcome is edited in."""
        if member.id == self.scope.actor.id and not to_self:
            return
        reader = self.for_reader(member)
        not_before = None
        if kind not in teamwork.ASKED_BY_A_PERSON and reader.prefs.own_quiet:
            not_before = next_working_moment(self.scope.now, reader.prefs.quiet_config(self.scope.config))
            reader.read_on = not_before.astimezone(reader.tz).date()
        if reader.prefs.mode(kind) == "digest":
            reader.read_on = date.min
        built = reply(reader) if callable(reply) else reply
        teamwork.deliver(self.scope, member, kind=kind, key=key, payload=built.model_dump(mode="json"),
                         prefs=reader.prefs, not_before=not_before, about=about)

    def quote_buttons(self, quote: Quote) -> list[Button]:
        approve, reject = self.command("quote", "approve"), self.command("quote", "reject")
        return [Button(label=self.say("Approve"), command=f"{approve} Q{quote.number}", style="primary"),
                Button(label=self.say("Reject"), command=f"{reject} Q{quote.number} ", style="danger")]


def decimal_to_minor(value: Decimal) -> int:
    return int((value * 100).to_integral_value())
