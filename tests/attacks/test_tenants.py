"""Requests from another team that try to reach ours.

What "rejected" means for a request from another Slack workspace signed with our secret (our app
installed there too, or its secret leaked): it is genuine for *that* workspace, so it runs in that
workspace's own team — its first member there is that team's admin — and never sees or touches ours.
The same user id in both workspaces makes no difference: a member belongs to one team. On Telegram
a team is a group, and a button runs in the chat its message is in, whatever its callback data says.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from sqlalchemy import select

from models.db import unit_of_work
from models.tables import Lead, Quote, Team
from tests.attacks.conftest import domain, eventually, logged
from tests.attacks.test_signatures import FORM, post_signed, signature, slash_body
from tests.test_slack import PAYLOADS, SlackHarness
from tests.test_telegram import PEOPLE, TelegramHarness

OTHER_WORKSPACE = "T0THER"


def _our_quote_waiting(slack: SlackHarness) -> None:
    slack.say("U1", "/team", "config locale=en")
    slack.say("U2", "/help", "")
    slack.say("U1", "/team", "role <@U2|bob> manager")
    slack.say("U3", "/lead", "add Acme Trading phone=13800138000 value=120k")
    assert "asked bob" in slack.say("U3", "/quote", "L1 80k")["text"]


def _from_other_workspace(slack: SlackHarness, user: str, text: str) -> dict:
    body = slash_body(slack, text, user=user, team=OTHER_WORKSPACE)
    stamp = str(int(time.time()))
    assert post_signed(slack, body, stamp=stamp, sig=signature(body, stamp)).status_code == 200
    return slack.next_response()


def _click_from_other_workspace(slack: SlackHarness, user: str, command: str) -> dict:
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["team"] = {"id": OTHER_WORKSPACE, "domain": "other"}
    payload["user"].update(id=user, name="mallory", username="mallory", team_id=OTHER_WORKSPACE)
    payload["actions"][0]["value"] = command
    payload["trigger_id"] = f"trigger-{time.monotonic_ns()}"
    payload["response_url"] = f"{slack.api.url}/response/other-{time.monotonic_ns()}"
    assert slack.post(urlencode({"payload": json.dumps(payload)}).encode(), FORM).status_code == 200
    return slack.next_response()


def test_a_request_signed_for_another_workspace_lands_in_its_own_team(slack: SlackHarness) -> None:
    _our_quote_waiting(slack)
    ours = domain(slack.engine)
    # U1 is our admin's id; in the other workspace the same id is just the first member there.
    shown = _from_other_workspace(slack, "U1", "show L1")
    assert "There is no lead L1" in shown["text"] and "Acme" not in json.dumps(shown)
    listed = _from_other_workspace(slack, "U1", "list team")
    assert "Acme" not in json.dumps(listed)
    approved = _click_from_other_workspace(slack, "U1", "/quote approve Q1")
    assert "There is no quote Q1" in approved["text"]
    edited = _from_other_workspace(slack, "U1", "edit L1 phone=13999999999")
    assert "There is no lead L1" in edited["text"]
    eventually(lambda: logged(slack.engine) >= 9)
    after = domain(slack.engine)
    ours_only = {
        name: [row for row in rows if name != "team" or row[2] != OTHER_WORKSPACE]
        for name, rows in after.items()
    }
    # Our team's rows are exactly as they were; the other workspace got a team (and its member).
    assert ours_only["lead"] == ours["lead"] and ours_only["quote"] == ours["quote"]
    assert ours_only["audit_event"] == ours["audit_event"] and ours_only["outbox"] == ours["outbox"]
    with unit_of_work(slack.engine) as session:
        teams = {team.key: team.id for team in session.execute(select(Team)).scalars()}
        assert set(teams) == {"T0001", OTHER_WORKSPACE}
        assert session.execute(select(Quote.status)).scalar_one() == "pending"
        assert {lead.team_id for lead in session.execute(select(Lead)).scalars()} == {
            teams["T0001"]
        }


def test_what_another_workspace_adds_stays_in_that_workspace(slack: SlackHarness) -> None:
    _our_quote_waiting(slack)
    _from_other_workspace(slack, "U9", "add Their Customer")
    listed = slack.say("U1", "/lead", "list team")
    assert "Their Customer" not in json.dumps(listed)
    with unit_of_work(slack.engine) as session:
        rows = session.execute(
            select(Lead.name, Team.key).join(Team, Team.id == Lead.team_id)
        ).all()
    assert sorted(rows) == [("Acme Trading", "T0001"), ("Their Customer", OTHER_WORKSPACE)]


# --- Telegram: callback data naming a quote of another team -------------------------------------

OTHER_GROUP = {"id": -1009999999999, "title": "Competitor", "type": "supergroup"}


def test_callback_data_naming_a_quote_of_another_team_runs_in_the_pressers_own_team(
    telegram: TelegramHarness,
) -> None:
    telegram.say("alice", "/team config locale=en")
    telegram.say("bob", "/help")
    telegram.say("alice", "/team role @bob_li manager")
    telegram.say("carol", "/lead add Acme Trading value=120k")
    assert "asked" in telegram.say("carol", "/quote L1 80k")
    # dan founds a second group (he is its admin) and forges a button there naming our Q1.
    founded = telegram.message("dan", "/help", chat=OTHER_GROUP)
    assert telegram.post(founded).status_code == 200
    before = domain(telegram.engine)
    update = json.loads((PAYLOADS.parent / "telegram" / "callback_query.json").read_text())
    telegram.update_id += 1
    update["update_id"] = telegram.update_id
    update["callback_query"]["from"] = PEOPLE["dan"]
    update["callback_query"]["data"] = "/quote approve Q1"
    update["callback_query"]["message"]["chat"] = OTHER_GROUP
    assert telegram.post(update).status_code == 200
    answers = [r.json or r.form for r in telegram.api.requests if r.name == "answerCallbackQuery"]
    assert answers and "There is no quote Q1" in json.dumps(answers[-1], ensure_ascii=False)
    assert domain(telegram.engine) == before
    with unit_of_work(telegram.engine) as session:
        assert session.execute(select(Quote.status)).scalar_one() == "pending"
