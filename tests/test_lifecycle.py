"""A deal's life cycle as a team lives it: closing a lead (won, lost, forgotten) or handing it to
the pool settles what hangs on it; the duplicate warning tells a closed lead's real status; a snooze
only quiets; a follow-up keeps or plans the next date as written; a payment cannot predate its
contract; and a nudge held through quiet hours is true on the morning it arrives."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import select

from models.clock import FixedClock
from models.db import make_engine, unit_of_work
from models.migrate import downgrade, upgrade
from models.tables import Lead
from reminders.worker import Worker
from tests.chat import Chat
from tests.databases import POSTGRES_URL, scratch_postgres

SH = ZoneInfo("Asia/Shanghai")


def at(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SH)


def run_worker(chat: Chat) -> None:
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def refused(chat: Chat, line: str) -> str:
    """The answer to a line that must change nothing."""
    before = chat.snapshot()
    reply = chat.reply(line)
    assert reply.ok is False, (line, reply.text)
    assert chat.snapshot() == before, line
    return reply.text


def next_date(chat: Chat, number: int) -> object:
    with unit_of_work(chat.engine) as session:
        return session.exec(select(Lead.next_followup_on).where(Lead.number == number)).one()


# --- closing a lead settles its quotes and transfer requests -------------------------------------


def test_a_lost_leads_quote_is_withdrawn_and_nobody_is_asked_about_it_again(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[carol] /lead add Acme Trading")
    chat.say("[carol] /lead add Beta Foods")
    assert "asked bob first" in chat.say("[carol] /quote L2 1.1m")  # Q1: bob, then an admin
    clock.set(at(11, 27, 10))
    run_worker(chat)  # bob is reminded while it waits
    assert any("Q1" in push for push in chat.pushes("bob")[1:])

    clock.set(at(12, 7, 10))
    lost = chat.say("[carol] /lead lost L2 went with a rival")
    assert lost.splitlines() == [
        "📉 L2 Beta Foods closed as lost: went with a rival",
        "🧾 Withdrawn: Q1 (told bob).",
    ]
    assert chat.pushes("bob")[-1] == "🧾 Q1 withdrawn: L2 Beta Foods was lost. Nothing to decide."
    told = {name: len(chat.pushes(name)) for name in ("alice", "bob", "dan", "erin")}

    # Nine days of reminders, escalations and a delegation later, nobody heard of Q1 again.
    assert "Q1" not in chat.say("[bob] /team delegate @dan until=2026-12-31")
    for day in range(8, 17):
        clock.set(at(12, day, 10))
        run_worker(chat)
    for name, count in told.items():
        assert [push for push in chat.pushes(name)[count:] if "Q1" in push or "Beta" in push] == []
    assert "none" in chat.say("[bob] /quote list pending")
    assert "Q1" not in chat.say("[erin] /report")

    answer = refused(chat, "[bob] /quote approve Q1 fine")
    assert answer == "Q1 was withdrawn when L2 was lost, Mon 7 Dec; there is nothing to decide."
    assert "was withdrawn when L2 was lost" in refused(chat, "[erin] /quote reject Q1 too late")
    shown = chat.say("[carol] /quote show Q1")
    assert "Q1 was withdrawn when L2 was lost, Mon 7 Dec" in shown and "waiting" not in shown


def test_a_won_lead_keeps_its_approved_quote_and_withdraws_the_pending_one(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    chat.say("[bob] /quote approve Q1 fine")
    chat.say("/quote L1 75k second option")
    won = chat.say("/lead won L1")
    assert won.splitlines() == [
        "🏆 L1 Acme Trading won: $80,000. Well done!",
        "🧾 Withdrawn: Q2 (told bob).",
    ]
    assert "approved" in chat.say("/quote show Q1") and "withdrawn" in chat.say("/quote show Q2")
    assert refused(chat, "[bob] /quote approve Q2") == (
        "Q2 was withdrawn when L1 was won, Thu 26 Nov; there is nothing to decide."
    )


def test_a_released_lead_closes_the_transfer_request_and_withdraws_its_quote(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    assert "Not added" in chat.say("[carol] /lead add ACME trading")
    assert "Asked alice" in chat.say("[carol] /lead transfer L1 I met them at the fair")

    released = chat.say("/lead release L1")
    assert "🧾 Withdrawn: Q1 (told bob)." in released
    assert "🔁 carol's request for it is closed." in released
    assert chat.pushes("carol")[-1] == (
        "🔁 Your request for L1 Acme Trading is closed: it was released "
        "to the pool.\n  [Claim → /lead claim L1]"
    )
    assert "when L1 was released to the pool" in refused(chat, "[bob] /quote approve Q1")
    assert "already" in refused(chat, "[bob] /lead transfer approve L1")

    clock.set(at(11, 27, 17))  # long past the transfer and approval waiting limits
    run_worker(chat)
    assert [push for push in chat.pushes("bob") if "Transfer" in push or "waiting" in push] == []
    assert "L1 Acme Trading is yours now" in chat.say("[carol] /lead claim L1")


def test_a_lead_returned_to_the_pool_withdraws_its_quote_and_tells_the_approver(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("[erin] /team config pool_return_days=5")
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    chat.say("[carol] /lead transfer L1 I know their buyer")
    clock.set(at(12, 1, 9, 1))
    run_worker(chat)
    [closed] = [push for push in chat.pushes("carol") if "Transfer requests closed" in push]
    assert "· Your request for L1 Acme Trading is closed: it was returned to the pool." in closed
    assert "[Claim L1 → /lead claim L1]" in closed
    assert (
        "L1 Acme Trading"
        in [push for push in chat.pushes("alice") if "Returned to the pool" in push][0]
    )
    [withdrawn] = [push for push in chat.pushes("bob") if "withdrawn" in push]
    # The run that returned it withdrew Q1 before reminding anyone of it.
    assert [push for push in chat.pushes("bob") if "Approvals waiting" in push] == []
    assert withdrawn == (
        "🧾 Quotes withdrawn (1)\n"
        "· Q1 withdrawn: L1 Acme Trading was returned to the pool. Nothing to decide."
    )
    assert "when L1 was returned to the pool, Tue 1 Dec" in refused(chat, "[bob] /quote approve Q1")
    heard = len(chat.pushes("bob")) + len(chat.pushes("erin"))
    for day in (2, 3, 4):
        clock.set(at(12, day, 9, 1))
        run_worker(chat)
    assert len(chat.pushes("bob")) + len(chat.pushes("erin")) == heard


def test_forgetting_a_customer_withdraws_the_quotes_waiting_on_them(team: Chat) -> None:
    chat = team
    chat.say("[carol] /lead add Acme Trading contact=Mr Li")
    chat.say("[carol] /quote L1 80k")
    forgot = chat.say("[erin] /lead forget L1")
    assert "🧾 Withdrawn: Q1 (told bob, carol)." in forgot
    assert chat.pushes("carol")[-1] == (
        "🧾 Q1 withdrawn: L1 Acme Trading was forgotten (customer data erased). Nothing to decide."
    )
    assert "when L1 was forgotten" in refused(chat, "[bob] /quote approve Q1")


def test_closing_in_chinese(zh: Chat) -> None:
    chat = zh
    chat.say("/线索 新建 华为技术")
    chat.say("/报价 L1 80万")
    lost = chat.say("/线索 输单 L1 预算取消")
    assert lost.splitlines() == [
        "📉 L1 华为技术 已输单：预算取消",
        "🧾 已撤回 Q1（已通知 李经理）。",
    ]
    assert chat.pushes("李经理")[-1] == "🧾 Q1 已撤回：L1 华为技术 已输单，无需审批。"
    assert refused(chat, "[李经理] /审批 同意 Q1") == (
        "Q1 已于 11月26日（周四）撤回（L1 已输单），无需审批。"
    )


# --- the duplicate warning ------------------------------------------------------------------------


def test_the_duplicate_warning_tells_a_closed_leads_real_status(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading phone=13800138000")
    chat.say("/lead add Beta Foods phone=13900139000")
    chat.say("/lead lost L1 no budget")
    chat.say("/lead won L2 50k")
    assert "⚠️ Looks like L1 Acme Trading (owner: alice, lost). Not added." in chat.say(
        "[carol] /lead add Acme phone=138-0013-8000"
    )
    assert "⚠️ Looks like L2 Beta Foods (owner: alice, won). Not added." in chat.say(
        "[carol] /lead add Beta phone=139-0013-9000"
    )
    chat.say("/lead add Gamma Steel phone=13700137000")
    assert "(owner: alice, stage Lead)" in chat.say("[carol] /lead add Gamma phone=13700137000")


def test_the_duplicate_warning_in_chinese(zh: Chat) -> None:
    zh.say("/线索 新建 华为技术 电话=13912345678")
    zh.say("/线索 输单 L1 预算取消")
    assert "⚠️ 疑似撞单：L1 华为技术（负责人 张三，已输单），未添加。" in zh.say(
        "[李四] /线索 新建 华为 电话=139-1234-5678"
    )


# --- snooze only quiets ---------------------------------------------------------------------------


def test_a_snooze_never_sets_or_moves_the_next_follow_up(zh: Chat) -> None:
    chat, clock = zh, zh.clock
    chat.say("/线索 新建 华为技术")  # no next date
    chat.say("/线索 新建 中兴通讯")
    chat.say("/跟进 L2 寄了样品 下次=12/10")
    assert "12月3日" in chat.say("/线索 暂缓 L1 1w")
    snoozed = chat.say("/线索 暂缓 L2 1w")
    assert "下次跟进仍为 12月10日（周四）" in snoozed
    assert next_date(chat, 1) is None and str(next_date(chat, 2)) == "2026-12-10"
    for day in range(27, 31):
        clock.set(at(11, day))
        run_worker(chat)
    for day in range(1, 12):
        clock.set(at(12, day))
        run_worker(chat)
    overdue = [push for push in chat.pushes("张三") if "逾期未跟进" in push]
    assert [push for push in overdue if "L1" in push] == []  # nothing was ever planned for L1
    [late] = overdue
    assert "L2 中兴通讯 — 应于 12月10日（周四）跟进（已过 1 天）" in late


def test_a_snoozed_lead_is_nudged_about_nothing_until_the_snooze_ends(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("/follow L1 sent the brochure next=fri")  # Fri 27 Nov
    chat.say("/lead snooze L1 1w")  # quiet for seven days: nudges resume Thu 3 Dec
    for day in (28, 29, 30):
        clock.set(at(11, day))
        run_worker(chat)
    for day in (1, 2):
        clock.set(at(12, day))
        run_worker(chat)
    assert [push for push in chat.pushes("alice") if "L1" in push] == []
    assert [push for push in chat.pushes("bob") if "L1" in push] == []
    clock.set(at(12, 3))
    run_worker(chat)
    [nudge] = [push for push in chat.pushes("alice") if "Follow-ups overdue" in push]
    assert "L1 Acme Trading — due Fri 27 Nov (6d ago)" in nudge


def test_a_snoozed_lead_is_left_off_the_overdue_lists_until_the_snooze_ends(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("/lead add Beta Foods")
    chat.say("/follow L1 sent the brochure next=fri")  # Fri 27 Nov
    chat.say("/follow L2 sent the brochure next=fri")
    chat.say("/lead snooze L1 1w")  # nudges resume Thu 3 Dec
    clock.set(at(11, 30))
    listed = chat.say("/lead list overdue")
    assert "Overdue follow-ups — 1" in listed and "L2 Beta Foods" in listed
    assert "Acme" not in listed
    [late] = [line for line in chat.say("[bob] /report").splitlines() if "Overdue" in line]
    assert "Overdue follow-ups 1: L2 Beta Foods" in late and "Acme" not in late
    clock.set(at(12, 3))  # the day nudges resume, the lists have it back too
    assert "Overdue follow-ups — 2" in chat.say("/lead list overdue")
    [late] = [line for line in chat.say("[bob] /report").splitlines() if "Overdue" in line]
    assert "Overdue follow-ups 2: L1 Acme Trading" in late


# --- follow-ups keep, clear or only plan the next date --------------------------------------------


def test_a_note_without_next_keeps_the_planned_date_and_clearing_is_explicit(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    chat.say("/follow L1 demo booked next=fri")
    assert (
        chat.say("/follow L1 no next date")
        == "📝 L1 follow-up logged. Next: Fri 27 Nov, as planned."
    )
    assert str(next_date(chat, 1)) == "2026-11-27"
    cleared = chat.say("/follow L1 they went quiet next=none")
    assert cleared.startswith("📝 L1 follow-up logged. The next follow-up date is cleared.")
    assert next_date(chat, 1) is None


def test_a_note_without_next_keeps_the_date_in_chinese(zh: Chat) -> None:
    zh.say("/线索 新建 华为技术")
    zh.say("/跟进 L1 约了演示 下次=周五")
    assert zh.say("/跟进 L1 又打了电话") == "📝 L1 已记录跟进，下次跟进仍为 11月27日（周五）"
    assert zh.say("/跟进 L1 客户暂停 下次=无").startswith("📝 L1 已记录跟进，已清除下次跟进日期。")
    assert next_date(zh, 1) is None


def test_next_none_alone_clears_the_date_without_a_note(team: Chat, zh: Chat) -> None:
    team.say("/lead add Acme Trading")
    team.say("/follow L1 next=fri")
    followups_before = team.counts()["followup"]
    assert team.say("/follow L1 next=none") == "📅 L1: the next follow-up date is cleared."
    assert next_date(team, 1) is None
    assert team.counts()["followup"] == followups_before  # nothing happened with the customer
    zh.say("/线索 新建 华为技术")
    zh.say("/线索 新建 腾讯")
    zh.say("/跟进 L2 下次=周五")
    assert zh.say("/跟进 L2 下次=无") == "📅 L2：已清除下次跟进日期。"
    assert next_date(zh, 2) is None


def test_the_plan_next_button_asks_for_the_day_and_a_plan_alone_is_a_follow_up(team: Chat) -> None:
    chat = team
    chat.say("/lead add Acme Trading")
    logged = chat.say("/follow L1 sent the brochure")
    assert "[Plan next → /follow L1 next=]" in logged
    asked = refused(chat, "/follow L1 next=")
    assert asked.startswith("📅 When should L1 Acme Trading be followed up next?")
    asked_reply = chat.reply("/follow L1 next=")
    assert [button.command for button in asked_reply.buttons] == [
        "/follow L1 next=tomorrow",
        "/follow L1 next=+3d",
        "/follow L1 next=+7d",
    ]
    assert chat.say("/follow L1 next=fri") == "📅 L1 next follow-up: Fri 27 Nov."
    assert str(next_date(chat, 1)) == "2026-11-27"
    assert "Missing a note" in refused(chat, "/follow L1")


def test_planning_the_next_follow_up_in_chinese(zh: Chat) -> None:
    zh.say("/线索 新建 华为技术")
    assert "[约下次 → /跟进 L1 下次=]" in zh.say("/跟进 L1 寄了资料")
    assert "下次什么时候跟进" in refused(zh, "/跟进 L1 下次=")
    assert zh.say("/跟进 L1 下次=周五") == "📅 L1 下次跟进：11月27日（周五）"


# --- payments and the signing date ----------------------------------------------------------------


def test_a_payment_dated_before_the_signing_is_refused(team: Chat) -> None:
    chat, clock = team, team.clock
    clock.set(at(12, 7, 10))
    chat.say("/lead add Acme Trading")
    chat.say("/contract L1 100k")
    chat.say("/plan C1 100%@signing")
    assert refused(chat, "/paid C1 10k 11/20") == (
        "C1 was signed Mon 7 Dec; a payment dated Fri 20 Nov is before that. "
        "Nothing was recorded — check the date."
    )
    assert "received Mon 7 Dec" in chat.say("/paid C1 10k today")


def test_a_payment_before_the_signing_in_chinese(zh: Chat) -> None:
    zh.say("/线索 新建 华为技术")
    zh.say("/合同 L1 10万")
    zh.say("/回款计划 C1 100%@签约")
    assert "C1 于 11月26日（周四）签订" in refused(zh, "/回款 C1 1万 11/20")


# --- what a held nudge says is true when it arrives -----------------------------------------------


def test_a_nudge_held_overnight_is_worded_for_the_morning_it_arrives(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/lead add Acme Trading")
    chat.say("/contract L1 100k")
    chat.say("/plan C1 100%@2026-12-31")
    chat.say("[bob] /me quiet off")  # bob reads at night; alice has the team's quiet hours
    chat.say("/lead add Beta Foods")
    chat.say("/follow L2 call back next=tue")  # Tue 1 Dec
    chat.say("[erin] /team config followup_sla_days=1")

    clock.set(at(12, 29, 22))  # the scan runs at 22:00, in alice's quiet hours
    run_worker(chat)
    assert [push for push in chat.pushes("alice") if "C1" in push] == []
    clock.set(at(12, 30, 9))
    chat.deliver()
    [due] = [push for push in chat.pushes("alice") if "Payments due soon" in push]
    assert "due Thu 31 Dec (in 1d)" in due  # read on Wed 30 Dec, not worded on Tue 29
    [overdue] = [push for push in chat.pushes("alice") if "Follow-ups overdue" in push]
    assert "due Tue 1 Dec (29d ago)" in overdue
    [escalated] = [push for push in chat.pushes("bob") if "follow-ups overdue past" in push]
    assert "L2 Beta Foods (alice) — 28d overdue" in escalated  # delivered at once, on Tue 29


def test_a_held_approval_reminder_counts_the_hours_until_it_arrives(team: Chat) -> None:
    chat, clock = team, team.clock
    clock.set(at(11, 26, 13))
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    chat.say("[bob] /me quiet 17:00-09:00")
    clock.set(at(11, 26, 18))  # 5 working hours: a reminder is due, bob is quiet
    run_worker(chat)
    assert [push for push in chat.pushes("bob") if "waiting" in push] == []
    clock.set(at(11, 27, 9))
    chat.deliver()
    [reminder] = [push for push in chat.pushes("bob") if "Approvals waiting for you" in push]
    # 13:00–20:00 and 08:30–09:00 of the team's working hours: 7½ h when bob reads it, not 5 h.
    assert "waiting 7 working h" in reminder


def test_a_decision_held_through_the_readers_quiet_hours_says_which_day_it_was(team: Chat) -> None:
    chat, clock = team, team.clock
    chat.say("/me quiet 21:00-08:00")
    chat.say("/lead add Acme Trading")
    chat.say("/quote L1 80k")
    clock.set(at(11, 26, 22, 5))
    assert chat.say("[bob] /quote approve Q1 fine") == "✅ Q1 approved by bob · 22:05 — fine"
    assert [push for push in chat.pushes("alice") if "Q1" in push] == []
    clock.set(at(11, 27, 8))
    chat.deliver()
    [told] = [push for push in chat.pushes("alice") if "Q1" in push]
    assert told.startswith("✅ Q1 approved by bob · 11-26 22:05 — fine")  # read on the 27th


def test_help_states_the_rules_of_closing_snoozing_and_planning(team: Chat, zh: Chat) -> None:
    lead = team.say("/help lead")
    assert "withdraws its quotes still waiting for approval" in lead
    assert "A snooze only quiets the nudges: the next follow-up date stays" in lead
    assert "next=none clears it" in team.say("/help follow")
    assert "between the contract's signing and today" in team.say("/help paid")
    assert "下次=无 清除日期" in zh.say("/帮助 跟进")
    assert "待审批的报价自动撤回" in zh.say("/帮助 线索")


# --- a team that upgrades with quotes still pending on closed leads ------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database built by the migrations (`dealbot db upgrade`): SQLite, or a Postgres of its
    own."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'upgraded.db'}")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("DEALBOT_TEST_DATABASE_URL is not set")
    with scratch_postgres("lifecycle") as (_url, engine):
        upgrade(engine)
        yield engine


def test_upgrading_withdraws_quotes_left_pending_on_closed_leads(
    migrated: Engine, clock: FixedClock
) -> None:
    chat = Chat(migrated, clock)
    for line in (
        "/team config locale=en",
        "[bob] /help",
        "/team role @bob manager",
        "/lead add Acme Trading",
        "/quote L1 80k",
        "/lead add Beta Foods",
        "/quote L2 90k",
        "/lead lost L1 no budget",
    ):
        assert chat.reply(line).ok, line
    # The schema as 0005 left it (0005 changed rows only, so it is 0004's schema too), with the
    # rows as the bot left them before closing settled quotes.
    downgrade(migrated, "0005")
    with migrated.begin() as connection:
        connection.execute(
            text(
                "UPDATE quote SET status = 'pending', decision_note = NULL, "
                "decided_at = NULL, decided_by_id = NULL"
            )
        )
        connection.execute(text("UPDATE approval_step SET status = 'waiting'"))
        connection.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    upgrade(migrated)
    assert chat.say("[bob] /quote approve Q1") == (
        "Q1 was withdrawn when L1 was lost, Thu 26 Nov; there is nothing to decide."
    )
    assert chat.say("[bob] /quote approve Q2").startswith("✅ Q2 approved by bob")
