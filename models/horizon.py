"""How far from today a typed date can be meant. A next follow-up in 9999 or a payment received in
the year 1 is a slip of the keyboard, not a plan: each kind of date has a window, and a date outside
it is refused with the window named, before anything changes."""

from __future__ import annotations

from datetime import date

from models.errors import DomainError

PLAN_YEARS = 2  # follow-ups, snoozes, targets: nobody plans a customer call further ahead
RECORD_YEARS = 20  # contracts, payments, instalments: a long contract, and its history


def years_from(day: date, years: int) -> date:
    """The same day `years` later (earlier when negative); 29 February becomes the 28th."""
    year = min(max(day.year + years, date.min.year), date.max.year)
    return (
        day.replace(year=year, day=28)
        if (day.month, day.day) == (2, 29)
        else day.replace(year=year)
    )


def latest_plan(today: date) -> date:
    """The furthest day a follow-up, a snooze or a target may be set for."""
    return years_from(today, PLAN_YEARS)


def require_plannable(day: date, today: date) -> None:
    """Refuse a follow-up, snooze or other plan set beyond `latest_plan`, naming the last day."""
    if day > latest_plan(today):
        raise DomainError("date.too_far_ahead", date=day, latest=latest_plan(today))


def record_window(today: date) -> tuple[date, date]:
    """The first and last day a contract's, an instalment's or a payment's date may fall on."""
    return years_from(today, -RECORD_YEARS), years_from(today, RECORD_YEARS)
