"""`/follow L3 <note> [next=<when>] [via=…]` (`/跟进`): log what happened and when to talk next."""

from __future__ import annotations

from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Button, Reply
from models import followups, leads

VIA = {
    "call": "call", "phone": "call", "电话": "call", "打电话": "call",
    "visit": "visit", "拜访": "visit", "上门": "visit",
    "wechat": "wechat", "weixin": "wechat", "微信": "wechat",
    "email": "email", "mail": "email", "邮件": "email",
    "meeting": "meeting", "会议": "meeting", "开会": "meeting",
}


def follow(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    note = ctx.bounded(" ".join(args.words[1:]).strip(), what="what.note")
    if not note:
        raise UsageError("usage.missing", what=ctx.t("what.note"))
    via = None
    if "via" in args.options:
        via = VIA.get(args.options["via"].casefold())
        if via is None:
            raise UsageError("usage.bad_via", text=args.options["via"])
    next_on = ctx.date(args.options["next"]) if args.options.get("next") else None
    followups.log_followup(ctx.scope, lead, note=note, via=via, next_on=next_on)
    if next_on:
        text = ctx.pick("📝 L{n} follow-up logged. Next: {day}.", "📝 L{n} 已记录跟进，下次跟进：{day}",
                        n=lead.number, day=ctx.day(next_on))
        return Reply(text=text)
    follow_cmd = "/跟进" if ctx.zh else "/follow"
    text = ctx.pick("📝 L{n} follow-up logged. No next date set — add one with next=…",
                    "📝 L{n} 已记录跟进。尚未设置下次跟进日期，可加 下次=…", n=lead.number)
    return Reply(text=text, buttons=[Button(label=ctx.pick("Plan next", "约下次"),
                                            command=f"{follow_cmd} L{lead.number} next=")])
