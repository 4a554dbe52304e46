"""`/lead …` (`/线索 …`): register, list, show, move, own and close leads."""

from __future__ import annotations

import re
from datetime import timedelta

from commands import aftersale, history, names, words
from commands.args import Args
from commands.context import MAX_FIELD, Ctx, UsageError
from commands.quotes import tell_settled
from commands.types import Button, Reply
from models import audit, leads
from models.errors import DomainError
from models.normalize import looks_like_email, looks_like_phone
from models.permissions import rank
from models.tables import Lead, Member
from wording import N_

# The longest text each lead column holds (models/tables.py).
_FIELD_LIMITS = {"company": MAX_FIELD, "contact": MAX_FIELD, "name": MAX_FIELD, "source": 100, "tag": 100,
                 "phone": 64, "email": MAX_FIELD}


def _lead_facts(ctx: Ctx, args: Args) -> dict[str, object]:
    """The lead fields typed as options, validated; used by add and edit."""
    facts: dict[str, object] = {}
    for key, limit in _FIELD_LIMITS.items():
        if key in args.options:
            ctx.bounded(args.options[key], what=key, limit=limit)
    for key in ("company", "contact", "source", "tag", "name"):
        if key in args.options:
            facts[key] = args.options[key] or None
    if "phone" in args.options:
        phone = args.options["phone"]
        if phone and not looks_like_phone(phone):
            raise UsageError("usage.bad_phone", text=phone)
        facts["phone"] = phone or None
    if "email" in args.options:
        email = args.options["email"]
        if email and not looks_like_email(email):
            raise UsageError("usage.bad_email", text=email)
        facts["email"] = email or None
    if "value" in args.options:
        facts["value"] = ctx.amount(args.options["value"]) if args.options["value"] else None
    return facts


_FACTS = ("company", "contact", "phone", "email", "source", "value", "tag")


def _reject_unknown(ctx: Ctx, args: Args, known: tuple[str, ...]) -> None:
    if args.unknown:
        raise UsageError("usage.unknown_option", key=args.unknown[0][0],
                         known=names.option_list(known, ctx.locale))


def _next_buttons(ctx: Ctx, lead: Lead) -> list[Button]:
    follow, quote = ctx.command("follow"), ctx.command("quote")
    return [Button(label=ctx.say("Log follow-up"), command=f"{follow} L{lead.number} "),
            Button(label=ctx.say("Quote"), command=f"{quote} L{lead.number} ")]


def add(ctx: Ctx, args: Args) -> Reply:
    _reject_unknown(ctx, args, (*_FACTS, "owner", "force"))
    name = ctx.bounded(args.text(), what="what.name", limit=MAX_FIELD)
    if not name:
        raise UsageError("usage.missing", what=ctx.t("what.name"))
    facts = _lead_facts(ctx, args)
    force = ctx.yes(args.options["force"]) if "force" in args.options else False
    scope = ctx.scope
    owner: Member | None = None
    to_pool = False
    rule: str | None = None
    if "owner" in args.options:
        if rank(scope.actor) < 1:
            raise DomainError("forbidden.role", action=ctx.t("action.assign"), role="manager")
        wanted = args.options["owner"]
        to_pool = wanted.casefold() in ("pool", "公海")
        owner = None if to_pool else ctx.member(wanted)
    else:
        owner, to_pool, rule = leads.auto_owner(scope)  # the team's assignment rule, for managers
    data = leads.NewLead(name=name, **facts)  # type: ignore[arg-type]
    try:
        lead, duplicates = leads.add_lead(scope, data, owner=owner, to_pool=to_pool, force=force, rule=rule)
    except DomainError as error:
        if error.key != "lead.duplicate":
            raise
        return _duplicate_reply(ctx, error.params["lead"])
    owner_text = (ctx.t("word.pool") if lead.owner_id is None
                  else ctx.t("word.yours") if lead.owner_id == scope.actor.id
                  else ctx.member_name(lead.owner_id))
    text = ctx.say(
        "✅ L{n} {name} — {owner}, stage {stage}",
        n=lead.number,
        name=lead.name,
        owner=owner_text,
        stage=ctx.stage_label(lead.stage),
    )
    if lead.value:
        text += ctx.say(" · est. {v}", v=ctx.money(lead.value))
    if duplicates:
        text += "\n" + ctx.say(
            "⚠️ Added anyway; similar to {refs}.",
            refs=ctx.join(
                ctx.say("L{n} ({owner})", n=d.number, owner=ctx.member_name(d.owner_id))
                for d in duplicates
            ),
        )
    if lead.owner_id and lead.owner_id != scope.actor.id:
        new_owner = scope.session.get(Member, lead.owner_id)
        if new_owner:
            ctx.notify(new_owner, kind="assigned", key=f"assigned:{lead.id}:{lead.version}:{new_owner.id}",
                       reply=lambda reader: _assigned(reader, lead))
    return Reply(text=text, buttons=_next_buttons(ctx, lead))


def _assigned(reader: Ctx, lead: Lead) -> Reply:
    """The push to a lead's new owner, in their language."""
    return Reply(text=reader.say(
        "📥 L{n} {name} is yours now (from {by}).",
        n=lead.number,
        name=lead.name,
        by=reader.scope.actor.name,
    ),
                 buttons=_next_buttons(reader, lead))


def _duplicate_reply(ctx: Ctx, existing: Lead) -> Reply:
    owner = ctx.member_name(existing.owner_id)
    state = (ctx.t("state.stage", stage=ctx.stage_label(existing.stage))
             if existing.status == "open" else ctx.t(f"state.{existing.status}"))
    text = ctx.t("lead.duplicate", lead=ctx.lead_label(existing), owner=owner, state=state)
    again = ctx.inv.text.strip()
    buttons = []
    if existing.owner_id is None:
        claim = ctx.command("lead", "claim")
        buttons.append(Button(label=ctx.say("Claim it"), command=f"{claim} L{existing.number}"))
    elif existing.owner_id != ctx.scope.actor.id and existing.status == "open":
        transfer = ctx.command("lead", "transfer")
        buttons.append(Button(label=ctx.say(
            "Request transfer",
        ), command=f"{transfer} L{existing.number} "))
    force = ctx.say("force=yes")
    buttons.append(Button(label=ctx.say("Add anyway"), command=f"{again} {force}"))
    return Reply(text=text, buttons=buttons, ok=False, private=True)


def list_(ctx: Ctx, args: Args) -> Reply:
    _reject_unknown(ctx, args, ("stage", "page"))
    scope = ctx.scope
    which = "mine" if rank(scope.actor) == 0 else "team"
    page = 1
    for word in args.words:
        if names.WORDS.find(word, among=names.LEAD_LISTS):
            which = names.WORDS.find(word) or which
        elif word.isdecimal():
            page = int(word)
        else:
            choices = ctx.join([names.WORDS.labels(ctx.locale, names.LEAD_LISTS),
                                names.option_list(["stage"], ctx.locale) + "…"])
            raise UsageError("usage.bad_choice", text=word, choices=choices)
    if "page" in args.options:
        if not args.options["page"].isdecimal() or int(args.options["page"]) < 1:
            raise UsageError("usage.bad_page", text=args.options["page"])
        page = int(args.options["page"])
    page = max(page, 1)
    if page > 100_000:  # a database offset has limits; nobody pages that far
        raise UsageError("usage.bad_page", text=str(page)[:40])
    stage = ctx.stage(args.options["stage"]).key if "stage" in args.options else None
    rows, total = leads.list_leads(scope, which=which, stage=stage, page=page)
    size = scope.config.page_size
    pages = max((total + size - 1) // size, 1)
    titles = {
        "mine": N_("Your leads"), "team": N_("Team leads"), "pool": N_("Pool"),
        "overdue": N_("Overdue follow-ups"), "won": N_("Won"), "lost": N_("Lost"),
    }
    title = ctx.say(titles[which])
    if stage:
        title += f" · {ctx.stage_label(stage)}"
    if not total:
        return Reply(text=ctx.say("{title}: none.", title=title))
    header = [ctx.say("Lead"), ctx.say("Stage"), ctx.say("Owner"), ctx.say("Next")]
    table = [header] + [[ctx.lead_label(lead), ctx.stage_label(lead.stage) if lead.status == "open"
                         else ctx.t(f"status.{lead.status}"), ctx.member_name(lead.owner_id),
                         _next_text(ctx, lead)] for lead in rows]
    text = ctx.say(
        "**{title}** — {total} (page {page}/{pages})",
        title=title,
        total=total,
        page=page,
        pages=pages,
    )
    buttons = []
    if page < pages:
        command = f"{ctx.say('/lead list')} {names.WORDS.label(which, ctx.locale)}"
        if stage:
            # The stage as the reader types it: its Chinese name, or its key.
            typed = words.spelling(ctx.locale, (stage, ctx.stage_label(stage)))
            command += f" {ctx.say('stage')}={typed}"
        buttons.append(Button(label=ctx.say("Next page"),
                              command=f"{command} {ctx.say('page')}={page + 1}"))
    return Reply(text=text, table=table, buttons=buttons)


def _next_text(ctx: Ctx, lead: Lead) -> str:
    if not lead.next_followup_on:
        return "-"
    text = ctx.day(lead.next_followup_on)
    if lead.next_followup_on < ctx.scope.today:
        text = "⚠️ " + text
    return text


def show(ctx: Ctx, args: Args) -> Reply:
    lead = leads.visible_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    session = ctx.scope.session
    status = ctx.stage_label(lead.stage) if lead.status == "open" else ctx.t(f"status.{lead.status}")
    text = f"**{ctx.lead_label(lead)}** · {status} · {ctx.say('owner')} {ctx.member_name(lead.owner_id)}"
    labels = [("company", N_("Company")), ("contact", N_("Contact")),
              ("phone", N_("Phone")), ("email", N_("E-mail")),
              ("source", N_("Source")), ("tag", N_("Tag"))]
    fields = [(ctx.say(label), str(getattr(lead, key))) for key, label in labels if getattr(lead, key)]
    if lead.value:
        fields.append((ctx.say("Estimate"), ctx.money(lead.value)))
    if lead.status == "won":
        fields.append((ctx.say("Won", context="won amount"), ctx.money(lead.won_amount)))
    if lead.status == "lost":
        fields.append((ctx.say("Lost because"), lead.lost_reason or "-"))
    if lead.status == "open":
        fields.append((ctx.say("Next follow-up"), _next_text(ctx, lead)))
        if lead.snoozed_until and lead.snoozed_until > ctx.scope.today:
            resume = ctx.say("nudges resume {day}", day=ctx.day(lead.snoozed_until))
            fields.append((ctx.say("Snoozed"), resume))
    quotes = leads.open_quotes(session, lead)
    if quotes:
        fields.append((ctx.say("Quotes"), " · ".join(
            ctx.say("Q{q} {amount} {status}", q=quote.number, amount=ctx.quote_amount(quote),
                    status=ctx.t("status." + quote.status))
            for quote in quotes)))
    fields += aftersale.lead_fields(ctx, lead)  # contracts, money owed, customer care
    for item in leads.recent_followups(session, lead):
        via = ctx.say(" ({via})", via=ctx.t("via." + item.via)) if item.via else ""
        fields.append((f"{ctx.clock(item.created_at)} {ctx.member_name(item.author_id)}{via}", item.note[:200]))
    table: list[list[str]] = []
    if any(names.WORDS.find(word, among=("history",)) for word in args.words[1:]):
        table.append([ctx.say("When"), ctx.say("Who"), ctx.say("What")])
        for event in audit.history(session, team_id=ctx.scope.team.id or 0, entity="lead",
                                   entity_id=lead.id or 0, limit=20):
            table.append([ctx.clock(event.at), history.who(ctx, event),
                          history.sentence(ctx, event)[:300]])
    buttons = _next_buttons(ctx, lead) if lead.status == "open" else []
    if not table:
        show_cmd = ctx.command("lead", "show")
        word = names.WORDS.label("history", ctx.locale)
        buttons.append(Button(label=ctx.say("History"),
                              command=f"{show_cmd} L{lead.number} {word}"))
    return Reply(text=text, fields=fields, table=table, buttons=buttons)


_WON, _LOST = N_("won"), N_("lost")
_CLOSING = {"won": _WON, "win": _WON, "赢单": _WON, "成交": _WON,
            "lost": _LOST, "lose": _LOST, "输单": _LOST, "丢单": _LOST}


def stage(ctx: Ctx, args: Args) -> Reply:
    number = ctx.lead_number(args.words[0] if args.words else None)
    if len(args.words) < 2:
        raise UsageError("usage.missing", what=ctx.t("what.stage"))
    wanted = " ".join(args.words[1:])
    closing = _CLOSING.get(wanted.strip().casefold())
    if closing is not None:  # won and lost close a lead; they are not stages of the pipeline
        command = f"{ctx.say('/lead')} {ctx.say(closing)} L{number}"
        raise UsageError("usage.stage_closes", text=wanted, command=command)
    lead = leads.get_lead(ctx.scope, number)
    target = ctx.stage(wanted)
    return _moved(ctx, lead, _translate_requirements(ctx, lambda: leads.move_to_stage(ctx.scope, lead, target)))


def next_(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    return _moved(ctx, lead, _translate_requirements(ctx, lambda: leads.next_stage(ctx.scope, lead)))


def _translate_requirements(ctx: Ctx, move):  # type: ignore[no-untyped-def]
    """Stage errors name stages and missing facts; word them for this reader."""
    try:
        return move()
    except DomainError as error:
        params = dict(error.params)
        for key in ("stage", "next"):
            if key in params and hasattr(params[key], "label"):
                params[key] = params[key].label(ctx.locale)
        if "missing" in params:
            params["missing"] = "; ".join(ctx.t(f"need.{need}", lead=params["lead"]) for need in params["missing"])
        raise DomainError(error.key, **params) from error


def _moved(ctx: Ctx, lead: Lead, stage_obj) -> Reply:  # type: ignore[no-untyped-def]
    text = ctx.say(
        "➡️ L{n} {name} is now in {stage}.",
        n=lead.number,
        name=lead.name,
        stage=stage_obj.label(ctx.locale),
    )
    return Reply(text=text, buttons=_next_buttons(ctx, lead))


def assign(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    member = ctx.member(args.words[1] if len(args.words) > 1 else None)
    leads.assign(ctx.scope, lead, member)
    ctx.notify(member, kind="assigned", key=f"assigned:{lead.id}:{lead.version}:{member.id}",
               reply=lambda reader: _assigned(reader, lead))
    return Reply(text=ctx.say(
        "👤 L{n} {name} now belongs to {who}.",
        n=lead.number,
        name=lead.name,
        who=member.name,
    ))


def claim(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    leads.claim(ctx.scope, lead)
    return Reply(text=ctx.say("🙋 L{n} {name} is yours now.", n=lead.number, name=lead.name),
                 buttons=_next_buttons(ctx, lead), settles=True)


def release(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    leads.release(ctx.scope, lead)
    claim_cmd = ctx.command("lead", "claim")
    text = ctx.say("↩️ L{n} {name} is back in the pool.", n=lead.number, name=lead.name)
    return Reply(text=_with(text, tell_settled(ctx, lead)),
                 buttons=[Button(label=ctx.say("Claim"), command=f"{claim_cmd} L{lead.number}")])


def won(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    amount = ctx.amount(args.words[1]) if len(args.words) > 1 else None
    final = leads.win(ctx.scope, lead, amount)
    text = ctx.say(
        "🏆 L{n} {name} won: {amount}. Well done!",
        n=lead.number,
        name=lead.name,
        amount=ctx.money(final),
    )
    return Reply(text=_with(text, tell_settled(ctx, lead)))


def lost(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    reason = ctx.bounded(" ".join(args.words[1:]).strip(), what="what.reason")
    if not reason:
        raise UsageError("usage.missing", what=ctx.t("what.reason"))
    leads.lose(ctx.scope, lead, reason)
    text = ctx.say(
        "📉 L{n} {name} closed as lost: {reason}",
        n=lead.number,
        name=lead.name,
        reason=reason,
    )
    return Reply(text=_with(text, tell_settled(ctx, lead)))


def _with(text: str, more: str) -> str:
    return f"{text}\n{more}" if more else text


def edit(ctx: Ctx, args: Args) -> Reply:
    _reject_unknown(ctx, args, ("name", *_FACTS))
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    facts = _lead_facts(ctx, args)
    if not facts:
        raise UsageError("usage.missing", what=ctx.t("what.field"))
    if "name" in facts and not facts["name"]:  # a lead always has a name (found by the fuzzing)
        raise UsageError("usage.missing", what=ctx.t("what.name"))
    leads.edit(ctx.scope, lead, facts)
    shown = ctx.join((
        f"{names.LEAD_FIELDS.label(key, ctx.locale)}={history.value(ctx, key, value)}"
        for key, value in facts.items()), "clause")
    return Reply(text=ctx.say("✏️ L{n} updated: {changes}", n=lead.number, changes=shown))


_SNOOZE = re.compile(r"^(\d{1,3})\s*(d|day|days|天|日|w|week|weeks|周)$", re.I)


def snooze(ctx: Ctx, args: Args) -> Reply:
    """`/lead snooze L3 1d` (or a date): no nudges about L3 for a day; they resume on the day
    named."""
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    when = " ".join(args.words[1:]).strip() or "1d"
    match = _SNOOZE.match(when)
    if match:
        days = int(match.group(1)) * (7 if match.group(2).lower() in ("w", "week", "weeks", "周") else 1)
        until = ctx.scope.today + timedelta(days=days)
    else:
        until = ctx.date(when)
    leads.snooze(ctx.scope, lead, until)
    text = ctx.say(
        "😴 L{n} {name}: nudges resume {day}.",
        n=lead.number,
        name=lead.name,
        day=ctx.day(until),
    )
    if lead.next_followup_on:  # a snooze only quiets: say the plan did not move
        text += ctx.say(" Next follow-up stays {day}.", day=ctx.day(lead.next_followup_on))
    return Reply(text=text)
