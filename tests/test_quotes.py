"""Quotes and their approval: the policy as a table, then the chat around it — who is asked, who may
decide, what the requester is told, what each person's list shows. In the `team` fixture alice,
carol and dan are reps, bob is the manager and erin the admin."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from models.clock import FixedClock
from models.config import ApprovalLevel, ApprovalPolicy
from models.db import unit_of_work
from models.quotes import levels_needed
from models.tables import ApprovalStep
from tests.chat import Chat

DEFAULT = ApprovalPolicy()  # auto below 50k; manager up to 500k; admin above; discount > 20% raises one level
TIGHT = ApprovalPolicy(auto_below=Decimal(10_000), discount_raise_pct=Decimal(10),
                       levels=[ApprovalLevel(role="manager", up_to=Decimal(100_000)), ApprovalLevel(role="admin")])
ONE_LEVEL = ApprovalPolicy(levels=[ApprovalLevel(role="admin")])
THREE_LEVELS = ApprovalPolicy(levels=[ApprovalLevel(role="manager", up_to=Decimal(100_000)),
                                      ApprovalLevel(role="admin", up_to=Decimal(1_000_000)),
                                      ApprovalLevel(role="admin")])


@pytest.mark.parametrize(("policy", "amount", "discount", "levels"), [
    (DEFAULT, "0.01", "0", 0),
    (DEFAULT, "49999.99", "0", 0),
    (DEFAULT, "50000", "0", 1),           # the limit itself needs a manager
    (DEFAULT, "500000", "0", 1),
    (DEFAULT, "500000.01", "0", 2),
    (DEFAULT, "80000000", "0", 2),
    (DEFAULT, "100000", "20", 1),         # exactly the raise threshold does not raise
    (DEFAULT, "100000", "20.01", 2),
    (DEFAULT, "49999", "25", 1),          # a deep discount on a small quote still needs a manager
    (DEFAULT, "800000", "25", 2),         # already the top level: nothing left to raise
    (DEFAULT, "800000", "100", 2),
    (TIGHT, "9999", "0", 0),
    (TIGHT, "10000", "0", 1),
    (TIGHT, "100000", "10", 1),
    (TIGHT, "100001", "0", 2),
    (TIGHT, "20000", "15", 2),
    (TIGHT, "5000", "10.5", 1),
    (ONE_LEVEL, "60000", "0", 1),
    (ONE_LEVEL, "60000", "50", 1),
    (ONE_LEVEL, "100", "0", 0),
    (THREE_LEVELS, "100000", "0", 1),
    (THREE_LEVELS, "1000000", "0", 2),
    (THREE_LEVELS, "1000000", "30", 3),
    (THREE_LEVELS, "5000000", "0", 3),
])
def test_levels_needed(policy: ApprovalPolicy, amount: str, discount: str, levels: int) -> None:
    assert levels_needed(policy, Decimal(amount), Decimal(discount)) == levels


def test_below_the_limit_a_quote_is_approved_automatically(team: Chat) -> None:
    team.say("/lead add Acme")
    answer = team.say("/quote L1 49,999")
    assert "Q1 for L1 Acme: $49,999. Approved automatically (below $50,000)." in answer
    assert team.pushes("bob") == [] and team.pushes("erin") == []
    assert "Q1 was approved automatically" in team.say("[bob] /quote approve Q1")
    assert "Quotes: Q1 $49,999 approved" in team.say("/lead show L1")


def test_manager_level_asks_the_manager_and_tells_the_requester(team: Chat) -> None:
    team.say("/lead add Acme")
    asked = team.say("/quote L1 80k discount=5% first order")
    assert "Q1 for L1 Acme: $80,000 (−5%). Needs a manager — asked bob." in asked
    [card] = team.pushes("bob")
    assert "Q1 · Acme · $80,000 (−5%) · by alice · L1 stage Lead\nfirst order" in card
    assert "[Approve → /quote approve Q1]  [Reject → /quote reject Q1]" in card
    assert team.pushes("erin") == []

    assert "You can't decide your own quote." in team.say("/quote approve Q1")
    assert "Only managers and admins decide quotes." in team.say("[carol] /quote approve Q1")
    approved = team.say("[bob] /quote approve Q1 fine")
    assert "✅ Q1 approved by bob · 09:00 — fine" in approved
    assert "Q1 approved by bob · 09:00" in team.pushes("alice")[-1] and "L1 Acme" in team.pushes("alice")[-1]
    assert "Q1 was already approved by bob at 09:00." in team.say("[erin] /quote approve Q1")
    assert "Q1 was already approved by bob at 09:00." in team.say("[erin] /quote reject Q1 too late")


def test_a_requesters_own_manager_is_asked_rather_than_every_manager(team: Chat) -> None:
    team.say("[erin] /team role @dan manager")
    team.say("[erin] /team role @carol rep manager=@dan")
    team.say("[carol] /lead add Acme")
    assert "asked dan." in team.say("[carol] /quote L1 80k")
    assert team.pushes("bob") == [] and len(team.pushes("dan")) == 1


def test_above_the_manager_limit_two_levels_decide_in_order(team: Chat) -> None:
    team.say("/lead add Acme")
    asked = team.say("/quote L1 600k")
    assert "Needs 2 approvals up to admin — asked bob first." in asked and "one level up" not in asked
    assert team.pushes("erin") == []
    first = team.say("[bob] /quote approve Q1")
    assert "Q1: approved by bob · 09:00. Now waiting for an admin — asked erin." in first
    assert "[Approve → /quote approve Q1]" in team.pushes("erin")[-1]
    # not decided yet: alice hears where it is, not an outcome
    assert team.pushes("alice") == ["✅ Q1 approved by bob (manager) — now waiting for an admin\n"
                                    "L1 Acme · $600,000"]
    assert "Q1 needs an approval at admin level; yours doesn't reach it." in team.say("[bob] /quote approve Q1")
    assert "Quotes: Q1 $600,000 waiting" in team.say("/lead show L1")
    assert "✅ Q1 approved by erin" in team.say("[erin] /quote approve Q1")
    assert "Q1 approved by erin" in team.pushes("alice")[-1]


def test_an_admin_deciding_first_signs_every_level_at_once(team: Chat) -> None:
    team.say("/lead add Acme")
    team.say("/quote L1 600k")
    assert "✅ Q1 approved by erin · 09:00" in team.say("[erin] /quote approve Q1")
    assert "Q1 was already approved by erin at 09:00." in team.say("[bob] /quote approve Q1")
    assert len(team.pushes("alice")) == 1


def test_a_deep_discount_raises_the_level_by_one(team: Chat) -> None:
    team.say("/lead add Acme")
    assert "Needs a manager — asked bob." in team.say("/quote L1 100k discount=20%")
    raised = team.say("/quote L1 100k discount=25%")
    assert "Q2 for L1 Acme: $100,000 (−25%). Needs 2 approvals up to admin (discount above 20%, one level up)" in raised
    assert "Needs a manager (discount above 20%, one level up) — asked bob." in team.say("/quote L1 30k discount=30%")
    assert "“150%” is not a percentage" in team.say("/quote L1 30k discount=150%")


def test_rejecting_needs_a_reason_and_the_requester_hears_why(team: Chat) -> None:
    team.say("/lead add Acme")
    team.say("/quote L1 600k")
    assert "Missing a reason." in team.say("[bob] /quote reject Q1")
    rejected = team.say("[bob] /quote reject Q1 discount too deep")
    assert "❌ Q1 rejected by bob · 09:00: discount too deep" in rejected
    told = team.pushes("alice")[-1]
    assert "Q1 rejected by bob" in told and "discount too deep" in told and "L1 Acme · $600,000" in told
    assert "Q1 was already rejected by bob at 09:00." in team.say("[erin] /quote approve Q1")
    assert "Quotes: Q1 $600,000 rejected" in team.say("/lead show L1")
    assert team.pushes("erin") == []  # the admin level was never reached


def test_each_person_lists_what_concerns_them_with_buttons_only_for_what_they_may_decide(team: Chat) -> None:
    team.say("/lead add Acme")
    team.say("[carol] /lead add Zenith")
    team.say("/quote L1 80k")       # Q1 manager level
    team.say("/quote L1 600k")      # Q2 admin level after the manager
    team.say("[carol] /quote L2 20k")  # Q3 automatic
    team.say("[bob] /quote approve Q2")

    alice = team.reply("/quote list")
    assert [row[0] for row in alice.table[1:]] == ["Q2", "Q1"] and alice.buttons == []
    assert alice.table[1][4] == "waiting (admin)" and alice.table[2][4] == "waiting (manager)"
    carol = team.reply("[carol] /quote list")
    assert [row[0] for row in carol.table[1:]] == ["Q3"] and carol.table[1][4] == "approved"
    assert "Quotes waiting: none." in team.say("[carol] /quote list pending")
    assert "Quotes waiting: none." in team.say("[dan] /quote list pending")

    bob = team.reply("[bob] /quote list pending")
    assert [row[0] for row in bob.table[1:]] == ["Q2", "Q1"]
    assert [b.command.strip() for b in bob.buttons] == ["/quote approve Q1", "/quote reject Q1"]
    erin = team.reply("[erin] /quote list pending")
    assert [b.command.strip() for b in erin.buttons] == ["/quote approve Q2", "/quote reject Q2",
                                                         "/quote approve Q1", "/quote reject Q1"]
    assert "Q3" in team.say("[erin] /quote list") and "Q3" not in team.say("[erin] /quote list pending")
    # a button is its command: clicking it is typing it
    assert "Q1 approved by bob" in team.say(f"[bob] {bob.buttons[0].command}")


def test_thresholds_are_team_settings(team: Chat) -> None:
    saved = team.say("[erin] /team config auto_below=10k manager_limit=100k discount_raise=10%")
    assert "auto_below=$10,000" in saved and "manager_limit=$100,000" in saved
    shown = team.say("[bob] /team config")
    assert "auto_below: $10,000" in shown and "manager_limit: $100,000" in shown and "discount_raise: 10%" in shown
    team.say("/lead add Acme")
    assert "Approved automatically (below $10,000)" in team.say("/quote L1 9,999")
    assert "Needs a manager — asked bob." in team.say("/quote L1 10k")
    assert "Needs 2 approvals up to admin — asked bob first." in team.say("/quote L1 150k")
    assert "(discount above 10%, one level up)" in team.say("/quote L1 20k discount=15%")
    assert "Only an admin can change the team." in team.say("[bob] /team config auto_below=1")
    assert "“lots” is not an amount" in team.say("[erin] /team config manager_limit=lots")


def test_quoting_needs_a_lead_you_may_change_and_an_amount(team: Chat) -> None:
    team.say("[carol] /lead add Zenith")
    before = team.snapshot()
    assert "L1 belongs to carol" in team.say("/quote L1 80k")
    assert "Missing an amount." in team.say("[carol] /quote L1")
    assert "no lead L7" in team.say("[carol] /quote L7 80k")
    assert "no quote Q9" in team.say("[bob] /quote approve Q9")
    assert team.snapshot() == before


def test_a_manager_who_was_not_asked_cannot_decide_another_managers_reports_quote(team: Chat) -> None:
    team.say("[erin] /team role @carol rep manager=@bob")
    team.say("[frank] /help")
    team.say("[erin] /team role @frank manager")
    team.say("[carol] /lead add Acme")
    team.say("[carol] /quote L1 80k")
    refused = team.reply("[frank] /quote approve Q1")
    assert not refused.ok and "waiting for bob" in refused.text
    assert "approved by bob" in team.say("[bob] /quote approve Q1")


def test_a_single_admins_own_big_quote_is_not_left_waiting_for_nobody(chat: Chat) -> None:
    chat.say("/team config locale=en")
    chat.say("/lead add Acme")
    answer = chat.say("/quote L1 900k")
    assert "own authority" in answer
    assert "approved" in chat.say("/quote list")


def test_a_rep_never_signs_their_own_quote_it_waits_for_an_admin_to_join(engine: Engine,
                                                                        clock: FixedClock) -> None:
    """The deployment names boss admin, who has not joined: bob, the first to write, is a rep."""
    chat = Chat(engine, clock, user="bob", admins=["console:boss"])
    chat.say("/lead add Acme")
    answer = chat.say("/quote L1 9000000 discount=90%")
    assert "own authority" not in answer
    assert "nobody in the team may approve it yet" in answer
    assert "admin joining the team (boss)" in answer
    with unit_of_work(engine) as session:
        steps = session.execute(select(ApprovalStep.status).order_by(ApprovalStep.level)).scalars()
        assert steps.all() == ["waiting", "queued"]
    assert "can't decide your own quote" in chat.say("/quote approve Q1")
    assert "waiting" in chat.say("/quote list")

    # boss joins (his first command fails): the waiting quote's card goes to him all the same
    assert "no quote Q9" in chat.say("[boss] /quote approve Q9")
    [card] = [push for push in chat.pushes("boss") if "Q1" in push]
    assert "Acme" in card and "/quote approve Q1" in card
    assert "Q1 approved by boss" in chat.say("[boss] /quote approve Q1")
    assert "Q1 approved by boss" in chat.pushes("bob")[-1]
    chat.say("[carol] /help")  # someone else joining later is asked nothing
    assert not chat.pushes("carol")


def test_a_new_manager_is_not_sent_a_quote_already_asked_of_an_approver_who_batches(
        team: Chat) -> None:
    """bob takes his approvals in one message per run: Q1 was still asked of him, so making dan
    a manager sends dan nothing, as it would had bob taken them at once."""
    team.say("[bob] /me notify approvals digest")
    team.say("[carol] /lead add Acme")
    assert "asked bob" in team.say("[carol] /quote L1 120k")
    team.say("[erin] /team role @dan manager")
    assert [push for push in team.pushes("dan") if "Q1" in push] == []


def test_a_waiting_quote_is_explained_in_the_requesters_language(engine: Engine,
                                                                clock: FixedClock) -> None:
    chat = Chat(engine, clock, user="wang", admins=["console:boss", "telegram:12345"])
    chat.say("/线索 新建 华为技术")
    answer = chat.say("/报价 L1 900万")
    assert "暂时等待" in answer and "管理员加入团队（boss）" in answer and "12345" not in answer
