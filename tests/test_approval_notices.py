"""What people hear while a multi-level quote waits: the requester when a level approves, earlier
signers when a later level rejects, the approver again each working day it still waits, and every
line shows the quote's amount with its discount. In the `team` fixture alice is a rep, bob a
manager and erin an admin; in `zh` 张三 is a rep, 李经理 a manager and 王总 the admin."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from reminders.worker import Worker
from tests.chat import Chat

SH = ZoneInfo("Asia/Shanghai")


def run_worker(chat: Chat, when: datetime) -> None:
    chat.clock.set(when)
    asyncio.run(Worker(chat.engine, chat.clock, chat.delivery).run_once())


def reminders(chat: Chat, name: str) -> list[str]:
    return [p for p in chat.pushes(name) if "Approvals waiting for you" in p or "等待你审批" in p]


def test_a_two_level_quote_keeps_everyone_told_until_it_is_decided(team: Chat) -> None:
    chat, clock = team, team.clock
    clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=SH))  # Monday
    chat.say("/lead add Gamma Foods")
    asked = chat.say("/quote L1 580k discount=5%")
    assert "$580,000 (−5%)" in asked

    clock.set(datetime(2026, 11, 30, 13, 0, tzinfo=SH))
    chat.say("[bob] /quote approve Q1 fine by me")
    assert chat.pushes("alice")[-1] == (
        "✅ Q1 approved by bob (manager) — now waiting for an admin\n"
        "L1 Gamma Foods · $580,000 (−5%)"
    )

    run_worker(chat, datetime(2026, 11, 30, 17, 5, tzinfo=SH))
    [monday] = reminders(chat, "erin")
    assert "· Q1 · Gamma Foods · $580,000 (−5%) · by alice — waiting 4 working h" in monday
    run_worker(chat, datetime(2026, 11, 30, 19, 0, tzinfo=SH))
    run_worker(chat, datetime(2026, 12, 1, 7, 0, tzinfo=SH))  # quiet hours: not yet
    assert len(reminders(chat, "erin")) == 1

    run_worker(chat, datetime(2026, 12, 1, 9, 0, tzinfo=SH))  # Tuesday, once
    run_worker(chat, datetime(2026, 12, 1, 15, 0, tzinfo=SH))
    [tuesday] = reminders(chat, "erin")[1:]
    assert "· Q1 · Gamma Foods · $580,000 (−5%) · by alice — waiting 7 working h" in tuesday
    assert "[Approve Q1 → /quote approve Q1]" in tuesday

    run_worker(chat, datetime(2026, 12, 2, 10, 15, tzinfo=SH))  # Wednesday
    [wednesday] = reminders(chat, "erin")[2:]
    assert "— waiting 20 working h" in wednesday

    rejected = chat.say("[erin] /quote reject Q1 margin too thin")
    assert rejected == "❌ Q1 rejected by erin · 10:15: margin too thin"
    told = rejected + "\nL1 Gamma Foods · $580,000 (−5%)"
    assert chat.pushes("bob")[-1] == told
    assert chat.pushes("alice")[-1] == told
    run_worker(chat, datetime(2026, 12, 3, 9, 0, tzinfo=SH))  # decided: no more reminders
    assert len(reminders(chat, "erin")) == 3


def test_the_same_in_chinese(zh: Chat) -> None:
    chat, clock = zh, zh.clock
    clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=SH))
    chat.say("/线索 新建 甘美食品")
    chat.say("/报价 L1 58万 折扣=5%")
    clock.set(datetime(2026, 11, 30, 13, 0, tzinfo=SH))
    chat.say("[李经理] /审批 同意 Q1 可以")
    assert chat.pushes("张三")[-1] == (
        "✅ Q1 已由 李经理（经理）同意 — 现等待管理员审批\nL1 甘美食品 · ¥580,000（折扣 5%）"
    )

    run_worker(chat, datetime(2026, 11, 30, 17, 5, tzinfo=SH))
    run_worker(chat, datetime(2026, 12, 1, 9, 0, tzinfo=SH))
    run_worker(chat, datetime(2026, 12, 1, 16, 0, tzinfo=SH))
    monday, tuesday = reminders(chat, "王总")
    assert "Q1 · 甘美食品 · ¥580,000（折扣 5%） · 申请人 张三 — 已等待 4 个工作小时" in monday
    assert "Q1 · 甘美食品 · ¥580,000（折扣 5%） · 申请人 张三 — 已等待 7 个工作小时" in tuesday

    chat.say("[王总] /审批 驳回 Q1 利润太低")
    assert (
        chat.pushes("李经理")[-1]
        == "❌ Q1 已被 王总 驳回 · 16:00：利润太低\nL1 甘美食品 · ¥580,000（折扣 5%）"
    )
