"""`/follow L3 <note> [next=<when>] [via=…]` (`/跟进`): log what happened and when to talk next."""

from __future__ import annotations

from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Button, Reply
from models import followups, leads
from models.tables import Lead

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
        if next_on is None:
            raise UsageError("usage.missing", what=ctx.t("what.note"))
        followups.plan_next(ctx.scope, lead, next_on)  # only planning: nothing happened yet
        return Reply(text=ctx.pick("📅 L{n} next follow-up: {day}.", "📅 L{n} 下次跟进：{day}",
                                   n=lead.number, day=ctx.day(next_on)))
    followups.log_followup(ctx.scope, lead, note=note, via=via, next_on=next_on, clear_next=clear)
    if next_on:
        text = ctx.pick("📝 L{n} follow-up logged. Next: {day}.", "📝 L{n} 已记录跟进，下次跟进：{day}",
                        n=lead.number, day=ctx.day(next_on))
        return Reply(text=text)
    if lead.next_followup_on:
        text = ctx.pick("📝 L{n} follow-up logged. Next: {day}, as planned.",
                        "📝 L{n} 已记录跟进，下次跟进仍为 {day}", n=lead.number,
                        day=ctx.day(lead.next_followup_on))
        return Reply(text=text)
    follow_cmd, key = ("/跟进", "下次") if ctx.zh else ("/follow", "next")
    if clear:
        text = ctx.pick("📝 L{n} follow-up logged. The next follow-up date is cleared.",
                        "📝 L{n} 已记录跟进，已清除下次跟进日期。", n=lead.number)
    else:
        text = ctx.pick("📝 L{n} follow-up logged. No next date set — add one with next=…",
                        "📝 L{n} 已记录跟进。尚未设置下次跟进日期，可加 下次=…", n=lead.number)
    return Reply(text=text, buttons=[Button(label=ctx.pick("Plan next", "约下次"),
                                            command=f"{follow_cmd} L{lead.number} {key}=")])


def _ask_date(ctx: Ctx, lead: Lead, note: str) -> Reply:
    """`next=` with nothing after it (the "Plan next" button): ask for the day, offer a few."""
    follow_cmd, key = ("/跟进", "下次") if ctx.zh else ("/follow", "next")
    base = f"{follow_cmd} L{lead.number} {note + ' ' if note else ''}{key}="
    choices = (("Tomorrow", "明天", "tomorrow", "明天"), ("In 3 days", "3天后", "+3d", "3天后"),
               ("In a week", "7天后", "+7d", "7天后"))
    return Reply(text=ctx.pick("📅 When should L{n} {name} be followed up next? Add the day after "
                               "{key}=, e.g. {cmd}fri (also tomorrow, +3d, 12/1).",
                               "📅 L{n} {name} 下次什么时候跟进？在 {key}= 后写日期，如 {cmd}周五"
                               "（也可写 明天、3天后、12/1）。",
                               n=lead.number, name=lead.name, key=key, cmd=base),
                 buttons=[Button(label=ctx.pick(en, zh), command=base + ctx.pick(en_day, zh_day))
                          for en, zh, en_day, zh_day in choices],
                 ok=False)
