"""Input at its edges, as a team types it: names that are only symbols and digits are nobody's
duplicate, and dates that cannot be meant (0001-01-01, 9999-12-31, a follow-up last year) are
refused with the reason, in the team's language, changing nothing."""

from __future__ import annotations

import pytest

from models.normalize import normalize_company
from tests.chat import Chat


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
