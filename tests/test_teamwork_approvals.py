"""Approvals that fit real teams: N signatures of a role per level, delegation for a period, silent
approvers; every decision shows who, when and as whose delegate. In the `team` fixture alice, carol
and dan are reps, bob a manager, erin an admin; `managers` adds frank, a second manager."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from models.db import unit_of_work
from models.tables import AuditEvent, Quote
from models.teamwork import ApprovalSignature
from reminders.worker import Worker
from tests.chat import Chat
from tests.test_concurrency import ROUNDS, race, texts

SH = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def managers(team: Chat) -> Chat:
    team.say("[frank] /help")
    team.say("[erin] /team role @frank manager")
    return team


def decisions(chat: Chat, number: int) -> list[dict]:
    with unit_of_work(chat.engine) as session:
        quote = session.exec(select(Quote).where(Quote.number == number)).one()
        events = session.exec(select(AuditEvent).where(AuditEvent.entity == "quote",
                                                       AuditEvent.entity_id == quote.id,
                                                       col(AuditEvent.action).in_(
                                                           ["approve", "reject"]))
                              .order_by(col(AuditEvent.id)))
        return [event.after or {} for event in events]


def run_worker(chat: Chat) -> None:
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


# --- N of M -----------------------------------------------------------------------------------

def test_a_level_needing_two_managers_takes_two_different_people(managers: Chat) -> None:
    chat = managers
    saved = chat.say("[erin] /team config approval_levels=2*manager")
    assert saved == "⚙️ Saved: approval_levels=2× manager"
    assert "approval_levels: 2× manager" in chat.say("/team config")
    chat.say("/lead add Acme Trading")
    asked = chat.say("/quote L1 80k")
    assert asked == "🧾 Q1 for L1 Acme Trading: $80,000. Needs 2 managers — asked bob, frank."
    for name in ("bob", "frank"):
        assert chat.pushes(name)[-1].startswith("🧾 Q1 · Acme Trading · $80,000 · by alice · "
                                                "L1 stage Lead · "
                                                "needs 2 managers")

    first = chat.say("[bob] /quote approve Q1 fine by me")
    assert first == ("✅ Q1: approved by bob · 09:00 — 1 of 2 managers. "
                     "Waiting for 1 more — asked frank.")
    assert [p for p in chat.pushes("alice") if "Q1" in p] == []  # not decided yet
    twice = chat.say("[bob] /quote approve Q1")
    assert twice == "bob already approved Q1 at 09:00; it still needs 1 more."
    assert "Only managers and admins decide quotes." in chat.say("[carol] /quote approve Q1")

    chat.clock.set(datetime(2026, 11, 26, 9, 30, tzinfo=SH))
    final = chat.say("[frank] /quote approve Q1")
    assert final == "✅ Q1 approved by frank · 09:30"
    assert chat.pushes("alice")[-1] == "✅ Q1 approved by frank · 09:30\nL1 Acme Trading · $80,000"
    shown = chat.say("/quote show Q1")
    assert "Q1 · L1 Acme Trading · $80,000 · by alice · approved" in shown
    assert "Level 1 · manager ×2: ✅ bob 09:00 “fine by me” · ✅ frank 09:30" in shown
    recorded = [(d["signed"], d["needed"], d["levels"]) for d in decisions(chat, 1)]
    assert recorded == [(1, 2, []), (2, 2, [1])]


def test_two_managers_above_a_million_after_one_below(managers: Chat) -> None:
    """Two managers above a million: the first manager signs both levels, a second finishes."""
    chat = managers
    saved = chat.say('[erin] /team config "approval_levels=manager:1m, 2 managers"')
    assert saved == "⚙️ Saved: approval_levels=manager ≤ $1,000,000 · 2× manager"
    chat.say("/lead add Big Deal")
    assert "Approved" not in chat.say("/quote L1 900k")  # below a million: one manager
    assert chat.say("[bob] /quote approve Q1") == "✅ Q1 approved by bob · 09:00"
    assert "Needs 2 approvals up to manager" in chat.say("/quote L1 1.2m")
    after_bob = chat.say("[bob] /quote approve Q2")
    assert after_bob == ("✅ Q2: approved by bob · 09:00. Now waiting for 1 more manager(s) "
                         "(1 of 2) — asked frank.")
    assert chat.say("[frank] /quote approve Q2") == "✅ Q2 approved by frank · 09:00"


def test_a_rule_asking_more_people_than_the_team_has_takes_those_there_are(team: Chat) -> None:
    team.say("[erin] /team config approval_levels=3*admin")
    team.say("/lead add Acme")
    assert "Needs 3 admins — asked erin." in team.say("/quote L1 80k")
    assert team.say("[erin] /quote approve Q1") == "✅ Q1 approved by erin · 09:00"


def test_wrong_level_settings_change_nothing(team: Chat) -> None:
    before = team.snapshot()
    for typed, expected in [
        ("approval_levels=boss:1m", "doesn't fit approval_levels"),
        ("approval_levels=20*manager", "doesn't fit approval_levels"),
        ("approval_levels=manager:lots", "is not an amount"),
        ("approvers.7=2", "levels are 1 to 2"),
        ("approvers.1=many", "a whole number"),
    ]:
        assert expected in team.say(f"[erin] /team config {typed}"), typed
    assert "Only an admin can change the team." in team.say("[bob] /team config approvers.1=2")
    assert team.snapshot() == before
    assert "approvers.1=2" in team.say("[erin] /team config approvers.1=2")
    assert "approval_levels: 2× manager ≤ $500,000 · admin" in team.say("/team config")


# --- delegation -----------------------------------------------------------------------------------

def test_a_delegate_decides_meanwhile_and_every_decision_says_for_whom(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")  # asked bob, before he leaves
    delegated = chat.say("[bob] /team delegate @dan until=2026-12-20")
    assert delegated == ("🤝 Until Sun 20 Dec, approvals for bob go to dan. "
                         "Sent dan what waits now: Q1.\n"
                         "  [End early → /team delegate off]")
    card, note = chat.pushes("dan")[-2:]
    assert card.startswith("🧾 Q1 · Acme Trading · $80,000 · by alice · L1 stage Lead\n"
                           "You decide as bob's delegate.")
    assert "[Approve → /quote approve Q1]" in card
    assert note == "🤝 bob asked you to decide approvals for them until Sun 20 Dec."
    assert "bob       dan       Thu 26 Nov  Sun 20 Dec" in chat.say("/team delegate")

    chat.say("/lead add Beta Foods")
    assert "Needs a manager — asked dan (for bob)." in chat.say("/quote L2 90k")
    assert "Waiting for your approval (2)" in chat.say("[dan] /me")
    assert "[Approve → /quote approve Q2]" in chat.say("[dan] /quote list pending")

    clock.set(datetime(2026, 11, 26, 10, 2, tzinfo=SH))
    approved = chat.say("[dan] /quote approve Q1 ok while bob is away")
    assert approved == "✅ Q1 approved by dan as bob's delegate · 10:02 — ok while bob is away"
    assert chat.pushes("alice")[-1] == approved + "\nL1 Acme Trading · $80,000"
    assert chat.say("[bob] /quote approve Q1") == \
        "Q1 was already approved by dan as bob's delegate at 10:02."
    shown = chat.say("/quote show Q1")
    assert "Level 1 · manager: ✅ dan as bob's delegate 10:02 “ok while bob is away”" in shown
    assert decisions(chat, 1)[-1]["for"] == "bob"
    rejected = chat.say("[dan] /quote reject Q2 too cheap")
    assert rejected == "❌ Q2 rejected by dan as bob's delegate · 10:02: too cheap"

    clock.set(datetime(2026, 12, 21, 9, tzinfo=SH))  # the period is over: bob is asked again
    chat.say("/quote L2 95k")
    assert "Needs a manager — asked bob." in chat.say("/quote L2 96k")
    assert "Only managers and admins decide quotes." in chat.say("[dan] /quote approve Q4")


def test_a_delegation_may_start_later_end_early_or_be_set_by_an_admin(team: Chat) -> None:
    chat = team
    planned = chat.say("[bob] /team delegate @carol from=2026-12-01 until=2026-12-05")
    assert planned.startswith("🤝 From Tue 1 Dec until Sat 5 Dec, approvals for bob go to carol.")
    chat.say("/lead add Acme")
    assert "asked bob." in chat.say("/quote L1 80k")  # not yet
    replaced = chat.say("[erin] /team delegate @dan until=2026-12-10 for=@bob")
    assert "approvals for bob go to dan" in replaced
    assert "(Replaces the earlier delegation.)" in replaced
    assert "Sent dan what waits now: Q1." in replaced
    assert "[End early → /team delegate off for=@bob]" in replaced
    assert chat.say("[bob] /team delegate off") == "🤝 bob decides again; the delegation ended."
    assert chat.pushes("dan")[-1] == "🤝 You no longer decide for bob."
    assert "asked bob." in chat.say("/quote L1 85k")
    assert chat.say("[bob] /team delegate off") == "bob has no delegate set."


def test_wrong_delegations_change_nothing(team: Chat) -> None:
    chat = team
    before = chat.snapshot()
    for line, expected in [
        ("/team delegate @dan until=2026-12-20",
         "alice approves nothing (a rep), so there is nothing to delegate."),
        ("[bob] /team delegate @bob until=2026-12-20", "Pick someone else as the delegate."),
        ("[bob] /team delegate @dan", "Missing until=<date>."),
        ("[bob] /team delegate @dan until=someday", "“someday” is not a date I understand."),
        ("[bob] /team delegate @dan from=2026-11-20 until=2026-12-20", "can't start in the past"),
        ("[bob] /team delegate @dan from=2026-12-10 until=2026-12-01", "is before the start."),
        ("[bob] /team delegate @dan until=2028-01-01", "A delegation lasts a year at most."),
        ("[bob] /team delegate @nobody until=2026-12-20", "I don't know @nobody in this team yet."),
        ("[bob] /team delegate @dan until=2026-12-20 for=@erin",
         "Only erin or an admin can choose who decides"),
        ("[bob] /team delegate @dan until=2026-12-20 when=now", "I don't know the option “when=”."),
    ]:
        answer = chat.say(line)
        assert expected in answer, (line, answer)
    assert chat.snapshot() == before


def test_reminders_and_escalations_go_to_delegates(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[bob] /team delegate @dan until=2026-12-20")
    chat.say("[erin] /team delegate @carol until=2026-12-20")
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    clock.set(datetime(2026, 11, 26, 13, 1, tzinfo=SH))
    run_worker(chat)
    [reminder] = [p for p in chat.pushes("dan") if "Approvals waiting for you" in p]
    assert "Q1 · Acme Trading · $80,000 · by alice — waiting 4 working h — for bob" in reminder
    assert [p for p in chat.pushes("bob") if "Approvals waiting" in p] == []
    clock.set(datetime(2026, 11, 26, 17, 2, tzinfo=SH))
    run_worker(chat)
    [escalated] = [p for p in chat.pushes("carol") if "Approvals escalated to you" in p]
    assert "waiting 8 working h — for erin" in escalated
    assert chat.say("[carol] /quote approve Q1") == \
        "✅ Q1 approved by carol as erin's delegate · 17:02"


def test_chinese_delegate_wording(chat: Chat) -> None:
    chat.say("/团队 配置 语言=zh")
    chat.say("[王总] /帮助")
    chat.say("[李四] /帮助")
    chat.say("/团队 角色 @王总 manager")
    chat.say("/团队 角色 @alice rep")
    assert "王总 的审批交由 李四 处理" in chat.say("[王总] /团队 代理 @李四 至=2026-12-20")
    chat.say("/线索 新建 华为技术")
    assert "已通知 李四（代 王总）" in chat.say("/报价 L1 8万")
    assert chat.pushes("李四")[-1].startswith("🧾 Q1 · 华为技术 · ¥80,000 · 申请人 alice · "
                                             "L1 阶段 线索\n你作为 王总 的代理人审批。")
    assert chat.say("[李四] /审批 同意 Q1") == "✅ Q1 已由 李四（代 王总）同意 · 09:00"
    assert chat.say("[王总] /审批 同意 Q1") == "Q1 已于 09:00 被 李四（代 王总）同意。"


# --- silent approvers -----------------------------------------------------------------------------

def test_a_silent_approver_is_not_asked_but_may_still_decide(managers: Chat) -> None:
    chat = managers
    assert "Silent approver" in chat.say("[frank] /me silent on")
    chat.say("/lead add Acme")
    assert "Needs a manager — asked bob." in chat.say("/quote L1 80k")
    assert [p for p in chat.pushes("frank") if "Q1" in p] == []
    assert "Waiting for your approval (1)" in chat.say("[frank] /me")  # still finds it
    assert chat.say("[frank] /quote approve Q1") == "✅ Q1 approved by frank · 09:00"

    chat.say("[bob] /me silent on")  # everyone silent: a request must still reach someone
    assert "asked bob, frank." in chat.say("/quote L1 90k")
    chat.say("[frank] /me silent off")
    assert "asked frank." in chat.say("/quote L1 95k")


def test_a_silent_approver_needed_for_the_count_is_still_asked(managers: Chat) -> None:
    chat = managers
    chat.say("[erin] /team config approval_levels=2*manager")
    chat.say("[frank] /me silent on")
    chat.say("/lead add Acme")
    assert "Needs 2 managers — asked bob, frank." in chat.say("/quote L1 80k")


# --- races ----------------------------------------------------------------------------------------

def test_a_delegate_and_the_approver_clicking_at_once_make_one_decision(team: Chat) -> None:
    chat = team
    chat.say("[bob] /team delegate @dan until=2026-12-20")
    for round_no in range(ROUNDS):
        chat.say(f"/lead add Customer{round_no} Trading")
        asked = chat.say(f"/quote L{round_no + 1} 80k")
        q = int(re.search(r"Q(\d+) ", asked).group(1))  # type: ignore[union-attr]
        lines = [f"[bob] /quote approve Q{q}", f"[dan] /quote approve Q{q}"]
        answers = texts(race(chat.engine, chat.clock, lines))
        won = [i for i, text in enumerate(answers) if text.startswith("✅")]
        assert len(won) == 1, answers
        who = ("bob", "dan as bob's delegate")[won[0]]
        assert answers[won[0]] == f"✅ Q{q} approved by {who} · 09:00", answers
        assert answers[1 - won[0]] == f"Q{q} was already approved by {who} at 09:00.", answers
        assert len(decisions(chat, q)) == 1


def test_on_a_two_signature_level_a_delegate_and_their_principal_count_once(managers: Chat) -> None:
    chat = managers
    chat.say("[erin] /team config approval_levels=2*manager")
    chat.say("[bob] /team delegate @dan until=2026-12-20")
    for round_no in range(ROUNDS):
        chat.say(f"/lead add Customer{round_no} Trading")
        asked = chat.say(f"/quote L{round_no + 1} 80k")
        q = int(re.search(r"Q(\d+) ", asked).group(1))  # type: ignore[union-attr]
        lines = [f"[bob] /quote approve Q{q}", f"[dan] /quote approve Q{q}"]
        answers = texts(race(chat.engine, chat.clock, lines))
        signed = [i for i, text in enumerate(answers) if text.startswith("✅")]
        assert len(signed) == 1, answers
        who = ("bob", "dan as bob's delegate")[signed[0]]
        assert answers[signed[0]].startswith(
            f"✅ Q{q}: approved by {who} · 09:00 — 1 of 2 managers."), answers
        assert answers[1 - signed[0]] == \
            f"{who} already approved Q{q} at 09:00; it still needs 1 more.", answers
        with unit_of_work(chat.engine) as session:
            quote = session.exec(select(Quote).where(Quote.number == q)).one()
            rows = list(session.exec(select(ApprovalSignature)
                                     .where(ApprovalSignature.quote_id == quote.id)))
            assert quote.status == "pending" and len(rows) == 1
        assert chat.say(f"[frank] /quote approve Q{q}") == f"✅ Q{q} approved by frank · 09:00"


def test_two_managers_signing_a_two_signature_level_at_once_both_count(managers: Chat) -> None:
    chat = managers
    chat.say("[erin] /team config approval_levels=2*manager")
    for round_no in range(ROUNDS):
        chat.say(f"/lead add Customer{round_no} Trading")
        asked = chat.say(f"/quote L{round_no + 1} 80k")
        q = int(re.search(r"Q(\d+) ", asked).group(1))  # type: ignore[union-attr]
        lines = [f"[bob] /quote approve Q{q}", f"[frank] /quote approve Q{q}"]
        answers = texts(race(chat.engine, chat.clock, lines))
        first = [i for i, text in enumerate(answers) if "1 of 2 managers" in text]
        final = [i for i, text in enumerate(answers)
                 if text == f"✅ Q{q} approved by {('bob', 'frank')[i]} · 09:00"]
        assert len(first) == 1 and len(final) == 1, answers
        with unit_of_work(chat.engine) as session:
            quote = session.exec(select(Quote).where(Quote.number == q)).one()
            rows = list(session.exec(select(ApprovalSignature)
                                     .where(ApprovalSignature.quote_id == quote.id)))
            assert quote.status == "approved" and len(rows) == 2
