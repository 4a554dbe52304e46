"""The money rules after the signature, without a database: a plan splits its total exactly,
payments in any order and any sizes never lose or invent a cent, plan lines parse as people type
them, ageing buckets, and payment dates that mean the past."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.aftersale import nearest_date, parse_plan, past_date
from commands.context import UsageError
from models.aftersale import PlanItem, allocate, bucket, split_plan
from models.errors import DomainError

TODAY = date(2026, 11, 26)


# --- splitting a plan ----------------------------------------------------------------------------


def shares(*percents: str) -> list[PlanItem]:
    return [PlanItem(share=Decimal(p), milestone="signing") for p in percents]


def test_a_percentage_plan_splits_exactly_with_the_rounding_remainder_on_the_last_instalment() -> (
    None
):
    # ¥100.00 in thirds: 33.33 + 33.33 + 33.34.
    assert split_plan(10_000, shares("33.33", "33.33", "33.34")) == [3_333, 3_333, 3_334]
    # 1 cent short of a round split: the cents the first two lose land on the last.
    assert split_plan(99_999, shares("30", "40", "30")) == [29_999, 39_999, 30_001]
    assert split_plan(500_000_00, shares("30", "40", "30")) == [150_000_00, 200_000_00, 150_000_00]


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=10**15),
    cuts=st.lists(st.integers(min_value=1, max_value=9_999), min_size=0, max_size=8, unique=True),
)
def test_any_percentage_plan_adds_up_to_the_total_to_the_cent(total: int, cuts: list[int]) -> None:
    # Shares in hundredths of a percent that add up to exactly 100%.
    points = [0, *sorted(cuts), 10_000]
    percents = [Decimal(b - a) / 100 for a, b in zip(points, points[1:], strict=False)]
    items = [PlanItem(share=p, milestone="signing") for p in percents]
    try:
        amounts = split_plan(total, items)
    except DomainError as error:  # a share too small to be worth a cent of this total
        assert error.key == "plan.zero"
        return
    assert sum(amounts) == total
    for share, amount in zip(percents[:-1], amounts[:-1], strict=False):
        exact = Decimal(total) * share / 100
        assert (
            exact - 1 < amount <= exact
        )  # every instalment but the last is its share, rounded down
    assert amounts[-1] >= Decimal(total) * percents[-1] / 100  # the last one takes the remainder


def test_plans_that_do_not_add_up_are_refused_with_the_figures() -> None:
    with pytest.raises(DomainError) as caught:
        split_plan(100_000, shares("30", "40", "20"))
    assert caught.value.key == "plan.not_100" and caught.value.params == {"percent": "90"}
    with pytest.raises(DomainError) as caught:
        split_plan(
            100_000, [PlanItem(amount=30_000, due_on=TODAY), PlanItem(amount=50_000, due_on=TODAY)]
        )
    assert caught.value.key == "plan.not_total"
    assert caught.value.params == {"sum": 80_000, "total": 100_000, "diff": 20_000}
    with pytest.raises(DomainError) as caught:
        split_plan(
            100_000,
            [
                PlanItem(share=Decimal(30), milestone="signing"),
                PlanItem(amount=70_000, due_on=TODAY),
            ],
        )
    assert caught.value.key == "plan.mixed"
    with pytest.raises(DomainError) as caught:
        split_plan(100_000, shares("0", "100"))
    assert caught.value.key == "plan.zero" and caught.value.params == {"n": 1}
    assert split_plan(
        100_000,
        [PlanItem(amount=40_000, due_on=TODAY), PlanItem(amount=60_000, milestone="acceptance")],
    ) == [40_000, 60_000]


# --- allocating payments -------------------------------------------------------------------------


def pay_all(plan: list[int], payments: list[int]) -> tuple[list[int], int]:
    """Apply payments one after another as `record_payment` does; what each instalment got, and
    the credit."""
    paid = [0] * len(plan)
    credit = 0
    for amount in payments:
        open_ = [i for i, owed in enumerate(plan) if paid[i] < owed]
        if not open_:
            continue  # refused: the plan is fully paid
        parts, excess = allocate([plan[i] - paid[i] for i in open_], amount)
        for i, part in zip(open_, parts, strict=True):
            paid[i] += part
        credit += excess
    return paid, credit


def test_a_payment_goes_to_the_oldest_instalment_first_partly_and_beyond() -> None:
    assert allocate([50_000, 100_000], 30_000) == ([30_000, 0], 0)  # partial
    assert allocate([50_000, 100_000], 80_000) == (
        [50_000, 30_000],
        0,
    )  # settles one, starts the next
    assert allocate([50_000, 100_000], 200_000) == (
        [50_000, 100_000],
        50_000,
    )  # over-payment is credit
    assert allocate([], 10_000) == ([], 10_000)


@settings(max_examples=300, deadline=None)
@given(
    plan=st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=6),
    payments=st.lists(st.integers(min_value=1, max_value=2 * 10**9), min_size=1, max_size=8),
    data=st.data(),
)
def test_payments_in_any_order_never_lose_or_invent_a_cent(
    plan: list[int], payments: list[int], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(payments))
    paid, credit = pay_all(plan, list(order))
    accepted = _accepted(plan, list(order))
    assert sum(paid) + credit == sum(
        accepted
    )  # every cent received is on an instalment or in credit
    assert all(
        0 <= got <= owed for got, owed in zip(paid, plan, strict=True)
    )  # no instalment over-filled
    assert sum(paid) == min(sum(plan), sum(accepted))
    # Whatever the order, the plan ends in the same place once the same money came in.
    if sum(accepted) == sum(_accepted(plan, payments)):
        assert paid == pay_all(plan, payments)[0]
    # Oldest first: an instalment is touched only once every earlier one is full.
    for i in range(1, len(plan)):
        assert paid[i] == 0 or paid[i - 1] == plan[i - 1]


def _accepted(plan: list[int], payments: list[int]) -> list[int]:
    """The payments `record_payment` takes: all until the plan is full; later ones are refused."""
    taken, total = [], 0
    for amount in payments:
        if total >= sum(plan):
            break
        taken.append(amount)
        total += amount
    return taken


# --- reading a plan as typed ---------------------------------------------------------------------


def test_plan_lines_parse_percentages_amounts_dates_and_milestones_in_both_languages() -> None:
    assert parse_plan(["30%@signing", "40%@2026-12-31", "30%@acceptance"], TODAY) == [
        PlanItem(share=Decimal(30), milestone="signing"),
        PlanItem(share=Decimal(40), due_on=date(2026, 12, 31)),
        PlanItem(share=Decimal(30), milestone="acceptance"),
    ]
    assert parse_plan(["50万@2026-12-31", "12.5万@验收", "¥1,000@交付"], TODAY) == [
        PlanItem(amount=50_000_000, due_on=date(2026, 12, 31)),
        PlanItem(amount=12_500_000, milestone="acceptance"),
        PlanItem(amount=100_000, milestone="delivery"),
    ]
    # Spaces around @, full-width percent signs and relative dates.
    assert parse_plan(["33.33％", "@", "签约", "66.67%@+30d"], TODAY) == [
        PlanItem(share=Decimal("33.33"), milestone="signing"),
        PlanItem(share=Decimal("66.67"), due_on=date(2026, 12, 26)),
    ]


@pytest.mark.parametrize(
    ("words", "key"),
    [
        (["30%"], "plan.bad_item"),
        (["30%@someday"], "plan.bad_when"),
        (["lots@signing"], "usage.bad_amount"),
        (["150%@signing"], "usage.bad_percent"),
        (["-5@signing"], "usage.bad_amount"),
        (["@signing"], "plan.bad_item"),
    ],
)
def test_plan_lines_that_are_not_plans_are_usage_errors(words: list[str], key: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_plan(words, TODAY)
    assert caught.value.key == key


# --- ageing and payment dates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "label"),
    [
        (0, "0–30"),
        (30, "0–30"),
        (31, "31–60"),
        (60, "31–60"),
        (61, "61–90"),
        (90, "61–90"),
        (91, "90+"),
        (400, "90+"),
    ],
)
def test_ageing_buckets(days: int, label: str) -> None:
    assert bucket(days) == label


def test_a_payment_date_means_the_latest_such_day_not_next_years() -> None:
    assert past_date("yesterday", TODAY) == date(2026, 11, 25)
    assert past_date("前天", TODAY) == date(2026, 11, 24)
    assert past_date("11/20", TODAY) == date(2026, 11, 20)  # not 20 Nov 2027
    assert past_date("12/1", TODAY) == date(2025, 12, 1)
    assert past_date("2027-01-05", TODAY) == date(2027, 1, 5)  # a year typed is taken as typed
    assert past_date("2/29", date(2028, 3, 1)) == date(2028, 2, 29)
    assert past_date("transfer", TODAY) is None
    # A contract date may be planned too: the nearest such day.
    assert nearest_date("12/10", TODAY) == date(2026, 12, 10)
    assert nearest_date("11/20", TODAY) == date(2026, 11, 20)
    assert nearest_date("2027-11-19", TODAY) == date(2027, 11, 19)
    assert nearest_date("+3d", TODAY) == date(2026, 11, 29)
