from datetime import date
from decimal import Decimal

import pytest

from commands.parsing_values import parse_amount, parse_date, parse_percent

THU = date(2026, 11, 26)  # Thursday
SUN = date(2026, 11, 29)  # Sunday
YEAR_END = date(2026, 12, 30)  # Wednesday

GARBAGE = [
    "",
    "   ",
    "\x00",
    "🙂",
    "💰💰",
    "\ud800",
    "NaN",
    "nan",
    "inf",
    "Infinity",
    "-inf",
    "x" * 5000,
    "1" * 5000,
    "١٢",  # Arabic-Indic digits: Decimal() accepts them, we must not
    "¹²",
    "①",
]


# --- parse_amount ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120000", "120000"),
        ("120,000", "120000"),
        ("1,234,567", "1234567"),
        ("1,234.5", "1234.50"),
        ("120k", "120000"),
        ("120K", "120000"),
        ("0.5k", "500"),
        ("1.2m", "1200000"),
        ("1.2M", "1200000"),
        ("12万", "120000"),
        ("12.5万", "125000"),
        ("1.2w", "12000"),
        ("1.2W", "12000"),
        ("8万元", "80000"),
        ("5万块", "50000"),
        ("1亿", "100000000"),
        ("1.5亿", "150000000"),
        ("12万5", "125000"),
        ("12万5000", "125000"),
        ("三万", "30000"),
        ("三百万", "3000000"),
        ("十二万五千", "125000"),
        ("一亿二千万", "120000000"),
        ("两百五", "250"),
        ("三万零五百", "30500"),
        ("一千零五", "1005"),
        ("12万5千3", "125300"),
        ("¥三万元", "30000"),
        ("¥120000", "120000"),
        ("￥120,000", "120000"),
        ("$80,000", "80000"),
        ("$ 80,000", "80000"),
        ("5000元", "5000"),
        ("5000块", "5000"),
        ("5000 元", "5000"),
        ("99.99", "99.99"),
        ("99.9", "99.90"),
        ("99.999", "100"),
        ("0.005", "0.01"),
        ("0.004", "0"),
        ("1.23456k", "1234.56"),
        ("1.234565k", "1234.57"),
        ("１２万", "120000"),
        ("１２０，０００", "120000"),
        ("  120k  ", "120000"),
        ("0", "0"),
        ("0k", "0"),
        ("10000000000000", "10000000000000"),
        ("1000亿", "100000000000"),
    ],
)
def test_parse_amount_accepts(text: str, expected: str) -> None:
    result = parse_amount(text)
    assert result == Decimal(expected)
    assert str(result) == expected


@pytest.mark.parametrize(
    "text",
    [
        "eighty",
        "-5",
        "+5",
        "1,2,3,4",
        "12,34",
        "1,2345",
        ",120",
        "120,",
        "1.2.3",
        "1.",
        ".5",
        "k",
        "万",
        "元",
        "$",
        "1e5",
        "1E5",
        "12 000",
        "1 2万",
        "RMB 5000",
        "5000 USD",
        "12kk",
        "12万万",
        "1万2亿",
        "五万三亿",
        "3万4万",
        "十十",
        "五十三百",
        "1.5万5",
        "1.5亿3000万",
        "10000000000001",
        "100001亿",
        "1k2",
        "5000元元",
        "0x10",
        *GARBAGE,
    ],
)
def test_parse_amount_rejects(text: str) -> None:
    assert parse_amount(text) is None


# --- parse_percent -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5%", "5"),
        ("5", "5"),
        ("5.5%", "5.5"),
        ("５％", "5"),
        ("5 %", "5"),
        ("5﹪", "5"),
        ("0", "0"),
        ("0%", "0"),
        ("100%", "100"),
        ("100", "100"),
        ("12.75", "12.75"),
        (" 7% ", "7"),
        ("百分之十", "10"),
        ("百分之7.5", "7.5"),
        ("8折", "20"),
        ("八折", "20"),
        ("85折", "15"),
        ("八五折", "15"),
        ("9.5折", "5"),
    ],
)
def test_parse_percent_accepts(text: str, expected: str) -> None:
    assert parse_percent(text) == Decimal(expected)


@pytest.mark.parametrize(
    "text",
    ["-5%", "100.01%", "101", "150%", "10折", "0折", "百分之一百零一", "百分之十十", "5%%", "%",
     "%5", "five", "5.5.5%", "1e1", "5 5%", *GARBAGE],
)
def test_parse_percent_rejects(text: str) -> None:
    assert parse_percent(text) is None


# --- parse_date --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # keywords
        ("today", date(2026, 11, 26)),
        ("Today", date(2026, 11, 26)),
        ("今天", date(2026, 11, 26)),
        ("今日", date(2026, 11, 26)),
        ("tomorrow", date(2026, 11, 27)),
        ("tmr", date(2026, 11, 27)),
        ("明天", date(2026, 11, 27)),
        ("后天", date(2026, 11, 28)),
        ("大后天", date(2026, 11, 29)),
        # offsets
        ("+3d", date(2026, 11, 29)),
        ("3d", date(2026, 11, 29)),
        ("+2w", date(2026, 12, 10)),
        ("2w", date(2026, 12, 10)),
        ("+10D", date(2026, 12, 6)),
        ("3天后", date(2026, 11, 29)),
        ("3日后", date(2026, 11, 29)),
        ("两天后", date(2026, 11, 28)),
        ("三天后", date(2026, 11, 29)),
        ("十天后", date(2026, 12, 6)),
        ("十五天后", date(2026, 12, 11)),
        ("二十天后", date(2026, 12, 16)),
        ("1周后", date(2026, 12, 3)),
        ("一周后", date(2026, 12, 3)),
        ("两周后", date(2026, 12, 10)),
        ("１周后", date(2026, 12, 3)),
        # bare weekdays: strictly after today
        ("fri", date(2026, 11, 27)),
        ("Friday", date(2026, 11, 27)),
        ("FRI", date(2026, 11, 27)),
        ("thu", date(2026, 12, 3)),
        ("thursday", date(2026, 12, 3)),
        ("mon", date(2026, 11, 30)),
        ("monday", date(2026, 11, 30)),
        ("tue", date(2026, 12, 1)),
        ("tuesday", date(2026, 12, 1)),
        ("wed", date(2026, 12, 2)),
        ("wednesday", date(2026, 12, 2)),
        ("sat", date(2026, 11, 28)),
        ("saturday", date(2026, 11, 28)),
        ("sun", date(2026, 11, 29)),
        ("sunday", date(2026, 11, 29)),
        ("周五", date(2026, 11, 27)),
        ("星期五", date(2026, 11, 27)),
        ("礼拜五", date(2026, 11, 27)),
        ("周四", date(2026, 12, 3)),
        ("周日", date(2026, 11, 29)),
        ("周天", date(2026, 11, 29)),
        ("星期日", date(2026, 11, 29)),
        ("星期天", date(2026, 11, 29)),
        ("周一", date(2026, 11, 30)),
        # this / next week
        ("this fri", date(2026, 11, 27)),
        ("this thu", date(2026, 11, 26)),
        ("this mon", date(2026, 11, 23)),
        ("next mon", date(2026, 11, 30)),
        ("Next Monday", date(2026, 11, 30)),
        ("next fri", date(2026, 12, 4)),
        ("next sun", date(2026, 12, 6)),
        ("本周五", date(2026, 11, 27)),
        ("这周五", date(2026, 11, 27)),
        ("这个礼拜五", date(2026, 11, 27)),
        ("本周一", date(2026, 11, 23)),
        ("下周一", date(2026, 11, 30)),
        ("下周五", date(2026, 12, 4)),
        ("下周日", date(2026, 12, 6)),
        ("下周天", date(2026, 12, 6)),
        ("下星期一", date(2026, 11, 30)),
        ("下礼拜一", date(2026, 11, 30)),
        ("下个星期三", date(2026, 12, 2)),
        ("下周 三", date(2026, 12, 2)),
        ("下下周一", date(2026, 12, 7)),
        ("下下个星期五", date(2026, 12, 11)),
        # a week without a day: its Monday
        ("下周", date(2026, 11, 30)),
        ("next week", date(2026, 11, 30)),
        ("下下周", date(2026, 12, 7)),
        # absolute
        ("2026-12-01", date(2026, 12, 1)),
        ("2026/12/01", date(2026, 12, 1)),
        ("2026.12.1", date(2026, 12, 1)),
        ("2025-01-05", date(2025, 1, 5)),
        ("2026年12月1日", date(2026, 12, 1)),
        ("2026年12月1号", date(2026, 12, 1)),
        ("12/1", date(2026, 12, 1)),
        ("12-1", date(2026, 12, 1)),
        ("11/26", date(2026, 11, 26)),
        ("11/25", date(2027, 11, 25)),
        ("1/5", date(2027, 1, 5)),
        ("12月1日", date(2026, 12, 1)),
        ("12月1号", date(2026, 12, 1)),
        ("12月1", date(2026, 12, 1)),
        ("3月1日", date(2027, 3, 1)),
        ("１２月１日", date(2026, 12, 1)),
        ("1 Dec", date(2026, 12, 1)),
        ("Dec 1", date(2026, 12, 1)),
        ("december 1", date(2026, 12, 1)),
        ("DEC 1st", date(2026, 12, 1)),
        ("Dec 1, 2027", date(2027, 12, 1)),
        ("1 dec 2026", date(2026, 12, 1)),
        ("sept 3", date(2027, 9, 3)),
        ("1号", date(2026, 12, 1)),
        ("26号", date(2026, 11, 26)),
        ("30号", date(2026, 11, 30)),
        ("31号", date(2026, 12, 31)),
        ("28日", date(2026, 11, 28)),
        # whitespace is only trimmed / collapsed
        ("  next   mon ", date(2026, 11, 30)),
    ],
)
def test_parse_date_thursday(text: str, expected: date) -> None:
    assert parse_date(text, THU) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2026, 11, 29)),
        ("sun", date(2026, 12, 6)),
        ("周日", date(2026, 12, 6)),
        ("mon", date(2026, 11, 30)),
        ("next mon", date(2026, 11, 30)),
        ("next sun", date(2026, 12, 6)),
        ("下周一", date(2026, 11, 30)),
        ("下周日", date(2026, 12, 6)),
        ("this sun", date(2026, 11, 29)),
        ("this fri", date(2026, 11, 27)),
        ("本周五", date(2026, 11, 27)),
        ("大后天", date(2026, 12, 2)),
    ],
)
def test_parse_date_sunday(text: str, expected: date) -> None:
    assert parse_date(text, SUN) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tomorrow", date(2026, 12, 31)),
        ("后天", date(2027, 1, 1)),
        ("+3d", date(2027, 1, 2)),
        ("+2w", date(2027, 1, 13)),
        ("fri", date(2027, 1, 1)),
        ("next mon", date(2027, 1, 4)),
        ("下周一", date(2027, 1, 4)),
        ("12/1", date(2027, 12, 1)),
        ("12-1", date(2027, 12, 1)),
        ("12/31", date(2026, 12, 31)),
        ("1/2", date(2027, 1, 2)),
        ("12月1日", date(2027, 12, 1)),
        ("1月2日", date(2027, 1, 2)),
        ("Dec 1", date(2027, 12, 1)),
        ("1 Jan", date(2027, 1, 1)),
        ("january 1", date(2027, 1, 1)),
        ("1号", date(2027, 1, 1)),
        ("30号", date(2026, 12, 30)),
        ("2026-12-01", date(2026, 12, 1)),  # explicit year is never rolled
    ],
)
def test_parse_date_year_end(text: str, expected: date) -> None:
    assert parse_date(text, YEAR_END) == expected


def test_parse_date_leap_day_rolls_to_a_year_that_has_it() -> None:
    assert parse_date("2/29", date(2027, 3, 1)) == date(2028, 2, 29)
    assert parse_date("2/29", date(2026, 3, 1)) is None


def test_parse_date_day_of_month_skips_short_months() -> None:
    assert parse_date("31号", date(2027, 2, 10)) == date(2027, 3, 31)


@pytest.mark.parametrize(
    "text",
    [
        "someday",
        "32/13",
        "13/1",
        "2/30",
        "0/1",
        "2026-02-30",
        "2026-13-01",
        "2026-12-01x",
        "2026-12/01",
        "12.1",
        "32号",
        "0号",
        "12月32日",
        "Dec 32",
        "Foo 1",
        "next",
        "this",
        "周八",
        "周",
        "上周一",
        "mon fri",
        "3",
        "+d",
        "3x",
        "-3d",
        "天后",
        "百天后",
        "十十天后",
        "yesterday",
        "昨天",
        *GARBAGE,
    ],
)
def test_parse_date_rejects(text: str) -> None:
    assert parse_date(text, THU) is None


def test_parse_date_never_raises_near_date_max() -> None:
    assert parse_date("+999w", date(9999, 12, 1)) is None
    assert parse_date("tomorrow", date.max) is None


@pytest.mark.parametrize("text", [None, 5, b"12"])
def test_non_strings_are_rejected(text: object) -> None:
    assert parse_amount(text) is None  # type: ignore[arg-type]
    assert parse_percent(text) is None  # type: ignore[arg-type]
    assert parse_date(text, THU) is None  # type: ignore[arg-type]
