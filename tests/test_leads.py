"""Leads as a team sees them in chat: the duplicate check (撞单), lists and paging, the pipeline's
rules, ownership and the pool (公海), closing, editing, the audit trail, team-made pipelines and the
manager's assignment rules. The `team` fixture: alice and carol and dan are reps, bob their manager,
erin the admin."""

from __future__ import annotations

import pytest

from models.clock import FixedClock
from models.normalize import normalize_company, normalize_email, normalize_phone
from tests.chat import Chat


@pytest.mark.parametrize(("typed", "same_as"), [
    ("138-0013-8000", "13800138000"),
    ("+86 138 0013 8000", "13800138000"),
    ("0086 138-0013-8000", "13800138000"),
    ("(138) 0013 8000", "13800138000"),
    ("１３８００１３８０００", "13800138000"),  # full-width digits from a Chinese keyboard
])
def test_phones_typed_differently_are_one_number(typed: str, same_as: str) -> None:
    assert normalize_phone(typed) == normalize_phone(same_as) == "13800138000"


@pytest.mark.parametrize(("typed", "same_as"), [
    ("ACME Ltd.", "acme ltd"),
    ("Acme Co., Ltd.", "ACME"),
    ("Acme Trading Limited", "acme  trading"),
    ("华为技术有限公司", "华为技术"),
    ("华为技术股份有限公司", "华为技术"),
])
def test_company_spellings_are_one_company(typed: str, same_as: str) -> None:
    assert normalize_company(typed) == normalize_company(same_as)


def test_different_companies_and_emails_stay_different() -> None:
    assert normalize_company("Acme Holdings") != normalize_company("Acme")
    assert normalize_company("Ltd") == "ltd"  # a name that is only a suffix is kept, not emptied
    assert normalize_email(" Sales@Acme.COM ") == "sales@acme.com"
    assert normalize_phone("") is None and normalize_company(None) is None


def test_duplicate_is_refused_naming_the_owner_and_can_be_forced(team: Chat) -> None:
    added = team.say("/lead add Acme Trading company=ACME Ltd. phone=138-0013-8000 email=Sales@Acme.com")
    assert "L1 Acme Trading — yours" in added
    assert "Company: ACME Ltd." in team.say("/lead show L1")  # a value may have spaces without quotes
    for line in ("/lead add Other company=acme ltd", "/lead add Other phone=13800138000",
                 "/lead add Other phone=+86 138 0013 8000", "/lead add Other email=sales@ACME.com",
                 "/lead add ACME ltd"):
        answer = team.say(f"[carol] {line}")
        assert "Looks like L1 Acme Trading (owner: alice, stage Lead). Not added." in answer, line
        assert f"[Add anyway → {line} force=yes]" in answer
    assert "Your leads: none." in team.say("[carol] /lead list")

    assert "L2 Acme Holdings — yours" in team.say("[carol] /lead add Acme Holdings phone=13900000000")
    forced = team.say("[carol] /lead add Other company=acme ltd force=yes")
    assert "L3 Other — yours" in forced and "similar to L1 (alice)" in forced
    assert "though it looked like L1" in team.say("[carol] /lead show L3 history")


def test_duplicate_of_a_pool_lead_offers_to_claim_it(team: Chat) -> None:
    team.say("/lead add Zenith phone=13711112222")
    team.say("/lead release L1")
    answer = team.say("[carol] /lead add Zenith Ltd")
    assert "owner: pool" in answer and "[Claim it → /lead claim L1]" in answer


def test_lists_filter_by_owner_pool_overdue_outcome_and_stage(team: Chat, clock: FixedClock) -> None:
    team.say("/lead add Alpha")                                   # L1 alice
    team.say("/lead add Beta")                                    # L2 → pool
    team.say("/lead release L2")
    team.say("[carol] /lead add Gamma")                           # L3 carol
    team.say("[carol] /lead add Delta value=10k")                 # L4 won
    team.say("[carol] /lead won L4")
    team.say("[carol] /lead add Epsilon")                         # L5 lost
    team.say("[carol] /lead lost L5 budget cut")
    team.say("[carol] /lead add Zeta")                            # L6 contacted
    team.say("[carol] /follow L6 intro call")
    team.say("[carol] /lead next L6")
    clock.advance(hours=1)
    team.say("/follow L1 called next=tomorrow")                   # L1 has the newest activity
    clock.advance(days=2)                                          # Sat 28 Nov: L1 is overdue

    mine = team.say("/lead list")
    assert "Your leads — 1 (page 1/1)" in mine and "L1 Alpha" in mine and "L3" not in mine
    rep_team = team.say("/lead list team")  # a rep's "team" is what a rep may see: own leads and the pool
    assert "Team leads — 2" in rep_team and "L2 Beta" in rep_team and "Gamma" not in rep_team
    pool = team.reply("[carol] /lead list pool")
    assert "Pool** — 1" in pool.text and pool.table[1] == ["L2 Beta", "Lead", "pool", "-"]

    everything = team.say("[bob] /lead list")
    assert "Team leads — 4 (page 1/1)" in everything
    order = [everything.index(f"L{n} ") for n in (1, 6, 3, 2)]
    assert order == sorted(order), "newest activity first, then the newest lead"
    assert "Delta" not in everything and "Epsilon" not in everything

    overdue = team.say("[bob] /lead list overdue")
    assert "Overdue follow-ups — 1" in overdue and "L1 Alpha" in overdue and "⚠️ Fri 27 Nov" in overdue
    assert "none" in team.say("[carol] /lead list overdue")
    won = team.say("[bob] /lead list won")
    assert "Won — 1" in won and "L4 Delta" in won and "won" in won
    lost = team.say("[bob] /lead list lost")
    assert "Lost — 1" in lost and "L5 Epsilon" in lost
    contacted = team.say("[bob] /lead list stage=contacted")
    assert "Team leads · Contacted — 1" in contacted and "L6 Zeta" in contacted
    assert "Team leads · Contacted — 1" in team.say("[bob] /lead list stage=2")
    wrong = team.say("[bob] /lead list sideways")
    assert "“sideways” is not one of" in wrong and "/lead list [mine|team|pool" in wrong


def test_23_leads_make_three_pages_and_the_next_page_button_works(team: Chat) -> None:
    for number in range(1, 24):
        team.say(f"[carol] /lead add Shop{number:02d}")
    first = team.reply("[carol] /lead list")
    assert "(page 1/3)" in first.text and len(first.table) == 1 + 10
    assert [row[0] for row in first.table[1:3]] == ["L23 Shop23", "L22 Shop22"]
    [button] = first.buttons
    assert button.label == "Next page" and button.command == "/lead list mine page=2"

    second = team.reply(f"[carol] {button.command}")
    assert "(page 2/3)" in second.text and second.table[1][0] == "L13 Shop13" and len(second.table) == 11
    third = team.reply(f"[carol] {second.buttons[0].command}")
    assert "(page 3/3)" in third.text and [row[0] for row in third.table[1:]] == ["L3 Shop03", "L2 Shop02", "L1 Shop01"]
    assert third.buttons == []
    assert "(page 2/3)" in team.say("[carol] /lead list 2")
    assert "not a page number" in team.say("[carol] /lead list page=zero")


def test_show_is_the_card_with_follow_ups_quotes_and_buttons(team: Chat) -> None:
    team.say("/lead add Acme Trading contact=Mr Li phone=138-0013-8000 source=fair value=120k")
    team.say("/follow L1 demo went well next=fri via=visit")
    team.say("/quote L1 30k")
    card = team.say("/lead show L1")
    assert card.startswith("L1 Acme Trading · Lead · owner alice")
    for line in ("Contact: Mr Li", "Phone: 138-0013-8000", "Source: fair", "Estimate: $120,000",
                 "Next follow-up: Fri 27 Nov", "Quotes: Q1 $30,000 approved", "09:00 alice (visit): demo went well"):
        assert line in card
    assert "[Log follow-up → /follow L1]" in card and "[History → /lead show L1 history]" in card
    assert "L1 belongs to alice; you can't see it." in team.say("[carol] /lead show L1")
    assert "no lead L9" in team.say("/lead show L9")


def test_pipeline_needs_facts_per_stage_moves_one_step_and_may_go_back(team: Chat) -> None:
    team.say("/lead add Acme")
    skip = team.say("/lead stage L1 qualified")
    assert "doesn't skip stages: L1 goes to Contacted next" in skip and "/lead next L1" in skip
    assert "L1 can't enter Contacted yet. Missing: a follow-up (/follow L1 …)." in team.say("/lead next L1")
    team.say("/follow L1 first call")
    assert "L1 Acme is now in Contacted." in team.say("/lead next L1")
    assert "Missing: a contact person (/lead edit L1 contact=…)" in team.say("/lead next L1")
    team.say("/lead edit L1 contact=Mr Li")
    assert "now in Qualified" in team.say("/lead stage L1 qualified")
    assert "Missing: an estimated value (/lead edit L1 value=…)" in team.say("/lead stage L1 proposal")
    team.say("/lead edit L1 value=120k")
    assert "now in Proposal" in team.say("/lead next L1")
    assert "Missing: an approved quote (/quote L1 …)" in team.say("/lead next L1")
    team.say("/quote L1 60k")  # waits for bob: not approved yet
    assert "Missing: an approved quote" in team.say("/lead next L1")
    team.say("[bob] /quote approve Q1")
    assert "now in Contract" in team.say("/lead next L1")
    assert "now in Delivery" in team.say("/lead stage L1 delivery")
    assert "L1 is in the last stage. Close it with /lead won L1" in team.say("/lead next L1")
    assert "now in Contacted" in team.say("/lead stage L1 contacted")  # back is always allowed
    assert "already in Contacted" in team.say("/lead stage L1 2")
    assert "L1 Acme · Contacted" in team.say("/lead show L1")
    assert "“sideways” is not a stage" in team.say("/lead stage L1 sideways")
    assert "L1 belongs to alice; you can't see it." in team.say("[carol] /lead next L1")


def test_allow_skip_lets_a_lead_jump_but_not_past_missing_facts(team: Chat) -> None:
    assert "allow_skip=yes" in team.say("[erin] /team config allow_skip=yes")
    team.say("/lead add Acme contact=Li")
    assert "can't enter Contacted yet. Missing: a follow-up" in team.say("/lead stage L1 qualified")
    team.say("/follow L1 call")
    assert "now in Qualified" in team.say("/lead stage L1 qualified")
    assert "can't enter Proposal yet. Missing: an estimated value" in team.say("/lead stage L1 contract")


def test_assign_claim_and_release_through_the_pool(team: Chat) -> None:
    team.say("[carol] /lead add Acme")
    assert "Only a manager can assign leads." in team.say("[dan] /lead assign L1 @dan")
    assert "L1 Acme now belongs to dan." in team.say("[bob] /lead assign L1 @dan")
    assert team.pushes("dan") == ["📥 L1 Acme is yours now (from bob).\n"
                                  "  [Log follow-up → /follow L1]  [Quote → /quote L1]"]
    assert "dan already owns L1." in team.say("[bob] /lead assign L1 @dan")
    assert "L1 belongs to dan; you can't see it." in team.say("[carol] /lead show L1")

    released = team.say("[dan] /lead release L1")
    assert "L1 Acme is back in the pool." in released and "[Claim → /lead claim L1]" in released
    assert "L1 Acme · Lead · owner pool" in team.say("[carol] /lead show L1")
    assert "L1 is in the pool. Claim it first: /lead claim L1" in team.say("[alice] /follow L1 hello")
    assert "L1 is already in the pool." in team.say("[bob] /lead release L1")
    assert "L1 Acme is yours now." in team.say("[alice] /lead claim L1")
    assert "L1 is not in the pool: alice has it." in team.say("[carol] /lead claim L1")
    assert "L1 Acme · Lead · owner alice" in team.say("[bob] /lead show L1")
    history = team.say("[bob] /lead show L1 history")
    for change in ("claimed it from the pool", "released it to the pool", "gave it to dan (was carol)"):
        assert change in history


def test_won_amount_comes_from_the_latest_approved_quote_then_the_estimate_else_it_asks(team: Chat) -> None:
    team.say("/lead add Quoted value=120k")
    team.say("/quote L1 30k")
    team.say("/quote L1 40k")
    team.say("/quote L1 60k")  # newest, but still waiting for approval
    assert "L1 Quoted won: $40,000" in team.say("/lead won L1")
    team.say("/lead add Estimated value=90k")
    assert "L2 Estimated won: $90,000" in team.say("/lead won L2")
    team.say("/lead add Unknown")
    assert "How much was won? /lead won L3 <amount>" in team.say("/lead won L3")
    assert "L3 Unknown won: $25,000" in team.say("/lead won L3 25k")
    assert "L3 is already closed (won)." in team.say("/lead won L3 30k")

    team.say("/lead add Gone")
    assert "Missing a reason." in team.say("/lead lost L4")
    assert "L4 Gone closed as lost: went with a competitor" in team.say("/lead lost L4 went with a competitor")
    card = team.say("/lead show L4")
    assert "L4 Gone · lost" in card and "Lost because: went with a competitor" in card
    assert "L4 is already closed (lost)." in team.say("/follow L4 one more try")
    won = team.say("/lead list won")
    assert "Won — 3" in won and all(f"L{n} " in won for n in (1, 2, 3))


def test_edit_changes_facts_and_every_change_is_in_the_history(team: Chat) -> None:
    team.say("/lead add Acme Trading phone=138-0013-8000")
    team.say("/follow L1 called next=tomorrow via=call")
    assert "L1 updated: contact=Mr Li, value=$150,000" in team.say("/lead edit L1 contact=Mr Li value=150k")
    assert "is not a phone number" in team.say("/lead edit L1 phone=call-me")
    team.say("/lead next L1")
    team.say("[bob] /lead assign L1 @carol")
    team.say("[carol] /lead won L1")
    history = team.say("[bob] /lead show L1 history")
    expected = ["carol  won it: $150,000",
                "bob    gave it to carol (was alice)",
                "alice  moved it from Lead to Contacted",
                "alice  changed contact: none → Mr Li; value: none → $150,000",
                "alice  logged a follow-up; next Fri 27 Nov",
                "alice  added it (owner alice, stage Lead)"]
    positions = [history.find(line) for line in expected]
    assert -1 not in positions, history
    assert positions == sorted(positions), "newest first"


def test_a_team_pipeline_with_its_own_requirements_and_stale_days(team: Chat, clock: FixedClock) -> None:
    saved = team.say("[erin] /team config stages=Lead, Demo, Trial, Signed")
    assert "stages=Lead → Demo → Trial → Signed" in saved
    assert "required.Trial=value, stale_days.Demo=2" in team.say("[erin] /team config required.trial=value stale_days.demo=2")
    team.say("/lead add Acme")
    assert "now in Demo" in team.say("/lead next L1")  # Demo requires nothing
    assert "can't enter Trial yet. Missing: an estimated value" in team.say("/lead next L1")
    assert "“contract” is not a stage of this team. Stages: Lead, Demo, Trial, Signed." in team.say(
        "/lead stage L1 contract")
    clock.advance(days=3)
    assert "Stuck 1: L1 Acme in Demo 3d (alice)" in team.say("[bob] /report")
    assert "bogus" in team.say("[erin] /team config required.trial=bogus")
    assert "Lead, Demo" in team.say("[erin] /team config required.nowhere=value")


def test_a_manager_adds_leads_by_the_assignment_rule(team: Chat) -> None:
    team.say("[carol] /lead add Carol's own")
    assert "L2 Mine — yours" in team.say("[bob] /lead add Mine")  # default: the author owns it
    # the pre-issue-8 name still works; it is stored as the new one
    assert "assignment=least_loaded" in team.say("[erin] /team config assignment=balanced")
    # the rep with the fewest open leads gets it (alice, then dan; carol already has one)
    assert "L3 First — alice" in team.say("[bob] /lead add First")
    assert "L4 Second — dan" in team.say("[bob] /lead add Second")
    assert "L5 Third — alice" in team.say("[bob] /lead add Third")
    assert any("L3 First is yours now (from bob)" in push for push in team.pushes("alice"))
    assert "L6 Reps own — yours" in team.say("[carol] /lead add Reps own")  # a rep always owns what they add

    team.say("[erin] /team config assignment=pool")
    assert "L7 Pooled — pool" in team.say("[bob] /lead add Pooled")
    assert "L7 Pooled" in team.say("[dan] /lead list pool")
    assert "L8 Direct — carol" in team.say("[bob] /lead add Direct owner=@carol")
    assert "Only a manager can assign leads" in team.say("[dan] /lead add Sneaky owner=@dan")
    assert "not one of: manual, round_robin, least_loaded, pool" in team.say("[erin] /team config assignment=random")
