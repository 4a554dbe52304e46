"""Wiring: one place that builds the engine, dispatcher, senders and delivery from settings."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from adapters.base import Sender
from adapters.console import ConsoleSender
from bot import logs
from bot.metrics import Metrics
from bot.settings import Settings, SettingsError
from commands import Dispatcher
from commands.dispatch import Handled, unqualified_admins
from commands.inbox import Inbox
from commands.throttle import Throttle
from models.clock import Clock, SystemClock
from models.db import make_engine
from models.installations import Installations
from models.migrate import upgrade
from models.sealed import Seal, weak_secret
from reminders.limits import ARRIVAL_MARGIN, SharedPacer, default_limits
from reminders.outbox import Courier, Delivered, OutboxDelivery
from reminders.worker import Worker

log = logging.getLogger("dealbot.app")


class FileClock:
    """The moment written in a file (ISO 8601 with offset), running on in real time from when the file
    was written. Set by DEALBOT_CLOCK_FILE so a test can move the clock of processes it started;
    replace the file (write, then rename) to jump."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: int | None = None
        self._moment = datetime.now(UTC)

    def now(self) -> datetime:
        stamp = self.path.stat().st_mtime_ns
        if stamp != self._stamp:
            try:
                moment = datetime.fromisoformat(self.path.read_text().strip())
            except ValueError:
                moment = None  # caught mid-write: keep the moment read before
            if moment is not None and moment.tzinfo is not None:
                self._moment, self._stamp = moment.astimezone(UTC), stamp
        return self._moment + timedelta(seconds=max(0.0, time.time() - (self._stamp or stamp) / 1e9))


@dataclass
class Bot:
    settings: Settings
    engine: Engine
    clock: Clock
    dispatcher: Dispatcher
    senders: dict[str, Sender] = field(default_factory=dict)
    adapters: list[Any] = field(default_factory=list)  # each offers routes() for the web app
    metrics: Metrics = field(default_factory=Metrics)
    inbox: Inbox | None = None  # commands kept from their acknowledgement until answered

    @property
    def slack(self) -> Any:
        return next((adapter for adapter in self.adapters if adapter.platform == "slack"), None)

    def delivery(self) -> OutboxDelivery:
        # Paced through the database: serving processes and workers all deliver, and a platform's
        # limit is per bot, not per process.
        pacer = SharedPacer(self.engine, default_limits(self.settings.rates), margin=ARRIVAL_MARGIN)
        return OutboxDelivery(self.engine, self.senders, self.clock, pacer=pacer,
                              max_attempts=self.settings.outbox_max_attempts, observer=self._delivered,
                              lease=timedelta(seconds=self.settings.outbox_lease_seconds))

    def courier(self) -> Courier | None:
        """What delivers this process's pushes as their commands commit (None: left to the worker)."""
        return Courier(self.delivery()) if self.settings.serve_delivers else None

    def worker(self) -> Worker:
        return Worker(self.engine, self.clock, self.delivery(), observer=self.metrics.on_job,
                      inbox=self.inbox)

    def _handled(self, event: Handled) -> None:
        self.metrics.on_command(event)
        logs.log_command(event)

    def _delivered(self, event: Delivered) -> None:
        self.metrics.on_delivery(event)
        logs.log_delivery(event)


def build(settings: Settings | None = None, *, clock: Clock | None = None, database_url: str | None = None,
          migrate: bool = True, metrics: Metrics | None = None) -> Bot:
    """`metrics`: share one registry between builds in one process (`dealbot run`)."""
    settings = settings or Settings()
    problem = slack_oauth_problem(settings) if settings.slack_oauth else None
    if problem is not None:
        raise SettingsError(problem)  # before anything is touched, the database included
    url = database_url or settings.database_url
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    clock = clock or (FileClock(settings.clock_file) if settings.clock_file else SystemClock())
    ignored = unqualified_admins(settings.admin_keys)
    if ignored:
        log.warning("DEALBOT_ADMINS entries without a platform make nobody admin (the same id may "
                    "be someone else on another platform): %s. Write each as platform:id, e.g. "
                    "slack:U123, telegram:12345, wecom:zhangsan, console:boss", ", ".join(ignored))
    dispatcher = Dispatcher(engine, clock, admins=settings.admin_keys, timezone=settings.timezone,
                            throttle=Throttle.from_settings(settings),
                            at_once=settings.command_threads
                            or (1 if engine.dialect.name == "sqlite" else 4))
    # Console teams' pushes print where the process runs (`→ bob: …`).
    senders: dict[str, Sender] = {"console": ConsoleSender()}
    bot = Bot(settings=settings, engine=engine, clock=clock, dispatcher=dispatcher, senders=senders,
              metrics=metrics or Metrics())
    dispatcher.observer = bot._handled
    bot.metrics.watch_outbox(engine)
    # Each configured platform: an adapter (inbound routes) and its sender (outbox deliveries).
    oauth = slack_oauth(settings, engine, clock) if settings.slack_oauth else None
    if "slack" in settings.platforms:
        from adapters.slack import SlackAdapter

        bot.adapters.append(SlackAdapter.from_settings(settings, dispatcher.dispatch, oauth))
    if "telegram" in settings.platforms:
        from adapters.telegram import TelegramAdapter

        bot.adapters.append(TelegramAdapter.from_settings(settings, dispatcher.dispatch))
    if "wecom" in settings.platforms:
        from adapters.wecom import WeComAdapter

        bot.adapters.append(WeComAdapter.from_settings(settings, dispatcher.dispatch))
    if "feishu" in settings.platforms:
        from adapters.feishu import FeishuAdapter

        bot.adapters.append(FeishuAdapter.from_settings(settings, dispatcher.dispatch))
    if "dingtalk" in settings.platforms:
        from adapters.dingtalk import DingTalkAdapter

        bot.adapters.append(DingTalkAdapter.from_settings(settings, dispatcher.dispatch))
    for adapter in bot.adapters:
        senders[adapter.platform] = adapter.sender()
    keep_commands(bot, lease=timedelta(seconds=settings.inbox_lease_seconds),
                  max_attempts=settings.outbox_max_attempts)
    return bot


def slack_oauth_problem(settings: Settings) -> str | None:
    """Why the settings cannot serve Slack workspaces through OAuth, or None when they can."""
    if not (settings.slack_client_id and settings.slack_client_secret):
        return ("Slack OAuth needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (the app's Basic "
                "Information → App Credentials)")
    if not settings.slack_signing_secret:
        return ("Slack OAuth needs SLACK_SIGNING_SECRET: workspaces install the app over HTTP "
                "(/slack/install) and Slack sends their requests to /slack/events")
    if settings.slack_bot_token:
        return ("SLACK_BOT_TOKEN and SLACK_CLIENT_ID are both set: choose one. For any number of "
                "workspaces, unset SLACK_BOT_TOKEN and install each workspace (that token's too) "
                "at https://YOUR.HOST/slack/install; for one, unset SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET")
    problem = weak_secret(settings.secret_key)
    if problem is not None:
        return f"Slack OAuth keeps each workspace's token sealed with DEALBOT_SECRET_KEY: {problem}"
    return None


def slack_oauth(settings: Settings, engine: Engine, clock: Clock) -> Any:
    """The installation store and state store of Slack's OAuth flow, in this database."""
    from adapters.slack_oauth import SlackOAuth

    installations = Installations(engine, Seal(settings.secret_key or ""), clock)
    return SlackOAuth(installations, client_id=settings.slack_client_id or "",
                      client_secret=settings.slack_client_secret or "",
                      scopes=settings.slack_scopes, redirect_uri=settings.slack_redirect_uri,
                      api_url=settings.slack_api_url)


def keep_commands(bot: Bot, *, lease: timedelta, max_attempts: int = 6) -> Inbox:
    """Every adapter keeps the commands it acknowledges until they are answered; this process
    answers, on each configured platform, those whose receiver died."""
    bot.inbox = Inbox(bot.engine, bot.dispatcher, bot.clock, lease=lease, max_attempts=max_attempts)
    for adapter in bot.adapters:
        adapter.inbox = bot.inbox
        bot.inbox.answerers[adapter.platform] = adapter.answer_later
    return bot.inbox
