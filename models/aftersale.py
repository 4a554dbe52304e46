"""After the signature: contracts, payment plans (回款计划), payments (回款), receivables and
after-sales care (回访). Money is in minor units (fen / cents) throughout; every split and sum is
exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Index, Text, UniqueConstraint, delete, exists, update
from sqlalchemy.orm import aliased
from sqlmodel import Field, Session, SQLModel, col, func, select

from models import audit
from models.config import TeamConfig
from models.errors import DomainError
from models.horizon import record_window, require_plannable
from models.leads import guarded_update, win
from models.permissions import require_change, require_see
from models.scope import Scope
from models.tables import FollowUp, Lead, Member, _money_column, _utc_column
from models.teams import lock_team

if TYPE_CHECKING:
    from models.reports import Period

# When an instalment falls due, named by the contract date it follows.
MILESTONES: dict[str, str] = {"signing": "signed_on", "start": "start_on", "end": "end_on",
                              "delivery": "delivered_on", "acceptance": "accepted_on"}
GRADES = ("A", "B", "C")
AGEING = ((0, 30, "0–30"), (31, 60, "31–60"), (61, 90, "61–90"), (91, None, "90+"))
MAX_INSTALMENTS = 36


class Contract(SQLModel, table=True):
    """A signed contract on a won lead; its owner is the lead's owner."""

    __table_args__ = (UniqueConstraint("team_id", "number", name="uq_contract_team_number"),
                      Index("ix_contract_lead", "lead_id"),
                      Index("ix_contract_scan_end", "team_id", "end_on"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    number: int
    lead_id: int = Field(foreign_key="lead.id")
    amount: int = _money_column(nullable=False)
    contract_no: str | None = Field(default=None, max_length=64)  # the paper contract's number
    signed_on: date
    start_on: date | None = None
    end_on: date | None = None
    delivered_on: date | None = None
    accepted_on: date | None = None
    snoozed_until: date | None = None  # no overdue-payment nudges before this day
    created_by_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = _utc_column()
    version: int = 1


class Instalment(SQLModel, table=True):
    """One line of a contract's payment plan: what is due when, and how much of it came in."""

    __table_args__ = (UniqueConstraint("contract_id", "seq", name="uq_instalment_contract_seq"),
                      Index("ix_instalment_scan_due", "team_id", "status", "due_on"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    contract_id: int = Field(foreign_key="contract.id")
    seq: int  # 1-based, in the order the plan was typed
    amount: int = _money_column(nullable=False)
    share: str | None = Field(default=None, max_length=16)  # the percentage typed ("30"), if any
    milestone: str | None = Field(default=None, max_length=16)  # due on a contract date: signing…
    due_on: date | None = None  # None while the milestone's date is not known
    paid: int = _money_column(nullable=False)
    status: str = Field(default="open", max_length=8)  # open | paid: what the scans' index reads


class Payment(SQLModel, table=True):
    """Money received on a contract; what no open instalment needed stays as `unapplied` credit."""

    __table_args__ = (Index("ix_payment_team_paid", "team_id", "paid_on"),
                      Index("ix_payment_contract", "contract_id"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    contract_id: int = Field(foreign_key="contract.id")
    amount: int = _money_column(nullable=False)
    unapplied: int = _money_column(nullable=False)
    paid_on: date
    note: str | None = Field(default=None, sa_column=Column(Text))
    created_by_id: int | None = Field(default=None, foreign_key="member.id")
    created_at: datetime = _utc_column()


class PaymentAllocation(SQLModel, table=True):
    """The part of a payment that settled one instalment."""

    __tablename__ = "payment_allocation"
    __table_args__ = (Index("ix_allocation_payment", "payment_id"),
                      Index("ix_allocation_instalment", "instalment_id"))

    id: int | None = Field(default=None, primary_key=True)
    payment_id: int = Field(foreign_key="payment.id")
    instalment_id: int = Field(foreign_key="instalment.id")
    amount: int = _money_column(nullable=False)


class CarePlan(SQLModel, table=True):
    """When a customer (a won lead) is next due a care contact (回访): scans read only due rows."""

    __tablename__ = "care_plan"
    __table_args__ = (UniqueConstraint("lead_id", name="uq_care_plan_lead"),
                      Index("ix_care_plan_scan_due", "team_id", "next_due_on"))

    id: int | None = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id")
    lead_id: int = Field(foreign_key="lead.id")
    next_due_on: date
    created_at: datetime = _utc_column()


# --- pure rules ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanItem:
    """One instalment as typed: a share of the total or an amount, due on a date or a milestone."""

    share: Decimal | None = None  # percent
    amount: int | None = None  # minor units
    due_on: date | None = None
    milestone: str | None = None


def split_plan(total: int, items: Sequence[PlanItem]) -> list[int]:
    """Instalment amounts that add up to `total` exactly.

    Percentages must add to 100; each takes its share rounded down and the last takes the remainder.
    Amounts must add to the total. A plan is one or the other.
    """
    if not items:
        raise DomainError("plan.empty")
    if len(items) > MAX_INSTALMENTS:
        raise DomainError("plan.too_many", limit=MAX_INSTALMENTS)
    shares = [item.share for item in items]
    if all(share is not None for share in shares):
        percent = sum(share for share in shares if share is not None)
        if percent != 100:
            raise DomainError("plan.not_100", percent=f"{percent.normalize():f}")
        amounts = [int((Decimal(total) * share / 100).to_integral_value(ROUND_DOWN))
                   for share in shares[:-1] if share is not None]
        amounts.append(total - sum(amounts))
    elif any(share is not None for share in shares):
        raise DomainError("plan.mixed")
    else:
        amounts = [item.amount or 0 for item in items]
        if sum(amounts) != total:
            raise DomainError("plan.not_total", sum=sum(amounts), total=total,
                              diff=abs(total - sum(amounts)))
    for number, amount in enumerate(amounts, start=1):
        if amount <= 0:
            raise DomainError("plan.zero", n=number)
    return amounts


def allocate(owed: Sequence[int], amount: int) -> tuple[list[int], int]:
    """Spread a payment over what each open instalment still owes, oldest first; what is left
    over is over-payment."""
    parts = []
    left = amount
    for due in owed:
        take = min(due, left)
        parts.append(take)
        left -= take
    return parts, left


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest whole number, halves up (percentages, days)."""
    return (2 * numerator + denominator) // (2 * denominator)


def bucket(days_overdue: int) -> str:
    """The ageing bucket (0–30, 31–60, 61–90, 90+) of something due `days_overdue` days ago."""
    for low, high, label in AGEING:
        if days_overdue >= low and (high is None or days_overdue <= high):
            return label
    return AGEING[0][2]


def care_interval(config: TeamConfig, grade: str | None) -> int:
    """Days between care contacts for a customer grade (ungraded customers: the team's default)."""
    days = {"A": config.care_days_a, "B": config.care_days_b, "C": config.care_days_c}
    return days.get((grade or config.care_default_grade).upper(), config.care_days_b)


def oldest_first(instalments: Sequence[Instalment]) -> list[Instalment]:
    """Payment order: by due date, undated milestones last, then as planned."""
    return sorted(instalments, key=lambda i: (i.due_on is None, i.due_on or date.max, i.seq))


def _local_date(moment: datetime, config: TeamConfig) -> date:
    return moment.astimezone(config.tz).date()


# --- contracts -----------------------------------------------------------------------------------

CONTRACT_DATES = ("signed_on", "start_on", "end_on", "delivered_on", "accepted_on")


def _snapshot(contract: Contract) -> dict[str, Any]:
    keys = ("number", "lead_id", "amount", "contract_no", *CONTRACT_DATES)
    return {key: getattr(contract, key) for key in keys if getattr(contract, key) is not None}


def _check_dates(start_on: date | None, end_on: date | None) -> None:
    if start_on and end_on and end_on < start_on:
        raise DomainError("contract.ends_before_start", start=start_on, end=end_on)


def _check_recorded(scope: Scope, *days: date | None) -> None:
    """Contract, instalment and payment dates fall within the record window around today."""
    first, last = record_window(scope.today)
    for day in days:
        if day is not None and not first <= day <= last:
            raise DomainError("date.out_of_range", date=day, first=first, last=last)


def add_contract(scope: Scope, lead: Lead, *, amount: int | None, signed_on: date | None = None,
                 start_on: date | None = None, end_on: date | None = None,
                 delivered_on: date | None = None, accepted_on: date | None = None,
                 contract_no: str | None = None) -> tuple[Contract, bool]:
    """Record a contract on a won lead, winning an open lead first; True when this call won it."""
    require_change(scope.session, scope.actor, lead)
    if lead.status == "lost":
        raise DomainError("contract.lead_lost", lead=lead.number)
    _check_dates(start_on, end_on)
    _check_recorded(scope, signed_on, start_on, end_on, delivered_on, accepted_on)
    won_now = lead.status == "open"
    if won_now:
        amount = win(scope, lead, amount)
    amount = amount if amount is not None else lead.won_amount
    if not amount:
        raise DomainError("lead.won_needs_amount", lead=lead.number)
    lock_team(scope.session, scope.team)
    number = int(scope.session.exec(select(func.coalesce(func.max(Contract.number), 0))
                                    .where(Contract.team_id == scope.team.id)).one()) + 1
    contract = Contract(team_id=scope.team.id or 0, number=number, lead_id=lead.id or 0,
                        amount=amount, contract_no=contract_no, signed_on=signed_on or scope.today,
                        start_on=start_on, end_on=end_on, delivered_on=delivered_on,
                        accepted_on=accepted_on, created_by_id=scope.actor.id, created_at=scope.now)
    scope.session.add(contract)
    scope.session.flush()
    audit.record(scope, entity="contract", entity_id=contract.id or 0, action="add",
                 after=_snapshot(contract))
    schedule_care(scope.session, scope.config, lead, now=scope.now)
    return contract, won_now


def get_contract(scope: Scope, number: int) -> tuple[Contract, Lead]:
    contract = scope.session.exec(select(Contract).where(Contract.team_id == scope.team.id,
                                                         Contract.number == number)).first()
    if contract is None:
        raise DomainError("contract.not_found", contract=number)
    lead = scope.session.get(Lead, contract.lead_id)
    assert lead is not None  # a foreign key
    return contract, lead


def visible_contract(scope: Scope, number: int) -> tuple[Contract, Lead]:
    contract, lead = get_contract(scope, number)
    require_see(scope.session, scope.actor, lead)
    return contract, lead


def changeable_contract(scope: Scope, number: int) -> tuple[Contract, Lead]:
    contract, lead = get_contract(scope, number)
    require_change(scope.session, scope.actor, lead)
    return contract, lead


def lead_contracts(session: Session, lead: Lead) -> list[Contract]:
    return list(session.exec(select(Contract).where(Contract.lead_id == lead.id)
                             .order_by(col(Contract.number))))


def _guarded(scope: Scope, contract: Contract, *, action: str, **changes: Any) -> None:
    """Change a contract only if nobody changed it since we read it; audit the change."""
    before = {key: getattr(contract, key) for key in changes}
    result = scope.session.execute(
        update(Contract)
        .where(col(Contract.id) == contract.id, Contract.version == contract.version)
        .values(**changes, version=Contract.version + 1)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise DomainError("contract.changed", contract=contract.number)
    scope.session.refresh(contract)
    audit.record(scope, entity="contract", entity_id=contract.id or 0, action=action, before=before,
                 after={key: getattr(contract, key) for key in changes})


def edit_contract(scope: Scope, contract: Contract, lead: Lead, changes: dict[str, Any]) -> None:
    """Change a contract's facts; instalments due on a milestone follow its date; a delivery
    schedules the first care contact."""
    require_change(scope.session, scope.actor, lead)
    if "amount" in changes and instalments_of(scope.session, contract):
        raise DomainError("contract.amount_has_plan", contract=contract.number)
    _check_dates(changes.get("start_on", contract.start_on), changes.get("end_on", contract.end_on))
    _check_recorded(scope, *(changes.get(column) for column in CONTRACT_DATES))
    _guarded(scope, contract, action="edit", **changes)
    for milestone, column in MILESTONES.items():
        if column in changes:
            scope.session.execute(
                update(Instalment).where(col(Instalment.contract_id) == contract.id,
                                         Instalment.milestone == milestone)
                .values(due_on=changes[column]).execution_options(synchronize_session=False))
    if "delivered_on" in changes:
        schedule_care(scope.session, scope.config, lead, now=scope.now)


def snooze_contract(scope: Scope, contract: Contract, lead: Lead, until: date) -> None:
    """No overdue-payment nudges about this contract until `until`, the day they resume."""
    require_change(scope.session, scope.actor, lead)
    if until <= scope.today:
        raise DomainError("lead.snooze_past", date=until)
    require_plannable(until, scope.today)
    _guarded(scope, contract, action="snooze", snoozed_until=until)


# --- plans and payments --------------------------------------------------------------------------

def instalments_of(session: Session, contract: Contract) -> list[Instalment]:
    return list(session.exec(select(Instalment).where(Instalment.contract_id == contract.id)
                             .order_by(col(Instalment.seq))))


def payments_of(session: Session, contract: Contract) -> list[Payment]:
    return list(session.exec(select(Payment).where(Payment.contract_id == contract.id)
                             .order_by(col(Payment.paid_on), col(Payment.id))))


def _lock(scope: Scope, contract: Contract) -> None:
    """Serialise the writers of one contract's money (a Postgres row lock; SQLite's are serial)."""
    scope.session.execute(select(Contract.id).where(col(Contract.id) == contract.id)
                          .with_for_update())
    scope.session.refresh(contract)


def set_plan(scope: Scope, contract: Contract, lead: Lead,
             items: Sequence[PlanItem]) -> list[Instalment]:
    """Replace the contract's payment plan; refused once money has come in against it."""
    require_change(scope.session, scope.actor, lead)
    amounts = split_plan(contract.amount, items)
    _check_recorded(scope, *(item.due_on for item in items))
    _lock(scope, contract)
    session = scope.session
    if session.exec(select(Payment.id).where(Payment.contract_id == contract.id)).first():
        raise DomainError("plan.has_payments", contract=contract.number)
    before = [_plain(i) for i in instalments_of(session, contract)]
    session.execute(delete(Instalment).where(col(Instalment.contract_id) == contract.id))
    instalments = []
    for seq, (item, amount) in enumerate(zip(items, amounts, strict=True), start=1):
        due_on = getattr(contract, MILESTONES[item.milestone]) if item.milestone else item.due_on
        share = f"{item.share.normalize():f}" if item.share is not None else None
        instalment = Instalment(team_id=contract.team_id, contract_id=contract.id or 0, seq=seq,
                                amount=amount, share=share, milestone=item.milestone, due_on=due_on,
                                paid=0)
        session.add(instalment)
        instalments.append(instalment)
    session.flush()
    audit.record(scope, entity="contract", entity_id=contract.id or 0, action="plan",
                 before={"plan": before} if before else None,
                 after={"plan": [_plain(i) for i in instalments]})
    return instalments


def _plain(instalment: Instalment) -> dict[str, Any]:
    due_on = instalment.due_on.isoformat() if instalment.due_on else None  # JSON has no dates
    return {"seq": instalment.seq, "amount": instalment.amount, "due_on": due_on,
            "milestone": instalment.milestone, "share": instalment.share}


@dataclass
class PaymentResult:
    payment: Payment
    parts: list[tuple[Instalment, int]]  # the instalments this payment went to, and how much each
    outstanding: int  # still owed on the plan after it


def record_payment(scope: Scope, contract: Contract, lead: Lead, *, amount: int, paid_on: date,
                   note: str | None = None) -> PaymentResult:
    """Receive money on a contract: the oldest open instalments first, partly when it falls short;
    what no instalment needs is kept as credit. Refused when nothing is owed."""
    require_change(scope.session, scope.actor, lead)
    if paid_on > scope.today:
        raise DomainError("payment.future", date=paid_on)
    _check_recorded(scope, paid_on)
    if paid_on < contract.signed_on:
        raise DomainError("payment.before_signing", date=paid_on, signed=contract.signed_on,
                          contract=contract.number)
    _lock(scope, contract)
    session = scope.session
    plan = instalments_of(session, contract)
    if not plan:
        raise DomainError("payment.no_plan", contract=contract.number)
    open_ = oldest_first([i for i in plan if i.status == "open"])
    if not open_:
        raise DomainError("payment.fully_paid", contract=contract.number, total=contract.amount)
    parts, excess = allocate([i.amount - i.paid for i in open_], amount)
    payment = Payment(team_id=contract.team_id, contract_id=contract.id or 0, amount=amount,
                      unapplied=excess, paid_on=paid_on, note=note, created_by_id=scope.actor.id,
                      created_at=scope.now)
    session.add(payment)
    session.flush()
    settled = []
    for instalment, part in zip(open_, parts, strict=True):
        if not part:
            continue
        instalment.paid += part
        if instalment.paid == instalment.amount:
            instalment.status = "paid"
        session.add(instalment)
        session.add(PaymentAllocation(payment_id=payment.id or 0, instalment_id=instalment.id or 0,
                                      amount=part))
        settled.append((instalment, part))
    session.flush()
    outstanding = sum(i.amount - i.paid for i in plan)
    audit.record(scope, entity="contract", entity_id=contract.id or 0, action="payment",
                 after={"payment_id": payment.id, "amount": amount, "paid_on": paid_on,
                        "note": note, "instalments": {str(i.seq): part for i, part in settled},
                        "unapplied": excess, "outstanding": outstanding})
    return PaymentResult(payment=payment, parts=settled, outstanding=outstanding)


@dataclass
class Balance:
    """Where a contract's money stands."""

    planned: int  # the plan's total; 0 without a plan
    received: int  # every payment, credit included
    outstanding: int  # what the plan still owes
    credit: int
    next_due: Instalment | None


def balance(session: Session, contract: Contract) -> Balance:
    plan = instalments_of(session, contract)
    payments = payments_of(session, contract)
    open_ = oldest_first([i for i in plan if i.status == "open"])
    return Balance(planned=sum(i.amount for i in plan), received=sum(p.amount for p in payments),
                   outstanding=sum(i.amount - i.paid for i in plan),
                   credit=sum(p.unapplied for p in payments), next_due=open_[0] if open_ else None)


# --- receivables ---------------------------------------------------------------------------------

@dataclass
class Receivable:
    instalment: Instalment
    contract: Contract
    lead: Lead

    @property
    def owed(self) -> int:
        return self.instalment.amount - self.instalment.paid

    def days_overdue(self, today: date) -> int | None:
        """Days past the due date (0 on the day); None when not yet due or not yet dated."""
        due = self.instalment.due_on
        return (today - due).days if due is not None and due <= today else None


def open_receivables(session: Session, *, team_id: int, lead_filter: Any,
                     due_before: date | None = None) -> list[Receivable]:
    """Open instalments on leads matching `lead_filter`, earliest due first (undated last)."""
    query = (select(Instalment, Contract, Lead)
             .join(Contract, col(Contract.id) == Instalment.contract_id)
             .join(Lead, col(Lead.id) == Contract.lead_id)
             .where(Instalment.team_id == team_id, Instalment.status == "open", lead_filter))
    if due_before is not None:
        query = query.where(col(Instalment.due_on) < due_before)
    query = query.order_by(col(Instalment.due_on).is_(None), col(Instalment.due_on),
                           col(Contract.number), col(Instalment.seq))
    return [Receivable(i, c, lead) for i, c, lead in session.exec(query).all()]


def ageing(receivables: Sequence[Receivable], today: date) -> dict[str, int]:
    """What has fallen due and is unpaid, per ageing bucket (every bucket present, in order)."""
    totals = {label: 0 for _low, _high, label in AGEING}
    for item in receivables:
        days = item.days_overdue(today)
        if days is not None:
            totals[bucket(days)] += item.owed
    return totals


# --- after-sales care ----------------------------------------------------------------------------

def _won_at(lead: Lead) -> datetime:
    return lead.closed_at or lead.created_at


def _last_contact(lead: Lead, latest_followup: datetime | None, config: TeamConfig) -> date:
    """The customer's latest contact: the latest follow-up logged, or the day the deal was won."""
    won_at = _won_at(lead)
    return _local_date(max(latest_followup, won_at) if latest_followup else won_at, config)


def next_care_due(session: Session, config: TeamConfig, lead: Lead) -> date:
    """The first care contact falls on delivery (or a set number of days after the win); later ones
    come the grade's interval after the latest contact since the win."""
    since_win = session.exec(select(func.max(FollowUp.created_at)).where(
        FollowUp.lead_id == lead.id, col(FollowUp.created_at) >= _won_at(lead))).one()
    if since_win is not None:
        return _local_date(since_win, config) + timedelta(days=care_interval(config, lead.grade))
    delivered = session.exec(select(func.min(Contract.delivered_on))
                             .where(Contract.lead_id == lead.id)).one()
    return delivered or first_care_due(config, _won_at(lead))


def first_care_due(config: TeamConfig, won_at: datetime) -> date:
    """A new customer's first care contact, before any delivery date is known."""
    return _local_date(won_at, config) + timedelta(days=config.care_after_won_days)


def schedule_care(session: Session, config: TeamConfig, lead: Lead, *, now: datetime) -> date:
    """(Re)compute when the customer is next due care, keeping one schedule row per customer."""
    due = next_care_due(session, config, lead)
    plan = session.exec(select(CarePlan).where(CarePlan.lead_id == lead.id)).first()
    if plan is None:
        session.add(CarePlan(team_id=lead.team_id, lead_id=lead.id or 0, next_due_on=due,
                             created_at=now))
    elif plan.next_due_on != due:
        plan.next_due_on = due
        session.add(plan)
    session.flush()
    return due


def log_care(scope: Scope, lead: Lead, *, note: str | None, via: str | None,
             grade: str | None) -> date:
    """A care contact with a customer (a follow-up on a won lead) and/or its grade; returns when
    the next one is due."""
    require_change(scope.session, scope.actor, lead)
    if lead.status != "won":
        raise DomainError("care.not_customer", lead=lead.number, status=lead.status)
    changes: dict[str, Any] = {}
    if grade is not None and grade != lead.grade:
        changes["grade"] = grade
    if note:
        changes["last_activity_at"] = scope.now
        scope.session.add(FollowUp(team_id=scope.team.id or 0, lead_id=lead.id or 0,
                                   author_id=scope.actor.id or 0, note=note, via=via,
                                   created_at=scope.now))
        scope.session.flush()
    if changes:
        # Care contacts commute: guard on the lead still being won, not on its version.
        guarded_update(scope, lead, action="care" if note else "grade", same_version=False,
                       extra_where=Lead.status == "won", **changes)
    return schedule_care(scope.session, scope.config, lead, now=scope.now)


@dataclass
class CareDue:
    lead: Lead
    owner: str
    days: int  # since the last contact


def care_overdue(session: Session, *, team_id: int, config: TeamConfig, today: date,
                 lead_filter: Any, top: int) -> tuple[list[CareDue], int]:
    """The first `top` customers whose care contact is overdue (longest first), and how many there
    are. Reads due care plans through their index; the latest contact is looked up for those shown."""
    overdue = (select(CarePlan, Lead).join(Lead, col(Lead.id) == CarePlan.lead_id)
               .where(CarePlan.team_id == team_id, col(CarePlan.next_due_on) < today,
                      Lead.status == "won", lead_filter))
    total = int(session.exec(select(func.count()).select_from(overdue.subquery())).one())
    if not total:
        return [], 0
    shown = [lead for _plan, lead in session.exec(
        overdue.order_by(col(CarePlan.next_due_on), col(Lead.number)).limit(top)).all()]
    latest = dict(session.exec(
        select(FollowUp.lead_id, func.max(FollowUp.created_at))
        .where(col(FollowUp.lead_id).in_([lead.id for lead in shown]))
        .group_by(col(FollowUp.lead_id))).all())
    members = {m.id: m.name for m in session.exec(select(Member).where(Member.team_id == team_id))}
    found = [CareDue(lead=lead, owner=members.get(lead.owner_id, "-"),
                     days=(today - _last_contact(lead, latest.get(lead.id), config)).days)
             for lead in shown]
    return found, total


def plan_new_customers(session: Session, *, team_id: int, config: TeamConfig,
                       now: datetime) -> int:
    """Give each won lead without a care schedule its first one — leads won before care plans
    existed, or written by hand; returns how many were planned."""
    unscheduled = select(Lead).where(Lead.team_id == team_id, Lead.status == "won",
                                     ~exists().where(CarePlan.lead_id == Lead.id))
    leads = session.exec(unscheduled).all()
    for lead in leads:
        due = schedule_care(session, config, lead, now=now)
        audit.record_event(session, team_id=team_id, actor_id=None, at=now, entity="lead",
                           entity_id=lead.id or 0, action="care_scheduled",
                           after={"next_due_on": due})
    return len(leads)


# --- renewals ------------------------------------------------------------------------------------

def not_renewed() -> Any:
    """No later contract on the same lead runs past this one's end: nobody renewed it yet."""
    later = aliased(Contract)
    return ~exists().where(later.lead_id == Contract.lead_id, later.number > Contract.number,
                           (col(later.end_on).is_(None)) | (later.end_on > Contract.end_on))


def renewals_due(session: Session, *, team_id: int, today: date, days: int,
                 lead_filter: Any) -> list[tuple[Contract, Lead]]:
    """Contracts ending within `days` from today that no later contract replaces, soonest first."""
    query = (select(Contract, Lead).join(Lead, col(Lead.id) == Contract.lead_id)
             .where(Contract.team_id == team_id, col(Contract.end_on) >= today,
                    col(Contract.end_on) <= today + timedelta(days=days), not_renewed(),
                    lead_filter)
             .order_by(col(Contract.end_on), col(Contract.number)))
    return [(contract, lead) for contract, lead in session.exec(query).all()]


# --- the digest's numbers ------------------------------------------------------------------------

@dataclass
class OwnerAgeing:
    owner: str
    total: int
    buckets: dict[str, int]


@dataclass
class AftersaleDigest:
    """Money and care for a period. Definitions (all as of the period's end, or today if earlier):

    collected — payments received in the period; planned — instalments due in the period;
    collection rate — of everything due so far, the share paid; DSO — what is due and unpaid at the
    end ÷ contract value signed in the period × the period's days (None when nothing was signed).
    """

    collected: int = 0
    planned: int = 0
    collected_pct: int | None = None  # collected against planned
    collection_rate: int | None = None  # percent
    dso: int | None = None  # days
    receivable: int = 0  # due and unpaid at the period's end
    overdue_total: int = 0  # overdue today
    overdue_by_owner: list[OwnerAgeing] = field(default_factory=list)
    renewals: list[tuple[Contract, Lead, str]] = field(default_factory=list)  # …, owner's name
    renewals_total: int = 0
    care: list[CareDue] = field(default_factory=list)
    care_total: int = 0

    @property
    def empty(self) -> bool:
        return not (self.collected or self.planned or self.receivable or self.overdue_total
                    or self.renewals_total or self.care_total)


def aftersale_digest(session: Session, *, team_id: int, config: TeamConfig, period: Period,
                     today: date, lead_filter: Any, top: int = 5) -> AftersaleDigest:
    """The after-sales numbers of a digest, over the leads `lead_filter` admits."""
    digest = AftersaleDigest()
    as_of = min(period.last_day, today)
    first = period.first_day
    leads = select(Lead.id).where(Lead.team_id == team_id, lead_filter)
    on_leads = col(Contract.lead_id).in_(leads)
    contracts = select(Contract.id).where(Contract.team_id == team_id, on_leads)
    of_contracts = col(Instalment.contract_id).in_(contracts)
    due_by = col(Instalment.due_on) <= as_of

    def total(column: Any, *where: Any) -> int:
        return int(session.exec(select(func.coalesce(func.sum(column), 0)).where(*where)).one())

    digest.collected = total(Payment.amount, col(Payment.contract_id).in_(contracts),
                             col(Payment.paid_on) >= first, col(Payment.paid_on) <= as_of)
    digest.planned = total(Instalment.amount, of_contracts, col(Instalment.due_on) >= first,
                           col(Instalment.due_on) <= period.last_day)
    due_so_far = total(Instalment.amount, of_contracts, due_by)
    paid_of_due = total(PaymentAllocation.amount, col(PaymentAllocation.payment_id).in_(
        select(Payment.id).where(col(Payment.paid_on) <= as_of)),
        col(PaymentAllocation.instalment_id).in_(select(Instalment.id).where(of_contracts, due_by)))
    signed = total(Contract.amount, Contract.team_id == team_id, on_leads,
                   col(Contract.signed_on) >= first, col(Contract.signed_on) <= as_of)
    if digest.planned:
        digest.collected_pct = half_up(digest.collected * 100, digest.planned)
    digest.receivable = due_so_far - paid_of_due
    digest.collection_rate = half_up(paid_of_due * 100, due_so_far) if due_so_far else None
    days = (as_of - first).days + 1
    digest.dso = half_up(digest.receivable * days, signed) if signed else None

    members = {m.id: m.name for m in session.exec(select(Member).where(Member.team_id == team_id))}
    by_owner: dict[str, list[Receivable]] = {}
    late = open_receivables(session, team_id=team_id, lead_filter=lead_filter, due_before=today)
    for item in late:
        by_owner.setdefault(members.get(item.lead.owner_id, "-"), []).append(item)
    digest.overdue_by_owner = sorted(
        (OwnerAgeing(owner=name, total=sum(i.owed for i in items), buckets=ageing(items, today))
         for name, items in by_owner.items()), key=lambda row: (-row.total, row.owner))
    digest.overdue_total = sum(row.total for row in digest.overdue_by_owner)

    renewals = renewals_due(session, team_id=team_id, today=today, days=config.renewal_days,
                            lead_filter=lead_filter)
    digest.renewals_total = len(renewals)
    digest.renewals = [(contract, lead, members.get(lead.owner_id, "-"))
                       for contract, lead in renewals[:top]]
    digest.care, digest.care_total = care_overdue(session, team_id=team_id, config=config,
                                                  today=today, lead_filter=lead_filter, top=top)
    return digest
