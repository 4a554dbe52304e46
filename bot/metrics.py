"""Prometheus metrics (`GET /metrics`): the observers `build()` hands to the dispatcher, the outbox
delivery and the worker, plus the outbox's state read from the database at scrape time.

Counters count what happened in this process: a `serve` replica counts commands, a `worker` counts
deliveries, jobs and platform errors (`dealbot worker --metrics-port`), `dealbot run` counts both.
The outbox gauges come from the shared database, so every replica reports the same queue."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from adapters.base import RateLimited
from commands.dispatch import Handled
from models.tables import Outbox
from reminders.outbox import Delivered
from reminders.worker import JobRun

log = logging.getLogger("dealbot.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUED = ("pending", "sending", "dead")  # `sent` only grows: counted as deliveries, not scanned
_CODE = re.compile(r"^[a-z0-9_]{2,40}$")
_ERRCODE = re.compile(r"\berrcode (\d+)")


def error_code(error: Exception) -> str:
    """A short, bounded label for a platform failure: the platform's own code where the sender's
    message carries one (`slack: channel_not_found`, `telegram: Forbidden: …`, `wecom …: errcode
    40014 …`, a 429 → ratelimited), else the kind of failure (TargetGone, Transient, …)."""
    if isinstance(error, RateLimited):
        return "ratelimited"
    text = str(error)
    wecom = _ERRCODE.search(text)
    if wecom:
        return f"errcode_{wecom.group(1)}"
    for part in text.split(":")[1:]:
        candidate = part.split("(")[0].strip().lower()
        if _CODE.match(candidate):
            return candidate
    return type(error).__name__


class OutboxGauge(Collector):
    """Rows waiting (`pending`), in flight (`sending`) and given up (`dead`), from the database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "dealbot_outbox_rows",
            "Outbox rows by status (pending, sending, dead)",
            labels=["status"],
        )
        try:
            with self.engine.connect() as connection:
                counts = dict(
                    connection.execute(
                        select(Outbox.status, func.count())
                        .where(col(Outbox.status).in_(QUEUED))
                        .group_by(Outbox.status)
                    ).all()
                )
        except Exception as error:  # noqa: BLE001 - a scrape must answer even when the database does not
            log.warning("outbox gauge unavailable: %s", type(error).__name__)
            return []
        for status in QUEUED:
            gauge.add_metric([status], counts.get(status, 0))
        return [gauge]


class Metrics:
    """Every dealbot metric in one registry of its own (tests build as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.commands = Counter(
            "dealbot_commands",
            "Commands handled, by verb and outcome",
            ["verb", "outcome"],
            registry=self.registry,
        )
        self.command_seconds = Histogram(
            "dealbot_command_duration_seconds",
            "Time from a command's arrival at the dispatcher to its reply",
            ["verb"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "dealbot_outbox_deliveries",
            "Outbox delivery attempts, by outcome (sent, retried, dead, postponed, dropped)",
            ["platform", "outcome"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "dealbot_outbox_delivery_seconds",
            "Time to deliver one outbox row",
            ["platform"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.platform_errors = Counter(
            "dealbot_platform_api_errors",
            "Errors the platforms' APIs answered to deliveries, by code",
            ["platform", "code"],
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "dealbot_job_duration_seconds",
            "Reminder scan and digest run time per team",
            ["kind"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.job_failures = Counter(
            "dealbot_job_failures",
            "Scan and digest runs that failed",
            ["kind"],
            registry=self.registry,
        )
        self._outbox: OutboxGauge | None = None

    def watch_outbox(self, engine: Engine) -> None:
        """Report the outbox's queue from this database at every scrape (once per registry)."""
        if self._outbox is None:
            self._outbox = OutboxGauge(engine)
            self.registry.register(self._outbox)

    # --- observers ---------------------------------------------------------------------------
    def on_command(self, event: Handled) -> None:
        self.commands.labels(event.verb, event.outcome).inc()
        self.command_seconds.labels(event.verb).observe(event.duration_ms / 1000)

    def on_delivery(self, event: Delivered) -> None:
        self.deliveries.labels(event.platform, event.outcome).inc()
        self.delivery_seconds.labels(event.platform).observe(event.duration_ms / 1000)
        if event.error is not None:
            self.platform_errors.labels(event.platform, error_code(event.error)).inc()

    def on_job(self, event: JobRun) -> None:
        self.job_seconds.labels(event.kind).observe(event.duration_ms / 1000)
        if not event.ok:
            self.job_failures.labels(event.kind).inc()

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
