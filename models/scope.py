"""Who is acting, in which team, at what moment, inside which transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property

from sqlmodel import Session

from models.config import TeamConfig
from models.tables import Member, Team


@dataclass
class Scope:
    session: Session
    team: Team
    actor: Member
    now: datetime

    @cached_property
    def config(self) -> TeamConfig:
        return TeamConfig.model_validate(self.team.config or {})

    @property
    def today(self) -> date:
        """The team's local date: what "today" and "overdue" mean to its people."""
        return self.now.astimezone(self.config.tz).date()

    def refresh_config(self) -> None:
        self.__dict__.pop("config", None)
