"""Transfer requests (撞单 settled in chat): the duplicate reply offers the request, the owner (or,
after the team's limit, their manager) decides with buttons, both sides are told, the audit trail
records it; a pool lead is claimed instead. Conflicts: two reps asking at once, the owner and the
manager deciding at once. In the `team` fixture alice, carol and dan are reps, bob the manager,
erin an admin."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import col, select

from models.db import unit_of_work
from models.tables import AuditEvent, Lead, Member
from models.teamwork import TransferRequest
from reminders.worker import Worker
from tests.chat import Chat
from tests.test_concurrency import ROUNDS, race, texts

SH = ZoneInfo("Asia/Shanghai")


def new_pushes(chat: Chat, name: str, since: int) -> list[str]:
    return chat.pushes(name)[since:]


def owner_of(chat: Chat, number: int) -> str | None:
    with unit_of_work(chat.engine) as session:
        lead = session.exec(select(Lead).where(Lead.number == number)).one()
        if lead.owner_id is None:
            return None
        member = session.get(Member, lead.owner_id)
        return member.name if member else None


def lead_events(chat: Chat, number: int) -> list[AuditEvent]:
    with unit_of_work(chat.engine) as session:
        lead = session.exec(select(Lead).where(Lead.number == number)).one()
        return list(session.exec(select(AuditEvent).where(AuditEvent.entity == "lead",
                                                          AuditEvent.entity_id == lead.id)
                                 .order_by(col(AuditEvent.id))))


def run_worker(chat: Chat) -> None:
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def test_a_duplicate_offers_a_transfer_the_owner_approves_and_both_are_told(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading phone=138-0013-8000 value=120k")
    duplicate = chat.say("[carol] /lead add ACME trading ltd phone=13800138000")
    assert "Looks like L1 Acme Trading (owner: alice, stage Lead). Not added." in duplicate
    assert "[Request transfer → /lead transfer L1]" in duplicate
    assert "[Add anyway → /lead add ACME trading ltd phone=13800138000 force=yes]" in duplicate
    # The owner's own duplicate offers no transfer.
    assert "Request transfer" not in chat.say("/lead add Acme again phone=13800138000")

    asked = chat.say("[carol] /lead transfer L1 I met them at the fair last week")
    assert asked.startswith("📨 Asked alice to hand L1 Acme Trading over to you.")
    assert "If alice doesn't answer within 4 working hours, bob decides." in asked
    assert "[Withdraw → /lead transfer cancel L1]" in asked
    [card] = chat.pushes("alice")
    assert card.startswith("🔁 carol asks for L1 Acme Trading (yours): "
                           "I met them at the fair last week")
    assert "[Approve → /lead transfer approve L1]  [Reject → /lead transfer reject L1]" in card

    carol_before = len(chat.pushes("carol"))
    approved = chat.say("/lead transfer approve L1 fine, she knows them")  # the button, typed
    assert approved == "✅ L1 Acme Trading now belongs to carol (approved by alice · 09:00)."
    [told] = new_pushes(chat, "carol", carol_before)
    assert told.startswith("✅ L1 Acme Trading is yours now — alice approved your request · 09:00: "
                           "fine, she knows them")
    assert "[Log follow-up → /follow L1]" in told
    assert owner_of(chat, 1) == "carol"
    assert "L1 Acme Trading" in chat.say("[carol] /lead list mine")
    assert "belongs to carol; you can't see it" in chat.say("/lead show L1")

    history = chat.say("[carol] /lead show L1 history")
    assert "handed it to carol as asked" in history
    actions = [event.action for event in lead_events(chat, 1)]
    assert actions[-2:] == ["transfer_ask", "transfer"]

    # A second click is told who decided and when; nothing changes.
    again = chat.say("[bob] /lead transfer reject L1 no")
    assert again == "The request by carol for L1 was already approved by alice at 09:00."
    assert owner_of(chat, 1) == "carol"


def test_the_owner_rejects_and_the_requester_may_ask_again_later(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("[carol] /lead transfer L1 they called me first")
    rejected = chat.say("/lead transfer reject L1 I have a meeting with them on Friday")
    assert rejected == "❌ L1 Acme Trading stays with alice (rejected by alice · 09:00)."
    assert chat.pushes("carol")[-1] == ("❌ alice kept L1 Acme Trading with alice · 09:00: "
                                        "I have a meeting with them on Friday")
    assert owner_of(chat, 1) == "alice"
    assert any(event.action == "transfer_rejected" for event in lead_events(chat, 1))

    assert "📨 Asked alice" in chat.say("[carol] /lead transfer L1 the meeting was cancelled")
    assert chat.say("[carol] /lead transfer cancel L1") == \
        "↩️ Request for L1 Acme Trading withdrawn."
    assert chat.pushes("alice")[-1] == "↩️ carol withdrew the request for L1 Acme Trading."
    assert chat.say("/lead transfer approve L1") == \
        "The request by carol for L1 was already withdrawn by carol at 09:00."
    assert owner_of(chat, 1) == "alice"


def test_an_unanswered_request_goes_to_the_manager_after_the_limit(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("[carol] /lead transfer L1 I met them at the fair")

    clock.set(datetime(2026, 11, 26, 12, 59, tzinfo=SH))  # under 4 working hours
    run_worker(chat)
    assert [p for p in chat.pushes("bob") if "Transfer requests" in p] == []

    clock.set(datetime(2026, 11, 26, 13, 1, tzinfo=SH))
    run_worker(chat)
    run_worker(chat)  # once only
    [escalated] = [p for p in chat.pushes("bob") if "Transfer requests" in p]
    assert "Transfer requests waiting for you (1)" in escalated
    assert ("L1 Acme Trading — carol asks for it; alice hasn't answered in 4h: "
            "I met them at the fair") in escalated
    assert ("[Approve L1 → /lead transfer approve L1]  "
            "[Reject L1 → /lead transfer reject L1]") in escalated
    sent_to = [e.after["to"] for e in lead_events(chat, 1) if e.action == "transfer_escalate"]
    assert sent_to == [["bob"]]

    alice_before, carol_before = len(chat.pushes("alice")), len(chat.pushes("carol"))
    assert chat.say("[bob] /lead transfer approve L1") == \
        "✅ L1 Acme Trading now belongs to carol (approved by bob · 13:01)."
    assert new_pushes(chat, "alice", alice_before) == [
        "🔁 L1 Acme Trading now belongs to carol — bob approved carol's request · 13:01"]
    assert new_pushes(chat, "carol", carol_before)[0].startswith(
        "✅ L1 Acme Trading is yours now — bob approved your request · 13:01")


def test_a_lead_in_the_pool_is_claimed_instead(team: Chat) -> None:
    chat = team
    chat.say("[bob] /lead add Pooled Co owner=pool")
    assert "[Claim it → /lead claim L1]" in chat.say("[dan] /lead add Pooled Co")
    claimed = chat.say("[dan] /lead transfer L1")  # no reason needed: nobody is asked
    assert claimed.startswith("🙋 L1 Pooled Co was in the pool — claimed, it is yours now.")
    assert owner_of(chat, 1) == "dan"
    assert chat.pushes("bob") == [] and chat.pushes("alice") == []


def test_a_request_the_lead_outgrew_is_closed_not_applied(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("[carol] /lead transfer L1 I met them first")
    chat.say("[bob] /lead assign L1 @dan")  # meanwhile the manager decided otherwise
    closed = chat.say("/lead transfer approve L1")  # alice clicks her card afterwards
    assert closed == ("L1 Acme Trading changed hands since carol asked (now dan); "
                      "the request is closed.")
    assert owner_of(chat, 1) == "dan"
    assert chat.pushes("carol")[-1] == ("Your request for L1 Acme Trading is closed: "
                                        "the lead changed hands "
                                        "since (now dan).")
    # A fresh request now goes to the new owner.
    assert "📨 Asked dan" in chat.say("[carol] /lead transfer L1 still keen")


def test_wrong_transfer_commands_change_nothing(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("[carol] /lead add Closed Co")
    chat.say("[carol] /lead lost L2 no budget")
    before = chat.snapshot()
    cases = [
        ("[carol] /lead transfer L1", ["Missing a reason.", "Usage: /lead transfer <L> <reason>"]),
        ("[carol] /lead transfer Acme please", ["“Acme” is not a lead id."]),
        ("[carol] /lead transfer L99 please", ["There is no lead L99"]),
        ("/lead transfer L1 mine", ["L1 is already yours."]),
        ("[dan] /lead transfer L2 please", ["L2 is already closed (lost)."]),
        ("/lead transfer approve L1", ["Nobody asked for L1. To ask: /lead transfer L1 <reason>"]),
        ("[carol] /lead transfer cancel L1", ["Nobody asked for L1."]),
        ("/lead transfer approve", ["Missing a lead id like L12."]),
    ]
    for line, expected in cases:
        answer = chat.say(line)
        for part in expected:
            assert part in answer, (line, answer)
    assert chat.snapshot() == before

    chat.say("[carol] /lead transfer L1 I met them first")
    before = chat.snapshot()
    for line, expected in [
        ("[dan] /lead transfer approve L1",
         "Only alice (the owner) or their manager decides who gets L1."),
        ("[carol] /lead transfer approve L1",
         "You asked for L1 yourself; its owner or their manager decides."),
        ("[dan] /lead transfer cancel L1",
         "Only the one who asked can withdraw the request for L1."),
        ("[carol] /lead transfer L1 again",
         "You already asked for L1 at 09:00; alice is deciding."),
    ]:
        assert chat.say(line) == expected
    assert chat.snapshot() == before


def test_two_reps_asking_for_the_same_lead_at_once_make_one_request(team: Chat) -> None:
    chat = team
    for round_no in range(ROUNDS):
        number = round_no + 1
        chat.say(f"/lead add Customer{round_no} Trading")
        alice_before = len(chat.pushes("alice"))
        lines = [f"[carol] /lead transfer L{number} met them first",
                 f"[dan] /lead transfer L{number} they are my cousin"]
        answers = texts(race(chat.engine, chat.clock, lines))
        winners = [i for i, text in enumerate(answers) if text.startswith("📨 Asked alice")]
        assert len(winners) == 1, answers
        winner, loser = ("carol", "dan")[winners[0]], ("carol", "dan")[1 - winners[0]]
        assert answers[1 - winners[0]] == (f"{winner} already asked for L{number} at 09:00; "
                                           "alice is deciding. "
                                           "Nothing was sent."), answers
        chat.deliver()
        [card] = new_pushes(chat, "alice", alice_before)
        assert card.startswith(f"🔁 {winner} asks for L{number} Customer{round_no} Trading (yours)")
        with unit_of_work(chat.engine) as session:
            lead = session.exec(select(Lead).where(Lead.number == number)).one()
            query = select(TransferRequest).where(TransferRequest.lead_id == lead.id)
            rows = list(session.exec(query))
        assert [row.status for row in rows] == ["pending"]
        assert loser not in card


def test_owner_and_manager_deciding_at_once_make_one_decision(team: Chat) -> None:
    chat = team
    for round_no in range(ROUNDS):
        number = round_no + 1
        chat.say(f"/lead add Customer{round_no} Trading")
        chat.say(f"[carol] /lead transfer L{number} met them first")
        carol_before = len(chat.pushes("carol"))
        lines = [f"/lead transfer approve L{number}",
                 f"[bob] /lead transfer reject L{number} not yet"]
        answers = texts(race(chat.engine, chat.clock, lines))
        decided = [i for i, text in enumerate(answers) if text.startswith(("✅", "❌"))]
        assert len(decided) == 1, answers
        by = ("alice", "bob")[decided[0]]
        status = ("approved", "rejected")[decided[0]]
        assert answers[1 - decided[0]] == (f"The request by carol for L{number} was already "
                                           f"{status} by {by} "
                                           "at 09:00."), answers
        assert owner_of(chat, number) == ("carol" if status == "approved" else "alice")
        events = [e.action for e in lead_events(chat, number)
                  if e.action in ("transfer", "transfer_rejected")]
        assert events == (["transfer"] if status == "approved" else ["transfer_rejected"])
        chat.deliver()
        assert len(new_pushes(chat, "carol", carol_before)) == 1  # told once, by the winner


def test_chinese_transfer_transcript(chat: Chat) -> None:
    chat.say("/团队 配置 语言=zh")
    chat.say("[李四] /帮助")
    chat.say("[王总] /帮助")
    chat.say("/团队 角色 @王总 manager")
    chat.say("/团队 角色 @alice rep")
    chat.say("/线索 新建 华为技术 电话=13912345678 预计=12.5万")
    duplicate = chat.say("[李四] /线索 新建 华为 电话=139-1234-5678")
    assert "疑似撞单：L1 华为技术（负责人 alice，阶段 线索），未添加。" in duplicate
    assert "[申请转移 → /线索 转移 L1]" in duplicate
    assert "缺少原因" in chat.say("[李四] /线索 转移 L1")
    asked = chat.say("[李四] /线索 转移 L1 客户是我在展会上认识的")
    assert asked.startswith("📨 已请 alice 把 L1 华为技术 转给你。")
    assert "alice 若 4 个工作小时内未答复，将由 王总 决定。" in asked
    card = chat.pushes("alice")[-1]
    assert card.startswith("🔁 李四 申请接手你的 L1 华为技术：客户是我在展会上认识的")
    assert "[同意 → /线索 转移 同意 L1]  [驳回 → /线索 转移 驳回 L1]" in card
    assert chat.say("/线索 转移 同意 L1") == "✅ L1 华为技术 已转给 李四（alice 同意 · 09:00）。"
    assert chat.pushes("李四")[-1].startswith(
        "✅ L1 华为技术 现在归你了 — alice 同意了你的申请 · 09:00")
    assert chat.say("[王总] /线索 转移 驳回 L1 不行") == \
        "李四 对 L1 的转移申请已于 09:00 被 alice同意。"
