"""Input at its edges, as a team types it: names that are only symbols and digits are nobody's
duplicate, and dates that cannot be meant (0001-01-01, 9999-12-31, a follow-up last year) are
refused with the reason, in the team's language, changing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.normalize import normalize_company
from tests.chat import Chat
from tests.test_exchange import import_file


@pytest.mark.parametrize("name", ["-1+1", "＝1+1", "=1+1", ";=1+1", "+-*/", "@@", "１+１"])
def test_a_name_of_symbols_and_digits_has_no_company_key(name: str) -> None:
    assert normalize_company(name) is None


def test_names_that_keep_a_key() -> None:
    assert normalize_company("360") == "360"  # digits alone are a name (a company called 360)
    assert normalize_company("3M Co.") == "3m"
    assert normalize_company("7-Eleven") == "7eleven"


def test_unrelated_symbol_names_are_not_called_duplicates(team: Chat) -> None:
    assert "L1 -1+1 — yours" in team.say("/lead add -1+1")
    for line, number in (
        ("/lead add ＝1+1", 2),
        ("/lead add Foo company=;=1+1", 3),
        ("/lead add =1+1", 4),
    ):
        answer = team.say(f"[carol] {line}")
        assert "Looks like" not in answer and f"L{number} " in answer, line
    # A real company is still found however it is typed.
    assert "L5 Acme" in team.say("/lead add Acme company=ACME Ltd.")
    assert "Looks like L5 Acme" in team.say("[carol] /lead add Other company=acme ltd")


def refused(chat: Chat, line: str, *expected: str) -> None:
    """The line is answered with an error naming `expected`, and nothing changes."""
    before = chat.snapshot()
    reply = chat.reply(line)
    assert reply.ok is False, (line, reply.text)
    for text in expected:
        assert text in reply.text, (line, reply.text)
    assert chat.snapshot() == before, line


# Today is Thursday 26 Nov 2026 (the clock fixture): plans reach 2028-11-26, records 2006–2046.


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0001-01-01", "in the past"),
        ("1970-01-01", "in the past"),
        ("2026-11-25", "in the past"),
        ("9999-12-31", "too far ahead: plans reach two years at most (until Sun 26 Nov 2028)"),
        ("2028-11-27", "too far ahead"),
        ("+999d", "too far ahead"),
        ("999w", "too far ahead"),
    ],
)
def test_a_next_follow_up_that_cannot_be_meant_is_refused(
    team: Chat, typed: str, reason: str
) -> None:
    team.say("/lead add Acme")
    refused(team, f"/follow L1 called them next={typed}", reason)


def test_plausible_next_follow_ups_are_kept(team: Chat) -> None:
    team.say("/lead add Acme")
    assert "Next:" in team.say("/follow L1 called next=today")
    assert "Next:" in team.say("/follow L1 called next=2028-11-26")


def test_far_dates_are_refused_in_chinese_too(chat: Chat) -> None:
    chat.say("/团队 设置 locale=zh")
    chat.say("/线索 新建 华为技术")
    refused(chat, "/跟进 L1 电话沟通 下次=9999-12-31", "太远了", "2028年11月26日")
    refused(chat, "/目标 0001-01", "超出范围")
    refused(chat, "/回款 C1 1k 0001-01-01")  # no contract yet: refused either way


@pytest.mark.parametrize("line", ["/lead snooze L1 9999-12-31", "/lead snooze L1 999w"])
def test_a_snooze_for_ever_is_refused(team: Chat, line: str) -> None:
    team.say("/lead add Acme")
    refused(team, line, "too far ahead")
    assert "nudges resume" in team.say("/lead snooze L1 2028-11-26")


@pytest.mark.parametrize("typed", ["0001-01", "1970-01", "9999-12", "2029-01"])
def test_a_target_month_out_of_range_is_refused_not_a_crash(team: Chat, typed: str) -> None:
    refused(team, f"/target {typed}", "out of range", "from 2006-11 to 2028-11")
    refused(team, f"[erin] /target @bob 100k {typed}", "out of range")


def test_a_target_month_in_range_is_set(team: Chat) -> None:
    assert "2028-11" in team.say("[erin] /target @bob 100k 2028-11")


def test_contract_payment_and_plan_dates_stay_within_twenty_years(team: Chat) -> None:
    team.say("/lead add Acme Trading value=100k")
    refused(
        team, "/contract L1 100k signed=0001-01-01", "between Sun 26 Nov 2006 and Mon 26 Nov 2046"
    )
    refused(team, "/contract L1 100k end=9999-12-31", "can't be right")
    assert "C1 for L1" in team.say("/contract L1 100k signed=2016-05-01 end=2036-04-30")
    refused(team, "/contract C1 end=9999-12-31", "can't be right")
    refused(team, "/plan C1 50%@0001-01-01 50%@2026-12-31", "can't be right")
    refused(team, "/plan C1 50%@2026-12-01 50%@9999-12-31", "can't be right")
    assert "2 instalments" in team.say("/plan C1 50%@2026-12-01 50%@2036-04-30")
    refused(team, "/paid C1 10k 0001-01-01", "can't be right")
    refused(team, "/paid C1 10k 1970-01-01", "can't be right")
    assert "received" in team.say("/paid C1 10k 2016-06-01")  # a payment may be long past
    refused(team, "/receivables snooze C1 9999-12-31", "too far ahead")


def test_an_imported_next_follow_up_from_year_1_or_9999_is_a_rejected_row(
    team: Chat, tmp_path: Path
) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "Name,Next follow-up\n"
        "Orion,0001-01-01\n"
        "Vega,9999-12-31\n"
        "Sirius,2026-11-20\n"  # overdue in the old CRM: history, kept as it was
    )
    report = import_file(team, path, owner="@carol")
    assert report[1:] == [
        "row 2: Orion rejected — date 0001-01-01 is not between 2006-11-26 and 2028-11-26",
        "row 3: Vega rejected — date 9999-12-31 is not between 2006-11-26 and 2028-11-26",
        "row 4: created L1 Sirius → carol",
        "3 rows: 1 created, 0 merged as duplicates, 2 rejected.",
    ]
