"""`/me` (`/我的`): my open leads, my overdue follow-ups, the approvals waiting for me."""

from __future__ import annotations

from commands.args import Args
from commands.context import Ctx
from commands.types import Button, Reply
from models import leads, quotes


def dashboard(ctx: Ctx, args: Args) -> Reply:
    scope = ctx.scope
    mine, total = leads.list_leads(scope, which="mine", stage=None, page=1)
    overdue, overdue_total = leads.list_leads(scope, which="overdue", stage=None, page=1)
    overdue = [lead for lead in overdue if lead.owner_id == scope.actor.id]
    waiting = quotes.waiting_for(scope)
    lines = [ctx.say_n("**{name}** — {n} open lead", "**{name}** — {n} open leads",
                       total, name=scope.actor.name)]
    for lead in mine[:5]:
        lines.append(f"· L{lead.number} {lead.name} · {ctx.stage_label(lead.stage)}"
                     + (f" · {ctx.day(lead.next_followup_on)}" if lead.next_followup_on else ""))
    if overdue:
        lines.append(ctx.say("⏰ **Overdue follow-ups** ({n})", n=len(overdue)))
        lines += [f"· L{lead.number} {lead.name} · {ctx.day(lead.next_followup_on)}" for lead in overdue[:5]]
    buttons: list[Button] = []
    if waiting:
        lines.append(ctx.say("🧾 **Waiting for your approval** ({n})", n=len(waiting)))
        for quote in waiting[:5]:
            lines.append(f"· Q{quote.number} {ctx.quote_amount(quote)} · {ctx.member_name(quote.requester_id)}")
            if len(buttons) < 6:
                buttons += ctx.quote_buttons(quote)
    return Reply(text="\n".join(lines), buttons=buttons, private=True)
