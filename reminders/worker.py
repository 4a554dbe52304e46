"""The worker: APScheduler jobs derived from each team's settings (scans, daily and weekly digests)
plus outbox delivery. The database is the truth; the in-memory job store is rebuilt from it and
re-synced every minute, so a `/team config` change made on any server reaches the worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commands.inbox import Inbox, RecoveryReport
from models.aftersale import plan_new_customers
from models.clock import Clock
from models.config import TeamConfig, parse_clock
from models.db import unit_of_work
from models.tables import Team
from reminders.digests import due_digests, write_digest
from reminders.outbox import DeliveryReport, OutboxDelivery
from reminders.scans import ScanReport, run_scans

log = logging.getLogger("dealbot.worker")


@dataclass
class WorkerReport:
    scans: ScanReport = field(default_factory=ScanReport)
    digests: int = 0
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    recovered: RecoveryReport = field(default_factory=RecoveryReport)


@dataclass(frozen=True)
class JobSpec:
    id: str
    trigger: BaseTrigger
    kind: str  # scan | daily | weekly
    team_id: int
    signature: str  # what the trigger was derived from; a change reschedules the job


@dataclass(frozen=True)
class JobRun:
    """What an observer (metrics) hears of each scan or digest job."""

    kind: str  # scan | daily | weekly
    team_id: int
    duration_ms: float
    ok: bool


JobObserver = Callable[[JobRun], None]


class Worker:
    def __init__(self, engine: Engine, clock: Clock, delivery: OutboxDelivery, *,
                 scan_every: timedelta = timedelta(minutes=10), deliver_every: timedelta = timedelta(seconds=5),
                 observer: JobObserver | None = None, inbox: Inbox | None = None) -> None:
        self.observer = observer
        self.inbox = inbox  # commands whose receiving server died: run and answered here
        self.engine = engine
        self.clock = clock
        self.delivery = delivery
        self.scan_every = scan_every
        self.deliver_every = deliver_every
        self.scheduler: AsyncIOScheduler | None = None
        self._signatures: dict[str, str] = {}
        self._customers_planned: set[int] = set()
        self._jobs: set[asyncio.Task[Any]] = set()  # jobs running now: a stop waits for them

    # --- the work ------------------------------------------------------------------------------
    def team_ids(self) -> list[int]:
        with unit_of_work(self.engine) as session:
            return [int(team_id) for team_id in session.exec(select(Team.id).order_by(col(Team.id)))]

    @contextmanager
    def _observed(self, kind: str, team_id: int) -> Iterator[None]:
        started, ok = time.perf_counter(), False
        try:
            yield
            ok = True
        finally:
            if self.observer is not None:
                try:
                    self.observer(JobRun(kind=kind, team_id=team_id, ok=ok,
                                         duration_ms=round((time.perf_counter() - started) * 1000, 2)))
                except Exception:
                    log.exception("the job observer failed")

    def scan_team(self, team_id: int, now: datetime | None = None) -> ScanReport:
        now = now or self.clock.now()
        with self._observed("scan", team_id), unit_of_work(self.engine) as session:
            team = session.get(Team, team_id)
            if team is None:
                return ScanReport()
            # Leads get a care plan when won; once per process, plan any won some other way.
            if team_id not in self._customers_planned:
                plan_new_customers(session, team_id=team_id, now=now,
                                   config=TeamConfig.model_validate(team.config or {}))
            report = run_scans(session, team, now)
        self._customers_planned.add(team_id)
        return report

    def digest_team(self, team_id: int, kind: str, now: datetime | None = None) -> bool:
        with self._observed(kind, team_id), unit_of_work(self.engine) as session:
            team = session.get(Team, team_id)
            return bool(team) and write_digest(session, team, now or self.clock.now(), kind)

    async def run_once(self) -> WorkerReport:
        """Everything due at the clock's moment, once: commands whose server died, scans, due
        digests, then the outbox."""
        report = WorkerReport()
        if self.inbox is not None:
            report.recovered = await self.inbox.recover_once()
        now = self.clock.now()
        for team_id in self.team_ids():
            report.scans.add(self.scan_team(team_id, now))
            with unit_of_work(self.engine) as session:
                team = session.get(Team, team_id)
                kinds = due_digests(team, now) if team else []
            for kind in kinds:  # measured at the run's moment, as its scans were
                report.digests += int(self.digest_team(team_id, kind, now))
        report.delivery = await self.delivery.run_once()
        return report

    # --- the schedule --------------------------------------------------------------------------
    def job_specs(self) -> list[JobSpec]:
        """The jobs each team's settings call for, in the team's own timezone."""
        specs = []
        with unit_of_work(self.engine) as session:
            teams = list(session.exec(select(Team).order_by(col(Team.id))))
        for team in teams:
            config = TeamConfig.model_validate(team.config or {})
            daily, weekly = parse_clock(config.digest_time), parse_clock(config.weekly_digest_time)
            team_id = team.id or 0
            specs.append(JobSpec(f"scan:{team_id}", IntervalTrigger(seconds=self.scan_every.total_seconds()),
                                 "scan", team_id, str(self.scan_every)))
            specs.append(JobSpec(f"daily:{team_id}", CronTrigger(hour=daily.hour, minute=daily.minute,
                                                                 timezone=config.timezone),
                                 "daily", team_id, f"{config.timezone} {config.digest_time}"))
            specs.append(JobSpec(f"weekly:{team_id}", CronTrigger(day_of_week="mon", hour=weekly.hour,
                                                                  minute=weekly.minute, timezone=config.timezone),
                                 "weekly", team_id, f"{config.timezone} {config.weekly_digest_time}"))
        return specs

    def sync_jobs(self) -> list[str]:
        """Bring the scheduler in line with the database; returns the ids of jobs added or changed."""
        assert self.scheduler is not None
        wanted = {spec.id: spec for spec in self.job_specs()}
        changed = []
        for job_id, spec in wanted.items():
            if self._signatures.get(job_id) == spec.signature:
                continue
            self.scheduler.add_job(self._run_job, spec.trigger, args=[spec.kind, spec.team_id], id=job_id,
                                   replace_existing=True, coalesce=True, max_instances=1, misfire_grace_time=3600)
            self._signatures[job_id] = spec.signature
            changed.append(job_id)
        for job_id in set(self._signatures) - set(wanted):
            self.scheduler.remove_job(job_id)
            del self._signatures[job_id]
        return changed

    def _running(self) -> None:
        """Count the calling job among those a stop waits for."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
            task.add_done_callback(self._jobs.discard)

    async def _run_job(self, kind: str, team_id: int) -> None:
        self._running()
        try:
            if kind == "scan":
                report = await asyncio.to_thread(self.scan_team, team_id)
                if report.messages:
                    log.info("scan: %d nudges queued for team %s", report.messages, team_id)
            elif await asyncio.to_thread(self.digest_team, team_id, kind):
                log.info("%s digest queued for team %s", kind, team_id)
        except Exception:
            log.exception("%s job for team %s failed", kind, team_id)

    async def _deliver(self) -> None:
        self._running()
        if self.inbox is not None:
            try:
                recovered = await self.inbox.recover_once()
                if recovered.ran or recovered.answered or recovered.retried or recovered.given_up:
                    log.info("inbox: %d commands of stopped servers run, %d answered, %d to retry, "
                             "%d given up", recovered.ran, recovered.answered, recovered.retried,
                             recovered.given_up)
            except Exception:
                log.exception("recovering received commands failed")
        try:
            delivered = await self.delivery.run_once()
            if delivered.sent or delivered.retried or delivered.dead or delivered.postponed:
                log.info("outbox: %d sent, %d retried, %d dead, %d postponed", delivered.sent,
                         delivered.retried, delivered.dead, delivered.postponed)
        except Exception:
            log.exception("outbox delivery failed")

    async def _sync(self) -> None:
        self._running()
        try:
            changed = await asyncio.to_thread(self.sync_jobs)
            if changed:
                log.info("schedule: %d jobs added or changed", len(changed))
        except Exception:
            log.exception("job sync failed")

    def start(self) -> AsyncIOScheduler:
        """Start the scheduler on the running event loop."""
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        # The first delivery at once: what fell due while no worker ran (or what a stopping worker
        # gave back) goes out now, not a period later.
        self.scheduler.add_job(self._deliver, IntervalTrigger(seconds=self.deliver_every.total_seconds()),
                               id="outbox", coalesce=True, max_instances=1,
                               next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self._sync, IntervalTrigger(minutes=1), id="sync", coalesce=True, max_instances=1)
        self.sync_jobs()
        self.scheduler.start()
        return self.scheduler

    async def serve(self, stop: asyncio.Event | None = None, *, grace: float = 8.0) -> None:
        """The schedule until `stop` is set; then `finish`."""
        self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            await self.finish(grace)

    async def catch_up(self, every: float, stop: asyncio.Event, *, grace: float = 8.0) -> None:
        """Instead of the schedule: a catch-up pass (`run_once`) every `every` seconds until `stop`
        is set; then `finish`."""
        while not stop.is_set():
            catching_up = asyncio.ensure_future(self._catch_up_once())
            waiting = asyncio.ensure_future(stop.wait())
            await asyncio.wait({catching_up, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiting, timeout=every)
            waiting.cancel()
        await self.finish(grace)

    async def _catch_up_once(self) -> None:
        self._running()
        try:
            await self.run_once()
        except Exception:  # noqa: BLE001 - a failed pass is logged and the next one tries again
            log.exception("catch-up pass failed")

    async def finish(self, grace: float) -> None:
        """Stop working: no job starts any more; the push (or recovered command) in hand is
        finished, and what this worker claimed and had not started goes back at once for another
        worker. Jobs still running after `grace` seconds are cancelled (a push cut off mid-send
        waits for its lease: it may have reached the platform)."""
        if self.scheduler is not None and self.scheduler.running:
            # Paused, not shut down yet: APScheduler's shutdown cancels the jobs that run.
            self.scheduler.pause()
        given_back = self.delivery.stop()  # on the loop: the pass in hand sees it at its next row
        if self.inbox is not None:
            self.inbox.stop()
        me = asyncio.current_task()
        running = {task for task in self._jobs if not task.done() and task is not me}
        if given_back or running:
            log.info("stopping: %d pushes given back, waiting for %d jobs in hand", given_back,
                     len(running))
        if running:
            _done, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("stopping: %d jobs still running after %.0f s cancelled", len(late),
                            grace)
                await asyncio.wait(late, timeout=1)
        if self.inbox is not None:
            await self.inbox.abandon()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def describe(self) -> list[dict[str, Any]]:
        assert self.scheduler is not None
        return [{"id": job.id, "next": job.next_run_time} for job in self.scheduler.get_jobs()]
