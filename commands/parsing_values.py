"""Parse amounts, percentages and follow-up dates typed by sales reps in chat.

Dates use explicit regex rules only, not dateparser: measured, dateparser reads '32/13' as
2032-11-13 and its first parse costs ~120 ms, while the forms the bot supports are a closed list.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

__all__ = ["amount_currencies", "parse_amount", "parse_percent", "parse_date", "passed_date"]

# Real chat input is short; the cap keeps every rule cheap on pasted walls of text.
_MAX_LEN = 64

# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space come from Chinese IMEs.
# NFKC is avoided on purpose: it would also turn superscripts and circled digits into numbers.
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_FULLWIDTH[0x3000] = 0x20
_FULLWIDTH[0xFFE5] = ord("¥")  # full-width yen/yuan sign sits outside the block above
_FULLWIDTH[0xFE6A] = ord("%")  # small percent sign


def _normalize(text: object) -> str | None:
    """Return stripped, half-width text, or None when it is not a short string."""
    if not isinstance(text, str):
        return None
    s = text.translate(_FULLWIDTH).strip()
    if not s or len(s) > _MAX_LEN:
        return None
    return s


# --- amounts -----------------------------------------------------------------------------------

# [0-9] rather than \d: \d matches Arabic-Indic and other digits that Decimal() would accept.
_NUMBER = r"(?:[1-9][0-9]{0,2}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?"
_AMOUNT_RE = re.compile(
    rf"(?P<cur>[¥$€£])?\s*(?P<num>{_NUMBER})\s*(?P<mult>[kKmMwW万亿])?\s*(?P<unit>[元块])?"
)
# Amounts written the Chinese way: 三万, 三百万, 十二万五千, and the spoken 12万5 (= 125,000).
_ZH_AMOUNT_RE = re.compile(
    r"(?P<cur>[¥])?\s*(?P<body>[0-9.零〇一二两三四五六七八九十百千万亿]+)\s*[元块]?"
)
_ZH_PART = re.compile(r"[0-9]+(?:\.[0-9]+)?|[零〇一二两三四五六七八九]|[十百千万亿]")
_ZH_DIGIT = {
    "零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9,
}  # fmt: skip
_ZH_UNIT = {"十": 1, "百": 2, "千": 3, "万": 4, "亿": 8}
# What the symbol an amount was typed with says about its currency.
_SYMBOL_CURRENCIES = {
    "¥": frozenset({"CNY", "JPY"}), "元": frozenset({"CNY"}), "块": frozenset({"CNY"}),
    "$": frozenset({"USD", "HKD", "SGD", "AUD", "CAD", "NZD", "TWD", "MXN"}),
    "€": frozenset({"EUR"}), "£": frozenset({"GBP"}),
}  # fmt: skip
_MULTIPLIERS = {
    "k": 3, "K": 3, "m": 6, "M": 6, "w": 4, "W": 4, "万": 4, "亿": 8,
}  # fmt: skip
_MAX_AMOUNT = Decimal(10) ** 13
_CENT = Decimal("0.01")


def _zh_amount(body: str) -> Decimal | None:
    """`三百万`, `十二万五千`, `三万零五百`, `12万5`, `1亿2000万` -> Decimal; None when they
    make no number: units that do not fall (`十十`, `3万4万`, `1万2亿`), two numbers in a row
    (`三五`)."""
    parts = _ZH_PART.findall(body)
    if "".join(parts) != body:
        return None
    total, section, number = Decimal(0), Decimal(0), None
    unit = big = 9  # the last unit, the last 万 or 亿: each unit is lower than the one before
    skipped = False  # 零 stands for units left out: 一千零五 is 1,005, not the spoken 1,500
    for index, part in enumerate(parts):
        if part in _ZH_UNIT:
            power = _ZH_UNIT[part]
            if power >= (big if power >= 4 else unit):
                return None
            if power >= 4:
                if number is None and section == 0:
                    return None
                total += (section + (number or 0)) * Decimal(10) ** power
                section, big = Decimal(0), power
            else:
                section += (Decimal(1) if number is None else number) * Decimal(10) ** power
            number, unit = None, power
        elif part in "零〇" and number is None and (total or section):
            skipped = True
        elif number is not None or ("." in part and index != len(parts) - 2):
            return None  # two numbers in a row (三五, 12 5); a fraction not of the last unit
        else:
            number = Decimal(_ZH_DIGIT[part]) if part in _ZH_DIGIT else Decimal(part)
    if number is not None:
        # Spoken short form: a lone digit after a unit is one step below it (12万5 = 12万5千).
        if unit < 9 and not skipped and len(parts[-1]) == 1:
            number *= Decimal(10) ** (unit - 1)
        section += number
    return total + section


def amount_currencies(text: str) -> frozenset[str] | None:
    """The currencies an amount's symbol may stand for (`¥`: CNY or JPY); None: no symbol."""
    s = _normalize(text)
    if s is None:
        return None
    for symbol in (s[:1], s[-1:]):
        if symbol in _SYMBOL_CURRENCIES:
            return _SYMBOL_CURRENCIES[symbol]
    return None


def parse_amount(text: str) -> Decimal | None:
    """Money typed by a sales rep -> Decimal (major units, e.g. yuan/dollars), or None when it is not an amount."""  # noqa: E501
    s = _normalize(text)
    if s is None:
        return None
    m = _AMOUNT_RE.fullmatch(s)
    if m is None:
        zh = _ZH_AMOUNT_RE.fullmatch(s)
        value = _zh_amount(zh["body"]) if zh else None
        if value is None or value > _MAX_AMOUNT:
            return None
        value = value.quantize(_CENT, rounding=ROUND_HALF_UP)
        return value.quantize(Decimal(1)) if value == value.to_integral_value() else value
    # Enough precision that scaling a 64-char number never rounds before we quantize.
    with localcontext() as ctx:
        ctx.prec = 100
        try:
            value = Decimal(m["num"].replace(",", ""))
        except InvalidOperation:
            return None
        if m["mult"]:
            value = value.scaleb(_MULTIPLIERS[m["mult"]])
        if value > _MAX_AMOUNT:
            return None
        value = value.quantize(_CENT, rounding=ROUND_HALF_UP)
        # Whole amounts come back as integers (Decimal('120000')), others with cents.
        if value == value.to_integral_value():
            value = value.quantize(Decimal(1))
    return value


# --- percentages -------------------------------------------------------------------------------

_PERCENT_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)\s*%?")
# 百分之十 = 10 %; 8折 / 八折 = 80 % of the price, i.e. 20 % off; 85折 = 15 % off.
_ZH_PERCENT_RE = re.compile(r"百分之(?P<num>[0-9]+(?:\.[0-9]+)?|[零一二两三四五六七八九十百]+)")
_ZH_OFF_RE = re.compile(r"(?P<num>[1-9](?:\.[0-9])?|[1-9][1-9]|[一二三四五六七八九]{1,2})\s*折")


def _percent_number(text: str) -> Decimal | None:
    if text.isascii():
        return Decimal(text)
    return _zh_amount(text)


def parse_percent(text: str) -> Decimal | None:
    """'5%', '5', '5.5%', '５％' (full-width), 百分之五 -> Decimal('5'); a discount written as
    the share paid, 95折 or 九五折, -> Decimal('5'); None if not a number in 0..100."""
    s = _normalize(text)
    if s is None:
        return None
    if m := _ZH_OFF_RE.fullmatch(s):
        digits = "".join(str(_ZH_DIGIT.get(char, char)) for char in m["num"])
        paid = Decimal(digits) * (1 if len(digits) == 2 else 10)  # 85折, else 8折 / 8.5折
        return Decimal(100) - paid
    if m := _ZH_PERCENT_RE.fullmatch(s):
        value = _percent_number(m["num"])
        return value if value is not None and value <= 100 else None
    m = _PERCENT_RE.fullmatch(s)
    if m is None:
        return None
    try:
        value = Decimal(m["num"])
    except InvalidOperation:
        return None
    if value > 100:
        return None
    return value


# --- dates -------------------------------------------------------------------------------------

_KEYWORDS = {
    "today": 0, "今天": 0, "今日": 0,
    "tomorrow": 1, "tmr": 1, "tmrw": 1, "明天": 1, "明日": 1,
    "后天": 2, "大后天": 3,
}  # fmt: skip

_EN_WEEKDAYS = {
    "mon": 0, "monday": 0,
    "tue": 1, "tues": 1, "tuesday": 1,
    "wed": 2, "weds": 2, "wednesday": 2,
    "thu": 3, "thur": 3, "thurs": 3, "thursday": 3,
    "fri": 4, "friday": 4,
    "sat": 5, "saturday": 5,
    "sun": 6, "sunday": 6,
}  # fmt: skip
_ZH_WEEKDAYS = {
    "一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
    "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6,
}  # fmt: skip

_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3,
    "apr": 4, "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7,
    "aug": 8, "august": 8, "sep": 9, "sept": 9, "september": 9,
    "oct": 10, "october": 10, "nov": 11, "november": 11, "dec": 12, "december": 12,
}  # fmt: skip

_EN_WD = "|".join(sorted(_EN_WEEKDAYS, key=len, reverse=True))
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))
_ORD = r"(?:st|nd|rd|th)?"

_OFFSET_RE = re.compile(r"\+?([0-9]{1,3}) ?([dw])")
_ZH_OFFSET_RE = re.compile(
    r"([0-9]{1,3}|[一二两三四五六七八九十]{1,3}) ?(天|日|周|个星期|星期|个礼拜|礼拜)后"
)
_EN_WEEKDAY_RE = re.compile(rf"(?:(this|next) )?({_EN_WD})")
_ZH_WEEKDAY_RE = re.compile(r"(本|这个?|下下个?|下个?)?(?:周|星期|礼拜) ?([一二三四五六日天1-7])")
# A week without a day means its Monday: 下周 / next week = next Monday, 下下周 = the one after.
_WEEK_RE = re.compile(r"next week|下个?(?:周|星期|礼拜)|(下下)个?(?:周|星期|礼拜)")
_YMD_RE = re.compile(r"([0-9]{4})([-/.])([0-9]{1,2})\2([0-9]{1,2})")
_ZH_YMD_RE = re.compile(r"([0-9]{4}) ?年 ?([0-9]{1,2}) ?月 ?([0-9]{1,2}) ?[日号]?")
_MD_RE = re.compile(r"([0-9]{1,2})[/-]([0-9]{1,2})")
_ZH_MD_RE = re.compile(r"([0-9]{1,2}) ?月 ?([0-9]{1,2}) ?[日号]?")
_ZH_DAY_RE = re.compile(r"([0-9]{1,2}) ?[日号]")
_DAY_MON_RE = re.compile(rf"([0-9]{{1,2}}){_ORD} ?({_MON})\.?(?:,? ([0-9]{{4}}))?")
_MON_DAY_RE = re.compile(rf"({_MON})\.? ?([0-9]{{1,2}}){_ORD}(?:,? ([0-9]{{4}}))?")


def _zh_number(s: str) -> int | None:
    """Small counts written as digits or Chinese numerals (一..九十九) -> int."""
    value = _zh_amount(s)
    return None if value is None else int(value)


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _upcoming_month_day(month: int, day: int, today: date) -> date | None:
    """Month/day without a year: this year, or next year if it is already past."""
    for year in (today.year, today.year + 1):
        d = _safe_date(year, month, day)
        if d is not None and d >= today:
            return d
    return None


def _upcoming_day_of_month(day: int, today: date) -> date | None:
    """Day-of-month only: this month, else the first later month where that day exists."""
    year, month = today.year, today.month
    for _ in range(12):
        if day <= calendar.monthrange(year, month)[1]:
            d = date(year, month, day)
            if d >= today:
                return d
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return None


def _weekday_date(weekday: int, which: str | None, today: date) -> date:
    """Bare weekday -> next one strictly after today; 'this'/'next'/'after next' -> that day of
    that week."""
    if which is None:
        return today + timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)
    monday = today - timedelta(days=today.weekday())
    return monday + timedelta(days=weekday + {"next": 7, "after next": 14}.get(which, 0))


def _parse_date(s: str, today: date) -> date | None:
    if s in _KEYWORDS:
        return today + timedelta(days=_KEYWORDS[s])

    if m := _OFFSET_RE.fullmatch(s):
        n = int(m[1])
        return today + timedelta(days=n * 7 if m[2] == "w" else n)
    if m := _ZH_OFFSET_RE.fullmatch(s):
        n = _zh_number(m[1])
        if n is None:
            return None
        return today + timedelta(days=n if m[2] in ("天", "日") else n * 7)

    if m := _EN_WEEKDAY_RE.fullmatch(s):
        return _weekday_date(_EN_WEEKDAYS[m[2]], m[1], today)
    if m := _ZH_WEEKDAY_RE.fullmatch(s):
        prefix = m[1] or ""
        which = ("after next" if prefix.startswith("下下") else "next" if prefix.startswith("下")
                 else "this" if prefix else None)
        return _weekday_date(_ZH_WEEKDAYS[m[2]], which, today)
    if m := _WEEK_RE.fullmatch(s):
        return _weekday_date(0, "after next" if m[1] else "next", today)

    if m := _YMD_RE.fullmatch(s):
        return _safe_date(int(m[1]), int(m[3]), int(m[4]))
    if m := _ZH_YMD_RE.fullmatch(s):
        return _safe_date(int(m[1]), int(m[2]), int(m[3]))
    if m := _MD_RE.fullmatch(s) or _ZH_MD_RE.fullmatch(s):
        return _upcoming_month_day(int(m[1]), int(m[2]), today)
    if m := _ZH_DAY_RE.fullmatch(s):
        return _upcoming_day_of_month(int(m[1]), today)

    if m := _DAY_MON_RE.fullmatch(s):
        day, month, year = int(m[1]), _MONTHS[m[2]], m[3]
    elif m := _MON_DAY_RE.fullmatch(s):
        day, month, year = int(m[2]), _MONTHS[m[1]], m[3]
    else:
        return None
    if year is not None:
        return _safe_date(int(year), month, day)
    return _upcoming_month_day(month, day, today)


def parse_date(text: str, today: date) -> date | None:
    """A follow-up date typed in chat, relative to `today` (the team's local date) -> date, or None."""  # noqa: E501
    s = _normalize(text)
    if s is None:
        return None
    s = " ".join(s.lower().split())
    try:
        return _parse_date(s, today)
    except (ValueError, OverflowError):
        # Offsets past date.max; the bot must never crash on chat text.
        return None


_PAST_KEYWORDS = {"yesterday": 1, "昨天": 1, "昨日": 1, "前天": 2, "大前天": 3}


def _month_day(s: str) -> tuple[int, int] | None:
    """The month and day of a date typed without a year (12/1, 12月1日, 1 Dec), else None."""
    if m := _MD_RE.fullmatch(s) or _ZH_MD_RE.fullmatch(s):
        return int(m[1]), int(m[2])
    if (m := _DAY_MON_RE.fullmatch(s)) and m[3] is None:
        return _MONTHS[m[2]], int(m[1])
    if (m := _MON_DAY_RE.fullmatch(s)) and m[3] is None:
        return _MONTHS[m[1]], int(m[2])
    return None


def passed_date(text: str, today: date) -> date | None:
    """The day a date typed for a plan names when it has gone by: yesterday, or a month and day
    nearer behind today than ahead of it (on 17 Dec, 12/1 is the 1 Dec just gone, which a plan
    can't be set for, not next year's; on 30 Dec, 1/5 is next January's, and None)."""
    s = _normalize(text)
    if s is None:
        return None
    s = " ".join(s.lower().split())
    if s in _PAST_KEYWORDS:
        return today - timedelta(days=_PAST_KEYWORDS[s])
    found = _month_day(s)
    if found is None:
        return None
    month, day = found
    behind = [d for year in (today.year, today.year - 1)
              if (d := _safe_date(year, month, day)) is not None and d < today]
    if not behind:
        return None
    ahead = _upcoming_month_day(month, day, today)
    if ahead is not None and ahead - today <= today - behind[0]:
        return None
    return behind[0]
