"""`/contract` (`/合同`), `/plan` (`/回款计划`), `/paid` (`/回款`), `/receivables` (`/应收`) and
`/care` (`/回访`): the deal after the signature, worded for chat. The rules live in
`models.aftersale`."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_

import wording
from commands.args import Args
from commands.context import Ctx, UsageError, decimal_to_minor
from commands.followups import VIA
from commands.parsing_values import parse_amount, parse_date, parse_percent
from commands.quotes import tell_settled
from commands.types import Button, Reply
from models import aftersale, leads
from models.aftersale import AGEING, AftersaleDigest, Contract, Instalment, PlanItem
from models.config import TeamConfig
from models.errors import DomainError
from models.permissions import rank, visible_leads
from models.tables import Lead
from wording import N_

T = TypeVar("T")

# Option keys as typed (Chinese included) → the contract field they set.
CONTRACT_KEYS = {
    "signed": "signed_on", "签订": "signed_on", "签约": "signed_on",
    "start": "start_on", "开始": "start_on",
    "end": "end_on", "结束": "end_on", "到期": "end_on",
    "delivered": "delivered_on", "交付": "delivered_on",
    "accepted": "accepted_on", "验收": "accepted_on",
    "no": "contract_no", "编号": "contract_no", "合同号": "contract_no",
    "amount": "amount", "value": "amount",  # 金额= arrives as value=
}
CONTRACT_OPTIONS = frozenset(CONTRACT_KEYS)
# Each contract field as a reader sees it, in the order a card shows them.
CONTRACT_LABELS = {
    "contract_no": N_("No."), "amount": N_("Amount"), "signed_on": N_("Signed"),
    "start_on": N_("Starts"), "end_on": N_("Ends"),
    "delivered_on": N_("Delivered"), "accepted_on": N_("Accepted"),
}
GRADE_KEYS = ("grade", "等级", "级别")
CARE_OPTIONS = frozenset({*GRADE_KEYS, "via"})

MILESTONE_WORDS = {
    "signing": "signing", "sign": "signing", "signed": "signing",
    "签约": "signing", "签订": "signing", "签署": "signing",
    "start": "start", "开始": "start", "启动": "start",
    "delivery": "delivery", "delivered": "delivery", "交付": "delivery", "上线": "delivery",
    "acceptance": "acceptance", "accepted": "acceptance", "验收": "acceptance",
    "end": "end", "到期": "end", "结束": "end",
}
MILESTONE_LABELS = {"signing": N_("signing"), "start": N_("start"),
                    "delivery": N_("delivery"), "acceptance": N_("acceptance"),
                    "end": N_("end")}
RECEIVABLE_FILTERS = {"mine": "mine", "my": "mine", "我的": "mine",
                      "team": "team", "all": "team", "团队": "team", "全部": "team",
                      "overdue": "overdue", "逾期": "overdue", "超期": "overdue"}
_PAST_WORDS = {"yesterday": 1, "昨天": 1, "昨日": 1, "前天": 2}
_CONTRACT_REF = re.compile(r"^[Cc#]?(\d{1,9})$")
_ITEM = re.compile(r"^([^@]+)@(.+)$")
_MONEY_PARAMS = ("sum", "total", "diff")
# Domain refusals that mean the typed plan was wrong: answered with the verb's form, like a typo.
_PLAN_MISTAKES = ("plan.empty", "plan.too_many", "plan.not_100", "plan.not_total", "plan.mixed",
                  "plan.zero")
MAX_ROWS = 15


# --- reading what was typed ----------------------------------------------------------------------

def contract_number(ctx: Ctx, token: str | None) -> int:
    if not token:
        raise UsageError("usage.missing", what=ctx.t("what.contract"))
    match = _CONTRACT_REF.match(token.strip())
    if not match:
        raise UsageError("usage.bad_contract_ref", text=token)
    return int(match.group(1))


def parse_plan(words: list[str], today: date) -> list[PlanItem]:
    """`30%@signing 40%@2026-12-31 30%@验收` or `50万@2026-12-31 …` → plan items (whether they add
    up is the domain's rule)."""
    tokens = re.sub(r"\s*@\s*", "@", " ".join(words)).split()
    if not tokens:
        raise UsageError("plan.empty")
    items = []
    for token in tokens:
        match = _ITEM.match(token)
        if not match:
            raise UsageError("plan.bad_item", text=token)
        share_text, when = match.groups()
        share = amount = None
        if share_text.endswith(("%", "％")):
            share = parse_percent(share_text)
            if share is None:
                raise UsageError("usage.bad_percent", text=share_text)
        else:
            value = parse_amount(share_text)
            if value is None or value <= 0:
                raise UsageError("usage.bad_amount", text=share_text)
            amount = decimal_to_minor(value)
        milestone = MILESTONE_WORDS.get(when.casefold())
        due_on = None if milestone else parse_date(when, today)
        if milestone is None and due_on is None:
            raise UsageError("plan.bad_when", text=when)
        items.append(PlanItem(share=share, amount=amount, due_on=due_on, milestone=milestone))
    return items


def past_date(text: str, today: date) -> date | None:
    """A day that has happened: `yesterday`/`昨天` too, and `11/20` is the latest 20 Nov, not next
    year's."""
    word = text.strip().casefold()
    if word in _PAST_WORDS:
        return today - timedelta(days=_PAST_WORDS[word])
    value = parse_date(text, today)
    if (value is None or value > today) and not re.search(r"\d{4}", text):
        # A month and day without a year, read from a year back, gives its latest past date.
        a_year_ago = (today.replace(day=28) if (today.month, today.day) == (2, 29) else today)
        earlier = parse_date(text, a_year_ago.replace(year=today.year - 1) + timedelta(days=1))
        same_day = value is None or (earlier is not None
                                     and (earlier.month, earlier.day) == (value.month, value.day))
        if earlier is not None and earlier <= today and same_day:  # not relative words: +3d, fri
            value = earlier
    return value


def nearest_date(text: str, today: date) -> date | None:
    """A contract date may be past or planned: `11/20` is the one nearest to today."""
    ahead, back = parse_date(text, today), past_date(text, today)
    if ahead is None or back is None:
        return ahead or back
    return back if (today - back) <= (ahead - today) else ahead


def _contract_facts(ctx: Ctx, args: Args) -> dict[str, Any]:
    """The contract fields typed as options, validated."""
    if args.unknown:
        raise UsageError("usage.unknown_option", key=args.unknown[0][0],
                         known="signed= start= end= delivered= accepted= no=")
    facts: dict[str, Any] = {}
    for key, text in args.options.items():
        column = CONTRACT_KEYS[key]
        if column == "contract_no":
            facts[column] = ctx.bounded(text, what="what.field", limit=64) or None
        elif column == "amount":
            facts[column] = ctx.amount(text)
        else:
            value = nearest_date(text, ctx.scope.today)
            if value is None:
                raise UsageError("usage.bad_date", text=text)
            facts[column] = value
    return facts


def _worded(ctx: Ctx, call: Callable[[], T]) -> T:
    """Run a domain call; word its refusal's money and dates for this reader."""
    try:
        return call()
    except UsageError:
        raise
    except DomainError as error:
        params = {key: ctx.money(value) if key in _MONEY_PARAMS and isinstance(value, int)
                  else day(ctx, value) if isinstance(value, date)
                  else ctx.t(f"status.{value}") if key == "status" else value
                  for key, value in error.params.items()}
        kind = UsageError if error.key in _PLAN_MISTAKES else DomainError
        raise kind(error.key, **params) from error


# --- wording -------------------------------------------------------------------------------------

def day(ctx: Ctx, value: date) -> str:
    """A date, with its year when it is not this year's."""
    return ctx.day(value)


def _due(ctx: Ctx, instalment: Instalment) -> str:
    milestone = MILESTONE_LABELS.get(instalment.milestone or "")
    if instalment.due_on is None:
        return ctx.say("on {m}", m=ctx.say(milestone)) if milestone else "-"
    text = day(ctx, instalment.due_on)
    return text + ctx.say(" ({m})", m=ctx.say(milestone)) if milestone else text



def _pay_button(ctx: Ctx, contract: Contract) -> Button:
    return Button(label=ctx.say("Record payment C{c}", c=contract.number),
                  command=f"{ctx.say('/paid')} C{contract.number} ", style="primary")


def _plan_button(ctx: Ctx, contract: Contract) -> Button:
    return Button(label=ctx.say("Payment plan"),
                  command=f"{ctx.say('/plan')} C{contract.number} ", style="primary")


def _plan_table(ctx: Ctx, instalments: list[Instalment]) -> list[list[str]]:
    table = [["#", ctx.say("Due"), ctx.say("Amount"), ctx.say("Paid")]]
    for item in instalments:
        share = ctx.say(" ({p}%)", p=item.share) if item.share else ""
        paid = "✅" if item.status == "paid" else ctx.money(item.paid) if item.paid else "-"
        table.append([str(item.seq), _due(ctx, item), ctx.money(item.amount) + share, paid])
    return table


def _fact(ctx: Ctx, column: str, value: Any) -> str:
    if isinstance(value, date):
        return day(ctx, value)
    return ctx.money(value) if column == "amount" else str(value)


# --- /contract -----------------------------------------------------------------------------------

def contract(ctx: Ctx, args: Args) -> Reply:
    """`/contract L3 500k signed=… end=… no=…` records a contract; `/contract C2 [key=value …]`
    shows or changes one."""
    token = args.words[0] if args.words else None
    if token and token[:1] in "Cc" and _CONTRACT_REF.match(token):
        changes = args.options or args.unknown or len(args.words) > 1
        return edit(ctx, args) if changes else show(ctx, args)
    lead = leads.get_lead(ctx.scope, ctx.lead_number(token))
    facts = _contract_facts(ctx, args)
    if len(args.words) > 2:
        raise UsageError("usage.bad_choice", text=args.words[2], choices="signed= start= end= no=")
    typed = facts.pop("amount", None)
    amount = ctx.amount(args.words[1]) if len(args.words) > 1 else typed
    made, won_now = _worded(ctx, lambda: aftersale.add_contract(ctx.scope, lead, amount=amount,
                                                                **facts))
    text = ctx.say(
        "📄 C{c} for L{n} {name}: {amount} · signed {signed}",
        c=made.number,
        n=lead.number,
        name=lead.name,
        amount=ctx.money(made.amount),
        signed=day(ctx, made.signed_on),
    )
    if made.end_on:
        text += ctx.say(" · ends {d}", d=day(ctx, made.end_on))
    if made.contract_no:
        text += ctx.say(" · no. {no}", no=made.contract_no)
    if won_now:
        text += "\n" + ctx.say("🏆 L{n} is won.", n=lead.number)
        settled = tell_settled(ctx, lead)
        text += f"\n{settled}" if settled else ""
    text += "\n" + ctx.say("Next: the payment plan.")
    return Reply(text=text, buttons=[_plan_button(ctx, made)])


def show(ctx: Ctx, args: Args) -> Reply:
    """`/contract show C2`: the contract, its plan, what came in and what is still owed."""
    number = contract_number(ctx, args.words[0] if args.words else None)
    item, lead = _worded(ctx, lambda: aftersale.visible_contract(ctx.scope, number))
    session = ctx.scope.session
    money = aftersale.balance(session, item)
    text = ctx.say(
        "📄 **C{c} · L{n} {name}** · {amount} · owner {owner}",
        c=item.number,
        n=lead.number,
        name=lead.name,
        amount=ctx.money(item.amount),
        owner=ctx.member_name(lead.owner_id),
    )
    fields = [(ctx.say(label), _fact(ctx, column, getattr(item, column)))
              for column, label in CONTRACT_LABELS.items()
              if column != "amount" and getattr(item, column) is not None]
    fields.append((ctx.say("Received"), ctx.money(money.received)))
    if money.planned:
        fields.append((ctx.say("Outstanding"), ctx.money(money.outstanding)))
    if money.credit:
        fields.append((ctx.say("Credit (paid beyond the plan)"),
                       ctx.money(money.credit)))
    plan = aftersale.instalments_of(session, item)
    if not plan:
        text += "\n" + ctx.say("No payment plan yet.")
        return Reply(text=text, fields=fields, buttons=[_plan_button(ctx, item)])
    buttons = [_pay_button(ctx, item)] if money.outstanding else []
    return Reply(text=text, fields=fields, table=_plan_table(ctx, plan), buttons=buttons)


def edit(ctx: Ctx, args: Args) -> Reply:
    """`/contract edit C2 delivered=today end=2027-11-30`: change its dates, number or amount."""
    number = contract_number(ctx, args.words[0] if args.words else None)
    facts = _contract_facts(ctx, args)
    if len(args.words) > 1:
        raise UsageError("usage.bad_choice", text=args.words[1],
                         choices="signed= start= end= delivered= accepted= no=")
    if not facts:
        raise UsageError("usage.missing", what=ctx.say("what to change, like delivered=today"))
    item, lead = _worded(ctx, lambda: aftersale.changeable_contract(ctx.scope, number))
    _worded(ctx, lambda: aftersale.edit_contract(ctx.scope, item, lead, facts))
    shown = " · ".join(f"{ctx.say(CONTRACT_LABELS[column])} {_fact(ctx, column, value)}"
                       for column, value in facts.items())
    return Reply(text=ctx.say("✏️ C{c} updated: {s}", c=item.number, s=shown))


# --- /plan ---------------------------------------------------------------------------------------

def plan(ctx: Ctx, args: Args) -> Reply:
    """`/plan C2 30%@signing 40%@2026-12-31 30%@acceptance` sets the instalments; `/plan C2` shows
    them."""
    number = contract_number(ctx, args.words[0] if args.words else None)
    if len(args.words) < 2:
        return show(ctx, args)
    items = parse_plan(args.words[1:], ctx.scope.today)
    item, lead = _worded(ctx, lambda: aftersale.changeable_contract(ctx.scope, number))
    instalments = _worded(ctx, lambda: aftersale.set_plan(ctx.scope, item, lead, items))
    text = ctx.say_n(
        "🗓 C{c} payment plan: {n} instalment, {total}",
        "🗓 C{c} payment plan: {n} instalments, {total}",
        len(instalments),
        c=item.number,
        total=ctx.money(item.amount),
    )
    return Reply(text=text, table=_plan_table(ctx, instalments), buttons=[_pay_button(ctx, item)])


# --- /paid ---------------------------------------------------------------------------------------

def paid(ctx: Ctx, args: Args) -> Reply:
    """`/paid C2 150000 [date] [note]`: money received, settled against the oldest open
    instalments."""
    number = contract_number(ctx, args.words[0] if args.words else None)
    amount = ctx.amount(args.words[1] if len(args.words) > 1 else None)
    rest = args.words[2:]
    today = ctx.scope.today
    paid_on = past_date(rest[0], today) if rest else None
    if paid_on is not None:
        rest = rest[1:]
    note = ctx.bounded(" ".join(rest).strip(), what="what.note") or None
    item, lead = _worded(ctx, lambda: aftersale.changeable_contract(ctx.scope, number))
    result = _worded(ctx, lambda: aftersale.record_payment(ctx.scope, item, lead, amount=amount,
                                                           paid_on=paid_on or today, note=note))
    lines = [ctx.say(
        "💰 C{c} · L{n} {name}: {amount} received {d}",
        c=item.number,
        n=lead.number,
        name=lead.name,
        amount=ctx.money(amount),
        d=day(ctx, result.payment.paid_on),
    )]
    for instalment, part in result.parts:
        left = instalment.amount - instalment.paid
        lines.append(ctx.say(
            "→ #{k} {part}: partly paid, {left} still due",
            k=instalment.seq,
            part=ctx.money(part),
            left=ctx.money(left),
        ) if left else
                     ctx.say("→ #{k} {part}: paid ✅", k=instalment.seq, part=ctx.money(part)))
    if result.payment.unapplied:
        lines.append(ctx.say(
            "⚠️ {x} more than the plan asked for — kept as credit on C{c}.",
            x=ctx.money(result.payment.unapplied),
            c=item.number,
        ))
    if not result.outstanding:
        lines.append(ctx.say("✅ C{c} is fully paid.", c=item.number))
        return Reply(text="\n".join(lines))
    line = ctx.say("Outstanding {o}", o=ctx.money(result.outstanding))
    upcoming = aftersale.balance(ctx.scope.session, item).next_due
    if upcoming:
        line += ctx.say(
            " · next: #{k} {a} due {d}",
            k=upcoming.seq,
            a=ctx.money(upcoming.amount - upcoming.paid),
            d=_due(ctx, upcoming),
        )
    return Reply(text="\n".join([*lines, line]), buttons=[_pay_button(ctx, item)])


# --- /receivables --------------------------------------------------------------------------------

def receivables(ctx: Ctx, args: Args) -> Reply:
    """`/receivables [mine|team] [overdue]`: what is owed, earliest due first, with ageing."""
    scope = ctx.scope
    which, overdue = ("mine" if rank(scope.actor) == 0 else "team"), False
    for word in args.words:
        chosen = RECEIVABLE_FILTERS.get(word.casefold())
        if chosen is None:
            raise UsageError("usage.bad_choice", text=word, choices="mine, team, overdue")
        if chosen == "overdue":
            overdue = True
        else:
            which = chosen
    lead_filter = visible_leads(scope.actor)
    if which == "mine":
        lead_filter = and_(lead_filter, Lead.owner_id == scope.actor.id)
    today = scope.today
    items = aftersale.open_receivables(scope.session, team_id=scope.team.id or 0,
                                       lead_filter=lead_filter,
                                       due_before=today if overdue else None)
    title = ctx.say("Your receivables") if which == "mine" else ctx.say("Team receivables")
    if overdue:
        title += ctx.say(" · overdue")
    if not items:
        return Reply(text=ctx.say("💼 {t}: nothing owed.", t=title))
    ages = aftersale.ageing(items, today)
    due_now = sum(ages.values())
    lines = [ctx.say(
        "💼 **{t}** — {total} open · {due} due",
        t=title,
        total=ctx.money(sum(i.owed for i in items)),
        due=ctx.money(due_now),
    )]
    if due_now:
        lines.append(ctx.say("Ageing (days) ") + " · ".join(
            f"{label} {ctx.money(ages[label])}" for _low, _high, label in AGEING))
    table = [[ctx.say("Contract"), "#", ctx.say("Due"),
              ctx.say("Owed"), ctx.say("Owner"), ctx.say("Late")]]
    buttons: list[Button] = []
    offered: set[int] = set()
    for entry in items[:MAX_ROWS]:
        days = entry.days_overdue(today)
        late = ("-" if days is None else ctx.say("today") if days == 0
                else ctx.say("{d}d", d=days))
        table.append([f"C{entry.contract.number} {entry.lead.name}", str(entry.instalment.seq),
                      _due(ctx, entry.instalment), ctx.money(entry.owed),
                      ctx.member_name(entry.lead.owner_id), late])
        if days and len(offered) < 3 and entry.contract.number not in offered:
            offered.add(entry.contract.number)
            buttons.append(_pay_button(ctx, entry.contract))
    if len(items) > MAX_ROWS:
        lines.append(ctx.say("… and {k} more", k=len(items) - MAX_ROWS))
    return Reply(text="\n".join(lines), table=table, buttons=buttons)


def snooze(ctx: Ctx, args: Args) -> Reply:
    """`/receivables snooze C2 3d`: no overdue-payment nudges about C2 for three days; they resume
    on the day named."""
    number = contract_number(ctx, args.words[0] if args.words else None)
    until = ctx.date(" ".join(args.words[1:]).strip() or "1d")
    item, lead = _worded(ctx, lambda: aftersale.changeable_contract(ctx.scope, number))
    _worded(ctx, lambda: aftersale.snooze_contract(ctx.scope, item, lead, until))
    return Reply(text=ctx.say(
        "😴 C{c} · {name}: payment nudges resume {d}.",
        c=item.number,
        name=lead.name,
        d=day(ctx, until),
    ))


# --- /care ---------------------------------------------------------------------------------------

def care(ctx: Ctx, args: Args) -> Reply:
    """`/care L3 <note> [grade=A|B|C] [via=…]`: an after-sales contact (回访) and/or the customer's
    grade."""
    lead = leads.get_lead(ctx.scope, ctx.lead_number(args.words[0] if args.words else None))
    note = ctx.bounded(" ".join(args.words[1:]).strip(), what="what.note") or None
    typed_grade = next((args.options[key] for key in GRADE_KEYS if key in args.options), None)
    grade = typed_grade.strip().upper() if typed_grade is not None else None
    if typed_grade is not None and grade not in aftersale.GRADES:
        raise UsageError("usage.bad_grade", text=typed_grade)
    via = None
    if "via" in args.options:
        via = VIA.get(args.options["via"].casefold())
        if via is None:
            raise UsageError("usage.bad_via", text=args.options["via"])
    if note is None and grade is None:
        raise UsageError("usage.missing", what=ctx.t("what.note"))
    due = _worded(ctx, lambda: aftersale.log_care(ctx.scope, lead, note=note, via=via, grade=grade))
    shown = lead.grade or ctx.scope.config.care_default_grade
    if note:
        head = ctx.say("🤝 L{n} {name}: care logged. ", n=lead.number, name=lead.name)
    else:
        head = ctx.say("🏷 L{n} {name} is grade {g} now. ", n=lead.number, name=lead.name, g=shown)
    every = aftersale.care_interval(ctx.scope.config, lead.grade)
    return Reply(text=head + ctx.say(
        "Next care: {d} (grade {g}, every {k} days).",
        d=day(ctx, due),
        g=shown,
        k=every,
    ))


# --- pieces other verbs show ---------------------------------------------------------------------

def lead_fields(ctx: Ctx, lead: Lead) -> list[tuple[str, str]]:
    """What `/lead show` adds: each contract's money, and a customer's grade and next care."""
    session = ctx.scope.session
    fields = []
    for item in aftersale.lead_contracts(session, lead):
        money = aftersale.balance(session, item)
        value = ctx.say("{a} · received {r}", a=ctx.money(item.amount), r=ctx.money(money.received))
        value += (ctx.say(" · outstanding {o}", o=ctx.money(money.outstanding))
                  if money.planned else ctx.say(" · no plan yet"))
        if item.end_on:
            value += ctx.say(" · ends {d}", d=day(ctx, item.end_on))
        fields.append((ctx.say("Contract C{c}", c=item.number), value))
    if lead.status == "won":
        due = aftersale.next_care_due(session, ctx.scope.config, lead)
        fields.append((ctx.say("Care"), ctx.say(
            "grade {g} · next {d}",
            d=day(ctx, due),
            g=lead.grade or ctx.scope.config.care_default_grade,
        )))
    return fields


def digest_lines(extra: AftersaleDigest | None, *, locale: str, config: TeamConfig,
                 kind: str) -> list[str]:
    """The digest's after-sales lines: money in against the plan, overdue by owner with ageing,
    renewals, customers past their care interval. Nothing when there is nothing to say."""
    if extra is None or extra.empty:
        return []

    def say(msgid: str, /, **params: object) -> str:
        return wording.say(locale, msgid, **params)

    def money(minor: int) -> str:
        return wording.money(minor, config.currency_for(locale), locale)

    lines = []
    # Only what says something: a day with nothing planned or paid and everything due already paid
    # has no money line.
    money_parts = []
    if extra.collected or extra.planned:
        when = {"today": N_("today"), "week": N_("this week"),
                "month": N_("this month")}[kind]
        part = say(
            "Collected {when} {c} / plan {p}",
            when=say(when, context="commands.aftersale"),
            c=money(extra.collected),
            p=money(extra.planned),
        )
        if extra.collected_pct is not None:
            part += say(" ({p}%)", p=extra.collected_pct)
        money_parts.append(part)
    if extra.collection_rate is not None and (money_parts or extra.collection_rate < 100):
        # A second population (everything due so far, not the period's plan): said in words so
        # "37% of plan" and "100% paid" do not read as a contradiction.
        money_parts.append(
            say("of all that fell due so far, {r}% is paid", r=extra.collection_rate)
        )
    if extra.dso is not None:
        money_parts.append(say("DSO {d} days", d=extra.dso))
    if money_parts:
        lines.append("💰 " + " · ".join(money_parts))
    if extra.overdue_total:
        parts = []
        for row in extra.overdue_by_owner:
            ages = say(", ").join(f"{label} {money(amount)}"
                                        for label, amount in row.buckets.items() if amount)
            parts.append(say("{o} {t} ({a})", o=row.owner, t=money(row.total), a=ages))
        overdue = say("💸 Overdue receivables {t}: ", t=money(extra.overdue_total))
        lines.append(overdue + " | ".join(parts))
    if extra.renewals_total:
        items = " · ".join(say(
            "C{c} {name} ({owner}, ends {d})",
            c=contract.number,
            name=lead.name,
            owner=owner,
            d=wording.day(contract.end_on, locale) if contract.end_on else "-",
        )
                           for contract, lead, owner in extra.renewals)
        more = " · …" if extra.renewals_total > len(extra.renewals) else ""
        lines.append(say("🔁 Renewals due {n}: ", n=extra.renewals_total)
                     + items + more)
    if extra.care_total:
        items = " · ".join(say(
            "L{n} {name} ({owner}, {g}, {d}d)",
            n=due.lead.number,
            name=due.lead.name,
            owner=due.owner,
            g=due.lead.grade or config.care_default_grade,
            d=due.days,
        )
                           for due in extra.care)
        more = " · …" if extra.care_total > len(extra.care) else ""
        lines.append(say("🤝 Customers without care {n}: ", n=extra.care_total) + items + more)
    return lines
