"""Everything the bot says, in the team's language, and the locale-aware formatting of values.

The wording lives in one gettext catalog, `wording/locale/zh_CN/LC_MESSAGES/dealbot.po`: each
msgid is the English sentence with named `{placeholders}`, its msgstr the Chinese one, plural
forms through msgid_plural. The English needs no file of its own: the msgid is the English.

This package stands apart from `commands`, `reminders`, `bot` and `models` so that each of them
can word a message without importing another layer. The catalog is read once, at first use, from
the .po itself: there is no compile step to forget, and the .po ships in the wheel as package data.

Sentences that a domain error carries by name (`lead.closed`, `usage.bad_date`, …) are catalog
entries with that name as their msgctxt; `message(lang, key)` finds them by it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.messages.pofile import read_po
from babel.numbers import format_compact_currency, format_currency

LOCALES = ("en", "zh")
_BABEL = {"en": "en_US", "zh": "zh_CN"}
_DAY_PATTERNS = {"en": "EEE d MMM", "zh": "M月d日（EEE）"}
_DAY_WITH_YEAR_PATTERNS = {"en": "EEE d MMM y", "zh": "y年M月d日（EEE）"}
CATALOG = Path(__file__).with_name("locale") / "zh_CN" / "LC_MESSAGES" / "dealbot.po"


@dataclass(frozen=True)
class _Catalog:
    # (msgctxt, msgid) → Chinese; a plural entry maps to its one Chinese form (zh has one).
    zh: dict[tuple[str | None, str], str]
    # msgctxt → the English msgid, for sentences named by a key.
    keyed: dict[str, str]


@cache
def _catalog() -> _Catalog:
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    zh: dict[tuple[str | None, str], str] = {}
    keyed: dict[str, str] = {}
    for entry in catalog:
        if not entry.id:
            continue
        msgid = entry.id[0] if isinstance(entry.id, tuple | list) else entry.id
        text = entry.string[0] if isinstance(entry.string, tuple | list) else entry.string
        if text and not entry.fuzzy:
            zh[(entry.context, msgid)] = text
        if entry.context:
            keyed[entry.context] = msgid
    return _Catalog(zh, keyed)


def _fill(template: str, params: dict[str, Any]) -> str:
    try:
        return template.format(**params)
    except (KeyError, IndexError, ValueError):
        return template


# A value that ends in full-width punctuation — a date, `12月15日（周二）` — carries its own space:
# the one the Chinese sentence sets after the placeholder (`{d} 前`) would be a stray one.
_AFTER_VALUE = re.compile(r"\{(\w+)(?:[:!][^}]*)?\} (?=[\u3400-\u9fff])")
_FULL_WIDTH_END = ("）", "。", "，", "：", "；", "」", "”")


def _tight(template: str, params: dict[str, Any]) -> str:
    def drop(match: re.Match[str]) -> str:
        value = str(params.get(match.group(1), ""))
        return match.group(0)[:-1] if value.endswith(_FULL_WIDTH_END) else match.group(0)

    return _AFTER_VALUE.sub(drop, template)


def say(lang: str, msgid: str, /, *, context: str | None = None, **params: Any) -> str:
    """The sentence whose English is `msgid`, in `lang`, with its placeholders filled."""
    template = msgid
    if lang == "zh":
        template = _tight(_catalog().zh.get((context, msgid), msgid), params)
    return _fill(template, params)


def say_n(
    lang: str, singular: str, plural: str, n: int, /, *, context: str | None = None, **params: Any
) -> str:
    """A sentence that depends on a count: `1 member`, `2 members`; Chinese has one form.
    `{n}` in the text is the count."""
    template = singular if n == 1 else plural
    if lang == "zh":
        template = _tight(_catalog().zh.get((context, singular), template), params)
    return _fill(template, {"n": n, **params})


def message(lang: str, key: str, /, **params: Any) -> str:
    """The sentence a domain error or a rule names by `key`, in `lang` (the key itself if the
    catalog has no such sentence)."""
    msgid = _catalog().keyed.get(key)
    if msgid is None:
        return key
    return say(lang, msgid, context=key, **params)


def has(key: str) -> bool:
    """Whether the catalog names a sentence `key`."""
    return key in _catalog().keyed


def money(minor: int | None, currency: str, locale: str) -> str:
    if minor is None:
        return "-"
    value = Decimal(minor) / 100
    pattern = "¤#,##0" if minor % 100 == 0 else "¤#,##0.00"
    return format_currency(
        value, currency, format=pattern, locale=_BABEL[locale], currency_digits=False
    )


def quote_amount(minor: int, discount_bp: int, currency: str, locale: str) -> str:
    """A quote's amount as every line shows it: the price, and the discount when there is one
    ($580,000 (−5%)), so a reminder never reads as a different offer than the request."""
    text = money(minor, currency, locale)
    if discount_bp:
        whole, rest = divmod(discount_bp, 100)
        pct = f"{whole}%" if not rest else f"{discount_bp / 100:g}%"
        text += say(locale, " (−{d})", d=pct)
    return text


def money_short(minor: int, currency: str, locale: str) -> str:
    """Compact money for dense lines: ¥120万, $1.2M."""
    value = Decimal(minor) / 100
    if abs(value) < 10_000:
        return money(minor, currency, locale)
    return format_compact_currency(value, currency, locale=_BABEL[locale], fraction_digits=1)


def day(value: date, locale: str, today: date | None = None) -> str:
    """A date people read at a glance: Fri 28 Nov / 11月28日（周五）; with its year when that is
    not the year of `today` (Wed 1 Dec 2027 / 2027年12月1日（周三）), so that next year's 1 Dec
    never reads as this year's."""
    with_year = today is not None and value.year != today.year
    patterns = _DAY_WITH_YEAR_PATTERNS if with_year else _DAY_PATTERNS
    return format_date(value, patterns[locale], locale=_BABEL[locale])


def clock(moment: datetime, tz: ZoneInfo, today: date | None = None) -> str:
    """A moment in the team's time: 10:02 today, 11-25 10:02 otherwise."""
    local = moment.astimezone(tz)
    if today is not None and local.date() == today:
        return local.strftime("%H:%M")
    return local.strftime("%m-%d %H:%M")


def percent(basis_points: int) -> str:
    value = Decimal(basis_points) / 100
    return f"{value.normalize():f}%"


def N_(msgid: str) -> str:  # noqa: N802 - gettext's own name for it
    """Marks `msgid` as catalog English worded later, where the reader is known (gettext's
    `gettext_noop`): a table of labels holds N_("Won"), the reply says say(lang, label)."""
    return msgid


_JOINERS = {"list": ("、", ", "), "clause": ("，", ", "), "parts": ("；", "; ")}


def join(lang: str, items: Any, kind: str = "list") -> str:
    """Items in one line with the language's separator: `是、否` / `yes, no` (`list`), `，`
    between phrases (`clause`), `；` between whole parts (`parts`)."""
    zh, en = _JOINERS[kind]
    return (zh if lang == "zh" else en).join(str(item) for item in items)
