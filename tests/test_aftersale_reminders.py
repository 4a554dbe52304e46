"""After-sales nudges with the injected clock: instalments coming due across a month end and on a
leap day, overdue money every day until paid or snoozed (and to the manager past the SLA),
renewals, care contacts after a win, a delivery and per customer grade, quiet hours and the team's
settings."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete

from models.aftersale import CarePlan
from models.db import unit_of_work
from reminders.worker import Worker
from tests.chat import Chat
from tests.test_exchange import import_file
from tests.test_scans import at

SOON = "Payments due soon"
OVERDUE = "Payments overdue"
MANAGER = "payments overdue past"
RENEWAL = "Contracts up for renewal"
CARE = "After-sales care due"


def pushed(chat: Chat, name: str, title: str) -> list[str]:
    """The messages `name` received that hold a section titled `title`."""
    return [push for push in chat.pushes(name) if title in push]


def sections(chat: Chat, name: str, title: str) -> list[list[str]]:
    """The `title` sections of what `name` received (a message may hold several kinds of nudge)."""
    found = []
    for push in pushed(chat, name, title):
        lines = push.splitlines()
        start = next(i for i, line in enumerate(lines) if title in line)
        end = next(
            (i for i in range(start + 1, len(lines)) if not lines[i].startswith("· ")), len(lines)
        )
        found.append(lines[start:end])
    return found


def run_worker(chat: Chat) -> None:
    """The worker's scans and delivery at the clock's moment (its digests: another file's
    subject)."""
    worker = Worker(chat.engine, chat.clock, chat.delivery)
    for team_id in worker.team_ids():
        worker.scan_team(team_id)
    chat.deliver()


def scan_days(chat: Chat, *days: tuple[int, int, int], hour: int = 9) -> None:
    """Scan twice on each day (a second run must add nothing)."""
    for year, month, day in days:
        chat.clock.set(at(year, month, day, hour))
        run_worker(chat)
        run_worker(chat)


def test_due_soon_across_a_month_end_then_overdue_and_the_days_are_a_setting(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("/contract L1 100k")
    chat.say("/plan C1 50%@2026-12-01 50%@2027-03-01")
    scan_days(chat, (2026, 11, 27))
    assert pushed(chat, "alice", SOON) == []
    scan_days(
        chat, (2026, 11, 28), (2026, 11, 30), (2026, 12, 1)
    )  # 3 days ahead, across the month end
    assert sections(chat, "alice", SOON) == [
        ["📅 Payments due soon (1)", "· C1 #1 Acme Trading — $50,000 due Tue 1 Dec (in 3d)"]
    ]
    assert "[Record payment C1 → /paid C1]" in pushed(chat, "alice", SOON)[0]
    scan_days(chat, (2026, 12, 2))
    [late] = pushed(chat, "alice", OVERDUE)
    assert "· C1 #1 Acme Trading — $50,000 overdue since Tue 1 Dec (1d)" in late
    chat.say("/paid C1 50k")

    assert chat.say("[erin] /team config instalment_due_days=5") == "⚙️ Saved: instalment_due_days=5"
    scan_days(chat, (2027, 2, 23))
    assert len(pushed(chat, "alice", SOON)) == 1
    scan_days(chat, (2027, 2, 24))  # 1 Mar 2027 less 5 days (February has 28)
    assert "· C1 #2 Acme Trading — $50,000 due Mon 1 Mar (in 5d)" in pushed(chat, "alice", SOON)[-1]
    assert len(pushed(chat, "alice", OVERDUE)) == 1


def test_a_leap_day_due_date_and_a_care_contact_due_on_it(team: Chat) -> None:
    chat = team
    chat.clock.set(at(2028, 1, 30, 10))
    chat.say("/lead add Leap Co")
    chat.say("/contract L1 60k")
    chat.say("/plan C1 100%@2028-02-29")
    assert (
        chat.say("/care L1 kickoff done grade=A")
        == "🤝 L1 Leap Co: care logged. Next care: Tue 29 Feb (grade A, every 30 days)."
    )

    scan_days(chat, (2028, 2, 25))
    assert pushed(chat, "alice", SOON) == []
    scan_days(chat, (2028, 2, 26), (2028, 2, 28))
    [soon] = pushed(chat, "alice", SOON)
    assert "· C1 #1 Leap Co — $60,000 due Tue 29 Feb (in 3d)" in soon
    assert pushed(chat, "alice", CARE) == []
    scan_days(chat, (2028, 2, 29))
    assert sections(chat, "alice", CARE) == [
        ["🤝 After-sales care due (1)", "· L1 Leap Co — grade A (every 30 days), due Tue 29 Feb"]
    ]
    assert "[Log care L1 → /care L1]" in pushed(chat, "alice", CARE)[0]
    assert pushed(chat, "alice", OVERDUE) == []  # due today is not late yet

    scan_days(chat, (2028, 3, 1), (2028, 3, 2), (2028, 3, 3))
    overdue = pushed(chat, "alice", OVERDUE)
    assert ["(1d)" in overdue[0], "(2d)" in overdue[1], "(3d)" in overdue[2]] == [True, True, True]
    assert "· C1 #1 Leap Co — $60,000 overdue since Tue 29 Feb (1d)" in overdue[0]
    [to_bob] = pushed(chat, "bob", MANAGER)  # 3 days late is past the SLA of 2, once
    assert "· C1 #1 Leap Co (alice) — $60,000, 3d overdue" in to_bob
    assert len(pushed(chat, "alice", CARE)) == 1  # one care nudge per due date


def test_renewal_nudge_the_contracts_days_before_its_end_unless_renewed(team: Chat) -> None:
    chat = team
    for line in (
        "/lead add Acme Trading",
        "/contract L1 100k end=2027-01-31",
        "/lead add Beta Foods",
        "/contract L2 40k end=2027-01-15",
    ):
        chat.say(line)
    chat.clock.set(at(2026, 12, 10))
    chat.say("/contract L2 45k start=2027-01-16 end=2028-01-15")  # Beta renewed early
    scan_days(chat, (2026, 12, 16), (2026, 12, 31))
    assert pushed(chat, "alice", RENEWAL) == []
    scan_days(chat, (2027, 1, 1), (2027, 1, 2))
    assert sections(chat, "alice", RENEWAL) == [
        ["🔁 Contracts up for renewal (1)", "· C1 Acme Trading — ends Sun 31 Jan (in 30d)"]
    ]
    assert "[Renewal contract L1 → /contract L1]" in pushed(chat, "alice", RENEWAL)[0]


def test_care_after_a_win_after_a_delivery_and_per_grade(team: Chat) -> None:
    chat = team
    for line in (
        "/lead add Acme Trading",
        "/lead won L1 50k",
        "/lead add Beta Foods",
        "/contract L2 40k delivered=2026-12-10",
        "[erin] /team config care_days_c=120",
    ):
        assert chat.reply(line).ok, line
    scan_days(chat, (2026, 12, 2))
    assert pushed(chat, "alice", CARE) == []
    scan_days(chat, (2026, 12, 3))  # a week after the win (care_after_won_days)
    [first] = pushed(chat, "alice", CARE)
    assert (
        "· L1 Acme Trading — grade B (every 60 days), due Thu 3 Dec" in first
        and "Beta" not in first
    )
    scan_days(chat, (2026, 12, 10))  # Beta's first care is on its delivery
    assert (
        "· L2 Beta Foods — grade B (every 60 days), due Thu 10 Dec"
        in pushed(chat, "alice", CARE)[-1]
    )
    assert (
        chat.say("/care L1 visited, they want a second line grade=C via=visit")
        == "🤝 L1 Acme Trading: care logged. Next care: Fri 9 Apr 2027 (grade C, every 120 days)."
    )
    scan_days(chat, (2027, 4, 8))
    assert len(pushed(chat, "alice", CARE)) == 2
    scan_days(chat, (2027, 4, 9))
    assert (
        "· L1 Acme Trading — grade C (every 120 days), due Fri 9 Apr"
        in pushed(chat, "alice", CARE)[-1]
    )


def test_quiet_hours_hold_the_nudge_to_one_morning_message_and_snooze_quiets_it(team: Chat) -> None:
    chat = team
    chat.clock.set(at(2026, 11, 26, 21))
    chat.say("/lead add Acme Trading")
    chat.say("/contract L1 100k signed=11/20")
    chat.say("/plan C1 100%@signing")  # already late at 21:00
    run_worker(chat)
    scan_days(chat, (2026, 11, 27), hour=0)
    assert pushed(chat, "alice", OVERDUE) == []
    chat.clock.set(at(2026, 11, 27, 8, 30))
    run_worker(chat)
    [morning] = pushed(chat, "alice", OVERDUE)
    # Written in the night of the 26th, read on the 27th: worded for the morning it arrives.
    assert "overdue since Fri 20 Nov (7d)" in morning

    assert (
        chat.say("/receivables snooze C1 2d")
        == "😴 C1 · Acme Trading: payment nudges resume Sun 29 Nov."
    )
    scan_days(chat, (2026, 11, 28))
    assert len(pushed(chat, "alice", OVERDUE)) == 1
    scan_days(chat, (2026, 11, 29))
    assert "(9d)" in pushed(chat, "alice", OVERDUE)[-1]
    assert len(pushed(chat, "alice", OVERDUE)) == 2


def test_customers_won_by_import_or_without_a_care_plan_are_still_cared_for(
    team: Chat, tmp_path: Path
) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("/lead won L1 50k")
    with unit_of_work(chat.engine) as session:  # as a lead won before care plans existed
        session.execute(delete(CarePlan))
    path = tmp_path / "crm.csv"
    path.write_text("Name,Status,Won Amount\nVega,won,95000\nSirius,open,\n", encoding="utf-8")
    assert import_file(chat, path, owner="@carol")[-1] == (
        "2 rows: 2 created, 0 merged as duplicates, 0 rejected."
    )
    scan_days(chat, (2026, 12, 2))
    assert pushed(chat, "alice", CARE) == pushed(chat, "carol", CARE) == []
    scan_days(chat, (2026, 12, 3))  # a week after the win and the import
    assert "· L1 Acme Trading — grade B (every 60 days), due Thu 3 Dec" in pushed(
        chat, "alice", CARE
    )[0]
    [vega] = pushed(chat, "carol", CARE)
    assert "· L2 Vega — grade B (every 60 days), due Thu 3 Dec" in vega and "Sirius" not in vega


def test_the_digest_lists_a_customer_never_contacted_after_the_first_care_date(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("/lead won L1 50k")
    chat.clock.set(at(2026, 12, 3, 18))  # the first care contact is due today: not late yet
    assert "🤝" not in chat.say("[erin] /report today")
    chat.clock.set(at(2026, 12, 4, 18))
    assert "🤝 Customers without care 1: L1 Acme Trading (alice, B, 8d)" in chat.say(
        "[erin] /report today"
    )
    chat.say("/care L1 called, all good")
    assert "🤝" not in chat.say("[erin] /report today")
