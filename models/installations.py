"""Installations made through a platform's OAuth flow (one per Slack workspace): the credentials
each granted, sealed at rest, and the OAuth states handed to browsers on their way to the
platform's consent page. Plain data: what the credentials hold is the platform adapter's business.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import col

from models.clock import Clock
from models.db import unit_of_work
from models.sealed import Seal, SealBroken
from models.tables import Installation, OAuthState

log = logging.getLogger("dealbot.installations")


class Installations:
    def __init__(self, engine: Engine, seal: Seal, clock: Clock) -> None:
        self.engine = engine
        self.seal = seal
        self.clock = clock

    def save(
        self,
        *,
        platform: str,
        team_key: str,
        credentials: dict[str, Any],
        enterprise_key: str | None = None,
        installer_key: str | None = None,
    ) -> None:
        """Keep a team's credentials, replacing what an earlier install of it left."""
        values = {
            "platform": platform,
            "team_key": team_key,
            "enterprise_key": enterprise_key,
            "installer_key": installer_key,
            "sealed": self.seal.seal(credentials),
            "installed_at": self.clock.now(),
        }
        with unit_of_work(self.engine) as session:
            dialect = session.get_bind().dialect.name
            insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert_for(Installation).values(**values)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=["platform", "team_key"],
                    set_={name: statement.excluded[name] for name in values},
                )
            )

    def find(self, *, platform: str, team_key: str) -> dict[str, Any] | None:
        """A team's credentials; None when the app is not installed there (or no more), or when
        they were sealed with another key (it changed: the team must install again)."""
        with unit_of_work(self.engine) as session:
            sealed = session.execute(
                select(Installation.sealed).where(
                    col(Installation.platform) == platform, col(Installation.team_key) == team_key
                )
            ).scalar_one_or_none()
        if sealed is None:
            return None
        try:
            return self.seal.open(sealed)
        except SealBroken:
            log.error(
                "the %s credentials of team %s cannot be opened with this DEALBOT_SECRET_KEY "
                "(was it changed?): install the app into that team again",
                platform,
                team_key,
            )
            return None

    def remove(self, *, platform: str, team_key: str) -> bool:
        """Forget a team's credentials (the app was uninstalled, its tokens revoked)."""
        with unit_of_work(self.engine) as session:
            result = session.execute(
                delete(Installation).where(
                    col(Installation.platform) == platform, col(Installation.team_key) == team_key
                )
            )
        return bool(result.rowcount)

    # --- OAuth states ---------------------------------------------------------------------------
    def issue_state(self, lifetime: timedelta) -> str:
        """A new state: a random nonce kept until it expires, and its signature, so a state that
        was never issued is refused without a look into the database."""
        nonce = secrets.token_urlsafe(24)
        now = self.clock.now()
        with unit_of_work(self.engine) as session:
            session.execute(delete(OAuthState).where(col(OAuthState.expires_at) <= now))
            session.add(OAuthState(nonce=nonce, expires_at=now + lifetime))
        return f"{nonce}.{self.seal.sign(nonce)}"

    def take_state(self, state: str) -> bool:
        """Whether `state` was issued here, has not expired and was not taken before; it cannot be
        taken again."""
        nonce, _, signature = state.partition(".")
        if not nonce or len(nonce) > 64 or not self.seal.signed(nonce, signature):
            return False
        with unit_of_work(self.engine) as session:
            result = session.execute(
                delete(OAuthState).where(
                    col(OAuthState.nonce) == nonce, col(OAuthState.expires_at) > self.clock.now()
                )
            )
        return bool(result.rowcount)
