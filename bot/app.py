"""Wiring: one place that builds the engine, dispatcher, senders and delivery from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from adapters.base import Sender
from adapters.console import ConsoleSender
from bot.settings import Settings
from commands import Dispatcher
from models.clock import Clock, SystemClock
from models.db import make_engine
from models.migrate import upgrade
from reminders.limits import Pacer, default_limits
from reminders.outbox import OutboxDelivery
from reminders.worker import Worker


@dataclass
class Bot:
    settings: Settings
    engine: Engine
    clock: Clock
    dispatcher: Dispatcher
    senders: dict[str, Sender] = field(default_factory=dict)
    adapters: list[Any] = field(default_factory=list)  # each offers routes() for the web app

    @property
    def slack(self) -> Any:
        return next((adapter for adapter in self.adapters if adapter.platform == "slack"), None)

    def delivery(self) -> OutboxDelivery:
        return OutboxDelivery(self.engine, self.senders, self.clock, pacer=Pacer(default_limits(self.settings.rates)),
                              max_attempts=self.settings.outbox_max_attempts)

    def worker(self) -> Worker:
        return Worker(self.engine, self.clock, self.delivery())


def build(settings: Settings | None = None, *, clock: Clock | None = None, database_url: str | None = None,
          migrate: bool = True) -> Bot:
    settings = settings or Settings()
    url = database_url or settings.database_url
    engine = make_engine(url)
    if migrate:
        upgrade(engine)
    clock = clock or SystemClock()
    dispatcher = Dispatcher(engine, clock, admins=settings.admin_keys)
    # Console teams' pushes print where the process runs (`→ bob: …`).
    senders: dict[str, Sender] = {"console": ConsoleSender()}
    bot = Bot(settings=settings, engine=engine, clock=clock, dispatcher=dispatcher, senders=senders)
    # Each configured platform: an adapter (inbound routes) and its sender (outbox deliveries).
    if "slack" in settings.platforms:
        from adapters.slack import SlackAdapter

        bot.adapters.append(SlackAdapter.from_settings(settings, dispatcher.dispatch))
    if "telegram" in settings.platforms:
        from adapters.telegram import TelegramAdapter

        bot.adapters.append(TelegramAdapter.from_settings(settings, dispatcher.dispatch))
    if "wecom" in settings.platforms:
        from adapters.wecom import WeComAdapter

        bot.adapters.append(WeComAdapter.from_settings(settings, dispatcher.dispatch))
    for adapter in bot.adapters:
        senders[adapter.platform] = adapter.sender()
    return bot
