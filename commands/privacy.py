"""`/lead forget <L>` (`/线索 遗忘 <L>`): erase a customer's personal data (PIPL / GDPR); admins
only. What is erased and what is kept: models/privacy.py."""

from __future__ import annotations

from commands import names
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.quotes import tell_settled
from commands.types import Reply
from models import leads, privacy
from models.config import ROLE_RANK
from models.errors import DomainError
from models.permissions import rank


def forget(ctx: Ctx, args: Args) -> Reply:
    if rank(ctx.scope.actor) < ROLE_RANK["admin"]:
        action = ctx.say("erase a customer's personal data")
        raise DomainError("forbidden.role", action=action, role="admin")
    if len(args.words) > 1 or args.unknown:
        extra = " ".join([*args.words[1:], *(f"{k}={v}" for k, v in args.unknown)])
        raise UsageError("usage.bad_lead_ref", text=extra)
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    done = privacy.forget(ctx.scope, lead)
    fields = names.LEAD_FIELDS.labels(ctx.locale, done.fields)
    kinds = ctx.join(
        f"{names.RECORDS.label(kind, ctx.locale)} {n}" for kind, n in done.redacted.items()
    )
    lines = [
        ctx.say(
            "🧹 L{n} {name}: the customer's personal data is erased ({fields}).",
            n=lead.number,
            name=lead.name,
            fields=fields or ctx.say("none was recorded"),
        )
    ]
    if done.redacted:
        lines.append(
            ctx.say(
                "Phone numbers, e-mail addresses and the contact's name are removed from {total} "
                "other records: {kinds}.",
                total=done.total,
                kinds=kinds,
            )
        )
    lines.append(
        ctx.say("Stage, owner and amounts stay for the reports; the erasure is recorded as yours.")
    )
    lines.append(
        ctx.say(
            "Copies outside the bot's database are not reached: exports and backups made before, "
            "and messages already delivered in chats.",
        )
    )
    settled = tell_settled(ctx, lead)
    if settled:
        lines.append(settled)
    if done.twins:
        twins = " ".join(f"L{n}" for n in done.twins)
        lines.append(
            ctx.say(
                "⚠️ {twins} had the same phone or e-mail: forget them too if they are this person.",
                twins=twins,
            )
        )
    return Reply(text="\n".join(lines), private=True)
