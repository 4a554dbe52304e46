"""Who may see and change what, as a matrix: role × verb × whose lead, typed in the chat.

The organisation every test starts from (`org`):
    erin admin · bob manager of carol · frank manager of dan · alice a rep with no manager
    L1 carol's · L2 dan's · L3 alice's · L4 in the pool · L5 bob's own
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from models.db import unit_of_work
from models.permissions import can_change, can_see, visible_leads
from models.tables import Lead, Member
from tests.chat import Chat

OWNER = {1: "carol", 2: "dan", 3: "alice", 4: None, 5: "bob"}
POOL = 4
SEES = {
    "carol": {1, 4},           # rep: own lead and the pool
    "dan": {2, 4},
    "alice": {3, 4},
    "bob": {1, 3, 4, 5},       # manager: his report's, the unmanaged rep's, the pool, his own
    "frank": {2, 3, 4},        # the other manager: not carol's, not bob's
    "erin": {1, 2, 3, 4, 5},   # admin: everything
}
ACTORS = ["carol", "bob", "frank", "erin"]  # rep, her manager, a manager who is not hers, admin


def changes(actor: str) -> set[int]:
    """Reps change only their own leads; the pool must be claimed first. Managers change what they see."""
    return {n for n in SEES[actor] if not (n == POOL and actor in ("carol", "dan", "alice"))}


@pytest.fixture
def org(team: Chat) -> Chat:
    chat = team
    for line in ["[frank] /help", "[erin] /team role @frank manager",
                 "[erin] /team role @carol rep manager=@bob", "[erin] /team role @dan rep manager=@frank",
                 "[erin] /team config required.contacted=none",
                 "[carol] /lead add Carol Co", "[dan] /lead add Dan Co", "[alice] /lead add Alice Co",
                 "[erin] /lead add Pool Co owner=pool", "[bob] /lead add Bob Co"]:
        assert chat.reply(line).ok, line
    return chat


def refused(chat: Chat, line: str, *expected: str) -> str:
    """The command is refused, says why, and nothing in the database changed."""
    before = chat.snapshot()
    reply = chat.reply(line)
    assert reply.ok is False, (line, reply.text)
    for text in expected:
        assert text in reply.text, (line, reply.text)
    assert chat.snapshot() == before
    return reply.text


def refusal_for(actor: str, number: int) -> str:
    if number not in SEES[actor]:
        return f"L{number} belongs to {OWNER[number]}; you can't see it."
    return f"L{number} is in the pool. Claim it first"


def card(chat: Chat, number: int) -> str:
    """What the admin sees on the lead's card: proof the change reached the database."""
    return chat.say(f"[erin] /lead show L{number}")


# --- the lead verbs: role × verb × whose lead ----------------------------------------------------

# verb → (command, what the actor is told, what the card shows afterwards, which leads it may be used on)
LEAD_VERBS = {
    "show": ("/lead show L{n}", "L{n} ", "L{n} ", "sees"),
    "next": ("/lead next L{n}", "is now in Contacted", "· Contacted ·", "changes"),
    "stage": ("/lead stage L{n} contacted", "is now in Contacted", "· Contacted ·", "changes"),
    "follow": ("/follow L{n} called the buyer next=tomorrow", "follow-up logged. Next: Fri 27 Nov",
               "called the buyer", "changes"),
    "quote": ("/quote L{n} 10k", "Approved automatically", "$10,000 approved", "changes"),
    "won": ("/lead won L{n} 5k", "won: $5,000", "Won: $5,000", "changes"),
    "lost": ("/lead lost L{n} went elsewhere", "closed as lost", "Lost because: went elsewhere", "changes"),
    "edit": ("/lead edit L{n} contact=Mr Li", "updated: contact=Mr Li", "Contact: Mr Li", "changes"),
    "release": ("/lead release L{n}", "is back in the pool", "owner pool", "changes"),
    "claim": ("/lead claim L{n}", "is yours now", "owner {actor}", "pool"),
    "assign": ("/lead assign L{n} @erin", "now belongs to erin", "owner erin", "sees, managers"),
}


def expected_refusal(verb: str, actor: str, number: int) -> str | None:
    """None when `actor` may use `verb` on L<number>, else what they are told."""
    if verb == "claim":
        return None if number == POOL else f"L{number} is not in the pool: {OWNER[number]} has it."
    if verb == "assign" and actor in ("carol", "dan", "alice"):
        return "Only a manager can assign leads."
    if number not in SEES[actor]:
        return f"L{number} belongs to {OWNER[number]}; you can't see it."
    if LEAD_VERBS[verb][3] == "changes" and number not in changes(actor):
        return f"L{number} is in the pool. Claim it first"
    if verb == "release" and number == POOL:
        return "L4 is already in the pool."
    return None


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("verb", list(LEAD_VERBS))
def test_lead_verbs_on_every_kind_of_lead(org: Chat, verb: str, actor: str) -> None:
    """Each verb by each role on: a report's lead (L1), another manager's report's (L2), an unmanaged
    rep's (L3), the pool (L4) and a manager's own (L5). Refusals change nothing."""
    command, told, shown, _who = LEAD_VERBS[verb]
    for number in OWNER:
        line = f"[{actor}] " + command.format(n=number)
        refusal = expected_refusal(verb, actor, number)
        if refusal:
            refused(org, line, refusal)
            continue
        reply = org.reply(line)
        assert reply.ok and told.format(n=number) in reply.text, (line, reply.text)
        assert shown.format(n=number, actor=actor) in card(org, number), line


def test_a_rep_may_not_register_a_lead_for_someone_else(org: Chat) -> None:
    refused(org, "[carol] /lead add Other Co owner=@dan", "Only a manager can assign leads.")


# --- quotes ------------------------------------------------------------------------------------------

# (how big, who decides, what first, approve or reject, what they are told — None: refused with the text)
QUOTE_CASES = [
    ("100k", "carol", [], "approve", None, "You can't decide your own quote."),
    ("100k", "carol", [], "reject changed my mind", None, "You can't decide your own quote."),
    ("100k", "alice", [], "approve", None, "Only managers and admins decide quotes."),
    ("100k", "alice", [], "reject too deep", None, "Only managers and admins decide quotes."),
    ("100k", "bob", [], "approve", "Q1 approved by bob", "Q1 $100,000 approved"),
    ("100k", "bob", [], "reject too deep", "Q1 rejected by bob", "Q1 $100,000 rejected"),
    ("100k", "erin", [], "approve", "Q1 approved by erin", "Q1 $100,000 approved"),
    ("600k", "bob", [], "approve", "admin — asked erin", "Q1 $600,000 waiting"),
    ("600k", "bob", ["[bob] /quote approve Q1"], "approve", None, "Q1 needs an approval at admin level"),
    ("600k", "frank", ["[bob] /quote approve Q1"], "approve", None, "Q1 needs an approval at admin level"),
    ("600k", "erin", ["[bob] /quote approve Q1"], "approve", "Q1 approved by erin", "Q1 $600,000 approved"),
    ("600k", "erin", [], "approve", "Q1 approved by erin", "Q1 $600,000 approved"),  # signs both levels
    ("100k", "erin", ["[bob] /quote approve Q1"], "approve", None, "already approved by bob at 09:00"),
]


@pytest.mark.parametrize(("amount", "decider", "first", "decision", "told", "expected"), QUOTE_CASES)
def test_quote_decisions(org: Chat, amount: str, decider: str, first: list[str], decision: str,
                         told: str | None, expected: str) -> None:
    assert "Q1" in org.say(f"[carol] /quote L1 {amount}")
    for line in first:
        assert org.reply(line).ok, line
    verb, _, note = decision.partition(" ")
    line = f"[{decider}] /quote {verb} Q1 {note}".rstrip()
    if told is None:
        refused(org, line, expected)
    else:
        reply = org.reply(line)
        assert reply.ok and told in reply.text, reply.text
        assert expected in card(org, 1)


def test_a_pending_quote_reaches_only_the_reps_own_manager(org: Chat) -> None:
    org.say("[carol] /quote L1 100k")
    assert any("Q1 · Carol Co · $100,000" in push for push in org.pushes("bob"))
    assert org.pushes("frank") == []


# --- administration ------------------------------------------------------------------------------

# verb → (command, what the actor is told, (check command, what it shows afterwards), who may)
ADMIN_VERBS = {
    "team role": ("/team role @alice manager", "alice is now manager", ("/team", "alice | manager"), {"erin"}),
    "team config": ("/team config stale_days=9", "Saved: stale_days=9", ("/team config", "stale_days: 9"), {"erin"}),
    "handoff report": ("/team handoff @carol @alice", "carol → alice: 1 open lead (L1)",
                       ("/lead show L1", "owner alice"), {"bob", "erin"}),
    "handoff own": ("/team handoff @bob @alice", "bob → alice: 1 open lead (L5)",
                    ("/lead show L5", "owner alice"), {"bob", "erin"}),
    "target": ("/target @carol 100k", "carol's target for 2026-11: $100,000", ("/target", "carol | $0 | $100,000"),
               {"bob", "erin"}),
}
ADMIN_REFUSALS = {
    ("team role", "carol"): "admin can change the team.",
    ("team role", "bob"): "admin can change the team.",
    ("team role", "frank"): "admin can change the team.",
    ("team config", "carol"): "admin can change the team.",
    ("team config", "bob"): "admin can change the team.",
    ("team config", "frank"): "admin can change the team.",
    ("handoff report", "carol"): "Only a manager can hand work over.",
    ("handoff report", "frank"): "carol doesn't report to you, so you can't hand their work over.",
    ("handoff own", "carol"): "Only a manager can hand work over.",
    ("handoff own", "frank"): "bob doesn't report to you, so you can't hand their work over.",
    ("target", "carol"): "Only a manager can set targets.",
    ("target", "frank"): "carol doesn't report to you, so you can't set their target.",
}


@pytest.mark.parametrize(("verb", "actor"), [(v, a) for v, spec in ADMIN_VERBS.items() for a in ACTORS if a in spec[3]])
def test_administration_allowed(org: Chat, verb: str, actor: str) -> None:
    command, told, (check, shown), _allowed = ADMIN_VERBS[verb]
    reply = org.reply(f"[{actor}] {command}")
    assert reply.ok and told in reply.text, reply.text
    after = org.reply(f"[erin] {check}")
    assert shown in "\n".join([after.text, *(f"{k}: {v}" for k, v in after.fields),
                               *(" | ".join(row) for row in after.table)]), after


@pytest.mark.parametrize("verb", list(ADMIN_VERBS))
def test_administration_refused(org: Chat, verb: str) -> None:
    command, _told, _check, allowed = ADMIN_VERBS[verb]
    for actor in ACTORS:
        if actor not in allowed:
            refused(org, f"[{actor}] {command}", ADMIN_REFUSALS[(verb, actor)])


def test_a_manager_hands_over_the_work_of_reps_they_oversee(org: Chat) -> None:
    assert "dan → alice: 1 open lead (L2)" in org.say("[frank] /team handoff @dan @alice")
    assert "alice → carol: 2 open leads (L2, L3)" in org.say("[bob] /team handoff @alice @carol")  # unmanaged
    assert "owner carol" in card(org, 2) and "owner carol" in card(org, 3)
    refused(org, "[frank] /team handoff @carol @dan", "carol doesn't report to you")


REPORTS_ON = {"carol": {"carol"}, "bob": {"carol", "alice", "bob"}, "frank": {"dan", "alice"},
              "erin": {"carol", "dan", "alice", "bob"}}


@pytest.mark.parametrize("actor", ACTORS)
def test_report_on_someone(org: Chat, actor: str) -> None:
    """Yourself, your reports and unmanaged reps; an admin everyone."""
    for subject in ["carol", "dan", "alice", "bob"]:
        line = f"[{actor}] /report @{subject}"
        if subject in REPORTS_ON[actor]:
            reply = org.reply(line)
            assert reply.ok and f"Sales daily · {subject}" in reply.text and "New leads 1" in reply.text, line
        else:
            text = refused(org, line, "see someone else's report")
            assert "Usage:" not in text  # a permission, not a typing mistake


# --- lists -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("actor", list(SEES))
def test_team_list_shows_exactly_what_the_role_may_see(org: Chat, actor: str) -> None:
    reply = org.reply(f"[{actor}] /lead list team")
    listed = {int(row[0].split()[0][1:]) for row in reply.table[1:]}
    assert listed == SEES[actor]
    assert f"— {len(SEES[actor])} (page 1/1)" in reply.text


def test_pool_list_is_the_same_for_everyone(org: Chat) -> None:
    for actor in SEES:
        assert [row[0] for row in org.reply(f"[{actor}] /lead list pool").table[1:]] == ["L4 Pool Co"]


# --- the rules themselves ----------------------------------------------------------------------------

def test_can_see_can_change_and_visible_leads_agree_on_every_member_and_lead(org: Chat) -> None:
    with unit_of_work(org.engine) as session:
        members = {m.name: m for m in session.exec(select(Member))}
        leads = {lead.number: lead for lead in session.exec(select(Lead))}
        for name, expected in SEES.items():
            member = members[name]
            assert {n for n, lead in leads.items() if can_see(session, member, lead)} == expected, name
            assert {n for n, lead in leads.items() if can_change(session, member, lead)} == changes(name), name
            listed = {lead.number for lead in session.exec(select(Lead).where(visible_leads(member)))}
            assert listed == expected, name


def test_a_report_who_is_a_manager_is_overseen_by_their_manager(org: Chat) -> None:
    org.say("[erin] /team role @frank manager manager=@bob")
    assert "L2 Dan Co" not in org.say("[bob] /lead list team")  # dan reports to frank, not to bob
    with unit_of_work(org.engine) as session:
        bob = session.exec(select(Member).where(Member.name == "bob")).one()
        frank_lead = Lead(team_id=bob.team_id, number=99, name="Frank Co", stage="lead",
                          owner_id=session.exec(select(Member.id).where(Member.name == "frank")).one())
        assert can_see(session, bob, frank_lead) and can_change(session, bob, frank_lead)
        pool = Lead(team_id=bob.team_id, number=98, name="Nobody's", stage="lead", owner_id=None)
        alice = session.exec(select(Member).where(Member.name == "alice")).one()
        assert can_see(session, alice, pool) and not can_change(session, alice, pool)
        assert can_change(session, bob, pool)
