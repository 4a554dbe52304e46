"""Assignment rules for leads managers add (`/team config assign=round_robin|manual|least_loaded`,
the old `author|pool|balanced` still understood) and the daily pool claim limit per rep. In the
`team` fixture alice, carol and dan are reps, bob the manager, erin an admin."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from models.db import unit_of_work
from models.tables import AuditEvent, Lead, Member
from tests.chat import Chat
from tests.test_concurrency import ROUNDS, race, texts

SH = ZoneInfo("Asia/Shanghai")


def owners(chat: Chat, text: str) -> str:
    found = re.search(r"— (\w+), stage", text)
    assert found, text
    return found.group(1)


def test_round_robin_hands_a_managers_leads_to_the_reps_in_turn(team: Chat) -> None:
    chat = team
    assert chat.say("[erin] /team config assign=round_robin") == "⚙️ Saved: assignment=round_robin"
    got = [owners(chat, chat.say(f"[bob] /lead add Customer {n}")) for n in range(4)]
    assert got == ["alice", "carol", "dan", "alice"]
    assert chat.pushes("carol")[-1].startswith("📥 L2 Customer 1 is yours now (from bob).")
    assert "L5 Own — yours" in chat.say("[carol] /lead add Own")  # a rep owns what they add
    assert "L6 Named — dan" in chat.say("[bob] /lead add Named owner=@dan")  # a named owner wins

    # Only bob's own reps, once he has some; the turn goes on from where it was.
    chat.say("[erin] /team role @carol rep manager=@bob")
    chat.say("[erin] /team role @dan rep manager=@bob")
    got = [owners(chat, chat.say(f"[bob] /lead add More {n}")) for n in range(3)]
    assert got == ["carol", "dan", "carol"]
    with unit_of_work(chat.engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == "add").order_by(col(AuditEvent.id))
        added = list(session.exec(query))
    assert [event.after.get("assignment") for event in added][:4] == ["round_robin"] * 4


def test_least_loaded_manual_pool_and_the_old_names(team: Chat) -> None:
    chat = team
    chat.say("[carol] /lead add Carol's")
    chat.say("[carol] /lead add Carol's too")
    chat.say("/lead add Alice's")
    assert chat.say("[erin] /team config assign=least_loaded") == "⚙️ Saved: assignment=least_loaded"
    assert owners(chat, chat.say("[bob] /lead add First")) == "dan"
    assert owners(chat, chat.say("[bob] /lead add Second")) in ("alice", "dan")
    assert chat.say("[erin] /team config assign=author") == "⚙️ Saved: assignment=manual"
    assert "— yours" in chat.say("[bob] /lead add Mine")
    assert chat.say("[erin] /团队 配置 分配规则=轮流") == "⚙️ Saved: assignment=round_robin"
    assert chat.say("[erin] /team config assign=balanced") == "⚙️ Saved: assignment=least_loaded"
    assert chat.say("[erin] /team config assign=pool") == "⚙️ Saved: assignment=pool"
    assert "— pool" in chat.say("[bob] /lead add Pooled")
    before = chat.snapshot()
    wrong = chat.say("[erin] /team config assign=random")
    assert "“random” is not one of: manual, round_robin, least_loaded, pool." in wrong
    assert chat.snapshot() == before


def test_a_rep_claims_up_to_the_daily_limit(team: Chat) -> None:
    chat, clock = team, team.clock
    assert chat.say("[erin] /team config claim_limit=2") == "⚙️ Saved: claim_limit=2"
    assert "claim_limit: 2" in chat.say("/team config")
    for n in range(5):
        chat.say(f"[bob] /lead add Pool {n} owner=pool")
    assert "L1 Pool 0 is yours now" in chat.say("[dan] /lead claim L1")
    assert "claimed, it is yours now" in chat.say("[dan] /lead transfer L2")  # a claim too
    before = chat.snapshot()
    refused = chat.say("[dan] /lead claim L3")
    assert refused == ("You've claimed 2 leads from the pool today — the team's daily limit. "
                       "Ask your manager to assign more.")
    assert chat.snapshot() == before
    assert "L3 Pool 2 is yours now" in chat.say("[carol] /lead claim L3")  # per rep
    assert "L4 Pool 3 is yours now" in chat.say("[bob] /lead claim L4")  # managers are not limited
    clock.set(datetime(2026, 11, 27, 9, tzinfo=SH))  # a new day in the team's timezone
    assert "L5 Pool 4 is yours now" in chat.say("[dan] /lead claim L5")


def test_a_rep_racing_two_claims_past_the_limit_gets_one(team: Chat) -> None:
    chat = team
    chat.say("[erin] /team config claim_limit=1")
    for round_no in range(ROUNDS):
        first, second = 2 * round_no + 1, 2 * round_no + 2
        chat.say(f"[bob] /lead add Pool {first} owner=pool")
        chat.say(f"[bob] /lead add Pool {second} owner=pool")
        chat.clock.set(datetime(2026, 11, 26 + round_no, 9, tzinfo=SH))  # a fresh day each round
        lines = [f"[dan] /lead claim L{first}", f"[dan] /lead claim L{second}"]
        answers = texts(race(chat.engine, chat.clock, lines))
        assert sum("is yours now" in text for text in answers) == 1, answers
        assert sum("the team's daily limit" in text for text in answers) == 1, answers
        with unit_of_work(chat.engine) as session:
            owned = session.exec(select(Lead).where(col(Lead.number).in_([first, second]),
                                                    col(Lead.owner_id).is_not(None))).all()
        assert len(owned) == 1


def test_two_managers_adding_at_once_take_different_turns(team: Chat) -> None:
    chat = team
    chat.say("[frank] /help")
    chat.say("[erin] /team role @frank manager")
    chat.say("[erin] /team config assign=round_robin")
    for round_no in range(ROUNDS):
        answers = texts(race(chat.engine, chat.clock, [f"[bob] /lead add Race {round_no} bob",
                                                       f"[frank] /lead add Race {round_no} frank"]))
        assert all(text.startswith("✅") for text in answers), answers
    # Each manager's own turn went alice → carol → dan → … without skipping or repeating.
    with unit_of_work(chat.engine) as session:
        query = select(AuditEvent).where(AuditEvent.action == "add").order_by(col(AuditEvent.id))
        events = list(session.exec(query))
    with unit_of_work(chat.engine) as session:
        names = {m.id: m.name for m in session.exec(select(Member))}
        by_manager: dict[str, list[str]] = {}
        for event in events:
            by_manager.setdefault(names[event.actor_id], []).append(names[event.after["owner_id"]])
    cycle = ["alice", "carol", "dan"]
    for got in by_manager.values():
        assert got == [cycle[i % 3] for i in range(ROUNDS)], by_manager
