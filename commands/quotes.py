"""`/quote …` (`/报价`, `/审批`): ask for a price to be approved, and decide it."""

from __future__ import annotations

from decimal import Decimal

from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Reply
from models import leads, quotes
from models.config import ROLE_RANK
from models.errors import DomainError
from models.permissions import rank
from models.tables import ApprovalStep, Lead, Member, Quote


def _amount_text(ctx: Ctx, quote: Quote) -> str:
    text = ctx.money(quote.amount)
    if quote.discount_bp:
        text += ctx.pick(" (−{d})", "（折扣 {d}）", d=_pct(quote.discount_bp))
    return text


def _pct(basis_points: int) -> str:
    whole, rest = divmod(basis_points, 100)
    return f"{whole}%" if not rest else f"{basis_points / 100:g}%"


def _card(ctx: Ctx, quote: Quote, lead: Lead) -> Reply:
    """What an approver sees: the quote, the lead, and the two buttons."""
    requester = ctx.member_name(quote.requester_id)
    text = ctx.pick("🧾 Q{q} · {name} · {amount} · by {who} · L{n} stage {stage}",
                    "🧾 Q{q} · {name} · {amount} · 申请人 {who} · L{n} 阶段 {stage}",
                    q=quote.number, name=lead.name, amount=_amount_text(ctx, quote), who=requester,
                    n=lead.number, stage=ctx.stage_label(lead.stage))
    if quote.note:
        text += "\n" + quote.note
    return Reply(text=text, buttons=ctx.quote_buttons(quote))


def _ask(ctx: Ctx, quote: Quote, lead: Lead, step: ApprovalStep) -> list[Member]:
    approvers = quotes.approvers_for(ctx.scope.session, quote, step)
    card = _card(ctx, quote, lead)
    for approver in approvers:
        ctx.notify(approver, kind="approval", key=f"approval:{quote.id}:{step.level}:{approver.id}", reply=card)
    return approvers


def create(ctx: Ctx, args: Args) -> Reply:
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    amount = ctx.amount(args.words[1] if len(args.words) > 1 else None)
    discount = ctx.percent_bp(args.options["discount"]) if "discount" in args.options else 0
    note = ctx.bounded(" ".join(args.words[2:]).strip(), what="what.note") or None
    quote, steps = quotes.create_quote(ctx.scope, lead, amount=amount, discount_bp=discount, note=note)
    head = ctx.pick("🧾 Q{q} for L{n} {name}: {amount}.", "🧾 Q{q} · L{n} {name}：{amount}。",
                    q=quote.number, n=lead.number, name=lead.name, amount=_amount_text(ctx, quote))
    if not steps and quote.levels_required:
        return Reply(text=head + ctx.pick(" Approved on your own authority: nobody else in the team can approve it.",
                                          "团队中没有其他人可以审批，已按你的权限通过。"))
    if not steps:
        limit = ctx.money(int(ctx.scope.config.approval.auto_below * 100))
        auto = ctx.pick(" Approved automatically (below {limit}).", "低于 {limit}，已自动通过。", limit=limit)
        return Reply(text=head + auto)
    first = steps[0]
    approvers = _ask(ctx, quote, lead, first)
    # Say "one level up" only when the discount really raised the level (not when it was already the top).
    policy = ctx.scope.config.approval
    raised = quotes.levels_needed(policy, Decimal(quote.amount) / 100, Decimal(quote.discount_bp) / 100) > \
        quotes.levels_needed(policy, Decimal(quote.amount) / 100, Decimal(0))
    role = ctx.role_label(steps[-1].role)
    why = ctx.pick(" (discount above {p}, one level up)", "（折扣超过 {p}，升一级）",
                   p=f"{ctx.scope.config.approval.discount_raise_pct:g}%") if raised else ""
    names = ", ".join(a.name for a in approvers) or ctx.t("word.none")
    if len(steps) == 1:
        text = ctx.pick("Needs {a} {role}{why} — asked {names}.", "需要{role}审批{why}，已通知 {names}。",
                        a=_article(role), role=role, why=why, names=names)
    else:
        text = ctx.pick("Needs {k} approvals up to {role}{why} — asked {names} first.",
                        "需要 {k} 级审批（至{role}）{why}，已先通知 {names}。",
                        k=len(steps), role=role, why=why, names=names)
    return Reply(text=f"{head}{'' if ctx.zh else ' '}{text}")


def _article(word: str) -> str:
    return "an" if word[:1].casefold() in "aeiou" else "a"


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
        raise
    lead = ctx.scope.session.get(Lead, quote.lead_id)
    assert lead is not None
    actor = ctx.scope.actor.name
    at = ctx.clock(ctx.scope.now)
    requester = ctx.scope.session.get(Member, quote.requester_id)
    if not approve:
        text = ctx.pick("❌ Q{q} rejected by {who} · {at}: {why}", "❌ Q{q} 已被 {who} 驳回 · {at}：{why}",
                        q=quote.number, who=actor, at=at, why=note)
    elif decision.finished:
        text = ctx.pick("✅ Q{q} approved by {who} · {at}", "✅ Q{q} 已由 {who} 同意 · {at}", q=quote.number, who=actor, at=at)
        if note:
            text += f" — {note}"
    else:
        assert decision.next_step is not None
        approvers = _ask(ctx, quote, lead, decision.next_step)
        text = ctx.pick("✅ Q{q}: approved by {who} · {at}. Now waiting for {a} {role} — asked {names}.",
                        "✅ Q{q}：{who} 已同意 · {at}。等待{role}审批，已通知 {names}。",
                        q=quote.number, who=actor, at=at, role=ctx.role_label(decision.next_step.role),
                        a=_article(ctx.role_label(decision.next_step.role)),
                        names=", ".join(a.name for a in approvers) or ctx.t("word.none"))
    if requester and (decision.finished or not approve):
        ctx.notify(requester, kind="decision", key=f"decision:{quote.id}:{quote.version}:{requester.id}",
                   reply=Reply(text=f"{text}\nL{lead.number} {lead.name} · {_amount_text(ctx, quote)}"))
    return Reply(text=text)


def _already(ctx: Ctx, quote: Quote) -> DomainError:
    if quote.decided_by_id is None:
        return DomainError("quote.auto_approved", quote=quote.number)
    return DomainError("quote.already_decided", quote=quote.number, status=ctx.t(f"status.{quote.status}"),
                       by=ctx.member_name(quote.decided_by_id), at=ctx.clock(quote.decided_at))


def list_(ctx: Ctx, args: Args) -> Reply:
    pending = any(word.casefold() in ("pending", "待审批", "待办", "waiting") for word in args.words)
    for word in args.words:
        if word.casefold() not in ("pending", "待审批", "待办", "waiting", "all", "全部"):
            raise UsageError("usage.bad_choice", text=word, choices="pending, all")
    rows = quotes.list_quotes(ctx.scope, pending_only=pending)
    title = ctx.pick("Quotes waiting", "待审批报价") if pending else ctx.pick("Quotes", "报价")
    if not rows:
        return Reply(text=ctx.pick("{t}: none.", "{t}：暂无。", t=title))
    session = ctx.scope.session
    table = [[ctx.pick("Quote", "报价"), ctx.pick("Lead", "线索"), ctx.pick("Amount", "金额"),
              ctx.pick("By", "申请人"), ctx.pick("Status", "状态")]]
    buttons = []
    for quote in rows:
        lead = session.get(Lead, quote.lead_id)
        status = ctx.t(f"status.{quote.status}")
        step = quotes.current_step(session, quote)
        if step:
            status += f" ({ctx.role_label(step.role)})"
        table.append([f"Q{quote.number}", ctx.lead_label(lead) if lead else "-", _amount_text(ctx, quote),
                      ctx.member_name(quote.requester_id), status])
        may_decide = (step is not None and quote.requester_id != ctx.scope.actor.id
                      and rank(ctx.scope.actor) >= ROLE_RANK[step.role])  # no button that can only say no
        if pending and may_decide and len(buttons) < 6:
            buttons += ctx.quote_buttons(quote)
    return Reply(text=f"**{title}** — {len(rows)}", table=table, buttons=buttons)
