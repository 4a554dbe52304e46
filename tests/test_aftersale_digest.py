"""The digests' after-sales lines against figures worked out by hand: money collected vs. plan,
collection rate, DSO, overdue receivables by owner with ageing, renewals coming up and customers
past their care interval — in the daily and weekly digest, on demand with `/report`, and narrowed
for a rep."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.chat import Chat
from tests.test_scans import at, run_worker


def act(chat: Chat, moment: datetime, *lines: str) -> None:
    chat.clock.set(moment)
    for line in lines:
        assert chat.reply(line).ok, line


def money_lines(text: str) -> dict[str, str]:
    """The after-sales lines of a digest, by their emoji."""
    return {
        line.split(" ", 1)[0]: line
        for line in text.splitlines()
        if line.startswith(("💰", "💸", "🔁", "🤝"))
    }


def digest(chat: Chat, title: str) -> str:
    [found] = [
        push
        for push in chat.pushes("console")
        if push.startswith("📊") and title in push.splitlines()[0]
    ]
    return found


@pytest.fixture
def books(team: Chat) -> Chat:
    """C1 Acme (alice, 100k, won 19 Oct, grade A, 50% due Fri 20 Nov + 50% Fri 27 Nov); C2 Beta
    (carol, 90k signed in August: 30k each on 15 Aug, 20 Sep, 20 Oct); C3 Gamma (alice, 10k, paid
    last year, ends Sat 19 Dec); C4 Delta (dan, 200k signed Thu 26 Nov: half then, half on 31 Jan).
    Payments: carol 10k Mon, alice 50k Wed, dan 100k Thu, alice 20k Fri."""
    chat = team
    act(
        chat,
        at(2026, 10, 19, 10),
        "/lead add Acme",
        "/contract L1 100k",
        "/care L1 grade=A",
        "/plan C1 50%@2026-11-20 50%@2026-11-27",
    )
    act(
        chat,
        at(2026, 11, 23, 10),
        "[carol] /lead add Beta",
        "[carol] /contract L2 90k signed=2026-08-01",
        "[carol] /plan C2 30k@2026-08-15 30k@2026-09-20 30k@2026-10-20",
        "[carol] /paid C2 10k",
        "/lead add Gamma",
        "/contract L3 10k signed=2025-12-20 start=2025-12-20 end=2026-12-19",
        "/plan C3 100%@signing",
        "/paid C3 10k 2025-12-21",
    )
    act(chat, at(2026, 11, 25, 10), "/paid C1 50k")
    act(
        chat,
        at(2026, 11, 26, 10),
        "[dan] /lead add Delta",
        "[dan] /contract L4 200k",
        "[dan] /plan C4 50%@signing 50%@2027-01-31",
        "[dan] /paid C4 100k",
    )
    act(chat, at(2026, 11, 27, 10), "/paid C1 20k")
    return chat


def test_the_daily_digest_and_report_today(books: Chat) -> None:
    chat = books
    chat.clock.set(at(2026, 11, 26, 18))
    # Thursday: 100k came in against C4's 100k due. Due so far 250k (C1 #1 50k, C2 90k, C3 10k,
    # C4 #1 100k),
    # of it paid 170k: 68%. Unpaid 80k over the day's 200k signed × 1 day: DSO 0.4 → 0.
    assert (
        money_lines(chat.say("[erin] /report today"))["💰"]
        == "💰 Collected today $100,000 / plan $100,000 (100%)"
        " · of all that fell due so far, 68% is paid · DSO 0 days"
    )

    run_worker(chat)
    chat.clock.set(at(2026, 11, 27, 18))
    run_worker(chat)
    got = money_lines(digest(chat, "Sales daily · Fri 27 Nov"))
    # Friday: alice paid 20k of C1 #2's 50k due today. Due so far 300k, paid 190k: 63%. Nothing
    # signed: no DSO.
    assert (
        got["💰"] == "💰 Collected today $20,000 / plan $50,000 (40%)"
        " · of all that fell due so far, 63% is paid"
    )
    # Overdue on Friday (C1 #2 is due today, not late): C2's three instalments, 104, 68 and 38
    # days late.
    assert (
        got["💸"]
        == "💸 Overdue receivables $80,000: carol $80,000 (31–60 $30,000, 61–90 $30,000, "
        "90+ $20,000)"
    )
    assert got["🔁"] == "🔁 Renewals due 1: C3 Gamma (alice, ends Sat 19 Dec)"
    assert (
        got["🤝"] == "🤝 Customers without care 1: L1 Acme (alice, A, 39d)"
    )  # grade A: 30 days; won 19 Oct
    assert money_lines(chat.say("[erin] /report today")) == got


def test_the_weekly_digest_a_reps_report_and_chinese(books: Chat) -> None:
    chat = books
    chat.clock.set(at(2026, 11, 29, 23))
    asked = money_lines(chat.say("[erin] /report week"))
    # carol's own week: her 10k against nothing due this week; of her 90k due, 10k paid (11%).
    carol = money_lines(chat.say("[carol] /report week"))
    assert carol["💰"] == (
        "💰 Collected this week $10,000 / plan $0 · of all that fell due so far, 11% is paid"
    )
    assert (
        carol["💸"]
        == "💸 Overdue receivables $80,000: carol $80,000 (31–60 $30,000, 61–90 $30,000, "
        "90+ $20,000)"
    )
    assert "🔁" not in carol and "🤝" not in carol

    chat.clock.set(at(2026, 11, 30, 9))
    run_worker(chat)
    got = money_lines(digest(chat, "Sales weekly · Mon 23 Nov – Sun 29 Nov"))
    # Collected 10k + 50k + 100k + 20k = 180k against 150k due in the week (C1 #2 50k, C4 #1
    # 100k): 120%.
    # Due by Sunday 300k, paid 190k: 63%. Unpaid 110k over 200k signed in 7 days: DSO 3.85 → 4.
    assert (
        got["💰"]
        == "💰 Collected this week $180,000 / plan $150,000 (120%)"
        " · of all that fell due so far, 63% is paid · "
        "DSO 4 days"
    )
    # Monday: C1 #2's remaining 30k is now 3 days late.
    assert got["💸"] == (
        "💸 Overdue receivables $110,000: carol $80,000 (31–60 $30,000, 61–90 $30,000, 90+ $20,000)"
        " | alice $30,000 (0–30 $30,000)"
    )
    assert got["🔁"] == "🔁 Renewals due 1: C3 Gamma (alice, ends Sat 19 Dec)"
    assert got["🤝"] == "🤝 Customers without care 1: L1 Acme (alice, A, 42d)"
    assert asked["💰"] == got["💰"]  # `/report week` on Sunday night said the same

    chat.say("[erin] /team config locale=zh")
    zh = money_lines(chat.say("[erin] /报表 本月"))
    # November: 180k collected against C1's 100k and C4 #1's 100k due (90%); still 63% of all due
    # paid; 110k unpaid over 200k signed in the month × 30 days: DSO 16.5 → 17 (halves round up).
    # The team kept its currency.
    assert zh["💰"] == (
        "💰 本月回款 US$180,000 / 计划 US$200,000（90%） · 截至目前到期的款项已收 63% · 应收周转 17 天"
    )
    assert zh["💸"].startswith(
        "💸 逾期应收 US$110,000：carol US$80,000（31–60 US$30,000、61–90 US$30,000、90+ US$20,000）"
    )
    assert zh["🤝"] == "🤝 超期未回访客户 1：L1 Acme（alice，A 级，42 天）"
