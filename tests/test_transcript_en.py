"""A rep's day in an English team, as the chat shows it."""

from __future__ import annotations

from tests.chat import Chat


def test_register_duplicate_follow_quote_approve_win(team: Chat) -> None:
    chat = team
    added = chat.say("/lead add Acme Trading phone=138-0013-8000 value=120k source=fair")
    assert "L1 Acme Trading" in added and "yours" in added and "$120,000" in added
    assert "[Log follow-up → /follow L1]" in added

    duplicate = chat.say("[carol] /lead add ACME trading ltd phone=13800138000")
    assert "L1 Acme Trading" in duplicate and "alice" in duplicate and "Not added" in duplicate
    assert "force=yes" in duplicate
    assert "L2" not in chat.say("[carol] /lead list")

    logged = chat.say("/follow L1 demo went well, they want a quote next=fri via=visit")
    assert "Fri 27 Nov" in logged

    asked = chat.say("/quote L1 80k discount=5%")
    assert "Q1" in asked and "$80,000" in asked and "bob" in asked
    card = chat.pushes("bob")[-1]
    assert "[Approve → /quote approve Q1]" in card and "[Reject → /quote reject Q1]" in card

    approved = chat.say("[bob] /quote approve Q1 ok for this quarter")
    assert "Q1 approved by bob" in approved and "09:00" in approved
    assert any("Q1 approved by bob" in push for push in chat.pushes("alice"))

    again = chat.say("[erin] /quote approve Q1")
    assert "already approved by bob at 09:00" in again

    won = chat.say("/lead won L1")
    assert "won" in won and "$80,000" in won
    shown = chat.say("/lead show L1")
    assert "won" in shown and "Q1 $80,000 (−5%) approved" in shown


def test_forced_duplicate_is_added_and_says_what_it_resembles(team: Chat) -> None:
    team.say("/lead add Acme Trading email=Sales@Acme.com")
    forced = team.say("[carol] /lead add Acme Two email=sales@acme.com force=yes")
    assert "L2 Acme Two" in forced and "similar to L1 (alice)" in forced


def test_wrong_amount_answers_with_the_right_form_and_changes_nothing(team: Chat) -> None:
    team.say("/lead add Acme Trading")
    before = team.snapshot()
    answer = team.say("/quote L1 eighty")
    assert "“eighty” is not an amount" in answer and "/quote <L> <amount>" in answer
    assert team.snapshot() == before


def test_counts_of_one_read_as_one_in_english(chat: Chat) -> None:
    """A team of one, a rep with one open lead, one instalment, one follow-up: no `1 members`."""
    chat.say("/team config locale=en")
    assert chat.say("/team").startswith("👥 acme — 1 member\n")
    chat.say("/lead add Acme value=80k")
    assert chat.say("/me").startswith("alice — 1 open lead\n")
    chat.say("/follow L1 called the buyer next=fri")
    assert "alice 1 follow-up · $0 won" in chat.say("/report")
    chat.say("/lead add Globex value=20k")
    assert chat.say("/me").startswith("alice — 2 open leads\n")
    assert "alice 1 follow-up · $0 won" in chat.say("/report")  # a count of follow-ups, not leads

    chat.say("/lead won L1 80k")
    chat.say("/contract L1 80k signed=today")
    assert "payment plan: 1 instalment, $80,000" in chat.say("/plan C1 100%@signing")

    chat.say("[bob] /help")
    chat.say("/team role @bob manager")
    assert "asked bob" in chat.say("/lead edit L2 value=150k") + chat.say("/quote L2 150k")
    chat.say("[carol] /help")
    moved = chat.say("/team handoff @alice @carol")
    assert "alice → carol: 1 open lead (L2) and 1 pending quote moved." in moved
    assert chat.say("/team").startswith("👥 acme — 3 members\n")
