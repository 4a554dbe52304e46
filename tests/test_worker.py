"""The worker's schedule: jobs derived from each team's settings and rescheduled when they
change, the real AsyncIOScheduler holding them, and `dealbot worker --once --now …` as an
operator runs it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from alembic import command
from sqlmodel import col, select

from commands.types import Reply
from models import outbox
from models.clock import FixedClock
from models.db import create_schema, make_engine, unit_of_work
from models.migrate import alembic_config
from models.tables import Outbox, Team
from reminders.outbox import OutboxDelivery
from reminders.worker import JobSpec, Worker
from tests.chat import Chat
from tests.test_log_redaction import captured_log, logged

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
TEAM = [
    "/team config locale=en timezone=Asia/Shanghai",
    "[bob] /help",
    "/team role @bob manager",
    "[carol] /help",
    "[dan] /help",
    "[erin] /help",
    "/team role @erin admin",
    "/team role @alice rep",
]


def team_ids(chat: Chat) -> list[int]:
    with unit_of_work(chat.engine) as session:
        return [int(i) for i in session.exec(select(Team.id).order_by(col(Team.id)))]


def next_fires(specs: list[JobSpec], now: datetime) -> dict[str, datetime]:
    return {spec.id: spec.trigger.get_next_fire_time(None, now) for spec in specs}


def test_jobs_follow_each_teams_digest_time_and_timezone(team: Chat) -> None:
    other = Chat(team.engine, team.clock, team="globex", user="zoe")  # zoe founds a second team
    other.say("/team config digest_time=19:15 weekly_digest_time=08:00 timezone=Asia/Shanghai")
    acme, globex = team_ids(team)
    worker = Worker(team.engine, team.clock, team.delivery, scan_every=timedelta(minutes=10))
    now = team.clock.now()  # Thu 26 Nov 09:00 in Shanghai

    specs = worker.job_specs()
    assert {spec.id for spec in specs} == {
        f"{kind}:{team_id}" for kind in ("scan", "daily", "weekly") for team_id in (acme, globex)
    }
    scans = [spec for spec in specs if spec.kind == "scan"]
    assert [spec.trigger.interval for spec in scans] == [timedelta(minutes=10)] * 2
    fires = next_fires(specs, now)
    assert fires[f"daily:{acme}"] == datetime(2026, 11, 26, 18, 0, tzinfo=SH)
    assert fires[f"weekly:{acme}"] == datetime(2026, 11, 30, 9, 0, tzinfo=SH)
    assert fires[f"daily:{globex}"] == datetime(2026, 11, 26, 19, 15, tzinfo=SH)
    assert fires[f"weekly:{globex}"] == datetime(2026, 11, 30, 8, 0, tzinfo=SH)

    team.say("[erin] /team config digest_time=17:30 timezone=America/New_York")
    fires = next_fires(worker.job_specs(), now)  # it is Wed 25 Nov 20:00 in New York
    assert fires[f"daily:{acme}"] == datetime(2026, 11, 26, 17, 30, tzinfo=NY)
    assert fires[f"weekly:{acme}"] == datetime(2026, 11, 30, 9, 0, tzinfo=NY)
    assert fires[f"daily:{globex}"] == datetime(
        2026, 11, 26, 19, 15, tzinfo=SH
    )  # the other team is untouched
    # Across the end of DST the daily digest stays at 17:30 New York time.
    fires = next_fires(worker.job_specs(), datetime(2026, 10, 31, 18, 0, tzinfo=NY))
    assert fires[f"daily:{acme}"] == datetime(2026, 11, 1, 17, 30, tzinfo=NY)
    assert fires[f"daily:{acme}"].utcoffset() == timedelta(hours=-5)


async def test_the_scheduler_holds_the_jobs_and_reschedules_when_the_team_changes_them(
    team: Chat,
) -> None:
    [acme] = team_ids(team)
    worker = Worker(team.engine, team.clock, team.delivery)
    scheduler = worker.start()
    try:
        assert scheduler.running
        jobs = {job.id: job for job in scheduler.get_jobs()}
        assert set(jobs) == {"outbox", "sync", f"scan:{acme}", f"daily:{acme}", f"weekly:{acme}"}
        assert jobs[f"daily:{acme}"].next_run_time.astimezone(SH).time() == time(18, 0)
        weekly = jobs[f"weekly:{acme}"].next_run_time.astimezone(SH)
        assert (weekly.weekday(), weekly.time()) == (0, time(9, 0))
        assert worker.sync_jobs() == []  # nothing changed, nothing rescheduled

        await asyncio.to_thread(
            team.say, "[erin] /team config digest_time=17:30 timezone=America/New_York"
        )
        assert sorted(worker.sync_jobs()) == [f"daily:{acme}", f"weekly:{acme}"]
        daily = scheduler.get_job(f"daily:{acme}")
        assert daily.next_run_time.astimezone(NY).time() == time(17, 30)
        assert daily.trigger.get_next_fire_time(None, team.clock.now()) == datetime(
            2026, 11, 26, 17, 30, tzinfo=NY
        )
        assert scheduler.get_job(f"weekly:{acme}").next_run_time.astimezone(NY).time() == time(9, 0)
        assert len(scheduler.get_jobs()) == 5
    finally:
        scheduler.shutdown(wait=False)


async def _delivered_by_a_worker(team: Chat, key: str) -> None:
    """A push queued, and a worker started until it delivered it (its first pass runs at once)."""
    with unit_of_work(team.engine) as session:
        found = session.exec(select(Team)).one()
        payload = Reply(text=f"push {key}").model_dump(mode="json")
        outbox.enqueue(
            session,
            team=found,
            kind="test",
            dedupe_key=key,
            channel="console",
            payload=payload,
            now=team.clock.now(),
        )
    # A delivery of its own: a stopped worker's delivery starts nothing more.
    delivery = OutboxDelivery(team.engine, {"console": team.sender}, team.clock)
    worker = Worker(team.engine, team.clock, delivery)
    worker.start()
    deadline = asyncio.get_running_loop().time() + 10
    while await asyncio.to_thread(_status, team, key) != "sent":
        assert asyncio.get_running_loop().time() < deadline, "never delivered"
        await asyncio.sleep(0.02)
    await worker.finish(grace=5)


def _status(team: Chat, key: str) -> str:
    with unit_of_work(team.engine) as session:
        return session.exec(select(Outbox.status).where(Outbox.dedupe_key == key)).one()


async def test_the_worker_logs_a_line_for_work_done_and_the_schedulers_chatter_only_at_debug(
    team: Chat,
) -> None:
    with captured_log("INFO") as stream:
        await _delivered_by_a_worker(team, "first")
    written = logged(stream)
    assert [(e["level"], e["logger"], e["event"]) for e in written] == [
        ("info", "dealbot.worker", "outbox: 1 sent, 0 retried, 0 dead, 0 postponed")
    ]

    with captured_log("DEBUG") as stream:
        await _delivered_by_a_worker(team, "second")
    chatter = [e for e in logged(stream) if e["logger"].startswith("apscheduler")]
    assert any(e["event"].startswith('Running job "Worker._deliver') for e in chatter)
    assert any(e["event"].endswith("executed successfully") for e in chatter)
    assert {e["level"] for e in chatter} == {"debug"}


# --- the command line ---------------------------------------------------------------------------


def dealbot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).parent / "dealbot"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEALBOT_", "SLACK_", "TELEGRAM_", "WECOM_"))
    }
    env.update(PYTHONUTF8="1", DEALBOT_LOG_LEVEL="WARNING")
    result = subprocess.run(
        [str(executable), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_worker_once_at_a_given_moment_prints_the_pushes_and_a_summary(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dealbot.db'}"
    engine = make_engine(url)
    create_schema(engine)
    command.stamp(
        alembic_config(engine), "head"
    )  # the command migrates what it opens: mark it current
    chat = Chat(engine, FixedClock(datetime(2026, 11, 26, 9, 0, tzinfo=SH)))
    for line in [
        *TEAM,
        "/lead add Acme Trading",
        "/follow L1 sent a sample next=fri",
        "[carol] /lead add Beta",
    ]:
        chat.say(line)
    engine.dispose()

    morning = dealbot(
        tmp_path, "worker", "--once", "--now", "2026-12-01T09:00:00+08:00", "--db", url
    ).stdout
    assert (
        "→ alice: ⏰ Follow-ups overdue (1)\n· L1 Acme Trading — due Fri 27 Nov (4d ago)" in morning
    )
    assert "[Log follow-up L1 → /follow L1]" in morning
    assert (
        "→ bob: ⏰ Your team's follow-ups overdue past 2 days (1)\n"
        "· L1 Acme Trading (alice) — 4d overdue" in morning
    )
    # No worker ran since Thursday: it catches up with the latest digests, Monday's daily and
    # the weekly.
    assert "→ console: 📊 Sales daily · Mon 30 Nov" in morning
    assert "→ console: 📊 Sales weekly · Mon 23 Nov – Sun 29 Nov" in morning
    summary = morning.strip().splitlines()[-1]
    assert summary == (
        "scans: 1 overdue, 1 escalated to managers, 0 stuck, 0 approvals reminded, 0 escalated, "
        "0 pool warnings, 0 returned to the pool; digests: 2; outbox: 4 sent, 0 retried, 0 dead"
    )

    again = dealbot(
        tmp_path, "worker", "--once", "--now", "2026-12-01T09:05:00+08:00", "--db", url
    ).stdout
    assert "→" not in again and "outbox: 0 sent" in again

    evening = dealbot(
        tmp_path, "worker", "--once", "--now", "2026-12-01T18:00:00+08:00", "--db", url
    ).stdout
    assert "→ console: 📊 Sales daily · Tue 1 Dec" in evening and "digests: 1;" in evening
    chart = next(line for line in evening.splitlines() if "🖼" in line).rsplit(": ", 1)[1]
    assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG")
