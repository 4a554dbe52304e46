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
        action = ctx.pick("erase a customer's personal data", "删除客户的个人信息")
        raise DomainError("forbidden.role", action=action, role=ctx.role_label("admin"))
    if len(args.words) > 1 or args.unknown:
        extra = " ".join([*args.words[1:], *(f"{k}={v}" for k, v in args.unknown)])
        raise UsageError("usage.bad_lead_ref", text=extra)
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    done = privacy.forget(ctx.scope, lead)
    fields = names.LEAD_FIELDS.labels(ctx.locale, done.fields)
    kinds = ("、" if ctx.zh else ", ").join(
        f"{names.RECORDS.label(kind, ctx.locale)} {n}" for kind, n in done.redacted.items()
    )
    lines = [
        ctx.pick(
            "🧹 L{n} {name}: the customer's personal data is erased ({fields}).",
            "🧹 L{n} {name}：客户的个人信息已删除（{fields}）。",
            n=lead.number,
            name=lead.name,
            fields=fields or ctx.pick("none was recorded", "原本没有记录"),
        )
    ]
    if done.redacted:
        lines.append(
            ctx.pick(
                "Phone numbers, e-mail addresses and the contact's name are removed from {total} "
                "other records: {kinds}.",
                "另有 {total} 条记录中的电话、邮箱和联系人姓名已删除：{kinds}。",
                total=done.total,
                kinds=kinds,
            )
        )
    lines.append(
        ctx.pick(
            "Stage, owner and amounts stay for the reports; the erasure is recorded as yours.",
            "阶段、负责人和金额保留用于报表；本次删除已记录在你名下。",
        )
    )
    lines.append(
        ctx.pick(
            "Copies outside the bot's database are not reached: exports and backups made before, "
            "and messages already delivered in chats.",
            "数据库以外的副本不受影响：此前的导出文件和备份，以及已发到聊天中的消息。",
        )
    )
    settled = tell_settled(ctx, lead)
    if settled:
        lines.append(settled)
    if done.twins:
        twins = " ".join(f"L{n}" for n in done.twins)
        lines.append(
            ctx.pick(
                "⚠️ {twins} had the same phone or e-mail: forget them too if they are this person.",
                "⚠️ {twins} 的电话或邮箱相同：如果是同一人，请一并删除。",
                twins=twins,
            )
        )
    return Reply(text="\n".join(lines), private=True)
