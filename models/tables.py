"""The tables. Queries and rules live beside them in the other `models` modules."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back an aware datetime, on SQLite as on Postgres."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _money_column(*, nullable: bool = True) -> Any:
    # Amounts are kept in minor units (fen / cents) so sums are exact on every database.
    return Field(default=None, sa_column=Column(BigInteger, nullable=nullable))


class Team(SQLModel, table=True):
    """One Slack workspace, WeCom corp, Telegram group or console team."""

    __table_args__ = (UniqueConstraint("platform", "key", name="uq_team_platform_key"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    key: str = Field(max_length=128)
    name: str = Field(default="", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    channel: str | None = Field(default=None, max_length=128)  # where the team talks to the bot
    last_locale: str | None = Field(default=None, max_length=8)  # language of the latest command
    lead_seq: int = 0
    quote_seq: int = 0
    created_at: datetime = _utc_column()


class Member(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("team_id", "user_key", name="uq_member_team_user"),
                      Index("ix_member_team_handle", "team_id", "handle"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    user_key: str = Field(max_length=128)
    name: str = Field(max_length=200)
    handle: str | None = Field(default=None, max_length=64)  # the platform's @username, lower-cased
    role: str = Field(default="rep", max_length=16)
    manager_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = _utc_column()


class Lead(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("team_id", "number", name="uq_lead_team_number"),
        Index("ix_lead_team_phone", "team_id", "norm_phone"),
        Index("ix_lead_team_email", "team_id", "norm_email"),
        Index("ix_lead_team_company", "team_id", "norm_company"),
        Index("ix_lead_team_owner_activity", "team_id", "owner_id", "last_activity_at"),
        Index("ix_lead_scan_activity", "team_id", "status", "last_activity_at"),
        # The reminder scans: each reads only the due rows of one team.
        Index("ix_lead_scan_followup", "team_id", "status", "next_followup_on"),
        Index("ix_lead_scan_stage", "team_id", "status", "stage_changed_at", "stage"),  # + stage:
        # the digest's stuck count reads this index alone, and its funnel the next.
        Index("ix_lead_funnel", "team_id", "stage", "status", "value"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    number: int
    name: str = Field(max_length=200)
    company: str | None = Field(default=None, max_length=200)
    contact: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=200)
    source: str | None = Field(default=None, max_length=100)
    tag: str | None = Field(default=None, max_length=100)
    value: int | None = _money_column()
    norm_phone: str | None = Field(default=None, max_length=64)
    norm_email: str | None = Field(default=None, max_length=200)
    norm_company: str | None = Field(default=None, max_length=200)
    owner_id: int | None = Field(default=None, foreign_key="member.id")
    created_by_id: int | None = Field(default=None, foreign_key="member.id")
    stage: str = Field(max_length=64)
    status: str = Field(default="open", max_length=8)
    won_amount: int | None = _money_column()
    lost_reason: str | None = Field(default=None, sa_column=Column(Text))
    next_followup_on: date | None = None
    snoozed_until: date | None = None
    grade: str | None = Field(default=None, max_length=1)  # A/B/C: how often after-sales care
    last_activity_at: datetime = _utc_column()
    stage_changed_at: datetime = _utc_column()
    closed_at: datetime | None = _utc_column(nullable=True)
    created_at: datetime = _utc_column()
    version: int = 1


class FollowUp(SQLModel, table=True):
    __table_args__ = (Index("ix_followup_lead_created", "lead_id", "created_at"),
                      Index("ix_followup_team_created", "team_id", "created_at", "author_id"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    lead_id: int = Field(foreign_key="lead.id")
    author_id: int = Field(foreign_key="member.id")
    note: str = Field(sa_column=Column(Text, nullable=False))
    via: str | None = Field(default=None, max_length=16)
    next_on: date | None = None
    created_at: datetime = _utc_column()


class Quote(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("team_id", "number", name="uq_quote_team_number"),
        Index("ix_quote_team_status", "team_id", "status"),
        Index("ix_quote_lead", "lead_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    number: int
    lead_id: int = Field(foreign_key="lead.id")
    requester_id: int = Field(foreign_key="member.id")
    amount: int = _money_column(nullable=False)
    discount_bp: int = 0  # basis points: 525 is 5.25 %
    note: str | None = Field(default=None, sa_column=Column(Text))
    status: str = Field(default="pending", max_length=10)
    levels_required: int = 0
    current_level: int = 0  # the step waiting for a decision; 0 when none
    decided_by_id: int | None = Field(default=None, foreign_key="member.id")
    decided_at: datetime | None = _utc_column(nullable=True)
    decision_note: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _utc_column()
    version: int = 1


class ApprovalStep(SQLModel, table=True):
    """One level of a quote's approval chain; decided in order."""

    __tablename__ = "approval_step"
    __table_args__ = (
        UniqueConstraint("quote_id", "level", name="uq_step_quote_level"),
        Index("ix_step_status_waiting", "status", "waiting_since"),
    )

    id: int | None = Field(default=None, primary_key=True)
    quote_id: int = Field(foreign_key="quote.id")
    level: int
    role: str = Field(max_length=16)
    status: str = Field(default="queued", max_length=10)  # queued → waiting → approved|rejected|skipped
    waiting_since: datetime | None = _utc_column(nullable=True)
    decided_by_id: int | None = Field(default=None, foreign_key="member.id")
    decided_at: datetime | None = _utc_column(nullable=True)
    note: str | None = Field(default=None, sa_column=Column(Text))
    escalations: int = 0
    escalated_at: datetime | None = _utc_column(nullable=True)
    # Distinct signatures the level needs (N of M); each one is an `ApprovalSignature` (models/teamwork.py).
    needed: int = Field(default=1, sa_column_kwargs={"server_default": "1"})


class Target(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("team_id", "member_id", "month", name="uq_target_member_month"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    member_id: int = Field(foreign_key="member.id")
    month: str = Field(max_length=7)  # YYYY-MM
    amount: int = _money_column(nullable=False)


class AuditEvent(SQLModel, table=True):
    """Who changed what, when, with the record before and after."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_entity", "team_id", "entity", "entity_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    actor_id: int | None = Field(default=None, foreign_key="member.id")
    at: datetime = _utc_column()
    entity: str = Field(max_length=16)
    entity_id: int
    action: str = Field(max_length=32)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


class CommandLog(SQLModel, table=True):
    """Every line a user sent, kept whatever its outcome: nothing typed is lost."""

    __tablename__ = "command_log"
    __table_args__ = (Index("ix_command_log_received", "received_at"),
                      Index("ix_command_log_user", "platform", "user_key", "id"))

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    team_key: str = Field(max_length=128)
    user_key: str = Field(max_length=128)
    channel: str | None = Field(default=None, max_length=128)
    text: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = _utc_column()
    outcome: str = Field(default="ok", max_length=16)
    error: str | None = Field(default=None, max_length=64)
    duration_ms: float = 0.0


class Outbox(SQLModel, table=True):
    """A message to push; `dedupe_key` makes writing it twice a no-op."""

    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_outbox_dedupe_key"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_edit_of", "edit_of"),
    )

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    platform: str = Field(max_length=16)
    target_kind: str = Field(max_length=8)  # member | channel
    target: str = Field(max_length=128)  # the member's user key, or the channel key
    target_label: str = Field(default="", max_length=200)
    kind: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=200)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # pending | sending | sent | dead | dropped (an edit with nothing left to do, a card overtaken)
    status: str = Field(default="pending", max_length=8)
    attempts: int = 0
    next_attempt_at: datetime = _utc_column()
    claimed_until: datetime | None = _utc_column(nullable=True)
    created_at: datetime = _utc_column()
    sent_at: datetime | None = _utc_column(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    message_ref: str | None = Field(default=None, max_length=200)
    # An `edit` row changes the message another row sent: its own `message_ref` is that message's,
    # copied when known (else read from the row it edits when it is delivered).
    edit_of: int | None = None


class OutboxSubject(SQLModel, table=True):
    """What a pushed message is about (`quote:<id>`, `transfer:<id>`): when that is decided, every
    message about it is found here and edited to tell the outcome."""

    __tablename__ = "outbox_subject"
    __table_args__ = (UniqueConstraint("outbox_id", "subject", name="uq_outbox_subject"),
                      Index("ix_outbox_subject", "team_id", "subject"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    outbox_id: int = Field(foreign_key="outbox.id")
    subject: str = Field(max_length=40)


class PaceWindow(SQLModel, table=True):
    """The send moments booked for one platform scope (the bot, a chat, a channel), shared by every
    process that delivers: a platform's limit is per bot, whichever process sends."""

    __tablename__ = "pace_window"

    platform: str = Field(primary_key=True, max_length=16)
    scope: str = Field(primary_key=True, max_length=140)  # bot | member:<key> | channel:<key>
    booked: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # ISO moments
    held_until: datetime | None = _utc_column(nullable=True)  # the platform's Retry-After
    tickets: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))  # row → slot


class Nudge(SQLModel, table=True):
    """One reminder fact already pushed (`overdue:<lead>:<due date>`), so scans never repeat it."""

    __table_args__ = (UniqueConstraint("key", name="uq_nudge_key"),)

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    key: str = Field(max_length=200)
    member_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = _utc_column()


class InboundDelivery(SQLModel, table=True):
    """A platform delivery already handled (Slack event id, Telegram update id, WeCom MsgId):
    platforms retry, and a retried delivery must not run its command twice."""

    __tablename__ = "inbound_delivery"
    __table_args__ = (UniqueConstraint("platform", "key", name="uq_inbound_delivery"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    key: str = Field(max_length=200)
    received_at: datetime = _utc_column()


class InboundCommand(SQLModel, table=True):
    """A command a platform was told we received, kept until it has run and been answered: the
    serving process holds it (a lease); after a crash any server or worker takes it over."""

    __tablename__ = "inbound_command"
    __table_args__ = (UniqueConstraint("platform", "key", name="uq_inbound_command"),
                      Index("ix_inbound_command_due", "claimed_until"))

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    key: str = Field(max_length=200)  # the delivery id: a platform's retry is the same command
    invocation: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    answer_to: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="received", max_length=8)  # received | ran
    reply: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    received_at: datetime = _utc_column()
    claimed_until: datetime = _utc_column()
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))



class Installation(SQLModel, table=True):
    """The app installed into one team of a platform (a Slack workspace) through the platform's
    OAuth flow: the credentials it granted, sealed with DEALBOT_SECRET_KEY (models.sealed). Only
    what identifies the row is readable."""

    __table_args__ = (UniqueConstraint("platform", "team_key", name="uq_installation_team"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    # The team the credentials act in: the workspace, or the organisation of an org-wide install.
    team_key: str = Field(max_length=128)
    enterprise_key: str | None = Field(default=None, max_length=128)
    installer_key: str | None = Field(default=None, max_length=128)  # who installed it
    sealed: str = Field(sa_column=Column(Text, nullable=False))
    installed_at: datetime = _utc_column()


class OAuthState(SQLModel, table=True):
    """An OAuth `state` handed to a browser on its way to the platform's consent page, taken back
    once when it returns: every web replica sees it, and it cannot be used twice."""

    __tablename__ = "oauth_state"
    __table_args__ = (UniqueConstraint("nonce", name="uq_oauth_state_nonce"),
                      Index("ix_oauth_state_expires", "expires_at"))

    id: int | None = Field(default=None, primary_key=True)
    nonce: str = Field(max_length=64)
    expires_at: datetime = _utc_column()

# The after-sale tables (contracts, instalments, payments, care plans): a plain import, so that importing
# models.aftersale first works too.
import models.aftersale  # noqa: E402,F401

# The teamwork tables (transfer requests, delegations, signatures, personal settings). A plain import, so
# that importing models.teamwork first (it reads helpers from this module) works as well.
import models.teamwork  # noqa: E402,F401
