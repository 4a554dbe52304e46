"""The worker: APScheduler jobs derived from each team's settings (scans, daily and weekly digests)
plus outbox delivery. The database is the truth; the in-memory job store is rebuilt from it and
re-synced every minute, so a `/team config` change made on any server reaches the worker."""

from __future__ import annotations

import asyncio
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

    async def _run_job(self, kind: str, team_id: int) -> None:
        try:
            if kind == "scan":
                await asyncio.to_thread(self.scan_team, team_id)
            else:
                await asyncio.to_thread(self.digest_team, team_id, kind)
        except Exception:
            log.exception("%s job for team %s failed", kind, team_id)

    async def _deliver(self) -> None:
        if self.inbox is not None:
            try:
                await self.inbox.recover_once()
            except Exception:
                log.exception("recovering received commands failed")
        try:
            await self.delivery.run_once()
        except Exception:
            log.exception("outbox delivery failed")

    async def _sync(self) -> None:
        try:
            await asyncio.to_thread(self.sync_jobs)
        except Exception:
            log.exception("job sync failed")

    def start(self) -> AsyncIOScheduler:
        """Start the scheduler on the running event loop."""
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.add_job(self._deliver, IntervalTrigger(seconds=self.deliver_every.total_seconds()),
                               id="outbox", coalesce=True, max_instances=1)
        self.scheduler.add_job(self._sync, IntervalTrigger(minutes=1), id="sync", coalesce=True, max_instances=1)
        self.sync_jobs()
        self.scheduler.start()
        return self.scheduler

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        self.start()
        try:
            await (stop or asyncio.Event()).wait()
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)

    def describe(self) -> list[dict[str, Any]]:
        assert self.scheduler is not None
        return [{"id": job.id, "next": job.next_run_time} for job in self.scheduler.get_jobs()]
