"""`/follow L3 <note> [next=<when>] [via=…]` (`/跟进`): log what happened and when to talk next."""

from __future__ import annotations

from commands import names
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Button, Reply
from models import followups, leads
from models.tables import Lead
from wording import N_

VIA = {
    "call": "call", "phone": "call", "电话": "call", "打电话": "call",
    "visit": "visit", "拜访": "visit", "上门": "visit",
    "wechat": "wechat", "weixin": "wechat", "微信": "wechat",
    "email": "email", "mail": "email", "邮件": "email",
    "meeting": "meeting", "会议": "meeting", "开会": "meeting",
}
# `next=none` clears the planned date; a note without `next=` keeps it.
NO_DATE = frozenset({"none", "no", "clear", "-", "无", "没有", "不", "清除", "取消"})


def follow(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    note = ctx.bounded(" ".join(args.words[1:]).strip(), what="what.note")
    typed_next = args.options.get("next")
    if typed_next is not None and not typed_next.strip():
        return _ask_date(ctx, lead, note)
    clear = typed_next is not None and typed_next.strip().casefold() in NO_DATE
    next_on = ctx.date(typed_next) if typed_next is not None and not clear else None
    via = None
    if "via" in args.options:
        via = VIA.get(args.options["via"].casefold())
        if via is None:
            raise UsageError("usage.bad_via", text=args.options["via"])
    if not note:
        if clear:
            followups.plan_next(ctx.scope, lead, None)
            cleared = ctx.say("📅 L{n}: the next follow-up date is cleared.", n=lead.number)
            return Reply(text=cleared)
        if next_on is None:
            raise UsageError("usage.missing", what=ctx.t("what.note"))
        followups.plan_next(ctx.scope, lead, next_on)  # only planning: nothing happened yet
        return Reply(text=ctx.say(
            "📅 L{n} next follow-up: {day}.",
            n=lead.number,
            day=ctx.day(next_on),
        ))
    followups.log_followup(ctx.scope, lead, note=note, via=via, next_on=next_on, clear_next=clear)
    if next_on:
        text = ctx.say("📝 L{n} follow-up logged. Next: {day}.", n=lead.number, day=ctx.day(next_on))
        return Reply(text=text)
    if lead.next_followup_on:
        text = ctx.say(
            "📝 L{n} follow-up logged. Next: {day}, as planned.",
            n=lead.number,
            day=ctx.day(lead.next_followup_on),
        )
        return Reply(text=text)
    follow_cmd, key = ctx.command("follow"), names.option_label("next", ctx.locale)
    if clear:
        text = ctx.say(
            "📝 L{n} follow-up logged. The next follow-up date is cleared.",
            n=lead.number,
        )
    else:
        text = ctx.say(
            "📝 L{n} follow-up logged. No next date set — add one with next=…",
            n=lead.number,
        )
    return Reply(text=text, buttons=[Button(label=ctx.say("Plan next"),
                                            command=f"{follow_cmd} L{lead.number} {key}=")])


def _ask_date(ctx: Ctx, lead: Lead, note: str) -> Reply:
    """`next=` with nothing after it (the "Plan next" button): ask for the day, offer a few."""
    follow_cmd, key = ctx.command("follow"), names.option_label("next", ctx.locale)
    base = f"{follow_cmd} L{lead.number} {note + ' ' if note else ''}{key}="
    # Each choice's label, and the day as this reader types it.
    choices = ((N_("Tomorrow"), N_("tomorrow")), (N_("In 3 days"), "+3d"),
               (N_("In a week"), "+7d"))
    return Reply(text=ctx.say(
        "📅 When should L{n} {name} be followed up next? Add the day after {key}=, e.g. {cmd}fri "
        "(also tomorrow, +3d, 12/1).",
        n=lead.number,
        name=lead.name,
        key=key,
        cmd=base,
    ),
                 buttons=[Button(label=ctx.say(label), command=base + ctx.say(typed))
                          for label, typed in choices],
                 ok=False)
