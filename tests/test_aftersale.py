"""After the signature, as the team lives it in chat: a contract, its payment plan, a partial
payment, a payment beyond an instalment, the nudges while money is late, and the plan paid with
credit to spare — in English and in Chinese. Bad input answers with the right form and changes
nothing; a rep works only on their own leads' contracts."""

from __future__ import annotations

import re

import pytest
from sqlmodel import col, select

from models.db import unit_of_work
from models.tables import AuditEvent
from tests.chat import Chat
from tests.test_aftersale_reminders import pushed, run_worker, sections
from tests.test_concurrency import race
from tests.test_scans import at


def table(text: str) -> list[list[str]]:
    """The rows of a reply's table below its header (replies without fields), cells split where
    the console aligns them."""
    rows = [
        re.split(r"\s{2,}", line.strip())
        for line in text.splitlines()
        if line.startswith("  ") and not line.strip().startswith("[")
    ]
    return rows[1:]


def plan_rows(text: str) -> list[list[str]]:
    return [
        re.split(r"\s{2,}", line.strip())
        for line in text.splitlines()
        if re.match(r"^  \d+  ", line)
    ]


def refused(chat: Chat, line: str, *expected: str, usage: str | None = None) -> str:
    before = chat.snapshot()
    reply = chat.reply(line)
    assert reply.ok is False, (line, reply.text)
    for text in expected:
        assert text in reply.text, (line, reply.text)
    if usage:
        assert usage in reply.text, (line, reply.text)
    assert chat.snapshot() == before, line
    return reply.text


def test_contract_plan_partial_payment_overpayment_overdue_nudges_and_paid(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading value=100k")
    made = chat.say("/contract L1 100k signed=yesterday end=2027-11-25 no=HT-7")
    assert made.splitlines()[0] == (
        "📄 C1 for L1 Acme Trading: $100,000 · signed Wed 25 Nov · ends Thu 25 Nov 2027 · no. HT-7"
    )
    assert "🏆 L1 is won." in made and "[Payment plan → /plan C1]" in made

    plan = chat.say("/plan C1 40%@2026-12-01 60%@2026-12-31")
    assert plan.startswith("🗓 C1 payment plan: 2 instalments, $100,000")
    assert plan_rows(plan) == [
        ["1", "Tue 1 Dec", "$40,000 (40%)", "-"],
        ["2", "Thu 31 Dec", "$60,000 (60%)", "-"],
    ]

    partial = chat.say("/paid C1 15k")
    assert partial.splitlines() == [
        "💰 C1 · L1 Acme Trading: $15,000 received Thu 26 Nov",
        "→ #1 $15,000: partly paid, $25,000 still due",
        "Outstanding $85,000 · next: #1 $25,000 due Tue 1 Dec",
        "  [Record payment C1 → /paid C1]",
    ]
    beyond = chat.say("/paid C1 35k yesterday first wire from Acme")
    assert beyond.splitlines()[:4] == [
        "💰 C1 · L1 Acme Trading: $35,000 received Wed 25 Nov",
        "→ #1 $25,000: paid ✅",
        "→ #2 $10,000: partly paid, $50,000 still due",
        "Outstanding $50,000 · next: #2 $50,000 due Thu 31 Dec",
    ]

    clock.set(at(2026, 11, 28))  # 3 days before #1 fell due: it is paid, so nothing to say
    run_worker(chat)
    clock.set(at(2026, 12, 27))
    run_worker(chat)
    assert pushed(chat, "alice", "Payments") == []
    clock.set(at(2026, 12, 28))  # 3 days before #2
    run_worker(chat)
    run_worker(chat)
    assert sections(chat, "alice", "Payments due soon") == [
        ["📅 Payments due soon (1)", "· C1 #2 Acme Trading — $50,000 due Thu 31 Dec (in 3d)"]
    ]

    for day_ in (
        1,
        2,
        3,
    ):  # overdue: every day until paid, and to the manager past the SLA of 2 days
        clock.set(at(2027, 1, day_))
        run_worker(chat)
        run_worker(chat)
    overdue = sections(chat, "alice", "Payments overdue")
    assert [lines[1] for lines in overdue] == [
        f"· C1 #2 Acme Trading — $50,000 overdue since Thu 31 Dec 2026 ({days}d)"  # last year's
        for days in (1, 2, 3)
    ]
    assert (
        "[Record payment C1 → /paid C1]  [Snooze C1 3d → /receivables snooze C1 3d]"
        in pushed(chat, "alice", "Payments overdue")[0]
    )
    assert sections(chat, "bob", "payments overdue past") == [
        [
            "💸 Your team's payments overdue past 2 days (1)",
            "· C1 #2 Acme Trading (alice) — $50,000, 3d overdue",
        ]
    ]

    owed = chat.say("/receivables")
    assert owed.splitlines()[:2] == [
        "💼 Your receivables — $50,000 open · $50,000 due",
        "Ageing (days) 0–30 $50,000 · 31–60 $0 · 61–90 $0 · 90+ $0",
    ]
    assert table(owed) == [["C1 Acme Trading", "2", "Thu 31 Dec 2026", "$50,000", "alice", "3d"]]

    done = chat.say("/paid C1 80k")
    assert done.splitlines() == [
        "💰 C1 · L1 Acme Trading: $80,000 received Sun 3 Jan",
        "→ #2 $50,000: paid ✅",
        "⚠️ $30,000 more than the plan asked for — kept as credit on C1.",
        "✅ C1 is fully paid.",
    ]
    clock.set(at(2027, 1, 4))
    run_worker(chat)
    assert len(pushed(chat, "alice", "Payments overdue")) == 3  # paid: the daily nudge stopped
    refused(chat, "/paid C1 1k", "C1 is fully paid ($100,000); nothing was recorded.")

    card = chat.say("/contract show C1")
    assert card.startswith("📄 C1 · L1 Acme Trading · $100,000 · owner alice")
    for field in (
        "No.: HT-7",
        "Signed: Wed 25 Nov 2026",
        "Ends: Thu 25 Nov",
        "Received: $130,000",
        "Outstanding: $0",
        "Credit (paid beyond the plan): $30,000",
    ):
        assert f"  {field}" in card, field
    assert [row[-1] for row in plan_rows(card)] == ["✅", "✅"]
    assert (
        "Contract C1: $100,000 · received $130,000 · outstanding $0 · ends Thu 25 Nov"
        in chat.say("/lead show L1")
    )
    assert chat.say("/receivables") == "💼 Your receivables: nothing owed."
    with unit_of_work(chat.engine) as session:
        events = session.exec(
            select(AuditEvent).where(AuditEvent.entity == "contract").order_by(col(AuditEvent.id))
        ).all()
        assert [(e.action, (e.after or {}).get("amount")) for e in events] == [
            ("add", 10_000_000),
            ("plan", None),
            ("payment", 1_500_000),
            ("payment", 3_500_000),
            ("payment", 8_000_000),
        ]
        assert events[-1].after and events[-1].after["unapplied"] == 3_000_000


def test_the_same_in_chinese_with_a_milestone_that_gets_its_date_later(chat: Chat) -> None:
    for line in (
        "/团队 配置 语言=zh",
        "[bob] /帮助",
        "/团队 角色 @bob manager",
        "[erin] /帮助",
        "/团队 角色 @erin admin",
        "/团队 角色 @alice rep",
        "/线索 新建 华为技术 预计=100万",
    ):
        chat.say(line)
    made = chat.say("/合同 L1 100万 签订=11/20 到期=2027-11-19 编号=HT-9")
    assert (
        made.splitlines()[0]
        == "📄 C1 · L1 华为技术：¥1,000,000 · 签订 11月20日（周五） · "
        "到期 2027年11月19日（周五） · 编号 HT-9"
    )
    plan = chat.say("/回款计划 C1 30%@签约 70%@验收")
    assert plan_rows(plan) == [
        ["1", "11月20日（周五）（签约）", "¥300,000（30%）", "-"],
        ["2", "验收时", "¥700,000（70%）", "-"],
    ]
    paid = chat.say("/回款 C1 10万 昨天 银行转账")
    assert paid.splitlines()[:3] == [
        "💰 C1 · L1 华为技术：11月25日（周三）回款 ¥100,000",
        "→ 第 1 期 ¥100,000：部分回款，还差 ¥200,000",
        "待回款 ¥900,000 · 下一期：第 1 期 ¥200,000，11月20日（周五）（签约）",
    ]
    assert chat.say("/合同 编辑 C1 验收=12/10") == "✏️ C1 已更新：验收 12月10日（周四）"
    owed = chat.say("/应收")
    assert owed.splitlines()[:2] == [
        "💼 我的应收 — 待回款 ¥900,000 · 已到期 ¥200,000",
        "账龄（天） 0–30 ¥200,000 · 31–60 ¥0 · 61–90 ¥0 · 90+ ¥0",
    ]
    assert table(owed) == [
        ["C1 华为技术", "1", "11月20日（周五）（签约）", "¥200,000", "alice", "6天"],
        ["C1 华为技术", "2", "12月10日（周四）（验收）", "¥700,000", "alice", "-"],
    ]

    chat.clock.set(at(2026, 12, 11))
    run_worker(chat)
    assert sections(chat, "alice", "逾期未回款") == [
        [
            "💸 逾期未回款（2）",
            "· C1 第 1 期 华为技术 — ¥200,000，11月20日（周五）到期，已逾期 21 天",
            "· C1 第 2 期 华为技术 — ¥700,000，12月10日（周四）到期，已逾期 1 天",
        ]
    ]
    [nudge] = pushed(
        chat, "alice", "逾期未回款"
    )  # one pair of buttons for the contract, not one per line
    assert (
        nudge.count("[登记回款 C1 → /回款 C1]") == 1
        and "[暂缓 C1 3 天 → /应收 暂缓 C1 3天后]" in nudge
    )
    assert chat.say("/应收 暂缓 C1 3d") == "😴 C1 · 华为技术：12月14日（周一）起恢复回款提醒。"
    chat.clock.set(at(2026, 12, 12))
    run_worker(chat)
    assert len(pushed(chat, "alice", "逾期未回款")) == 1  # snoozed
    assert chat.say("/回款 C1 90万").splitlines()[-1] == "✅ C1 已全部回款。"


@pytest.fixture
def signed(team: Chat) -> Chat:
    """alice: L1 with C1 (100k; 40% on 1 Dec, 60% on 31 Dec), L2 with C2 (50k, no plan yet),
    L3 open, L4 lost; carol: L5 with C3 (10k, fully planned)."""
    for line in (
        "/lead add Acme Trading",
        "/contract L1 100k",
        "/plan C1 40%@2026-12-01 60%@2026-12-31",
        "/lead add Beta Foods",
        "/contract L2 50k",
        "/lead add Gamma Steel",
        "/lead add Delta Paper",
        "/lead lost L4 no budget",
        "[carol] /lead add Zeta Tools",
        "[carol] /contract L5 10k",
        "[carol] /plan C3 100%@signing",
    ):
        assert team.reply(line).ok, line
    return team


ENGLISH = [
    (
        "/plan C1 30%@signing 40%@2026-12-31 20%@acceptance",
        ["The percentages add up to 90%, not 100%."],
        True,
    ),
    (
        "/plan C1 30k@signing 50k@2026-12-31",
        ["The instalments add up to $80,000, not the contract's $100,000 ($20,000 apart)."],
        True,
    ),
    ("/plan C1 30%@signing 70k@acceptance", ["Use percentages (30%@signing) or amounts"], True),
    ("/plan C1 30%@someday 70%@acceptance", ["“someday” is neither a date nor a milestone"], True),
    ("/plan C1 30% 70%@acceptance", ["“30%” is not an instalment. Write share@when"], True),
    ("/plan C9 100%@signing", ["There is no contract C9 in this team."], False),
    ("/plan X1 100%@signing", ["“X1” is not a contract id. Contract ids look like C2."], True),
    ("/paid C1 lots", ["“lots” is not an amount"], True),
    ("/paid C1", ["Missing an amount."], True),
    ("/paid C1 10k 2027-01-05", ["Tue 5 Jan 2027 is in the future"], False),
    ("/paid C2 10k", ["C2 has no payment plan yet. Set one first: /plan C2 100%@signing"], False),
    ("/paid C7 10k", ["There is no contract C7 in this team."], False),
    ("/contract L1 50k end=someday", ["“someday” is not a date I understand."], True),
    (
        "/contract L3 50k start=2026-12-01 end=2026-11-01",
        ["The contract would end (Sun 1 Nov) before it starts (Tue 1 Dec)."],
        False,
    ),
    ("/contract L4 50k", ["L4 was lost; a contract needs an open or won lead."], False),
    ("/contract L3 50k colour=red", ["I don't know the option “colour=”."], True),
    ("/contract edit C1 amount=90k", ["C1 has a payment plan, so its amount stays."], False),
    ("/contract edit C1", ["Missing what to change, like delivered=today."], True),
    ("/care L3 called them", ["L3 is not a customer yet (open); care is for won leads."], False),
    ("/care L4 called them", ["L4 is not a customer yet (lost); care is for won leads."], False),
    ("/care L1 fine grade=Z", ["“Z” is not a grade. Grades: A, B, C."], True),
    ("/receivables later", ["“later” is not one of: mine, team, overdue."], True),
    ("/receivables snooze C1 today", ["Snooze until a day after today"], False),
]


@pytest.mark.parametrize(("line", "expected", "form"), ENGLISH, ids=[case[0] for case in ENGLISH])
def test_bad_input_says_what_was_wrong_and_changes_nothing(
    signed: Chat, line: str, expected: list[str], form: bool
) -> None:
    text = refused(signed, line, *expected, usage="Usage: /" if form else None)
    if not form:
        assert "Usage:" not in text


def test_bad_input_in_chinese_and_a_plan_that_can_no_longer_change(signed: Chat) -> None:
    chat = signed
    chat.say("[erin] /team config locale=zh")
    refused(
        chat,
        "/回款计划 C1 30%@签约 40%@2026-12-31 20%@验收",
        "各期比例合计 90%，不是 100%。",
        usage="用法：/回款计划",
    )
    refused(
        chat,
        "/回款计划 C1 3万@签约 3万@明天",
        "各期金额合计 US$60,000，与合同金额 US$100,000 不符（相差 US$40,000）。",
        usage="用法：/回款计划",
    )  # the team keeps the currency it started with
    refused(chat, "/回款 C9 10万", "本团队没有合同 C9。")
    refused(chat, "/回访 L3 电话回访", "L3 还不是客户（进行中），回访只针对已赢单的线索。")
    refused(chat, "/回款 C1 很多", "“很多”不是有效金额。", usage="用法：/回款 <C> <金额>")
    assert chat.reply("/回款 C1 1万").ok
    refused(chat, "/回款计划 C1 50%@签约 50%@验收", "C1 已有回款记录，回款计划不能再修改。")
    assert chat.reply("/回款 C1 10万").ok  # beyond the plan: kept as credit
    refused(chat, "/回款 C1 1万", "C1 已全部回款（US$100,000），本次未记录。")


def test_a_rep_works_only_on_their_own_leads_contracts(signed: Chat) -> None:
    chat = signed
    for line in (
        "[carol] /contract L1 10k",
        "[carol] /paid C1 10k",
        "[carol] /plan C2 100%@signing",
        "[carol] /contract show C1",
        "[carol] /contract edit C1 delivered=today",
        "[carol] /receivables snooze C1 3d",
        "[carol] /care L1 called grade=A",
    ):
        refused(
            chat,
            line,
            "L1 belongs to alice; you can't see it."
            if "C2" not in line
            else "L2 belongs to alice; you can't see it.",
        )
    assert "C1" not in chat.say("[carol] /receivables team")
    assert table(chat.say("[carol] /receivables")) == [
        ["C3 Zeta Tools", "1", "Thu 26 Nov (signing)", "$10,000", "carol", "today"]
    ]
    # The team's manager sees and acts on everyone's; their own list is empty.
    team_view = chat.say("[bob] /receivables")
    assert team_view.startswith("💼 Team receivables — $110,000 open · $10,000 due")
    assert [row[0] for row in table(team_view)] == [
        "C3 Zeta Tools",
        "C1 Acme Trading",
        "C1 Acme Trading",
    ]
    assert chat.say("[bob] /receivables mine") == "💼 Your receivables: nothing owed."
    assert "→ #1 $10,000: partly paid, $30,000 still due" in chat.say("[bob] /paid C1 10k")
    assert "Contract C1: $100,000 · received $10,000 · outstanding $90,000" in chat.say(
        "/lead show L1"
    )


def test_contract_dates_move_milestone_instalments_and_the_first_care_follows_delivery(
    signed: Chat,
) -> None:
    chat = signed
    assert "Care: grade B · next Thu 3 Dec" in chat.say(
        "/lead show L2"
    )  # won today; 7 days after the win
    chat.say("/plan C2 50%@signing 50%@delivery")
    assert plan_rows(chat.say("/plan C2"))[1] == ["2", "on delivery", "$25,000 (50%)", "-"]
    assert (
        chat.say("/contract C2 delivered=12/15 end=2027-12-14")
        == "✏️ C2 updated: Delivered Tue 15 Dec · Ends Tue 14 Dec 2027"
    )
    assert plan_rows(chat.say("/contract show C2"))[1] == [
        "2",
        "Tue 15 Dec (delivery)",
        "$25,000 (50%)",
        "-",
    ]
    assert "Care: grade B · next Tue 15 Dec" in chat.say("/lead show L2")
    assert (
        chat.say("/care L2 grade=A")
        == "🏷 L2 Beta Foods is grade A now. Next care: Tue 15 Dec (grade A, every 30 days)."
    )
    assert (
        chat.say("/care L2 kickoff call, happy via=call")
        == "🤝 L2 Beta Foods: care logged. Next care: Sat 26 Dec (grade A, every 30 days)."
    )
    assert "(call)" in chat.say(
        "/lead show L2"
    )  # the care call is among the lead's latest follow-ups


def test_payments_racing_on_one_contract_all_land_once_and_the_last_cent_is_paid_once(
    signed: Chat,
) -> None:
    chat = signed
    for _ in range(3):
        assert all(reply.ok for reply in race(chat.engine, chat.clock, ["/paid C1 10k"] * 3))
    card = chat.say("/contract show C1")
    assert "  Received: $90,000" in card and "  Outstanding: $10,000" in card
    assert [row[-1] for row in plan_rows(card)] == ["✅", "$50,000"]
    replies = race(chat.engine, chat.clock, ["/paid C1 10k", "/paid C1 10k"])
    assert sorted(reply.ok for reply in replies) == [False, True]
    assert "✅ C1 is fully paid." in next(reply.text for reply in replies if reply.ok)
    assert "C1 is fully paid ($100,000); nothing was recorded." in next(
        r.text for r in replies if not r.ok
    )
    # Two people setting C2's plan at once: one plan stands whole, never a mix of both.
    race(
        chat.engine,
        chat.clock,
        ["/plan C2 50%@signing 50%@delivery", "/plan C2 20k@2026-12-01 30k@2027-01-01"],
    )
    assert [row[2] for row in plan_rows(chat.say("/plan C2"))] in (
        ["$25,000 (50%)", "$25,000 (50%)"],
        ["$20,000", "$30,000"],
    )
