"""`/report` and `/target`: every number below is counted by hand from the two days of work that
`two_days` types in. Thu 26 Nov is the fixture's today; the week is Mon 23 – Sun 29 Nov."""

from __future__ import annotations

from models.clock import FixedClock
from tests.chat import Chat


def two_days(team: Chat, clock: FixedClock) -> None:
    """Thursday: alice wins L1 on an approved quote; carol's quotes are approved automatically and
    rejected. Friday: dan and carol add leads, carol loses one, alice asks for a quote still waiting."""
    for line in ["/lead add A1 value=100k",                 # L1 alice
                 "/lead add A2 value=50k",                  # L2 alice
                 "[carol] /lead add C1 value=200k",         # L3 carol
                 "/follow L1 call next=tomorrow",           # follow-up 1 (alice)
                 "/lead next L1",                           # L1 → Contacted
                 "[carol] /follow L3 visit next=tomorrow",  # follow-up 2 (carol); L3 due Fri 27
                 "/quote L1 80k",                           # Q1 → approved by bob
                 "[bob] /quote approve Q1",
                 "[carol] /quote L3 30k",                   # Q2 approved automatically
                 "[carol] /quote L3 120k",                  # Q3 → rejected by bob
                 "[bob] /quote reject Q3 too high",
                 "[bob] /target @alice 200k",
                 "[bob] /target @carol 500k",
                 "/lead won L1"]:                           # L1 won $80,000 (Q1)
        assert "❓" not in team.say(line), line
    clock.advance(days=1)  # Friday 27 Nov
    for line in ["[dan] /lead add D1 value=40k",             # L4 dan
                 "[carol] /lead add C2",                    # L5 carol
                 "[carol] /follow L5 no budget this year",  # follow-up 3 (carol)
                 "[carol] /lead lost L5 no budget",
                 "/quote L2 70k",                           # Q4 waits for bob from Fri 09:00
                 "[dan] /follow L4 intro next=tomorrow",    # follow-up 4 (dan); L4 due Sat 28
                 "[dan] /lead next L4"]:                    # L4 → Contacted
        assert "❓" not in team.say(line), line


def test_today_week_and_month_for_the_manager(team: Chat, clock: FixedClock) -> None:
    two_days(team, clock)
    today = team.say("[bob] /report")
    assert "Sales daily · Fri 27 Nov" in today
    assert ("New leads 2 · Follow-ups 2 · Quotes 1 asked, 1 waiting (oldest Q4, 0 working h)"
            " · Won $0") in today
    # reached at least: L1 (won: every stage), L4 (Contacted), L2, L3, L5 (Lead):
    # 5, 2, 1, 1, 1, 1; won 1
    assert ("Funnel  Lead 5 → Contacted 2 (40%) → Qualified 1 (50%) → Proposal 1 (100%)"
            " → Contract 1 (100%) → Delivery 1 (100%) → Won 1 (100%)") in today
    assert ("By rep  carol 1 follow-up · $0 won · month $0 / $500K (0%) | dan 1 follow-up · $0 won"
            " | alice 0 follow-ups · $0 won · month $80K / $200K (40%)") in today
    assert "Overdue" not in today and "Stuck" not in today  # L3 is due today, not overdue

    week = team.say("[bob] /report week")
    assert "Sales weekly · Mon 23 Nov – Sun 29 Nov" in week
    assert ("New leads 5 · Follow-ups 4 · Quotes 4 asked,"
            " 3 decided (2 approved, 1 rejected),"
            " 1 waiting (oldest Q4, 0 working h) · Won $80K") in week
    assert ("By rep  alice 1 follow-up · $80K won · month $80K / $200K (40%)"
            " | carol 2 follow-ups · $0 won · month $0 / $500K (0%) | dan 1 follow-up · $0 won") in week

    month = team.say("[bob] /report month")
    assert "Sales monthly · Sun 1 Nov – Mon 30 Nov" in month
    assert ("New leads 5 · Follow-ups 4 · Quotes 4 asked, 3 decided (2 approved, 1 rejected),"
            " 1 waiting") in month
    assert ("By rep  alice 1 follow-up · $80K won / $200K (40%) | carol 2 follow-ups · $0 won / $500K (0%)"
            " | dan 1 follow-up · $0 won") in month
    assert "Sales weekly" in team.say("[bob] /周报") and "“yearly” is not one of" in team.say("[bob] /report yearly")


def test_a_rep_sees_only_their_own_numbers_and_a_manager_may_pick_a_rep(team: Chat, clock: FixedClock) -> None:
    two_days(team, clock)
    alice = team.say("/report week")
    assert ("New leads 2 · Follow-ups 1 · Quotes 2 asked, 1 decided (1 approved),"
            " 1 waiting (oldest Q4, 0 working h)"
            " · Won $80K") in alice
    assert "Funnel  Lead 2 → Contacted 1 (50%) → Qualified 1 (100%)" in alice
    assert "By rep  alice 1 follow-up · $80K won · month $80K / $200K (40%)" in alice
    assert "carol" not in alice and "dan" not in alice
    assert "Only a manager can see someone else's report." in team.say("/report @carol")

    carol = team.say("[bob] /report week @carol")
    assert "Sales weekly · carol · Mon 23 Nov – Sun 29 Nov" in carol
    assert ("New leads 2 · Follow-ups 2 · Quotes 2 asked, 2 decided (1 approved, 1 rejected)"
            " · Won $0") in carol
    # L5 was lost in Lead
    assert "Funnel  Lead 2 → Contacted 0 (0%) → Qualified 0 → Proposal 0" in carol
    assert "By rep  carol 2 follow-ups · $0 won · month $0 / $500K (0%)" in carol
    assert "alice" not in carol and "Q4" not in carol


def test_overdue_stuck_and_waiting_lists_follow_the_clock(team: Chat, clock: FixedClock) -> None:
    two_days(team, clock)
    clock.advance(days=3)  # Monday 30 Nov
    monday = team.say("[bob] /report")
    assert "Sales daily · Mon 30 Nov" in monday
    # Q4 has waited since Fri 09:00: 11 + 11.5 + 11.5 + 0.5 working hours (quiet 20:00–08:30)
    assert ("New leads 0 · Follow-ups 0 · Quotes 0 asked, 1 waiting (oldest Q4, 34 working h)"
            " · Won $0") in monday
    assert "⚠️ Overdue follow-ups 2: L3 C1 (carol, 3d) · L4 D1 (dan, 2d)" in monday
    assert "Stuck" not in monday  # nothing has sat in a stage for 7 days yet
    assert "By rep  alice 0 follow-ups · $0 won · month $80K / $200K (40%) | carol 0 follow-ups" in monday
    assert "Overdue follow-ups 1: L3 C1 (carol, 3d)" in team.say("[carol] /report")
    assert "Overdue" not in team.say("/report")

    team.say("[erin] /team config stale_days.contacted=2")
    assert "🐢 Stuck 1: L4 D1 in Contacted 3d (dan)" in team.say("[bob] /report")

    clock.advance(days=4)  # Friday 4 Dec
    friday = team.say("[bob] /report")
    assert "1 waiting (oldest Q4, 80 working h)" in friday  # 34.5 + 11 + 3 × 11.5 + 0.5
    assert "Overdue follow-ups 2: L3 C1 (carol, 7d) · L4 D1 (dan, 6d)" in friday
    assert "🐢 Stuck 3: L2 A2 in Lead 8d (alice) · L3 C1 in Lead 8d (carol) · L4 D1 in Contacted 7d (dan)" in friday
    assert "By rep" not in friday  # nothing done today and no December targets


def test_targets_are_set_by_managers_and_shown_with_progress(team: Chat) -> None:
    assert "alice's target for 2026-11: $200,000." in team.say("[bob] /target @alice 200k")
    assert "Only a manager can set targets." in team.say("/target @alice 1m")
    assert "erin doesn't report to you" in team.say("[bob] /target @erin 1m")
    assert "“13” is not a month" in team.say("[bob] /target @alice 1m 13")
    team.say("/lead add Acme value=50k")
    team.say("/lead won L1")
    team.say("[carol] /lead add Zenith")
    team.say("[carol] /lead won L2 30k")
    progress = team.reply("/target")
    assert "Targets 2026-11" in progress.text
    assert progress.table[1:] == [["alice", "$50,000", "$200,000", "25%"]]  # a rep sees their own line
    assert team.reply("[bob] /target").table[1:] == [["alice", "$50,000", "$200,000", "25%"],
                                                      ["carol", "$30,000", "-", "-"]]

    assert "alice's target for 2026-12: $300,000." in team.say("[bob] /target @alice 300k 12")
    assert "alice's target for 2026-11: $250,000." in team.say("[bob] /target @alice 250k")  # replaces
    assert team.reply("/target 2026-12").table[1:] == [["alice", "$0", "$300,000", "0%"]]
    assert team.reply("/target").table[1] == ["alice", "$50,000", "$250,000", "20%"]
    assert "No targets or wins for 2027-01 yet" in team.say("/target 2027-01")
