"""Personal data of customers (PIPL / GDPR): forgetting one customer, and everything held about one
person (a subject access request).

Forgetting a lead erases the customer's personal fields — contact, phone, e-mail and their
normalised copies — and, wherever the bot keeps text, what identifies them: the lead's own free text
(its follow-up and care notes, quote and payment notes, transfer reasons, lost reason, audit before
and after values) loses every phone number and e-mail address and the contact's name; text kept for
the whole team (the command log, pushes in the outbox, held notices, other audit events) loses this
person's phone numbers, e-mail addresses and name. What reports count stays: the lead's number,
name and company, stage, status, owner, amounts and dates. The erasure is audited (who, when, which
fields), without the values. Once it has committed, the old values are purged from the database's
files as well (`db.purge_erased`: SQLite's write-ahead log emptied, Postgres's dead rows vacuumed).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import false, func, or_, update
from sqlmodel import Session, col, select

import models.tables  # noqa: F401  (every table first: models.audit → models.scope read them)
from models import audit, db
from models.aftersale import Contract, Payment
from models.errors import DomainError
from models.normalize import normalize_email, normalize_phone
from models.permissions import require_role
from models.quotes import settle_lead
from models.scope import Scope
from models.tables import (
    ApprovalStep,
    AuditEvent,
    CommandLog,
    FollowUp,
    InboundCommand,
    Lead,
    Outbox,
    Quote,
    Team,
)
from models.teamwork import ApprovalSignature, HeldNotice, TransferRequest

log = logging.getLogger("dealbot.privacy")

PERSONAL = ("contact", "phone", "email", "norm_phone", "norm_email")
ERASED = "[erased]"
PHONE_MARK, EMAIL_MARK, NAME_MARK = "[phone]", "[email]", "[contact]"
BATCH = 500
_BINARY_KEYS = frozenset({"png", "data"})  # images and files inside pushes: bytes, not text

_EMAIL = re.compile(r"[\w.%+\-]+(?:@|＠)[\w\-]+(?:[.．][\w\-]+)+")
# Seven or more digits, possibly split by spaces, dashes, dots or brackets; letters or digits right
# around the run make it an id instead (an order number, a Telegram group id inside a word).
_PHONE = re.compile(
    r"(?<![0-9A-Za-z])\+?[0-9０-９](?:[\s\-.()（）]{0,2}[0-9０-９]){6,}(?![0-9A-Za-z])"
)
_CJK = re.compile(r"[\u3400-\u9fff]")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}")
_SEPARATED = re.compile(r"[\s\-.()（）]")


def looks_like_phone(found: str) -> bool:
    """A run of digits that is a phone number rather than a date or an amount: ten digits or more,
    or written the way phone numbers are (a leading + or 0, brackets, groups)."""
    if _DATE.fullmatch(found.strip()):
        return False
    digits = re.sub(r"\D", "", unicodedata.normalize("NFKC", found))
    return len(digits) >= 10 or found.startswith(("+", "0", "０")) or bool(_SEPARATED.search(found))


@dataclass(frozen=True)
class Person:
    """What identifies one customer in free text."""

    phones: frozenset[str] = frozenset()  # normalised
    emails: frozenset[str] = frozenset()  # normalised
    names: frozenset[str] = frozenset()  # the contact's names as typed, two characters or more

    def __bool__(self) -> bool:
        return bool(self.phones or self.emails or self.names)


def redact(text: str, person: Person | None = None) -> str:
    """`text` without `person`'s phones, e-mails and names; with no person, without any phone
    number or e-mail address at all."""

    def email(match: re.Match[str]) -> str:
        found = match.group(0)
        return EMAIL_MARK if person is None or normalize_email(found) in person.emails else found

    def phone(match: re.Match[str]) -> str:
        found = match.group(0)
        if person is None:
            return PHONE_MARK if looks_like_phone(found) else found
        return PHONE_MARK if normalize_phone(found) in person.phones else found

    text = _PHONE.sub(phone, _EMAIL.sub(email, text))
    for name in sorted(person.names if person else (), key=len, reverse=True):
        # A Chinese name sits inside other characters with no spaces around it.
        pattern = re.escape(name) if _CJK.search(name) else rf"(?<!\w){re.escape(name)}(?!\w)"
        text = re.sub(pattern, NAME_MARK, text, flags=re.IGNORECASE)
    return text


def redact_value(value: Any, person: Person | None) -> Any:
    """Every string inside a JSON value redacted; bytes fields (images, files) left alone."""
    if isinstance(value, str):
        return redact(value, person)
    if isinstance(value, dict):
        return {
            key: item if key in _BINARY_KEYS else redact_value(item, person)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item, person) for item in value]
    return value


def mentions(text: str, person: Person) -> bool:
    return redact(text, person) != text


# --- forgetting ---------------------------------------------------------------------------------


@dataclass
class Forgotten:
    """What `forget` changed: the lead's erased fields and how many other records it redacted."""

    lead: int
    fields: list[str]
    redacted: dict[str, int] = field(default_factory=dict)
    twins: list[int] = field(default_factory=list)  # other leads with the same phone or e-mail

    @property
    def total(self) -> int:
        return sum(self.redacted.values())


def person_of(session: Session, lead: Lead) -> Person:
    """The customer behind a lead: its contact facts now and every value they had before."""
    phones, emails, names = (
        {lead.phone, lead.norm_phone},
        {lead.email, lead.norm_email},
        {lead.contact},
    )
    for event in session.exec(
        select(AuditEvent).where(
            AuditEvent.team_id == lead.team_id,
            AuditEvent.entity == "lead",
            AuditEvent.entity_id == lead.id,
        )
    ):
        for values in (event.before or {}, event.after or {}):
            phones |= {values.get("phone"), values.get("norm_phone")}
            emails |= {values.get("email"), values.get("norm_email")}
            names.add(values.get("contact"))
    return Person(
        phones=frozenset(
            p for p in (normalize_phone(str(v)) for v in phones if v) if p and len(p) >= 5
        ),
        emails=frozenset(e for e in (normalize_email(str(v)) for v in emails if v) if e),
        names=frozenset(str(n).strip() for n in names if n and len(str(n).strip()) >= 2),
    )


def forget(scope: Scope, lead: Lead) -> Forgotten:
    """Erase a customer's personal data everywhere the bot keeps it (admins only)."""
    require_role(scope.actor, "admin", "forget")
    session, team_id = scope.session, scope.team.id or 0
    person = person_of(session, lead)
    erased = [name for name in ("contact", "phone", "email") if getattr(lead, name)]
    redacted: dict[str, int] = {}

    def count(kind: str, changed: int) -> None:
        if changed:
            redacted[kind] = redacted.get(kind, 0) + changed

    quote_ids = [q.id for q in session.exec(select(Quote).where(Quote.lead_id == lead.id))]
    contract_ids = [c.id for c in session.exec(select(Contract).where(Contract.lead_id == lead.id))]
    own = _owned(session, lead, quote_ids, contract_ids)
    lead_texts = ("name", "company", "source", "tag", "lost_reason")
    # A phone or e-mail written anywhere in the lead's own records is taken to be the customer's,
    # so it goes from the team's records (the command that typed it) as well.
    person = widened(
        person,
        [getattr(lead, key) for key in lead_texts]
        + [getattr(row, column) for _, rows, columns in own for row in rows for column in columns],
    )

    # The lead: personal fields gone, its free text without any phone or e-mail (a changed version
    # makes a concurrent edit of the old values fail instead of writing them back).
    texts = {
        key: _scrub(value, person)
        for key in lead_texts
        if isinstance(value := getattr(lead, key), str) and _scrub(value, person) != value
    }
    result = session.execute(
        update(Lead)
        .where(col(Lead.id) == lead.id, Lead.version == lead.version)
        .values(
            contact=None,
            phone=None,
            email=None,
            norm_phone=None,
            norm_email=None,
            version=Lead.version + 1,
            **texts,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise DomainError("lead.changed", lead=lead.number, owner="-")
    session.refresh(lead)
    # A customer who asked to be forgotten is not quoted or handed around any more.
    settle_lead(session, lead, because="forgotten", now=scope.now, actor_id=scope.actor.id)
    for kind, rows, columns in own:
        for row in rows:
            count(kind, _redact_columns(row, columns, person))

    # Audit events: this lead's (and its quotes' and contracts') values go entirely; elsewhere only
    # this person's.
    mine = {
        ("lead", lead.id),
        *(("quote", q) for q in quote_ids),
        *(("contract", c) for c in contract_ids),
    }
    for event in _batches(session, select(AuditEvent).where(AuditEvent.team_id == team_id)):
        if (event.entity, event.entity_id) in mine:
            before = _erase_audit(event.before, person)
            after = _erase_audit(event.after, person)
        else:
            before, after = redact_value(event.before, person), redact_value(event.after, person)
        if before != event.before or after != event.after:
            event.before, event.after = before, after
            count("audit events", 1)

    # What the team's other records kept of this person.
    for row in _batches(session, select(Outbox).where(Outbox.team_id == team_id)):
        payload = redact_value(row.payload, person)
        if payload != row.payload:
            row.payload = payload
            count("pushes", 1)
    for notice in _batches(session, select(HeldNotice).where(HeldNotice.team_id == team_id)):
        payload = redact_value(notice.payload, person)
        if payload != notice.payload:
            notice.payload = payload
            count("held notices", 1)
    for kept in _answers_waiting(session, scope.team):
        invocation = redact_value(kept.invocation, person)
        reply = redact_value(kept.reply, person)
        if invocation != kept.invocation or reply != kept.reply:
            kept.invocation, kept.reply = invocation, reply
            count("answers waiting", 1)
    for line in _batches(session, _command_lines(scope.team, person)):
        text = redact(line.text, person)
        if text != line.text:
            line.text = text
            count("command log lines", 1)
    session.flush()

    twins = [
        number
        for (number,) in session.execute(
            select(Lead.number)
            .where(
                Lead.team_id == team_id,
                col(Lead.id) != lead.id,
                or_(
                    col(Lead.norm_phone).in_(person.phones or {""}),
                    col(Lead.norm_email).in_(person.emails or {""}),
                ),
            )
            .order_by(col(Lead.number))
        )
    ]
    audit.record(
        scope,
        entity="lead",
        entity_id=lead.id or 0,
        action="forget",
        after={"erased": erased, "redacted": redacted},
    )
    bind = session.get_bind()
    db.after_commit(session, lambda: _purge(getattr(bind, "engine", bind)))
    return Forgotten(lead=lead.number, fields=erased, redacted=redacted, twins=twins)


# Every table `forget` may change: the old values live on in their files until purged.
TOUCHED = (
    Lead, FollowUp, Quote, ApprovalStep, ApprovalSignature, Payment, TransferRequest, AuditEvent,
    Outbox, HeldNotice, CommandLog, InboundCommand,
)


def touched_tables() -> list[str]:
    return [str(table.__tablename__) for table in TOUCHED]


def _purge(engine: Any) -> None:
    """The erased values out of the database's files, once the erasure has committed. A failure
    leaves them to the database's own clean-up (the next checkpoint, autovacuum) and is logged; it
    does not undo or hide the erasure that committed."""
    try:
        db.purge_erased(engine, touched_tables())
    except Exception:
        log.exception("could not purge erased data from the database files")


def _owned(
    session: Session, lead: Lead, quote_ids: list[int | None], contract_ids: list[int | None]
) -> list[tuple[str, list[Any], tuple[str, ...]]]:
    """The lead's own records with free text, and which of their columns hold it."""

    def rows(statement: Any) -> list[Any]:
        return list(session.exec(statement))

    return [
        ("follow-ups", rows(select(FollowUp).where(FollowUp.lead_id == lead.id)), ("note",)),
        (
            "quotes",
            rows(select(Quote).where(col(Quote.id).in_(quote_ids))),
            ("note", "decision_note"),
        ),
        (
            "approval steps",
            rows(select(ApprovalStep).where(col(ApprovalStep.quote_id).in_(quote_ids))),
            ("note",),
        ),
        (
            "signatures",
            rows(select(ApprovalSignature).where(col(ApprovalSignature.quote_id).in_(quote_ids))),
            ("note",),
        ),
        (
            "payments",
            rows(select(Payment).where(col(Payment.contract_id).in_(contract_ids))),
            ("note",),
        ),
        (
            "transfers",
            rows(select(TransferRequest).where(TransferRequest.lead_id == lead.id)),
            ("reason", "decision_note"),
        ),
    ]


def _redact_columns(row: Any, columns: tuple[str, ...], person: Person) -> int:
    """Scrub the row's text columns; 1 when anything changed."""
    changed = 0
    for column in columns:
        value = getattr(row, column, None)
        if isinstance(value, str) and (new := _scrub(value, person)) != value:
            setattr(row, column, new)
            changed = 1
    return changed


def _scrub(text: str, person: Person) -> str:
    """The lead's own text: without any phone or e-mail at all, and without the person's name."""
    return redact(redact(text), Person(names=person.names))


def widened(person: Person, texts: list[Any]) -> Person:
    """`person` with every phone number and e-mail address written in `texts` added."""
    phones, emails = set(person.phones), set(person.emails)
    for text in texts:
        if not isinstance(text, str):
            continue
        emails |= {e for m in _EMAIL.finditer(text) if (e := normalize_email(m.group(0)))}
        phones |= {
            p
            for m in _PHONE.finditer(text)
            if looks_like_phone(m.group(0)) and (p := normalize_phone(m.group(0)))
        }
    return Person(phones=frozenset(phones), emails=frozenset(emails), names=person.names)


def _erase_audit(values: dict[str, Any] | None, person: Person) -> dict[str, Any] | None:
    """One of the lead's own audit values: personal fields erased, the rest scrubbed."""
    if values is None:
        return None
    kept = {
        key: (ERASED if key in PERSONAL and value is not None else value)
        for key, value in values.items()
    }
    return redact_value(redact_value(kept, None), Person(names=person.names))


def _command_lines(team: Team, person: Person) -> Any:
    """Command log lines of the team that may name the person (narrowed in SQL, decided here)."""
    text = func.lower(CommandLog.text)
    hints = [text.contains(phone[-4:]) for phone in person.phones]
    hints += [text.contains(email.split("@")[0]) for email in person.emails]
    hints += [text.contains(name.lower()) for name in person.names]
    return select(CommandLog).where(
        CommandLog.platform == team.platform,
        CommandLog.team_key == team.key,
        or_(*hints) if hints else false(),
    )


def _answers_waiting(session: Session, team: Team) -> list[InboundCommand]:
    """The team's commands that ran and whose answer is not out yet (models.inbox). One that has
    not run yet runs after the erasure, as a command typed after it would."""
    rows = session.execute(
        select(InboundCommand).where(
            InboundCommand.platform == team.platform, InboundCommand.status == "ran"
        )
    ).scalars()
    return [
        row
        for row in rows
        if team.key in (row.invocation.get("team_key"), (row.reply or {}).get("team_key"))
    ]


def _batches(session: Session, statement: Any) -> Iterator[Any]:
    """Rows of a query in batches by id, so a long history is never held in memory at once."""
    entity = statement.column_descriptions[0]["entity"]
    last = 0
    while True:
        rows = list(
            session.exec(
                statement.where(col(entity.id) > last).order_by(col(entity.id)).limit(BATCH)
            )
        )
        yield from rows
        if len(rows) < BATCH:
            return
        last = rows[-1].id


# --- subject access ----------------------------------------------------------------------------


def subject_of(value: str) -> tuple[str, Person]:
    """An e-mail address or a phone number, as what to look for."""
    text = unicodedata.normalize("NFKC", value).strip()
    if "@" in text:
        email = normalize_email(text)
        if not email:
            raise ValueError(f"{value!r} is not an e-mail address")
        return "email", Person(emails=frozenset({email}))
    phone = normalize_phone(text)
    if not phone or len(phone) < 5:
        raise ValueError(f"{value!r} is neither a phone number nor an e-mail address")
    return "phone", Person(phones=frozenset({phone}))


def subject_access(
    session: Session, value: str, *, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Everything held about the person with this phone number or e-mail address, in every team:
    their leads with all they hold, and every other record that mentions them."""
    kind, person = subject_of(value)
    teams = {team.id: team for team in session.exec(select(Team))}
    matched = list(
        session.exec(
            select(Lead)
            .where(
                col(Lead.norm_phone).in_(person.phones)
                if kind == "phone"
                else col(Lead.norm_email).in_(person.emails)
            )
            .order_by(col(Lead.team_id), col(Lead.number))
        )
    )
    # A lead whose phone or e-mail was changed away still held this person's before.
    seen = {lead.id for lead in matched}
    for event in _scan(session, select(AuditEvent).where(AuditEvent.entity == "lead")):
        if event.entity_id not in seen and (
            mentions(_json_text(event.before), person) or mentions(_json_text(event.after), person)
        ):
            lead = session.get(Lead, event.entity_id)
            if lead is not None:
                matched.append(lead)
                seen.add(lead.id)
    leads = [_lead_record(session, lead, teams) for lead in matched]
    if progress:
        progress(f"{len(leads)} leads")

    elsewhere: dict[str, list[dict[str, Any]]] = {}
    for name, statement, render in (
        (
            "follow_ups",
            select(FollowUp),
            lambda r: {"lead_id": r.lead_id, "at": r.created_at, "note": r.note},
        ),
        ("audit_events", select(AuditEvent), _audit_record),
        (
            "command_log",
            select(CommandLog),
            lambda r: {
                "platform": r.platform,
                "team": r.team_key,
                "user": r.user_key,
                "at": r.received_at,
                "text": r.text,
            },
        ),
        (
            "pushes",
            select(Outbox),
            lambda r: {
                "team_id": r.team_id,
                "to": r.target_label or r.target,
                "kind": r.kind,
                "status": r.status,
                "created_at": r.created_at,
                "payload": r.payload,
            },
        ),
        (
            "held_notices",
            select(HeldNotice),
            lambda r: {"team_id": r.team_id, "kind": r.kind, "payload": r.payload},
        ),
    ):
        found = [
            render(row)
            for row in _scan(session, statement)
            if mentions(_row_text(row), person)
            and not (name == "follow_ups" and row.lead_id in seen)
            and not (name == "audit_events" and row.entity == "lead" and row.entity_id in seen)
        ]
        if found:
            elsewhere[name] = found
        if progress:
            progress(f"{name}: {len(found)}")
    return _plain({"subject": value, "kind": kind, "leads": leads, "mentioned_in": elsewhere})


def _lead_record(session: Session, lead: Lead, teams: dict[Any, Team]) -> dict[str, Any]:
    team = teams.get(lead.team_id)
    quotes = list(
        session.exec(select(Quote).where(Quote.lead_id == lead.id).order_by(col(Quote.number)))
    )
    contracts = list(session.exec(select(Contract).where(Contract.lead_id == lead.id)))
    return {
        "team": {"platform": team.platform, "key": team.key, "name": team.name} if team else None,
        "lead": lead.model_dump(),
        "follow_ups": [
            f.model_dump()
            for f in session.exec(
                select(FollowUp).where(FollowUp.lead_id == lead.id).order_by(col(FollowUp.id))
            )
        ],
        "quotes": [q.model_dump() for q in quotes],
        "contracts": [c.model_dump() for c in contracts],
        "payments": [
            p.model_dump()
            for p in session.exec(
                select(Payment).where(col(Payment.contract_id).in_([c.id for c in contracts]))
            )
        ],
        "transfers": [
            t.model_dump()
            for t in session.exec(select(TransferRequest).where(TransferRequest.lead_id == lead.id))
        ],
        "history": [
            _audit_record(e)
            for e in session.exec(
                select(AuditEvent)
                .where(
                    AuditEvent.team_id == lead.team_id,
                    AuditEvent.entity == "lead",
                    AuditEvent.entity_id == lead.id,
                )
                .order_by(col(AuditEvent.id))
            )
        ],
    }


def _audit_record(event: AuditEvent) -> dict[str, Any]:
    return {
        "team_id": event.team_id,
        "at": event.at,
        "entity": event.entity,
        "entity_id": event.entity_id,
        "action": event.action,
        "actor_id": event.actor_id,
        "before": event.before,
        "after": event.after,
    }


def _scan(session: Session, statement: Any) -> Iterator[Any]:
    yield from _batches(session, statement)


def _row_text(row: Any) -> str:
    for column in ("text", "note"):
        if isinstance(getattr(row, column, None), str):
            return str(getattr(row, column))
    if isinstance(row, AuditEvent):
        return _json_text(row.before) + "\n" + _json_text(row.after)
    return _json_text(getattr(row, "payload", None))


def _json_text(value: Any) -> str:
    """Every string inside a JSON value, one per line (bytes fields left out)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_json_text(v) for k, v in value.items() if k not in _BINARY_KEYS)
    if isinstance(value, list | tuple):
        return "\n".join(_json_text(v) for v in value)
    return ""


def _plain(value: Any) -> Any:
    """JSON-ready: dates as ISO text, amounts as strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
