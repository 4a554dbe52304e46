"""Keeping every card true: each message pushed about a decision (an approval card, a delegate's
copy, a reminder, an escalation, a transfer request) is remembered with what it is about, and once
that changes — someone signs, decides, withdraws, or the lead closes — every such message is edited
through the outbox to say so: the outcome and who decided it, and no buttons that can only say no.

A message is always rewritten from the text it was sent with, plus one line per decision it is
about, so the edits of a message that lists several quotes never undo each other, and the same
state always makes the same edit (which the outbox then queues once)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import Session, col

import wording
from commands.context import Ctx
from commands.types import Button, Reply
from models import outbox, quotes, teamwork
from models.tables import Lead, Member, Outbox, OutboxSubject, Quote, Team


@dataclass(frozen=True)
class Voice:
    """How one reader is spoken to: their language, and the clock they read times on."""

    locale: str
    tz: ZoneInfo
    today: date

    def say(self, msgid: str, **params: Any) -> str:
        return wording.say(self.locale, msgid, **params)

    def t(self, key: str, **params: Any) -> str:
        return wording.message(self.locale, key, **params)

    def clock(self, moment: datetime | None) -> str:
        return wording.clock(moment, self.tz, self.today) if moment else "-"


PROGRESS = "☑"  # starts the line that says who has signed so far
VoiceFor = Callable[[Member | None], Voice]  # None: a channel, read in the team's language


def quote_subject(quote: Quote) -> str:
    return f"quote:{quote.id}"


def transfer_subject(request: teamwork.TransferRequest) -> str:
    return f"transfer:{request.id}"


def _name(session: Session, member_id: int | None) -> str:
    member = session.get(Member, member_id) if member_id is not None else None
    return member.name if member else "?"


def _signer(voice: Voice, session: Session, member_id: int | None, principal_id: int | None) -> str:
    name = _name(session, member_id)
    if principal_id is None or principal_id == member_id:
        return name
    return voice.say("{m} as {p}'s delegate", m=name, p=_name(session, principal_id))


# --- what a quote's cards say ---------------------------------------------------------------------


def quote_progress(voice: Voice, session: Session, quote: Quote) -> str | None:
    """Who has signed a pending quote so far, level by level ("☑ Q7 · 1 of 2 managers: carol ✔");
    None while nobody has."""
    if quote.status != "pending":
        return None
    signatures = quotes.quote_signatures(session, quote)
    parts = []
    for step in quotes.steps_of(session, quote):
        signed = [s for s in signatures if s.step_id == step.id and s.decision == "approve"]
        role = voice.t(f"role.{step.role}")
        names = ", ".join(
            f"{_signer(voice, session, s.member_id, s.principal_id)} ✔" for s in signed
        )
        unattended = step.status == "approved" and not signed and step.decided_by_id
        if unattended:  # signed on the requester's own authority, without a click
            names = f"{_name(session, step.decided_by_id)} ✔"
        if step.level == quote.current_level and quotes.needed_now(session, quote, step) > 1:
            needed = quotes.needed_now(session, quote, step)
            label = voice.say("{k} of {n} {role}s", k=len(signed), n=needed, role=role)
            if signed:
                parts.append(voice.say("{label}: {names}", label=label, names=names))
            elif parts:  # earlier levels signed, nobody on this one yet
                parts.append(label)
        elif step.status == "approved" and names:
            parts.append(voice.say("{role}: {names}", role=role, names=names))
        elif step.level == quote.current_level and parts:
            parts.append(voice.say("now waiting for {role}", role=voice.t(f"role.a.{step.role}")))
    if not parts:
        return None
    return f"{PROGRESS} Q{quote.number} · " + " · ".join(parts)


def quote_outcome(voice: Voice, session: Session, quote: Quote) -> str | None:
    """The line that settles a decided quote's cards; None while it is pending."""
    if quote.status == "pending":
        return None
    because = quotes.withdrawn_because(quote)
    if because is not None or quote.status == "withdrawn":
        lead = session.get(Lead, quote.lead_id)
        return "🧾 " + voice.t(
            "push.quote_withdrawn",
            quote=quote.number,
            lead=f"L{lead.number} {lead.name}" if lead else "-",
            why=voice.t(f"withdrawn.{because or 'lost'}"),
        )
    final = quotes.final_signature(session, quote)
    who = _signer(voice, session, quote.decided_by_id, final.principal_id if final else None)
    at = voice.clock(quote.decided_at)
    if quote.status == "rejected":
        return voice.say(
            "❌ Q{q} rejected by {who} · {at}: {why}",
            q=quote.number,
            who=who,
            at=at,
            why=quote.decision_note or "-",
        )
    return voice.say("✅ Q{q} approved by {who} · {at}", q=quote.number, who=who, at=at)


def _may_sign(session: Session, quote: Quote, member: Member | None, day: date) -> bool:
    """Whether `member` may still sign the quote's waiting level (and has not yet)."""
    step = quotes.current_step(session, quote)
    if member is None or step is None:
        return False
    principal = quotes.authority_for(session, member, quote, step, day)
    if principal is None:
        return False
    return not any(
        s.principal_id == principal.id or s.member_id == member.id
        for s in quotes.signatures_of(session, step)
    )


# --- what a transfer request's cards say ---------------------------------------------------------


def transfer_outcome(
    voice: Voice, session: Session, request: teamwork.TransferRequest
) -> str | None:
    if request.status == "pending":
        return None
    lead = session.get(Lead, request.lead_id)
    label = f"L{lead.number} {lead.name}" if lead else "-"
    who = _signer(voice, session, request.decided_by_id, request.on_behalf_of_id)
    at = voice.clock(request.decided_at)
    if request.status == "approved":
        return voice.say(
            "✅ {lead} now belongs to {req} — approved by {who} · {at}",
            lead=label,
            req=_name(session, request.requester_id),
            who=who,
            at=at,
        )
    if request.status == "rejected":
        return voice.say(
            "❌ {lead} stays with {owner} — rejected by {who} · {at}",
            lead=label,
            owner=_name(session, request.owner_id),
            who=who,
            at=at,
        )
    if request.status == "cancelled":
        return voice.say(
            "↩️ {who} withdrew the request for {lead} · {at}",
            who=_name(session, request.requester_id),
            lead=label,
            at=at,
        )
    because = (request.decision_note or "").removeprefix("lead:")
    if (request.decision_note or "").startswith("lead:"):
        return voice.say(
            "🔁 The request for {lead} is closed: it was {why}.",
            lead=label,
            why=voice.t(f"withdrawn.{because}"),
        )
    return voice.say("🔁 The request for {lead} is closed: the lead changed hands.", lead=label)


# --- rewriting the messages -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Said:
    line: str | None  # what the message adds about this decision now
    keeps_buttons: bool  # whether its buttons for this decision still work for its reader
    token: str  # how its buttons name it: Q7, L3
    closed: bool  # decided for good


def _said(
    voice: Voice, session: Session, subject: str, member: Member | None, day: date
) -> _Said | None:
    kind, _, ident = subject.partition(":")
    if kind == "quote":
        quote = session.get(Quote, int(ident))
        if quote is None:
            return None
        outcome = quote_outcome(voice, session, quote)
        return _Said(
            line=outcome or quote_progress(voice, session, quote),
            keeps_buttons=outcome is None and _may_sign(session, quote, member, day),
            token=f"Q{quote.number}",
            closed=outcome is not None,
        )
    if kind == "transfer":
        request = session.get(teamwork.TransferRequest, int(ident))
        lead = session.get(Lead, request.lead_id) if request is not None else None
        if request is None or lead is None:
            return None
        outcome = transfer_outcome(voice, session, request)
        may = (
            member is not None
            and teamwork.transfer_authority(session, member, request, day) is not None
        )
        return _Said(
            line=outcome,
            keeps_buttons=outcome is None and may,
            token=f"L{lead.number}",
            closed=outcome is not None,
        )
    return None


def _acts_on(button: Button, said: _Said) -> bool:
    """Whether a button decides what `said` is about (its command names it)."""
    words = button.command.split()
    if said.token.startswith("L"):
        return said.token in words and any(word in ("transfer", "转移") for word in words)
    return said.token in words


def _subjects_of(session: Session, message: Outbox) -> list[str]:
    return list(
        session.execute(
            select(OutboxSubject.subject)
            .where(col(OutboxSubject.outbox_id) == message.id)
            .order_by(col(OutboxSubject.id))
        ).scalars()
    )


def revise(
    session: Session, team: Team, subject: str, *, voice_for: VoiceFor, day: date, now: datetime
) -> int:
    """Edit every message about `subject` to tell where it stands now. Returns how many were
    changed (an edit queued, or a message not sent yet rewritten or dropped)."""
    changed = 0
    for message, count in outbox.messages_about(session, team_id=team.id or 0, subject=subject):
        member = None
        if message.target_kind == "member":
            member = (
                session.execute(
                    select(Member).where(
                        col(Member.team_id) == team.id, col(Member.user_key) == message.target
                    )
                )
                .scalars()
                .first()
            )
        voice = voice_for(member)
        original = Reply.model_validate(message.payload)
        kept = original.text.split("\n")
        lines, buttons, closed = [], list(original.buttons), True
        for about in _subjects_of(session, message):
            said = _said(voice, session, about, member, day)
            if said is None:
                continue
            closed = closed and said.closed
            if not said.line or said.line not in kept:  # a card sent with it says it already
                # Progress the card was sent with is news no more.
                kept = [line for line in kept if not line.startswith(f"{PROGRESS} {said.token} ")]
                if said.line:
                    lines.append(said.line)
            if not said.keeps_buttons:
                buttons = [button for button in buttons if not _acts_on(button, said)]
        if not lines and buttons == original.buttons:
            continue
        # The news first: WeCom shows a card's first line in place of its buttons.
        revised = original.model_copy(
            update={"text": "\n".join([*lines, *kept]), "buttons": buttons}
        )
        payload = revised.model_dump(mode="json")
        state = hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
        done = outbox.revise(
            session,
            message,
            payload=payload,
            state=state,
            now=now,
            only_subject=count == 1,
            closed=closed and not buttons,
        )
        changed += done != "known"
    return changed


def voice_of(locale: str, tz: ZoneInfo, now: datetime) -> Voice:
    return Voice(locale=locale, tz=tz, today=now.astimezone(tz).date())


def voices(ctx: Ctx) -> VoiceFor:
    """Each reader's voice as a command words a push to them (`Ctx.for_reader`); a channel's is the
    team's."""

    def voice(member: Member | None) -> Voice:
        if member is None:
            return voice_of(ctx.team_locale, ctx.scope.config.tz, ctx.scope.now)
        reader = ctx.for_reader(member)
        return voice_of(reader.locale, reader.tz, ctx.scope.now)

    return voice


def revise_after(ctx: Ctx, subject: str) -> int:
    """After a command changed `subject`: every message about it tells where it stands now."""
    scope = ctx.scope
    return revise(
        scope.session, scope.team, subject, voice_for=voices(ctx), day=scope.today, now=scope.now
    )
