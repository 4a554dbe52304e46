"""Teamwork verbs: `/lead transfer`, `/team delegate`, and the personal settings under
`/me` (`notify`, `quiet`, `lang`, `timezone`, `silent`, `settings`)."""

from __future__ import annotations

from datetime import date
from typing import Any

from commands import cards
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.quotes import ask_approvers
from commands.types import Button, Reply
from models import leads, quotes, teamwork
from models.errors import DomainError
from models.scope import Scope
from models.tables import Lead, Member
from models.teams import managers_of
from wording import N_

APPROVE = ("approve", "ok", "yes", "accept", "同意", "批准", "通过")
REJECT = ("reject", "deny", "no", "decline", "驳回", "拒绝")
CANCEL = ("cancel", "withdraw", "撤回", "取消")


# --- transfer requests -----------------------------------------------------------------------

def transfer(ctx: Ctx, args: Args) -> Reply:
    """`/lead transfer L3 <reason>` asks the owner; `approve|reject|cancel L3` answers a request."""
    first = args.words[0].casefold() if args.words else ""
    if first in APPROVE or first in REJECT:
        return _decide(ctx, args.words[1:], approve=first in APPROVE)
    if first in CANCEL:
        return _cancel(ctx, args.words[1:])
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    if lead.status == "open" and lead.owner_id is None:
        # Nobody to ask: a lead in the pool is claimed instead.
        leads.claim(ctx.scope, lead)
        return Reply(text=ctx.say(
            "🙋 L{n} {name} was in the pool — claimed, it is yours now.",
            n=lead.number,
            name=lead.name,
        ),
                     buttons=_next_buttons(ctx, lead))
    reason = ctx.bounded(" ".join(args.words[1:]).strip(), what="what.reason")
    if not reason:
        raise UsageError("usage.missing", what=ctx.t("what.reason"))
    try:
        request = teamwork.request_transfer(ctx.scope, lead, reason)
    except DomainError as error:
        if error.key == "transfer.pending":
            raise _pending(ctx, error.params["request"], lead) from error
        raise
    session = ctx.scope.session
    owner = session.get(Member, request.owner_id)
    assert owner is not None
    asker = ctx.scope.actor.name
    ctx.notify(owner, kind="transfer", key=f"transfer:{request.id}:{owner.id}",
               reply=lambda reader: Reply(
                   text=reader.say(
                       "🔁 {who} asks for L{n} {name} (yours): {why}",
                       who=asker,
                       n=lead.number,
                       name=lead.name,
                       why=reason,
                   ),
                   buttons=transfer_buttons(reader, lead)),
               about=(cards.transfer_subject(request),))
    managers = [m.name for m in managers_of(session, owner) if m.id != ctx.scope.actor.id]
    text = ctx.say(
        "📨 Asked {owner} to hand L{n} {name} over to you.",
        owner=owner.name,
        n=lead.number,
        name=lead.name,
    )
    if managers:
        text += ctx.say(
            " If {owner} doesn't answer within {h:g} working hours, {who} decides.",
            owner=owner.name,
            h=ctx.scope.config.transfer_wait_hours,
            who=", ".join(managers),
        )
    cancel = ctx.command("lead", "transfer", CANCEL)
    withdraw = Button(label=ctx.say("Withdraw"), command=f"{cancel} L{lead.number}")
    return Reply(text=text, buttons=[withdraw])


def transfer_buttons(ctx: Ctx, lead: Lead) -> list[Button]:
    approve, reject = (ctx.command("lead", "transfer", word) for word in (APPROVE, REJECT))
    return [Button(label=ctx.say("Approve"), command=f"{approve} L{lead.number}",
                   style="primary"),
            Button(label=ctx.say("Reject"), command=f"{reject} L{lead.number} ",
                   style="danger")]


def _next_buttons(ctx: Ctx, lead: Lead) -> list[Button]:
    follow, quote = ctx.command("follow"), ctx.command("quote")
    return [Button(label=ctx.say("Log follow-up"), command=f"{follow} L{lead.number} "),
            Button(label=ctx.say("Quote"), command=f"{quote} L{lead.number} ")]


def _request_of(ctx: Ctx, words: list[str]) -> tuple[Lead, teamwork.TransferRequest]:
    """The open request on the lead named first; a decided one answers who decided it."""
    lead = leads.get_lead(ctx.scope, ctx.lead_number(words[0] if words else None))
    request = teamwork.pending_transfer(ctx.scope.session, lead)
    if request is None:
        latest = teamwork.latest_transfer(ctx.scope.session, lead)
        if latest is None:
            raise DomainError("transfer.none", lead=lead.number)
        raise _decided(ctx, latest, lead)
    return lead, request


def _who(ctx: Ctx, member_id: int | None, principal_id: int | None) -> str:
    name = ctx.member_name(member_id)
    if principal_id is None or principal_id == member_id:
        return name
    return ctx.say("{m} as {p}'s delegate", m=name, p=ctx.member_name(principal_id))


def _decide(ctx: Ctx, words: list[str], *, approve: bool) -> Reply:
    lead, request = _request_of(ctx, words)
    note = ctx.bounded(" ".join(words[1:]).strip(), what="what.reason") or None
    try:
        outcome = teamwork.decide_transfer(ctx.scope, request, approve=approve, note=note)
    except DomainError as error:
        if error.key == "transfer.already_decided":
            raise _decided(ctx, error.params["request"], lead) from error
        raise
    scope, session = ctx.scope, ctx.scope.session
    actor, principal = scope.actor, outcome.principal
    requester = session.get(Member, request.requester_id)
    owner = session.get(Member, request.owner_id)
    assert requester is not None and owner is not None
    key = f"transfer-decision:{request.id}"
    cards.revise_after(ctx, cards.transfer_subject(request))
    if request.status == "stale":
        return _stale(ctx, lead, requester, key)

    def told(reader: Ctx, *, to_requester: bool) -> Reply:
        who, at = _who(reader, actor.id, principal.id), reader.clock(reader.scope.now)
        params: dict[str, Any] = {"n": lead.number, "name": lead.name, "who": who, "at": at,
                                  "req": requester.name, "owner": owner.name,
                                  "note": f": {note}" if note else ""}
        if approve and to_requester:
            text = reader.say(
                "✅ L{n} {name} is yours now — {who} approved your request · {at}{note}",
                **params,
            )
            return Reply(text=text, buttons=_next_buttons(reader, lead))
        if approve:
            return Reply(text=reader.say(
                "🔁 L{n} {name} now belongs to {req} — {who} approved {req}'s request · {at}",
                **params,
            ))
        if to_requester:
            return Reply(text=reader.say(
                "❌ {who} kept L{n} {name} with {owner} · {at}{note}",
                **params,
            ))
        return Reply(text=reader.say(
            "❌ {who} turned down {req}'s request for L{n} {name} · {at}{note}",
            **params,
        ))

    ctx.notify(requester, kind="transfer-decision", key=f"{key}:{requester.id}",
               reply=lambda reader: told(reader, to_requester=True))
    ctx.notify(owner, kind="transfer-decision", key=f"{key}:{owner.id}",
               reply=lambda reader: told(reader, to_requester=False))
    who, at = _who(ctx, actor.id, principal.id), ctx.clock(scope.now)
    if approve:
        return Reply(text=ctx.say(
            "✅ L{n} {name} now belongs to {req} (approved by {who} · {at}).",
            n=lead.number,
            name=lead.name,
            req=requester.name,
            who=who,
            at=at,
        ), settles=True)
    return Reply(text=ctx.say(
        "❌ L{n} {name} stays with {owner} (rejected by {who} · {at}).",
        n=lead.number,
        name=lead.name,
        owner=owner.name,
        who=who,
        at=at,
    ),
                 settles=True)


def _stale(ctx: Ctx, lead: Lead, requester: Member, key: str) -> Reply:
    """The lead changed hands (or closed) since the request: it was closed, nothing moved."""
    if lead.status == "open":
        now_with = ctx.member_name(lead.owner_id)
    else:
        now_with = ctx.t(f"status.{lead.status}")
    ctx.notify(requester, kind="transfer-decision", key=f"{key}:{requester.id}",
               reply=lambda reader: Reply(text=reader.say(
                   "Your request for L{n} {name} is closed: the lead changed hands since (now "
                   "{now}).",
                   n=lead.number,
                   name=lead.name,
                   now=now_with,
               )))
    return Reply(text=ctx.say(
        "L{n} {name} changed hands since {who} asked (now {now}); the request is closed.",
        n=lead.number,
        name=lead.name,
        who=requester.name,
        now=now_with,
    ), ok=False)


def _cancel(ctx: Ctx, words: list[str]) -> Reply:
    lead, request = _request_of(ctx, words)
    try:
        teamwork.cancel_transfer(ctx.scope, request)
    except DomainError as error:
        if error.key == "transfer.already_decided":
            raise _decided(ctx, error.params["request"], lead) from error
        raise
    cards.revise_after(ctx, cards.transfer_subject(request))
    owner = ctx.scope.session.get(Member, request.owner_id)
    asker = ctx.scope.actor.name
    if owner is not None:
        ctx.notify(owner, kind="transfer-decision",
                   key=f"transfer-decision:{request.id}:{owner.id}",
                   reply=lambda reader: Reply(text=reader.say(
                       "↩️ {who} withdrew the request for L{n} {name}.",
                       who=asker,
                       n=lead.number,
                       name=lead.name,
                   )))
    return Reply(text=ctx.say(
        "↩️ Request for L{n} {name} withdrawn.",
        n=lead.number,
        name=lead.name,
    ))


def _pending(ctx: Ctx, request: teamwork.TransferRequest, lead: Lead) -> DomainError:
    params = {"lead": lead.number, "at": ctx.clock(request.created_at),
              "owner": ctx.member_name(request.owner_id)}
    if request.requester_id == ctx.scope.actor.id:
        return DomainError("transfer.asked_already", **params)
    return DomainError("transfer.pending", by=ctx.member_name(request.requester_id), **params)


def _decided(ctx: Ctx, request: teamwork.TransferRequest, lead: Lead) -> DomainError:
    return DomainError("transfer.already_decided", lead=lead.number,
                       requester=ctx.member_name(request.requester_id),
                       status=ctx.t(f"transfer.status.{request.status}"),
                       by=_who(ctx, request.decided_by_id, request.on_behalf_of_id),
                       at=ctx.clock(request.decided_at or request.created_at))


# --- delegation ------------------------------------------------------------------------------

_OFF = ("off", "none", "end", "stop", "取消", "结束", "关闭")
_OPTION_ALIASES = {"至": "until", "到": "until", "截止": "until", "从": "from", "开始": "from",
                   "代": "for", "替": "for"}


def _options(ctx: Ctx, args: Args) -> dict[str, str]:
    """The verb's options, with the Chinese spellings (`至=`, `从=`, `代=`) read as well."""
    found = dict(args.options)
    for key, value in args.unknown:
        if key not in _OPTION_ALIASES:
            raise UsageError("usage.unknown_option", key=key,
                             known=ctx.say("until= from= for="))
        found[_OPTION_ALIASES[key]] = value
    return found


def delegate(ctx: Ctx, args: Args) -> Reply:
    """`/team delegate @li until=2026-12-20` — li decides for you meanwhile; `off` ends it."""
    options = _options(ctx, args)
    words = [word for word in args.words if "=" not in word]
    scope = ctx.scope
    principal = ctx.member(options["for"]) if options.get("for") else scope.actor
    if not words and not ({"until", "from"} & options.keys()):
        return _delegations(ctx)
    if words and words[0].casefold() in _OFF:
        return _end(ctx, principal)
    helper = ctx.member(words[0] if words else None)
    until_text = options.get("until") or (words[1] if len(words) > 1 else "")
    if not until_text:
        raise UsageError("usage.missing", what=ctx.say("until=<date>"))
    until = ctx.date(until_text)
    start = ctx.date(options["from"]) if options.get("from") else scope.today
    delegation, replaced = teamwork.set_delegation(scope, principal, helper, from_on=start,
                                                   until_on=until)
    sent = _hand_over_waiting(ctx, principal) if start <= scope.today else []
    ctx.notify(helper, kind="delegation", key=f"delegation:{delegation.id}:{helper.id}",
               reply=lambda reader: Reply(text=reader.say(
                   "🤝 {p} asked you to decide approvals for them {period}.",
                   p=principal.name,
                   period=_period(reader, start, until),
               )))
    period = _period(ctx, start, until)
    text = ctx.say(
        "🤝 {period}, approvals for {p} go to {d}.",
        period=period[:1].upper() + period[1:],
        p=principal.name,
        d=helper.name,
    )
    if replaced:
        text += ctx.say(" (Replaces the earlier delegation.)")
    if sent:
        text += ctx.say(" Sent {d} what waits now: {refs}.", d=helper.name, refs=", ".join(sent))
    off = ctx.command("team", "delegate", _OFF)
    if principal.id != scope.actor.id:
        off += f" {ctx.say('for')}=@{principal.handle or principal.name}"
    return Reply(text=text, buttons=[Button(label=ctx.say("End early"), command=off)])


def _end(ctx: Ctx, principal: Member) -> Reply:
    for delegation in teamwork.end_delegations(ctx.scope, principal):
        helper = ctx.scope.session.get(Member, delegation.delegate_id)
        if helper is not None:
            ctx.notify(helper, kind="delegation",
                       key=f"delegation-end:{delegation.id}:{helper.id}",
                       reply=lambda reader: Reply(text=reader.say(
                           "🤝 You no longer decide for {p}.",
                           p=principal.name,
                       )))
    return Reply(text=ctx.say("🤝 {p} decides again; the delegation ended.", p=principal.name))


def _period(ctx: Ctx, start: date, until: date) -> str:
    if start <= ctx.scope.today:
        return ctx.say("until {u}", u=ctx.day(until))
    return ctx.say("from {s} until {u}", s=ctx.day(start), u=ctx.day(until))


def _hand_over_waiting(ctx: Ctx, principal: Member) -> list[str]:
    """Approvals already waiting for the principal go to the delegate as well, now."""
    scope = ctx.scope
    as_principal = Scope(session=scope.session, team=scope.team, actor=principal, now=scope.now)
    sent = []
    for quote in quotes.waiting_for(as_principal):
        step = quotes.current_step(scope.session, quote)
        lead = scope.session.get(Lead, quote.lead_id)
        if step is not None and lead is not None:
            ask_approvers(ctx, quote, lead, step)
            sent.append(f"Q{quote.number}")
    return sent


def _delegations(ctx: Ctx) -> Reply:
    scope = ctx.scope
    rows = teamwork.delegations(scope.session, scope.team.id or 0, scope.today)
    if not rows:
        form = ctx.say("/team delegate @user until=<date>")
        return Reply(text=ctx.say("🤝 No delegations. Set one: {form}", form=form))
    table = [[ctx.say("Approver"), ctx.say("Delegate"),
              ctx.say("From"), ctx.say("Until")]]
    table += [[ctx.member_name(row.member_id), ctx.member_name(row.delegate_id),
               ctx.day(row.from_on), ctx.day(row.until_on)] for row in rows]
    return Reply(text=ctx.say("🤝 **Delegations** — {n}", n=len(rows)),
                 table=table)


# --- personal settings (/me …) ---------------------------------------------------------------

_KINDS = {"nudges": "nudges", "nudge": "nudges", "reminders": "nudges", "提醒": "nudges",
          "催办": "nudges", "approvals": "approvals", "approval": "approvals", "审批": "approvals",
          "updates": "updates", "update": "updates", "news": "updates", "动态": "updates",
          "消息": "updates", "all": "all", "全部": "all"}
_MODES = {"realtime": "realtime", "now": "realtime", "instant": "realtime", "实时": "realtime",
          "即时": "realtime", "digest": "digest", "batch": "digest", "batched": "digest",
          "汇总": "digest", "合并": "digest", "off": "off", "none": "off", "mute": "off",
          "关闭": "off", "关": "off"}
_TEAM = ("team", "default", "reset", "auto", "团队", "默认")
_NONE = ("off", "none", "关", "关闭", "无")


def _one_word(ctx: Ctx, args: Args, what: str) -> str:
    keys = [*args.options, *(key for key, _ in args.unknown)]
    if keys:
        raise UsageError("usage.unknown_option", key=keys[0], known="-")
    if not args.words:
        raise UsageError("usage.missing", what=what)
    if len(args.words) > 1:
        raise UsageError("usage.bad_choice", text=" ".join(args.words)[:60], choices=what)
    return args.words[0]


def _mode_label(ctx: Ctx, mode: str) -> str:
    labels = {"realtime": N_("realtime"), "off": N_("off"),
              "digest": N_("digest (one message per run)")}
    return ctx.say(labels[mode])


def _kind_label(ctx: Ctx, kind: str) -> str:
    labels = {"nudges": N_("nudges"), "approvals": N_("approvals"),
              "updates": N_("updates")}
    return ctx.say(labels[kind])


def notify(ctx: Ctx, args: Args) -> Reply:
    """`/me notify [nudges|approvals|updates] realtime|digest|off` — how each kind reaches you."""
    if not args.words and not args.options and not args.unknown:
        return settings(ctx, args)
    kind, mode = "all", None
    for word in args.words:
        lowered = word.casefold()
        if lowered in _KINDS:
            kind = _KINDS[lowered]
        elif lowered in _MODES:
            mode = _MODES[lowered]
        else:
            raise UsageError("usage.bad_choice", text=word[:40],
                             choices="nudges, approvals, updates, all · realtime, digest, off")
    if mode is None:
        what = ctx.say("realtime, digest or off")
        raise UsageError("usage.missing", what=what)
    changes = dict.fromkeys(teamwork.CATEGORIES if kind == "all" else (kind,), mode)
    note = ""
    if kind == "all" and mode == "off":
        changes["approvals"] = "digest"  # what others ask you to decide still reaches you
        note = ctx.say(" Approvals others ask of you can't be turned off: they come as a digest.")
    teamwork.set_prefs(ctx.scope, changes)
    shown = ", ".join(f"{_kind_label(ctx, name)} {_mode_label(ctx, value)}"
                      for name, value in changes.items())
    return Reply(text=ctx.say("🔔 Saved: {s}.", s=shown) + note, private=True)


def quiet(ctx: Ctx, args: Args) -> Reply:
    """`/me quiet 21:00-08:00` — hold what can wait overnight; `off` for none, `team` for the
    team's hours."""
    word = _one_word(ctx, args, "21:00-08:00, off, team")
    lowered = word.casefold()
    value = None if lowered in _TEAM else "off" if lowered in _NONE else word
    try:
        _before, after = teamwork.set_prefs(ctx.scope, {"quiet_hours": value})
    except DomainError as error:
        if error.key == "prefs.bad_quiet":
            raise UsageError("usage.bad_choice", text=word[:40],
                             choices="21:00-08:00, off, team") from error
        raise
    if after.quiet_hours is None:
        hours = ctx.scope.config.quiet_hours or ctx.say("none")
        text = ctx.say("🌙 You follow the team's quiet hours ({h}).", h=hours)
    elif after.quiet_hours == "off":
        text = ctx.say("🌙 No quiet hours for you: nudges arrive any time.")
    else:
        text = ctx.say(
            "🌙 Quiet {h}: nudges and updates wait until it ends; approvals people ask of you "
            "don't.",
            h=after.quiet_hours,
        )
    return Reply(text=text, private=True)


def lang(ctx: Ctx, args: Args) -> Reply:
    """`/me lang zh|en|team` — the language the bot speaks to you."""
    word = _one_word(ctx, args, "zh, en, team")
    values = {"zh": "zh", "中文": "zh", "cn": "zh", "chinese": "zh", "en": "en", "english": "en",
              "英文": "en"}
    lowered = word.casefold()
    if lowered not in values and lowered not in _TEAM:
        raise UsageError("usage.bad_choice", text=word[:40], choices="zh, en, team")
    value = values.get(lowered)
    teamwork.set_prefs(ctx.scope, {"lang": value})
    ctx.locale = value or ctx.team_locale
    if value is None:
        text = ctx.say("🌐 I'll use the team's language with you.")
    else:
        text = ctx.say("🌐 I'll speak English with you.")
    return Reply(text=text, private=True)


def timezone(ctx: Ctx, args: Args) -> Reply:
    """`/me timezone Europe/Berlin|team` — your clock for times shown and your quiet hours."""
    word = _one_word(ctx, args, "Asia/Shanghai, Europe/Berlin, team")
    value = None if word.casefold() in _TEAM else word
    try:
        _before, after = teamwork.set_prefs(ctx.scope, {"timezone": value})
    except DomainError as error:
        if error.key == "prefs.bad_timezone":
            raise UsageError("usage.bad_timezone", text=word[:60]) from error
        raise
    ctx.prefs = after
    zone = after.timezone or ctx.scope.config.timezone
    now = ctx.clock(ctx.scope.now)
    return Reply(text=ctx.say("🕒 Your timezone: {z} (now {t}).", z=zone, t=now), private=True)


def silent(ctx: Ctx, args: Args) -> Reply:
    """`/me silent on|off` — not asked for approvals others can give; still able to decide."""
    on = ctx.yes(_one_word(ctx, args, "on, off"))
    teamwork.set_prefs(ctx.scope, {"silent": on})
    if on:
        text = ctx.say(
            "🤫 Silent approver: you're asked only when nobody else can decide. You can still "
            "approve anything waiting: /me or /quote list pending.",
        )
    else:
        text = ctx.say("🔔 You're asked for approvals again.")
    return Reply(text=text, private=True)


def settings(ctx: Ctx, args: Args) -> Reply:
    """`/me settings` — your notification settings, language and timezone."""
    if args.words:
        raise UsageError("usage.bad_choice", text=args.words[0][:40], choices="-")
    prefs, config = ctx.prefs, ctx.scope.config
    if prefs.quiet_hours is None:
        quiet_text = ctx.say("team's ({h})", h=config.quiet_hours or ctx.say("none"))
    else:
        quiet_text = ctx.say("off") if prefs.quiet_hours == "off" else prefs.quiet_hours
    zone = prefs.timezone or ctx.say("team's ({z})", z=config.timezone)
    fields = [(_kind_label(ctx, kind), _mode_label(ctx, getattr(prefs, kind)))
              for kind in teamwork.CATEGORIES]
    fields += [(ctx.say("Quiet hours"), quiet_text),
               (ctx.say("Language"), prefs.lang or ctx.say("team's")),
               (ctx.say("Timezone"), zone),
               (ctx.say("Silent approver"),
                ctx.say("yes") if prefs.silent else ctx.say("no"))]
    me = ctx.command("me")
    hint = ctx.say(
        "Change: {me} notify nudges realtime|digest|off · {me} quiet 21:00-08:00 · {me} lang "
        "zh|en · {me} timezone Asia/Shanghai · {me} silent on|off",
        me=me,
    )
    title = ctx.say("⚙️ **Your settings**")
    return Reply(text=f"{title}\n{hint}", fields=fields, private=True)
