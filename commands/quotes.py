"""`/quote …` (`/报价`, `/审批`): ask for a price to be approved, and decide it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from commands import cards
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Button, Reply
from models import leads, quotes, teamwork
from models.config import ROLE_RANK
from models.errors import DomainError
from models.permissions import rank
from models.tables import ApprovalStep, Lead, Member, Quote
from models.teamwork import Asked


def _amount_text(ctx: Ctx, quote: Quote) -> str:
    return ctx.quote_amount(quote)


def _card(ctx: Ctx, quote: Quote, lead: Lead, step: ApprovalStep | None = None,
          asked: Asked | None = None) -> Reply:
    """What an approver sees: the quote, the lead, and the two buttons."""
    requester = ctx.member_name(quote.requester_id)
    text = ctx.say(
        "🧾 Q{q} · {name} · {amount} · by {who} · L{n} stage {stage}",
        q=quote.number,
        name=lead.name,
        amount=_amount_text(ctx, quote),
        who=requester,
        n=lead.number,
        stage=ctx.stage_label(lead.stage),
    )
    if step is not None and step.needed > 1:
        text += ctx.say(" · needs {k} {role}s", k=step.needed, role=ctx.role_label(step.role))
    if asked is not None and asked.delegated:
        text += "\n" + ctx.say("You decide as {p}'s delegate.", p=asked.principal.name)
    voice = cards.voice_of(ctx.locale, ctx.tz, ctx.scope.now)
    progress = cards.quote_progress(voice, ctx.scope.session, quote)
    if progress:
        text += "\n" + progress
    if quote.note:
        text += "\n" + quote.note
    return Reply(text=text, buttons=ctx.quote_buttons(quote))


def ask_approvers(ctx: Ctx, quote: Quote, lead: Lead, step: ApprovalStep, *,
                  to_self: bool = False) -> list[Asked]:
    """Push the card to whoever decides the step now (a delegate stands in for the one away);
    `to_self`: the actor too, when they are among them."""
    asked = quotes.asked_for(ctx.scope.session, quote, step, ctx.scope.today)
    for one in asked:
        ctx.notify(one.member, kind="approval", key=f"approval:{quote.id}:{step.level}:{one.member.id}",
                   reply=lambda reader, one=one: _card(reader, quote, lead, step, one),
                   to_self=to_self, about=(cards.quote_subject(quote),))
    return asked


def route_unasked(ctx: Ctx) -> int:
    """Send the quotes that waited for nobody (nobody could decide them) to whoever now may: run
    when someone joins as an admin or is made manager or admin. Returns how many were sent."""
    routed = 0
    for quote, step in quotes.unasked_steps(ctx.scope.session, ctx.scope.team.id or 0):
        lead = ctx.scope.session.get(Lead, quote.lead_id)
        if lead is not None and ask_approvers(ctx, quote, lead, step, to_self=True):
            routed += 1
    return routed


def _nobody_may_decide(ctx: Ctx, step: ApprovalStep) -> str:
    """Why a new quote waits with nobody asked, and who could decide it: in a team with no admin
    (the deployment names admins who have not joined yet), only an admin joining, who may then
    also name a manager."""
    listed = [key for key in ctx.admins if key != "\0"]
    text = ctx.say(
        " ⏳ It waits: nobody in the team may approve it yet (it needs {role}, and you can't "
        "approve your own quote). It goes to the first person who may: an admin joining the "
        "team{who}, or a manager they name.",
        role=ctx.t(f"role.a.{step.role}"),
        who=ctx.say(" ({names})", names=", ".join(listed))
                    if listed else "",
    )
    return text


def tell_settled(ctx: Ctx, lead: Lead) -> str:
    """Tell those asked about what closing (or pooling) `lead` just withdrew — the approvers and the
    requester of each pending quote, whoever asked for the lead — and say it in the reply."""
    scope = ctx.scope
    session = scope.session
    lines = []
    told: dict[int | None, str] = {}
    refs = []
    for quote, people in quotes.settled_now(session, lead, scope.now, scope.today,
                                            actor_id=scope.actor.id):
        because = quotes.withdrawn_because(quote) or "lost"
        for member in people:
            told[member.id] = member.name
            ctx.notify(member, kind="quote-withdrawn",
                       key=f"quote-withdrawn:{quote.id}:{member.id}",
                       reply=lambda reader, quote=quote, because=because: Reply(
                           text="🧾 " + reader.t("push.quote_withdrawn", quote=quote.number,
                                                 lead=reader.lead_label(lead),
                                                 why=reader.t(f"withdrawn.{because}"))))
        refs.append(f"Q{quote.number}")
        cards.revise_after(ctx, cards.quote_subject(quote))
    if refs:
        lines.append(ctx.t("reply.withdrawn", refs=", ".join(refs),
                           names=", ".join(told.values()) or ctx.t("word.none")))
    for request in teamwork.closed_now(session, lead, scope.now):
        because = (request.decision_note or "lead:lost").removeprefix("lead:")
        asker = session.get(Member, request.requester_id)
        if asker is None:
            continue
        lines.append(ctx.t("reply.transfer_closed", who=asker.name))
        cards.revise_after(ctx, cards.transfer_subject(request))

        def closed(reader: Ctx, because: str = because) -> Reply:
            text = "🔁 " + reader.t("push.transfer_closed", lead=reader.lead_label(lead),
                                   why=reader.t(f"withdrawn.{because}"))
            buttons = []
            if because in ("released", "pool"):
                claim = reader.command("lead", "claim")
                buttons.append(Button(label=reader.say("Claim"),
                                      command=f"{claim} L{lead.number}"))
            return Reply(text=text, buttons=buttons)

        ctx.notify(asker, kind="transfer-decision",
                   key=f"transfer-decision:{request.id}:{asker.id}",
                   reply=closed)
    return "\n".join(lines)


def _names(ctx: Ctx, asked: list[Asked]) -> str:
    return ", ".join(ctx.say("{m} (for {p})", m=a.member.name, p=a.principal.name) if a.delegated
                     else a.member.name for a in asked) or ctx.t("word.none")


def signer(ctx: Ctx, member_id: int | None, principal_id: int | None) -> str:
    """Who decided, and as whose delegate when they stood in for someone."""
    name = ctx.member_name(member_id)
    if principal_id is None or principal_id == member_id:
        return name
    return ctx.say("{m} as {p}'s delegate", m=name, p=ctx.member_name(principal_id))


def create(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    amount = ctx.amount(args.words[1] if len(args.words) > 1 else None)
    discount = ctx.percent_bp(args.options["discount"]) if "discount" in args.options else 0
    note = ctx.bounded(" ".join(args.words[2:]).strip(), what="what.note") or None
    quote, steps = quotes.create_quote(ctx.scope, lead, amount=amount, discount_bp=discount, note=note)
    head = ctx.say(
        "🧾 Q{q} for L{n} {name}: {amount}.",
        q=quote.number,
        n=lead.number,
        name=lead.name,
        amount=_amount_text(ctx, quote),
    )
    if not steps and quote.levels_required:
        return Reply(text=head + ctx.say(
            " Approved on your own authority: nobody else in the team can approve it.",
        ))
    if not steps:
        limit = ctx.money(int(ctx.scope.config.approval.auto_below * 100))
        auto = ctx.say(" Approved automatically (below {limit}).", limit=limit)
        return Reply(text=head + auto)
    first = steps[0]
    asked = ask_approvers(ctx, quote, lead, first)
    if not asked:
        return Reply(text=head + _nobody_may_decide(ctx, first))
    # Say "one level up" only when the discount really raised the level (not when it was already the top).
    policy = ctx.scope.config.approval
    raised = quotes.levels_needed(policy, Decimal(quote.amount) / 100, Decimal(quote.discount_bp) / 100) > \
        quotes.levels_needed(policy, Decimal(quote.amount) / 100, Decimal(0))
    role = ctx.role_label(steps[-1].role)
    reason = ctx.say(
        "discount above {p}, one level up",
        p=f"{ctx.scope.config.approval.discount_raise_pct:g}%",
    ) if raised else ""
    why = ctx.say(" ({r})", r=reason) if reason else ""
    names = _names(ctx, asked)
    if len(steps) == 1 and first.needed > 1:
        text = ctx.say(
            "Needs {k} {role}s{why} — asked {names}.",
            k=first.needed,
            role=role,
            why=why,
            names=names,
        )
    elif len(steps) == 1:
        text = ctx.say(
            "Needs {role}{why} — asked {names}.",
            role=ctx.t(f"role.a.{steps[-1].role}"),
            why=why,
            names=names,
        )
    else:
        # An approver whose role covers every level signs them all at once (models.quotes.decide).
        later = steps[1:]
        signs_all = bool(asked) and all(
            quotes.needed_now(ctx.scope.session, quote, step) <= 1 for step in later) and all(
            rank(one.principal) >= ROLE_RANK[step.role] for one in asked for step in later)
        text = ctx.say(
            "Needs {k} approvals up to {role}{why}",
            k=len(steps),
            role=role,
            why=ctx.say(" ({r})", context="commands.quotes", r=reason) if reason else "",
        )
        if signs_all:
            text += (ctx.say(" — {names} can sign both at once; asked {names}.", names=names)
                     if len(steps) == 2 else
                     ctx.say(" — {names} can sign all {k} at once; asked {names}.", names=names,
                             k=len(steps)))
        else:
            text += ctx.say(" — asked {names} first.", names=names)
    return Reply(text=ctx.say("{head} {text}", head=head, text=text))


def approve(ctx: Ctx, args: Args) -> Reply:
    return _decide(ctx, args, approve=True)


def reject(ctx: Ctx, args: Args) -> Reply:
    return _decide(ctx, args, approve=False)


def _decide(ctx: Ctx, args: Args, *, approve: bool) -> Reply:
    quote = quotes.get_quote(ctx.scope, ctx.quote_number(args.words[0] if args.words else None))
    note = ctx.bounded(" ".join(args.words[1:]).strip(), what="what.reason") or None
    try:
        if not approve and not note and quote.status == "pending" and quote.requester_id != ctx.scope.actor.id:
            raise UsageError("usage.missing", what=ctx.t("what.reason"))
        decision = quotes.decide(ctx.scope, quote, approve=approve, note=note)
    except DomainError as error:
        if error.key == "quote.already_decided":
            raise _already(ctx, error.params["quote"]) from error
        if error.key == "quote.already_signed":
            raise _already_signed(ctx, error) from error
        raise
    lead = ctx.scope.session.get(Lead, quote.lead_id)
    assert lead is not None
    actor, principal = ctx.scope.actor, decision.principal or ctx.scope.actor
    requester = ctx.scope.session.get(Member, quote.requester_id)

    def outcome(reader: Ctx) -> str:
        who, at = signer(reader, actor.id, principal.id), reader.clock(reader.scope.now)
        if not approve:
            return reader.say(
                "❌ Q{q} rejected by {who} · {at}: {why}",
                q=quote.number,
                who=who,
                at=at,
                why=note,
            )
        text = reader.say("✅ Q{q} approved by {who} · {at}", q=quote.number, who=who, at=at)
        return text + (f" — {note}" if note else "")

    if not approve or decision.finished:
        text = outcome(ctx)
    else:
        assert decision.next_step is not None
        step = decision.next_step
        asked = ask_approvers(ctx, quote, lead, step)
        who, at = signer(ctx, actor.id, principal.id), ctx.clock(ctx.scope.now)
        if not decision.approved_levels:  # this level needs more signatures than it has
            text = ctx.say(
                "✅ Q{q}: approved by {who} · {at} — {k} of {n} {role}s. Waiting for {m} more — "
                "asked {names}.",
                q=quote.number,
                who=who,
                at=at,
                k=decision.signed,
                n=decision.needed,
                m=decision.needed - decision.signed,
                role=ctx.role_label(step.role),
                names=_names(ctx, asked),
            )
        elif step.needed > 1:  # the next level needs several signatures, perhaps already one of theirs
            signed = sum(1 for s in quotes.signatures_of(ctx.scope.session, step) if s.decision == "approve")
            needed = quotes.needed_now(ctx.scope.session, quote, step)
            text = ctx.say(
                "✅ Q{q}: approved by {who} · {at}. Now waiting for {m} more {role}(s) ({k} of "
                "{n}) — asked {names}.",
                q=quote.number,
                who=who,
                at=at,
                role=ctx.role_label(step.role),
                m=needed - signed,
                k=signed,
                n=needed,
                names=_names(ctx, asked),
            )
        else:
            text = ctx.say(
                "✅ Q{q}: approved by {who} · {at}. Now waiting for {role} — asked {names}.",
                q=quote.number,
                who=who,
                at=at,
                role=ctx.t(f"role.a.{step.role}"),
                names=_names(ctx, asked),
            )
    cards.revise_after(ctx, cards.quote_subject(quote))

    def about(reader: Ctx, said: str) -> Reply:
        return Reply(text=f"{said}\nL{lead.number} {lead.name} · {_amount_text(reader, quote)}")

    if requester and (decision.finished or not approve):
        ctx.notify(requester, kind="decision", key=f"decision:{quote.id}:{quote.version}:{requester.id}",
                   reply=lambda reader: about(reader, outcome(reader)))
    elif requester and decision.approved_levels and decision.next_step is not None:
        _tell_level_done(ctx, quote, requester, decision, about)
    if not approve:
        _tell_earlier_signers(ctx, quote, requester, lambda reader: about(reader, outcome(reader)))
    return Reply(text=text, settles=True)


def _tell_level_done(ctx: Ctx, quote: Quote, requester: Member, decision: quotes.Decision,
                     about: Callable[[Ctx, str], Reply]) -> None:
    """A level approved while a later one still decides: the requester hears where the quote is."""
    level = max(decision.approved_levels)
    done = next((s for s in quotes.steps_of(ctx.scope.session, quote) if s.level == level), None)
    step = decision.next_step
    assert step is not None
    actor, principal = ctx.scope.actor, decision.principal or ctx.scope.actor
    signatures = quotes.signatures_of(ctx.scope.session, step)
    signed = sum(1 for s in signatures if s.decision == "approve")
    more = quotes.needed_now(ctx.scope.session, quote, step) - signed

    def told(reader: Ctx) -> Reply:
        waiting = reader.t(f"role.a.{step.role}") if more <= 1 else reader.say(
            "{k} more {role}s", k=more, role=reader.role_label(step.role))
        return about(reader, reader.say(
            "✅ Q{q} approved by {who} ({role}) — now waiting for {next}",
            q=quote.number,
            who=signer(reader, actor.id, principal.id),
            role=reader.role_label(done.role if done else actor.role),
            next=waiting,
        ))

    key = f"level:{quote.id}:{step.level}:{requester.id}"
    ctx.notify(requester, kind="decision", key=key, reply=told)


def _tell_earlier_signers(ctx: Ctx, quote: Quote, requester: Member | None,
                          reply: Callable[[Ctx], Reply]) -> None:
    """A rejection reaches those who approved an earlier level: their signature did not carry it."""
    told = {ctx.scope.actor.id, requester.id if requester else None}
    for signature in quotes.quote_signatures(ctx.scope.session, quote):
        if signature.decision != "approve" or signature.member_id in told:
            continue
        told.add(signature.member_id)
        member = ctx.scope.session.get(Member, signature.member_id)
        if member is not None:
            key = f"decision:{quote.id}:{quote.version}:{member.id}"
            ctx.notify(member, kind="decision", key=key, reply=reply)


def _already(ctx: Ctx, quote: Quote) -> DomainError:
    because = quotes.withdrawn_because(quote)
    if because is not None:
        lead = ctx.scope.session.get(Lead, quote.lead_id)
        when = quote.decided_at.astimezone(ctx.tz).date() if quote.decided_at else None
        return DomainError("quote.withdrawn", quote=quote.number,
                           lead=f"L{lead.number}" if lead else "-",
                           why=ctx.t(f"withdrawn.{because}"), day=ctx.day(when))
    if quote.decided_by_id is None:
        return DomainError("quote.auto_approved", quote=quote.number)
    final = quotes.final_signature(ctx.scope.session, quote)
    return DomainError("quote.already_decided", quote=quote.number, status=ctx.t(f"status.{quote.status}"),
                       by=signer(ctx, quote.decided_by_id, final.principal_id if final else None),
                       at=ctx.clock(quote.decided_at))


def _already_signed(ctx: Ctx, error: DomainError) -> DomainError:
    signature = error.params["signature"]
    return DomainError("quote.already_signed", quote=error.params["quote"].number, at=ctx.clock(signature.at),
                       by=signer(ctx, signature.member_id, signature.principal_id),
                       missing=max(int(error.params["missing"]), 0))


def list_(ctx: Ctx, args: Args) -> Reply:
    pending = any(word.casefold() in ("pending", "待审批", "待办", "waiting") for word in args.words)
    for word in args.words:
        if word.casefold() not in ("pending", "待审批", "待办", "waiting", "all", "全部"):
            raise UsageError("usage.bad_choice", text=word, choices="pending, all")
    rows = quotes.list_quotes(ctx.scope, pending_only=pending)
    title = ctx.say("Quotes waiting") if pending else ctx.say("Quotes")
    if not rows:
        return Reply(text=ctx.say("{t}: none.", t=title))
    session = ctx.scope.session
    table = [[ctx.say("Quote"), ctx.say("Lead"), ctx.say("Amount"),
              ctx.say("By"), ctx.say("Status")]]
    buttons = []
    for quote in rows:
        lead = session.get(Lead, quote.lead_id)
        status = ctx.t(f"status.{quote.status}")
        step = quotes.current_step(session, quote)
        if step:
            status += ctx.say(" ({role})", role=ctx.role_label(step.role))
        table.append([f"Q{quote.number}", ctx.lead_label(lead) if lead else "-", _amount_text(ctx, quote),
                      ctx.member_name(quote.requester_id), status])
        may_decide = step is not None and quotes.authority_for(  # no button that can only say no
            session, ctx.scope.actor, quote, step, ctx.scope.today) is not None
        if pending and may_decide:  # one row per quote; each platform shows as many as it can
            buttons += [button.model_copy(update={"row": quote.number})
                        for button in ctx.quote_buttons(quote)]
    return Reply(text=f"**{title}** — {len(rows)}", table=table, buttons=buttons)


def show(ctx: Ctx, args: Args) -> Reply:
    """`/quote show Q7`: the quote and every decision on it — who, when, as whose delegate."""
    scope = ctx.scope
    quote = quotes.visible_quote(scope, ctx.quote_number(args.words[0] if args.words else None))
    session = scope.session
    lead = session.get(Lead, quote.lead_id)
    status = ctx.t(f"status.{quote.status}")
    text = ctx.say(
        "🧾 **Q{q}** · {lead} · {amount} · by {who} · {status}",
        q=quote.number,
        lead=ctx.lead_label(lead) if lead else "-",
        amount=_amount_text(ctx, quote),
        who=ctx.member_name(quote.requester_id),
        status=status,
    )
    if quote.note:
        text += "\n" + quote.note
    if quotes.withdrawn_because(quote) is not None:
        withdrawn = _already(ctx, quote)
        text += "\n" + ctx.t(withdrawn.key, **withdrawn.params)
    signatures = quotes.quote_signatures(session, quote)
    fields = []
    for step in quotes.steps_of(session, quote):
        label = ctx.say("Level {n} · {role}", n=step.level, role=ctx.role_label(step.role))
        if step.needed > 1:
            label += ctx.say(" ×{k}", k=step.needed)
        parts = []
        for signature in (s for s in signatures if s.step_id == step.id):
            mark = "✅" if signature.decision == "approve" else "❌"
            line = f"{mark} {signer(ctx, signature.member_id, signature.principal_id)} {ctx.clock(signature.at)}"
            parts.append(line + (f" “{signature.note}”" if signature.note else ""))
        if step.status == "approved" and not parts and step.decided_by_id:  # signed without a click
            parts.append(ctx.say("✅ {who} {at} ({note})", who=ctx.member_name(step.decided_by_id),
                                 at=ctx.clock(step.decided_at), note=step.note or "-"))
        if step.status == "waiting":
            asked = quotes.asked_for(session, quote, step, scope.today)
            parts.append(ctx.say("waiting — asked {names}", names=_names(ctx, asked)))
        elif step.status in ("queued", "skipped"):
            parts.append(ctx.say("queued") if step.status == "queued" else ctx.say(
                "skipped",
            ))
        elif step.status == "withdrawn":
            parts.append(ctx.t("status.withdrawn"))
        fields.append((label, " · ".join(parts) or "-"))
    if not fields:
        fields.append((ctx.say("Approval"), ctx.say("automatic (below the limit)")))
    buttons = []
    step = quotes.current_step(session, quote)
    if step is not None and quotes.authority_for(session, scope.actor, quote, step, scope.today):
        buttons = ctx.quote_buttons(quote)
    return Reply(text=text, fields=fields, buttons=buttons)
