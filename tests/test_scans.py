"""The reminder scans as the team lives them: build state through chat, move the clock, run the worker
once, and read what each person was pushed. Every nudge kind, quiet hours, batching, two timezones
(with their DST changes) and two scans racing each other."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from models import audit
from models.db import unit_of_work
from models.tables import Quote, Team
from reminders.scans import ScanReport, run_scans
from reminders.worker import Worker, WorkerReport
from tests.chat import Chat

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")

OVERDUE = "Follow-ups overdue"
OVERDUE_MANAGER = "follow-ups overdue past"
STUCK = "Deals without progress"
STUCK_MANAGER = "Stuck deals in your team"
WAITING = "Approvals waiting for you"
ESCALATED = "Approvals escalated to you"
POOL_WARNING = "Back to the pool tomorrow"
POOL_RETURNED = "Returned to the pool"


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 0, tz: ZoneInfo = SH) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz)


def run_worker(chat: Chat) -> WorkerReport:
    """One catch-up pass of the worker at the chat clock's moment: scans, digests, delivery."""
    return asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def pushed(chat: Chat, name: str, title: str) -> list[str]:
    return [push for push in chat.pushes(name) if title in push]


# --- overdue follow-ups -------------------------------------------------------------------------

def test_overdue_follow_up_nudges_the_owner_once_per_due_date_and_snooze_quiets_it(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("/follow L1 called, send the brochure next=fri")  # Fri 27 Nov

    clock.set(at(2026, 11, 27, 17))  # due today: not overdue yet
    run_worker(chat)
    assert pushed(chat, "alice", OVERDUE) == []

    clock.set(at(2026, 11, 28))
    run_worker(chat)
    run_worker(chat)  # a second scan at the same moment pushes nothing new
    clock.set(at(2026, 11, 28, 15))
    run_worker(chat)  # nor a later scan the same day
    [nudge] = pushed(chat, "alice", OVERDUE)
    assert "Follow-ups overdue (1)" in nudge and "L1 Acme Trading — due Fri 27 Nov (1d ago)" in nudge
    assert "[Log follow-up L1 → /follow L1]" in nudge and "[Snooze 1d → /lead snooze L1 1d]" in nudge

    snoozed = chat.say("/lead snooze L1 2d")
    assert "nudges resume Mon 30 Nov" in snoozed and "Next follow-up stays Fri 27 Nov" in snoozed
    clock.set(at(2026, 11, 29))
    run_worker(chat)
    assert len(pushed(chat, "alice", OVERDUE)) == 1

    clock.set(at(2026, 11, 30))  # the snooze ended with the follow-up still not done: nudged again
    run_worker(chat)
    assert len(pushed(chat, "alice", OVERDUE)) == 2
    assert "L1 Acme Trading — due Fri 27 Nov (3d ago)" in pushed(chat, "alice", OVERDUE)[-1]
    clock.set(at(2026, 12, 1))
    run_worker(chat)
    assert len(pushed(chat, "alice", OVERDUE)) == 2

    chat.say("/follow L1 no answer, try again next=thu")  # Thu 3 Dec
    clock.set(at(2026, 12, 3, 19))
    run_worker(chat)
    assert len(pushed(chat, "alice", OVERDUE)) == 2
    clock.set(at(2026, 12, 4))
    run_worker(chat)
    assert len(pushed(chat, "alice", OVERDUE)) == 3
    assert "due Thu 3 Dec (1d ago)" in pushed(chat, "alice", OVERDUE)[-1]
    # The snooze only quieted it: 3 days late on 30 Nov, past the SLA, so the manager heard once.
    [escalated] = pushed(chat, "bob", OVERDUE_MANAGER)
    assert "L1 Acme Trading (alice) — 3d overdue" in escalated


def test_overdue_past_the_sla_goes_to_the_owners_manager_or_else_every_manager(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team role @dan manager")
    chat.say("[erin] /team role @carol rep manager=@bob")
    chat.say("/lead add Acme Trading")
    chat.say("/follow L1 call back next=fri")
    chat.say("[carol] /lead add Beta Foods")
    chat.say("[carol] /follow L2 call back next=fri")

    clock.set(at(2026, 11, 29))  # two days overdue: the owners only
    run_worker(chat)
    assert len(pushed(chat, "alice", OVERDUE)) == 1 and len(pushed(chat, "carol", OVERDUE)) == 1
    assert pushed(chat, "bob", OVERDUE_MANAGER) == [] and pushed(chat, "dan", OVERDUE_MANAGER) == []

    clock.set(at(2026, 11, 30))  # three days: past the default SLA of 2
    run_worker(chat)
    run_worker(chat)
    [to_bob] = pushed(chat, "bob", OVERDUE_MANAGER)
    assert "overdue past 2 days (2)" in to_bob
    assert "L1 Acme Trading (alice) — 3d overdue" in to_bob and "L2 Beta Foods (carol) — 3d overdue" in to_bob
    [to_dan] = pushed(chat, "dan", OVERDUE_MANAGER)  # alice has no manager of her own: every manager
    assert "L1 Acme Trading (alice)" in to_dan and "Beta Foods" not in to_dan  # carol reports to bob
    # The owners were not told again.
    assert len(pushed(chat, "alice", OVERDUE)) == 1 and len(pushed(chat, "carol", OVERDUE)) == 1


def test_three_overdue_leads_of_one_owner_make_one_message_with_buttons(team: Chat) -> None:
    chat, clock = team, team.clock
    for number, name in enumerate(("Acme Trading", "Beta Foods", "Gamma Steel"), start=1):
        chat.say(f"/lead add {name}")
        chat.say(f"/follow L{number} sent a sample next=fri")
    chat.say("[carol] /lead add Delta Paper")
    chat.say("[carol] /follow L4 first call next=fri")

    clock.set(at(2026, 11, 28))
    report = run_worker(chat)
    assert report.scans.overdue == 4 and report.scans.messages == 2
    [nudge] = chat.pushes("alice")
    assert "Follow-ups overdue (3)" in nudge
    for number, name in enumerate(("Acme Trading", "Beta Foods", "Gamma Steel"), start=1):
        assert f"L{number} {name} — due Fri 27 Nov" in nudge
        assert f"[Log follow-up L{number} → /follow L{number}]" in nudge
        assert f"[Snooze 1d → /lead snooze L{number} 1d]" in nudge
    assert "Delta" not in nudge and "Delta Paper" in chat.pushes("carol")[0]
    # The buttons are commands that work as typed.
    assert "nudges resume Sun 29 Nov" in chat.say("/lead snooze L2 1d")
    assert "L1 follow-up logged" in chat.say("/follow L1 called them next=+3d")


# --- stuck leads --------------------------------------------------------------------------------

def test_stuck_leads_nudge_the_owner_and_give_the_manager_one_line_per_lead(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team config stale_days.proposal=14")
    chat.say("/lead add Acme Trading")  # L1 stays in Lead
    chat.say("/lead add Beta Foods value=20k contact=Li")  # L2 goes on to Proposal
    chat.say("/follow L2 met their buyer")
    for _ in range(3):
        chat.say("/lead next L2")
    assert "Proposal" in chat.say("/lead show L2")
    chat.say("[carol] /lead add Gamma Steel")  # L3
    chat.say("[carol] /lead add Delta Paper")  # L4

    clock.set(at(2026, 12, 3, 8, 59))  # 6 days 23 h 59 min: not yet
    run_worker(chat)
    assert pushed(chat, "alice", STUCK) == [] and pushed(chat, "bob", STUCK_MANAGER) == []

    clock.set(at(2026, 12, 3, 9, 1))
    run_worker(chat)
    run_worker(chat)
    [to_alice] = pushed(chat, "alice", STUCK)
    assert "(1)" in to_alice and "L1 Acme Trading — 7 days in Lead" in to_alice and "Beta" not in to_alice
    assert "[Log follow-up L1 → /follow L1]" in to_alice
    [to_carol] = pushed(chat, "carol", STUCK)
    assert "L3 Gamma Steel" in to_carol and "L4 Delta Paper" in to_carol
    [to_bob] = pushed(chat, "bob", STUCK_MANAGER)
    lines = [line for line in to_bob.splitlines() if line.startswith("· ")]
    assert lines == ["· L1 Acme Trading (alice) — 7 days in Lead", "· L3 Gamma Steel (carol) — 7 days in Lead",
                     "· L4 Delta Paper (carol) — 7 days in Lead"]

    clock.set(at(2026, 12, 10, 9, 1))  # Proposal has its own 14 days
    run_worker(chat)
    assert len(pushed(chat, "alice", STUCK)) == 2
    latest = pushed(chat, "alice", STUCK)[-1]
    assert "L2 Beta Foods — 14 days in Proposal" in latest and "Acme" not in latest
    assert "L2 Beta Foods (alice) — 14 days in Proposal" in pushed(chat, "bob", STUCK_MANAGER)[-1]


# --- approvals ----------------------------------------------------------------------------------

def test_a_waiting_approval_reminds_the_approver_then_escalates_to_admins_on_the_record(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading value=100k")
    chat.say("/quote L1 80k")  # Thu 09:00: bob is asked at once
    assert "[Approve → /quote approve Q1]" in chat.pushes("bob")[-1]

    clock.set(at(2026, 11, 26, 12, 59))
    run_worker(chat)
    assert pushed(chat, "bob", WAITING) == []

    clock.set(at(2026, 11, 26, 13, 1))  # four working hours
    run_worker(chat)
    run_worker(chat)
    [reminder] = pushed(chat, "bob", WAITING)
    assert "Q1 · Acme Trading · $80,000 · by alice — waiting 4 working h" in reminder
    assert "[Approve Q1 → /quote approve Q1]" in reminder and "[Reject Q1 → /quote reject Q1]" in reminder
    assert pushed(chat, "erin", ESCALATED) == []

    clock.set(at(2026, 11, 26, 16, 59))
    run_worker(chat)
    assert pushed(chat, "erin", ESCALATED) == []
    clock.set(at(2026, 11, 26, 17, 2))  # as long again: the next level up, the admins
    run_worker(chat)
    [escalated] = pushed(chat, "erin", ESCALATED)
    assert "Q1 · Acme Trading · $80,000 · by alice — waiting 8 working h" in escalated
    assert pushed(chat, "alice", ESCALATED) == []  # alice is a rep (and the requester)

    clock.set(at(2026, 11, 30))  # nobody above the admins: no escalation; bob's reminder of the day
    run_worker(chat)
    run_worker(chat)
    assert len(pushed(chat, "bob", WAITING)) == 2 and len(pushed(chat, "erin", ESCALATED)) == 1
    again = pushed(chat, "bob", WAITING)[-1]
    assert "Q1 · Acme Trading · $80,000 · by alice — waiting 46 working h" in again

    with unit_of_work(chat.engine) as session:
        quote = session.exec(select(Quote)).one()
        events = audit.history(session, team_id=quote.team_id, entity="quote", entity_id=quote.id or 0, limit=20)
    recorded = {event.action: event.after for event in events if event.action in ("remind", "escalate")}
    assert recorded["remind"]["to"] == ["bob"] and recorded["escalate"]["to"] == ["erin"]
    assert "Q1 approved by erin" in chat.say("[erin] /quote approve Q1")


def test_approval_wait_counts_working_hours_only(team: Chat) -> None:
    chat, clock = team, team.clock
    clock.set(at(2026, 11, 26, 18))
    chat.say("/lead add Acme Trading value=100k")
    chat.say("/quote L1 80k")  # 2 working hours left today, then quiet 20:00–08:30

    clock.set(at(2026, 11, 27, 8))  # 14 hours later, only 2 of them working
    run_worker(chat)
    clock.set(at(2026, 11, 27, 10, 29))
    run_worker(chat)
    assert pushed(chat, "bob", WAITING) == []
    clock.set(at(2026, 11, 27, 10, 31))
    run_worker(chat)
    assert "waiting 4 working h" in pushed(chat, "bob", WAITING)[0]


# --- pool return --------------------------------------------------------------------------------

def test_untouched_leads_are_warned_then_go_back_to_the_pool(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team config pool_return_days=5")
    chat.say("/lead add Acme Trading")  # untouched from now on
    chat.say("/lead add Beta Foods")
    clock.set(at(2026, 11, 28))
    chat.say("/follow L2 they called back")  # touched on Saturday

    clock.set(at(2026, 11, 30, 9, 1))  # four days untouched: tomorrow it goes
    run_worker(chat)
    run_worker(chat)
    [warning] = pushed(chat, "alice", POOL_WARNING)
    assert "L1 Acme Trading — untouched 4 days" in warning and "Beta" not in warning
    assert "[Log follow-up L1 → /follow L1]" in warning
    assert "Acme" not in chat.say("[bob] /lead list pool")

    clock.set(at(2026, 12, 1, 9, 1))
    run_worker(chat)
    run_worker(chat)
    [returned] = pushed(chat, "alice", POOL_RETURNED)
    assert "L1 Acme Trading" in returned and "[Claim back L1 → /lead claim L1]" in returned
    pool = chat.say("[bob] /lead list pool")
    assert "L1 Acme Trading" in pool and "Beta" not in pool
    assert "L1" not in chat.say("/lead list mine")
    assert len(pushed(chat, "alice", POOL_WARNING)) == 1
    # Someone claims it from the pool; it is theirs now.
    assert "L1" in chat.say("[carol] /lead claim L1") and "L1 Acme Trading" in chat.say("[carol] /lead list mine")


# --- quiet hours --------------------------------------------------------------------------------

def test_a_nudge_found_at_night_waits_for_the_morning_but_an_approval_request_does_not(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading value=100k")
    chat.say("/follow L1 sent a sample next=fri")

    clock.set(at(2026, 11, 28, 22))
    report = run_worker(chat)
    assert report.scans.overdue == 1 and pushed(chat, "alice", OVERDUE) == []
    chat.deliver()
    assert pushed(chat, "alice", OVERDUE) == []

    chat.say("/quote L1 80k")  # a person asking a person: delivered at 22:00
    assert "[Approve → /quote approve Q1]" in chat.pushes("bob")[-1]

    clock.set(at(2026, 11, 29, 8, 29))
    chat.deliver()
    assert pushed(chat, "alice", OVERDUE) == []
    clock.set(at(2026, 11, 29, 8, 31))
    chat.deliver()
    chat.deliver()
    assert len(pushed(chat, "alice", OVERDUE)) == 1


def test_quiet_weekends_hold_nudges_until_monday_morning(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team config quiet_weekends=yes")
    chat.say("/lead add Acme Trading")
    chat.say("/follow L1 sent a sample next=fri")

    clock.set(at(2026, 11, 28, 10))  # Saturday morning
    run_worker(chat)
    for moment in (at(2026, 11, 29, 10), at(2026, 11, 30, 8, 29)):
        clock.set(moment)
        chat.deliver()
        assert pushed(chat, "alice", OVERDUE) == []
    clock.set(at(2026, 11, 30, 8, 31))
    chat.deliver()
    assert len(pushed(chat, "alice", OVERDUE)) == 1


# --- timezones ----------------------------------------------------------------------------------

def test_new_york_team_gets_overdue_and_quiet_hours_by_its_own_clock(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team config timezone=America/New_York")
    clock.set(at(2026, 11, 29, 12, tz=NY))
    chat.say("/lead add Acme Trading")
    chat.say("/follow L1 call back next=tomorrow")  # Mon 30 Nov, New York

    clock.set(at(2026, 12, 1, 0, 30, tz=SH))  # already Tuesday in Shanghai, Monday 11:30 in New York
    assert run_worker(chat).scans.overdue == 0

    clock.set(at(2026, 12, 1, 5, tz=NY))  # 18:00 in Shanghai, but night in New York
    assert run_worker(chat).scans.overdue == 1
    assert pushed(chat, "alice", OVERDUE) == []
    clock.set(at(2026, 12, 1, 8, 29, tz=NY))
    chat.deliver()
    assert pushed(chat, "alice", OVERDUE) == []
    clock.set(at(2026, 12, 1, 8, 31, tz=NY))
    chat.deliver()
    assert "due Mon 30 Nov (1d ago)" in pushed(chat, "alice", OVERDUE)[0]


@pytest.mark.parametrize(("created", "due_label", "before", "overdue_at", "held", "delivered"), [
    # DST ends Sun 1 Nov 2026 02:00 EDT → 01:00 EST: the morning is at 13:30 UTC, not 12:30.
    (at(2026, 10, 30, 12, tz=NY), "Sat 31 Oct", at(2026, 10, 31, 23, 30, tz=NY), at(2026, 11, 1, 0, 30, tz=NY),
     datetime(2026, 11, 1, 12, 45, tzinfo=UTC), datetime(2026, 11, 1, 13, 31, tzinfo=UTC)),
    # DST starts Sun 14 Mar 2027 02:00 EST → 03:00 EDT: the morning is at 12:30 UTC, not 13:30.
    (at(2027, 3, 12, 12, tz=NY), "Sat 13 Mar", at(2027, 3, 13, 23, 30, tz=NY), at(2027, 3, 14, 0, 30, tz=NY),
     datetime(2027, 3, 14, 12, 29, tzinfo=UTC), datetime(2027, 3, 14, 12, 31, tzinfo=UTC)),
], ids=["dst-ends", "dst-starts"])
def test_new_york_across_a_dst_change(team: Chat, created: datetime, due_label: str, before: datetime,
                                      overdue_at: datetime, held: datetime, delivered: datetime) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team config timezone=America/New_York")
    clock.set(created)
    chat.say("/lead add Acme Trading")
    assert due_label in chat.say("/follow L1 call back next=tomorrow")

    clock.set(before)  # the last half hour of the due day in New York
    assert run_worker(chat).scans.overdue == 0
    clock.set(overdue_at)  # just past midnight, New York: overdue, but quiet
    assert run_worker(chat).scans.overdue == 1
    clock.set(held)
    chat.deliver()
    assert pushed(chat, "alice", OVERDUE) == []
    clock.set(delivered)
    chat.deliver()
    [nudge] = pushed(chat, "alice", OVERDUE)
    assert f"due {due_label} (1d ago)" in nudge


# --- two scans at once --------------------------------------------------------------------------

def test_two_scans_at_the_same_moment_push_each_person_exactly_once(team: Chat) -> None:
    chat, clock = team, team.clock
    for number, name in enumerate(("Acme Trading", "Beta Foods", "Gamma Steel"), start=1):
        chat.say(f"/lead add {name} value=100k")
        chat.say(f"/follow L{number} sent a sample next=fri")
    chat.say("[carol] /lead add Delta Paper")
    chat.say("/quote L1 80k")
    before = {name: len(chat.pushes(name)) for name in ("alice", "bob", "carol", "dan", "erin")}

    clock.set(at(2026, 12, 4, 10))  # overdue past the SLA, stuck, and the approval waited days
    with unit_of_work(chat.engine) as session:
        team_id = session.exec(select(Team.id)).one()
    barrier = threading.Barrier(2)
    reports: list[ScanReport] = []
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            barrier.wait(timeout=10)
            with unit_of_work(chat.engine) as session:
                reports.append(run_scans(session, session.get(Team, team_id), clock.now()))
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    # the loser wrote nothing; nudges are one message per person and run (alice: overdue and stuck
    # together; carol; bob: his team's overdue and stuck together, the approval on its own)
    assert sorted(report.messages for report in reports) == [0, 4]
    chat.deliver()
    new = {name: chat.pushes(name)[before[name]:] for name in before}
    assert [OVERDUE in push for push in new["alice"]].count(True) == 1
    assert [STUCK in push for push in new["alice"]].count(True) == 1
    assert [STUCK in push for push in new["carol"]].count(True) == 1
    assert len(pushed(chat, "bob", OVERDUE_MANAGER)) == 1 and len(pushed(chat, "bob", STUCK_MANAGER)) == 1
    assert len(pushed(chat, "bob", WAITING)) == 1
    assert all(len(messages) == len(set(messages)) for messages in new.values())
