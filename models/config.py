"""A team's settings: pipeline, approval policy, reminders. Stored as JSON on `Team.config`."""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

Role = Literal["rep", "manager", "admin"]
ROLE_RANK: dict[str, int] = {"rep": 0, "manager": 1, "admin": 2}

# Lead facts a stage may require before a lead enters it.
REQUIREMENTS = ("contact", "phone_or_email", "value", "followup", "approved_quote")


class Stage(BaseModel):
    key: str
    zh: str
    en: str
    required: list[str] = Field(default_factory=list)
    stale_days: int | None = None

    @field_validator("required")
    @classmethod
    def _known_requirements(cls, value: list[str]) -> list[str]:
        unknown = [item for item in value if item not in REQUIREMENTS]
        if unknown:
            raise ValueError(f"unknown requirement {unknown[0]!r}; known: {', '.join(REQUIREMENTS)}")
        return value

    def label(self, locale: str) -> str:
        return self.zh if locale == "zh" else self.en


DEFAULT_STAGES: list[Stage] = [
    Stage(key="lead", zh="线索", en="Lead"),
    Stage(key="contacted", zh="初步沟通", en="Contacted", required=["followup"]),
    Stage(key="qualified", zh="需求挖掘", en="Qualified", required=["contact"]),
    Stage(key="proposal", zh="方案报价", en="Proposal", required=["value"]),
    Stage(key="contract", zh="合同签订", en="Contract", required=["approved_quote"]),
    Stage(key="delivery", zh="实施交付/回款", en="Delivery"),
]


class ApprovalLevel(BaseModel):
    role: Role
    up_to: Decimal | None = None  # the largest amount this level may approve; None: no limit
    approvers: int = Field(default=1, ge=1, le=10)  # distinct people of `role` (or above) who must sign


class ApprovalPolicy(BaseModel):
    auto_below: Decimal = Decimal(50_000)
    levels: list[ApprovalLevel] = Field(
        default_factory=lambda: [
            ApprovalLevel(role="manager", up_to=Decimal(500_000)),
            ApprovalLevel(role="admin", up_to=None),
        ]
    )
    discount_raise_pct: Decimal = Decimal(20)
    wait_hours: float = 4.0

    @field_validator("levels")
    @classmethod
    def _at_least_one_level(cls, value: list[ApprovalLevel]) -> list[ApprovalLevel]:
        if not value:
            raise ValueError("an approval policy needs at least one level")
        return value


class PointsConfig(BaseModel):
    """Process points (过程积分) per action, and what makes an action too empty to earn any."""

    followup: int = Field(default=2, ge=0, le=1000)  # a follow-up logged
    on_time: int = Field(default=1, ge=0, le=1000)  # extra, when it was done by its planned day
    stage: int = Field(default=3, ge=0, le=1000)  # a lead moved to a stage it never reached before
    quote_approved: int = Field(default=5, ge=0, le=1000)  # to the requester, when someone else approves
    won: int = Field(default=10, ge=0, le=1000)
    min_note: int = Field(default=10, ge=0, le=500)  # note weight below which a follow-up earns nothing
    burst_seconds: int = Field(default=60, ge=0, le=3600)  # repeats on one lead within this earn nothing
    burst_count: int = Field(default=3, ge=2, le=100)  # this many within burst_seconds: none of them earn


# Older names of the assignment rules: stored configs and typed commands keep working.
ASSIGNMENT_ALIASES = {"author": "manual", "balanced": "least_loaded"}

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_clock(text: str) -> time:
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day like 18:00")
    return time(int(match.group(1)), int(match.group(2)))


class TeamConfig(BaseModel):
    timezone: str = "Asia/Shanghai"
    locale: Literal["zh", "en"] | None = None  # None: answer in the language of the command
    currency: str | None = None  # None: CNY for zh, USD for en
    stages: list[Stage] = Field(default_factory=lambda: [s.model_copy() for s in DEFAULT_STAGES])
    allow_skip: bool = False
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    stale_days: int = Field(default=7, ge=1, le=365)
    followup_sla_days: int = Field(default=2, ge=0, le=90)
    pool_return_days: int = Field(default=0, ge=0, le=365)  # 0: leads never return to the pool
    digest_time: str = "18:00"
    weekly_digest_time: str = "09:00"
    digest_channel: str | None = None
    quiet_hours: str | None = "20:00-08:30"
    quiet_weekends: bool = False
    # Who owns a lead a manager adds without owner=: the manager (manual), the reps in turn
    # (round_robin), the rep with the fewest open leads (least_loaded), or nobody (pool).
    assignment: Literal["manual", "round_robin", "least_loaded", "pool"] = "manual"
    pool_claim_limit: int = Field(default=0, ge=0, le=1000)  # leads a rep may claim from the pool per day; 0: no limit
    transfer_wait_hours: float = Field(default=4.0, gt=0, le=720)  # then a transfer request goes to the owner's manager
    page_size: int = Field(default=10, ge=1, le=50)
    # After the signature: payment and renewal nudges, care per customer grade.
    instalment_due_days: int = Field(default=3, ge=0, le=60)
    renewal_days: int = Field(default=30, ge=0, le=365)
    care_after_won_days: int = Field(default=7, ge=0, le=365)
    care_days_a: int = Field(default=30, ge=1, le=365)
    care_days_b: int = Field(default=60, ge=1, le=365)
    care_days_c: int = Field(default=90, ge=1, le=365)
    care_default_grade: Literal["A", "B", "C"] = "B"
    points: PointsConfig = Field(default_factory=PointsConfig)

    @field_validator("timezone")
    @classmethod
    def _real_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}, e.g. Asia/Shanghai") from exc
        return value

    @field_validator("currency")
    @classmethod
    def _currency_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError(f"{value!r} is not a currency code like CNY or USD")
        return value.upper()

    @field_validator("digest_time", "weekly_digest_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        return parse_clock(value).strftime("%H:%M")

    @field_validator("assignment", mode="before")
    @classmethod
    def _assignment_alias(cls, value: object) -> object:
        return ASSIGNMENT_ALIASES.get(value, value) if isinstance(value, str) else value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value in (None, "", "off"):
            return None
        start, sep, end = value.partition("-")
        if not sep:
            raise ValueError(f"{value!r} is not a range like 20:00-08:30")
        return f"{parse_clock(start):%H:%M}-{parse_clock(end):%H:%M}"

    @model_validator(mode="after")
    def _unique_stage_keys(self) -> TeamConfig:
        if not self.stages:
            raise ValueError("a pipeline needs at least one stage")
        keys = [s.key.casefold() for s in self.stages]
        if len(set(keys)) != len(keys):
            raise ValueError("stage names must be different from each other")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stage(self, key: str) -> Stage | None:
        for stage in self.stages:
            if stage.key == key:
                return stage
        return None

    def find_stage(self, text: str) -> Stage | None:
        """A stage by key, either name, or its 1-based position, as a user may type it."""
        wanted = text.strip().casefold()
        if wanted.isdecimal() and 1 <= int(wanted) <= len(self.stages):
            return self.stages[int(wanted) - 1]
        for stage in self.stages:
            if wanted in (stage.key.casefold(), stage.zh.casefold(), stage.en.casefold()):
                return stage
        return None

    def stage_index(self, key: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.key == key:
                return index
        return 0

    def stale_days_for(self, key: str) -> int:
        stage = self.stage(key)
        return stage.stale_days if stage and stage.stale_days else self.stale_days

    def currency_for(self, locale: str) -> str:
        return self.currency or ("CNY" if locale == "zh" else "USD")
