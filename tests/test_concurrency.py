"""Real races: several threads, each with its own dispatcher and invocation, released together by
a barrier, on SQLite and (when configured) Postgres. Two people acting on one record at once get
exactly one outcome, the others a clear answer; short ids stay unique and gap-free per team."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from adapters.console import ConsoleAdapter, ConsoleSender, render
from commands import Dispatcher
from commands.types import Reply
from models.clock import FixedClock
from models.db import unit_of_work
from models.tables import AuditEvent, FollowUp, Lead, Member, Quote, Team
from reminders.outbox import OutboxDelivery
from tests.chat import Chat

ROUNDS = 5  # races on one record: cheap, so each is run this many times
BULK_ROUNDS = 3  # the twenty-thread races (numbering, a team joined at once)
TIMEOUT = 60  # seconds a whole race may take before the test calls it a hang


def race(
    engine: Engine,
    clock: FixedClock,
    lines: Sequence[str],
    *,
    team: str = "acme",
    teams: Sequence[str] | None = None,
) -> list[Reply]:
    """Dispatch every line from its own thread, all released at once; the replies in line order.

    Each thread builds its own dispatcher and invocation (as separate web workers would), waits at
    the barrier, then calls `dispatch`, the one door adapters use. `teams` gives each line its own
    console team; otherwise all go to `team`.
    """
    barrier = threading.Barrier(len(lines))

    def one(line: str, team_key: str) -> Reply:
        dispatcher = Dispatcher(engine, clock)
        adapter = ConsoleAdapter(dispatcher.dispatch, clock, team=team_key, user="alice")
        invocation = adapter.invocation(line)
        barrier.wait(timeout=TIMEOUT)
        return dispatcher.dispatch(invocation)

    keys = list(teams) if teams is not None else [team] * len(lines)
    with ThreadPoolExecutor(max_workers=len(lines)) as pool:
        futures = [pool.submit(one, line, key) for line, key in zip(lines, keys, strict=True)]
        return [future.result(timeout=TIMEOUT) for future in futures]


def texts(replies: Sequence[Reply]) -> list[str]:
    return [render(reply) for reply in replies]


def decisions_of(engine: Engine, team_key: str, number: int) -> tuple[Quote, list[AuditEvent]]:
    with unit_of_work(engine) as session:
        team = session.exec(select(Team).where(Team.key == team_key)).one()
        quote = session.exec(
            select(Quote).where(Quote.team_id == team.id, Quote.number == number)
        ).one()
        events = list(
            session.exec(
                select(AuditEvent).where(
                    AuditEvent.team_id == team.id,
                    AuditEvent.entity == "quote",
                    AuditEvent.entity_id == quote.id,
                    col(AuditEvent.action).in_(["approve", "reject"]),
                )
            )
        )
        return quote, events


def lead_numbers(engine: Engine, team_key: str) -> list[int]:
    with unit_of_work(engine) as session:
        team = session.exec(select(Team).where(Team.key == team_key)).one()
        return sorted(session.exec(select(Lead.number).where(Lead.team_id == team.id)))


@pytest.fixture
def managers(team: Chat) -> Chat:
    """The English team plus frank, a second manager, so two managers can race on one quote."""
    team.say("[frank] /help")
    assert "frank" in team.say("[erin] /team role @frank manager")
    return team


def _pending_quote(chat: Chat, round_no: int) -> int:
    """alice (a rep) adds a lead and asks for 80k: a manager must decide. Returns the Q number."""
    added = chat.say(f"/lead add Customer{round_no} Trading")
    lead = re.search(r"L(\d+) ", added)
    assert lead, added
    asked = chat.say(f"/quote L{lead.group(1)} 80k")
    quote = re.search(r"Q(\d+) ", asked)
    assert quote and "Needs a manager" in asked, asked
    return int(quote.group(1))


def test_two_managers_approving_at_once_yield_one_approval(managers: Chat) -> None:
    chat = managers
    for round_no in range(ROUNDS):
        q = _pending_quote(chat, round_no)
        pushed_before = len(chat.pushes("alice"))
        replies = race(
            chat.engine, chat.clock, [f"[bob] /quote approve Q{q}", f"[frank] /quote approve Q{q}"]
        )
        answers = texts(replies)

        winners = [i for i, text in enumerate(answers) if f"Q{q} approved by" in text]
        assert len(winners) == 1, answers
        winner = ("bob", "frank")[winners[0]]
        loser_text = answers[1 - winners[0]]
        assert answers[winners[0]].startswith(f"✅ Q{q} approved by {winner} · 09:00"), answers
        assert replies[winners[0]].ok and not replies[1 - winners[0]].ok
        assert f"Q{q} was already approved by {winner} at 09:00" in loser_text, answers

        quote, events = decisions_of(chat.engine, "acme", q)
        assert quote.status == "approved"
        assert len(events) == 1 and events[0].action == "approve"
        with unit_of_work(chat.engine) as session:
            decider = session.get(Member, quote.decided_by_id)
            assert decider is not None and decider.name == winner
            assert session.get(Member, events[0].actor_id).name == winner  # type: ignore[union-attr]

        # The requester hears about the decision once, from the winner.
        chat.deliver()
        told = chat.pushes("alice")[pushed_before:]
        assert [line for line in told if f"Q{q} " in line] == [
            answers[winners[0]] + f"\nL{q} Customer{round_no} Trading · $80,000"
        ]


def test_approve_and_reject_racing_yield_one_outcome(managers: Chat) -> None:
    chat = managers
    outcomes = Counter()
    for round_no in range(ROUNDS):
        q = _pending_quote(chat, round_no)
        replies = race(
            chat.engine,
            chat.clock,
            [f"[bob] /quote approve Q{q}", f"[frank] /quote reject Q{q} discount too deep"],
        )
        approved, rejected = texts(replies)
        assert sum(reply.ok for reply in replies) == 1, (approved, rejected)

        quote, events = decisions_of(chat.engine, "acme", q)
        assert len(events) == 1, [event.action for event in events]
        if replies[0].ok:
            outcomes["approve"] += 1
            assert approved.startswith(f"✅ Q{q} approved by bob · 09:00")
            assert f"Q{q} was already approved by bob at 09:00" in rejected
            assert quote.status == "approved" and events[0].action == "approve"
        else:
            outcomes["reject"] += 1
            assert rejected.startswith(f"❌ Q{q} rejected by frank · 09:00: discount too deep")
            assert f"Q{q} was already rejected by frank at 09:00" in approved
            assert quote.status == "rejected" and events[0].action == "reject"
            assert quote.decision_note == "discount too deep"

        # Whoever looks later sees the one outcome, and a further click changes nothing.
        listed = chat.say("[erin] /quote list")
        assert f"Q{q} " in listed and quote.status in listed
        again = chat.say(f"[erin] /quote approve Q{q}")
        assert f"Q{q} was already {quote.status} by" in again
        assert len(decisions_of(chat.engine, "acme", q)[1]) == 1
    assert sum(outcomes.values()) == ROUNDS


REPS = [f"rep{i}" for i in range(1, 9)]


def test_eight_reps_claiming_one_pool_lead_yield_one_owner(team: Chat) -> None:
    chat = team
    for rep in REPS:
        chat.say(f"[{rep}] /help")
    added = chat.say("[bob] /lead add Pooled Widgets owner=pool")
    assert "L1 Pooled Widgets" in added and "pool" in added, added

    previous = None
    for round_no in range(ROUNDS):
        if previous is not None:
            # The last winner puts it back; the race starts again from the pool.
            assert "back in the pool" in chat.say(f"[{previous}] /lead release L1")
        replies = race(chat.engine, chat.clock, [f"[{rep}] /lead claim L1" for rep in REPS])
        answers = texts(replies)

        winners = [
            REPS[i] for i, text in enumerate(answers) if "L1 Pooled Widgets is yours now" in text
        ]
        assert len(winners) == 1, answers
        winner = winners[0]
        refusals = [text for text in answers if "is yours now" not in text]
        assert len(refusals) == 7
        assert all(text == f"L1 is not in the pool: {winner} has it." for text in refusals), (
            refusals
        )
        assert sum(reply.ok for reply in replies) == 1

        assert f"owner {winner}" in chat.say("[bob] /lead show L1")
        with unit_of_work(chat.engine) as session:
            lead = session.exec(select(Lead).where(Lead.number == 1)).one()
            claims = list(
                session.exec(
                    select(AuditEvent).where(
                        AuditEvent.entity == "lead",
                        AuditEvent.entity_id == lead.id,
                        AuditEvent.action == "claim",
                    )
                )
            )
        assert len(claims) == round_no + 1  # one claim recorded per round, never two
        previous = winner


def _added_number(text: str, name: str) -> int:
    match = re.match(rf"✅ L(\d+) {re.escape(name)} — yours", text)
    assert match, text
    return int(match.group(1))


def test_twenty_concurrent_adds_get_numbers_one_to_twenty(
    engine: Engine, clock: FixedClock
) -> None:
    names = [f"Firm{chr(ord('A') + i)} Trading" for i in range(20)]
    for round_no in range(BULK_ROUNDS):
        key = f"team{round_no}"
        setup = Chat(engine, clock, team=key)
        setup.say("/team config locale=en")  # alice is the team's first member: its admin
        replies = race(engine, clock, [f"/lead add {name}" for name in names], team=key)
        answers = texts(replies)
        assert all(reply.ok for reply in replies), answers
        numbers = [_added_number(text, name) for text, name in zip(answers, names, strict=True)]
        assert sorted(numbers) == list(range(1, 21)), numbers
        assert lead_numbers(engine, key) == list(range(1, 21))
        # The next lead simply continues the sequence.
        assert setup.say("/lead add Latecomer Ltd").startswith("✅ L21 Latecomer Ltd")


def test_two_teams_adding_at_once_keep_their_own_numbering(
    engine: Engine, clock: FixedClock
) -> None:
    per_team = 8
    for round_no in range(BULK_ROUNDS):
        keys = (f"north{round_no}", f"south{round_no}")
        for key in keys:
            Chat(engine, clock, team=key).say("/team config locale=en")
        lines, teams, names = [], [], []
        for i in range(per_team):
            for key in keys:
                name = f"{key.capitalize()}Co{chr(ord('A') + i)}"
                lines.append(f"/lead add {name}")
                teams.append(key)
                names.append(name)
        answers = texts(race(engine, clock, lines, teams=teams))

        for key in keys:
            mine = [
                _added_number(text, name)
                for text, name, owner in zip(answers, names, teams, strict=True)
                if owner == key
            ]
            assert sorted(mine) == list(range(1, per_team + 1)), (key, mine)
            assert lead_numbers(engine, key) == list(range(1, per_team + 1))


def test_a_new_team_joined_by_many_at_once_gets_one_team_and_one_admin(
    engine: Engine, clock: FixedClock
) -> None:
    """The first member of a new team is its admin — also when twenty people arrive at once."""
    people = [f"user{i:02d}" for i in range(20)]
    for round_no in range(BULK_ROUNDS):
        key = f"fresh{round_no}"
        replies = race(engine, clock, [f"[{person}] /help" for person in people], team=key)
        assert all(reply.ok for reply in replies), texts(replies)
        with unit_of_work(engine) as session:
            found = list(session.exec(select(Team).where(Team.key == key)))
            assert len(found) == 1
            roles = Counter(session.exec(select(Member.role).where(Member.team_id == found[0].id)))
        assert roles == {"admin": 1, "rep": 19}, roles


def test_concurrent_quotes_get_numbers_one_to_n(team: Chat) -> None:
    chat = team
    for i in range(10):
        chat.say(f"/lead add Quoted{chr(ord('A') + i)} Ltd")
    replies = race(chat.engine, chat.clock, [f"/quote L{i + 1} {10 + i}k" for i in range(10)])
    answers = texts(replies)
    numbers = sorted(int(re.match(r"🧾 Q(\d+) for L", text).group(1)) for text in answers)  # type: ignore[union-attr]
    assert numbers == list(range(1, 11)), answers
    assert chat.say("/quote L1 5k").startswith("🧾 Q11 for L1")


def test_the_same_customer_added_by_several_reps_at_once_is_added_once(team: Chat) -> None:
    """The duplicate check (撞单) holds under a race: one rep gets the lead, the others are told
    who has it."""
    chat = team
    reps = ["carol", "dan", "alice"]
    for round_no in range(ROUNDS):
        phone = f"139-0000-{round_no:04d}"
        replies = race(
            chat.engine,
            chat.clock,
            [f"[{rep}] /lead add Customer{round_no} {rep.title()} phone={phone}" for rep in reps],
        )
        answers = texts(replies)
        added = [i for i, text in enumerate(answers) if text.startswith("✅ L")]
        assert len(added) == 1, answers
        winner = reps[added[0]]
        number = int(re.match(r"✅ L(\d+) ", answers[added[0]]).group(1))  # type: ignore[union-attr]
        for i, text in enumerate(answers):
            if i != added[0]:
                assert (
                    f"Looks like L{number} Customer{round_no} {winner.title()} (owner: {winner}"
                    in text
                ), answers
                assert "Not added" in text
        with unit_of_work(chat.engine) as session:
            same = list(session.exec(select(Lead).where(Lead.norm_phone == phone.replace("-", ""))))
        assert len(same) == 1
    assert lead_numbers(chat.engine, "acme") == list(
        range(1, ROUNDS + 1)
    )  # refusals burn no number


def test_two_admins_stepping_down_at_once_leave_one_admin(team: Chat) -> None:
    """A team always keeps an admin: of two admins demoting themselves (or each other) at once, one
    succeeds and the other is refused."""
    chat = team  # erin is the only admin; frank joins and is made admin each round
    lines_by_round = [
        ("[erin] /team role @erin manager", "[frank] /team role @frank rep"),
        ("[erin] /team role @frank manager", "[frank] /team role @erin manager"),
    ]
    for round_no in range(ROUNDS):
        chat.say("[frank] /help")
        (remaining,) = _admins(
            chat
        )  # the admin left by the previous round names the other one again
        other = "frank" if remaining == "erin" else "erin"
        assert f"{other} is now admin" in chat.say(f"[{remaining}] /team role @{other} admin")
        assert _admins(chat) == {"erin", "frank"}
        replies = race(chat.engine, chat.clock, list(lines_by_round[round_no % 2]))
        answers = texts(replies)
        assert sum(reply.ok for reply in replies) == 1, answers
        refused = next(text for reply, text in zip(replies, answers, strict=True) if not reply.ok)
        assert refused in (
            "You are the team's only admin; make someone else admin first.",
            "Only an admin can change the team.",
        ), answers
        assert len(_admins(chat)) == 1, (answers, _admins(chat))


def _admins(chat: Chat) -> set[str]:
    with unit_of_work(chat.engine) as session:
        return set(session.exec(select(Member.name).where(Member.role == "admin")))


def test_handoff_racing_an_assignment_tells_the_truth(team: Chat) -> None:
    """bob hands alice's work to dan while erin assigns one of alice's leads to carol: whoever is
    told they own the lead owns it."""
    chat = team
    for round_no in range(ROUNDS):
        added = chat.say(f"/lead add Handed{round_no} Corp")
        number = int(re.match(r"✅ L(\d+) ", added).group(1))  # type: ignore[union-attr]
        replies = race(
            chat.engine,
            chat.clock,
            ["[bob] /team handoff @alice @dan", f"[erin] /lead assign L{number} @carol"],
        )
        handed, assigned = texts(replies)
        with unit_of_work(chat.engine) as session:
            owner = session.get(
                Member, session.exec(select(Lead.owner_id).where(Lead.number == number)).one()
            )
        assert replies[0].ok, handed
        if replies[
            1
        ].ok:  # in either order of the two, an assignment that succeeded is the last word
            assert f"L{number} Handed{round_no} Corp now belongs to carol" in assigned
            assert owner.name == "carol", (handed, assigned)  # type: ignore[union-attr]
        else:
            assert f"L{number} was changed by someone else" in assigned
            assert owner.name == "dan", (handed, assigned)  # type: ignore[union-attr]
            assert f"L{number}" in handed


def test_three_outbox_workers_deliver_each_push_once(team: Chat) -> None:
    """Several workers draining the outbox at once never send one message twice, and miss none."""
    chat = team
    # Twenty approval cards for bob, queued but not yet delivered.
    for i in range(20):
        chat.adapter.dispatch(chat.adapter.invocation(f"/lead add Carded{i:02d} Works"))
        chat.adapter.dispatch(chat.adapter.invocation(f"/quote L{i + 1} 80k"))
    delivered: list[str] = []
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock:
            delivered.append(line)

    barrier = threading.Barrier(3)

    def worker() -> int:
        delivery = OutboxDelivery(
            chat.engine, {"console": ConsoleSender(write=write)}, chat.clock, batch=5
        )
        barrier.wait(timeout=TIMEOUT)
        return asyncio.run(delivery.run_once()).sent

    with ThreadPoolExecutor(max_workers=3) as pool:
        sent = [
            future.result(timeout=TIMEOUT) for future in [pool.submit(worker) for _ in range(3)]
        ]
    cards = sorted(line.split(" · ")[0] for line in delivered if line.startswith("→ bob: 🧾 Q"))
    assert cards == sorted(f"→ bob: 🧾 Q{i + 1}" for i in range(20))
    assert sum(sent) == len(delivered)


def test_won_and_lost_racing_yield_one_outcome(team: Chat) -> None:
    chat = team
    for round_no in range(ROUNDS):
        added = chat.say(f"[carol] /lead add Closing{round_no} Group value=30k")
        number = int(re.match(r"✅ L(\d+) ", added).group(1))  # type: ignore[union-attr]
        replies = race(
            chat.engine,
            chat.clock,
            [f"[carol] /lead won L{number}", f"[bob] /lead lost L{number} budget cut"],
        )
        won, lost = texts(replies)
        assert sum(reply.ok for reply in replies) == 1, (won, lost)
        shown = chat.say(f"[bob] /lead show L{number}")
        if replies[0].ok:
            assert won.startswith(f"🏆 L{number} Closing{round_no} Group won: $30,000")
            assert lost in (f"L{number} is already closed (won).", _changed(number))
            assert f"L{number} Closing{round_no} Group · won" in shown
        else:
            assert lost.startswith(
                f"📉 L{number} Closing{round_no} Group closed as lost: budget cut"
            )
            assert won in (f"L{number} is already closed (lost).", _changed(number))
            assert f"L{number} Closing{round_no} Group · lost" in shown


def _changed(number: int) -> str:
    return (
        f"L{number} was changed by someone else a moment ago; nothing was done. "
        f"Look again: /lead show L{number}"
    )


def test_follow_ups_logged_at_once_are_all_kept(team: Chat) -> None:
    """Nothing typed is lost: the owner, the manager and the admin noting calls on one lead at the
    same moment all get them logged."""
    chat = team
    chat.say("[carol] /lead add Chatty Partners")
    people = ["carol", "bob", "erin"]
    for round_no in range(ROUNDS):
        replies = race(
            chat.engine,
            chat.clock,
            [
                f"[{who}] /follow L1 round {round_no} call by {who} next=+{i + 1}d"
                for i, who in enumerate(people)
            ],
        )
        answers = texts(replies)
        assert all(reply.ok for reply in replies), answers
        assert all(text.startswith("📝 L1 follow-up logged. Next:") for text in answers), answers
    with unit_of_work(chat.engine) as session:
        notes = sorted(session.exec(select(FollowUp.note)))
    assert notes == sorted(f"round {r} call by {who}" for r in range(ROUNDS) for who in people)


def test_a_follow_up_racing_a_close_leaves_no_next_date_on_a_closed_lead(team: Chat) -> None:
    """Closing a lead clears its next follow-up. In any order of the two, a won lead carries no
    next date (or the follow-up is refused): no reminder will ever nag about a won deal."""
    chat = team
    broken = []
    for round_no in range(ROUNDS):
        chat.say(f"[carol] /lead add Racing{round_no} Co value=10k")
        number = round_no + 1
        replies = race(
            chat.engine,
            chat.clock,
            [f"[carol] /follow L{number} called them next=fri", f"[erin] /lead won L{number}"],
        )
        with unit_of_work(chat.engine) as session:
            lead = session.exec(select(Lead).where(Lead.number == number)).one()
        if lead.status == "won" and lead.next_followup_on is not None:
            broken.append((texts(replies), lead.version))
    assert broken == []
