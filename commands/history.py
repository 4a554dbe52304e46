"""A lead's history in people's words: each audit event as one sentence in the reader's language."""

from __future__ import annotations

from datetime import date
from typing import Any

from commands import names
from commands.context import Ctx
from models.tables import AuditEvent

# Bookkeeping columns an event records that say nothing to a person.
_HIDDEN = {
    "last_activity_at",
    "version",
    "closed_at",
    "followup_id",
    "stage_changed_at",
    "norm_phone",
    "norm_email",
    "norm_company",
    "created_at",
}


def who(ctx: Ctx, event: AuditEvent) -> str:
    """Who acted: a member, or the bot itself (a reminder scan, an import run by the operator)."""
    if event.actor_id is not None:
        return ctx.member_name(event.actor_id)
    if event.action == "import":
        return ctx.pick("import", "导入")
    return ctx.pick("dealbot", "系统")


def value(ctx: Ctx, key: str, raw: object) -> str:
    """One recorded value as the reader reads it: names for owners, money, days, stage names."""
    if raw is None or raw == "":
        if key in ("owner_id", "owner"):
            return ctx.t("word.pool")  # no owner: the lead is in the pool
        return ctx.t("word.none")
    if key in ("value", "won_amount", "amount") and isinstance(raw, int):
        return ctx.money(raw)
    if key == "owner_id" and isinstance(raw, int):
        return ctx.member_name(raw)
    if key == "stage" and isinstance(raw, str):
        return ctx.stage_label(raw)
    if key == "status" and isinstance(raw, str):
        return ctx.t(f"status.{raw}")
    if key in ("next_followup_on", "snoozed_until", "next_due_on") and isinstance(raw, str):
        try:
            return ctx.day(date.fromisoformat(raw[:10]))
        except ValueError:
            return raw
    if isinstance(raw, list):
        return ("、" if ctx.zh else ", ").join(str(item) for item in raw)
    return str(raw)


def changes(ctx: Ctx, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What changed, field by field: `联系人：无 → 任总` / `contact: none → Mr Li`."""
    before, after = before or {}, after or {}
    parts = []
    for key, new in after.items():
        if key in _HIDDEN or (key in before and before[key] == new):
            continue
        label = names.LEAD_FIELDS.label(
            key.removesuffix("_id") if key == "owner_id" else key, ctx.locale
        )
        if key in before:
            parts.append(
                ctx.pick(
                    "{f}: {a} → {b}",
                    "{f}：{a} → {b}",
                    f=label,
                    a=value(ctx, key, before[key]),
                    b=value(ctx, key, new),
                )
            )
        else:
            parts.append(ctx.pick("{f} {b}", "{f} {b}", f=label, b=value(ctx, key, new)))
    return ("；" if ctx.zh else "; ").join(parts)


def sentence(ctx: Ctx, event: AuditEvent) -> str:
    """What happened, as a sentence without its subject (the table names who and when)."""
    before, after = event.before or {}, event.after or {}
    action = event.action
    say = ctx.pick
    if action == "add":
        text = say(
            "added it (owner {o}, stage {s})",
            "新建线索（负责人 {o}，阶段 {s}）",
            o=value(ctx, "owner_id", after.get("owner_id")),
            s=value(ctx, "stage", after.get("stage")),
        )
        if after.get("duplicate_of"):
            text += say(
                ", though it looked like {refs}",
                "，与 {refs} 疑似撞单仍添加",
                refs=", ".join(f"L{n}" for n in after["duplicate_of"]),
            )
        return text
    if action == "import":
        owner = value(ctx, "owner_id", after.get("owner_id"))
        if after.get("file"):
            return say(
                "imported from {file}, row {row} (owner {o})",
                "从 {file} 第 {row} 行导入（负责人 {o}）",
                file=after["file"],
                row=after.get("row", "?"),
                o=owner,
            )
        return say("imported (owner {o})", "导入（负责人 {o}）", o=owner)
    if action == "merge":
        return say("an import filled in {c}", "导入时补充：{c}", c=changes(ctx, None, after))
    if action == "stage":
        return say(
            "moved it from {a} to {b}",
            "阶段：{a} → {b}",
            a=value(ctx, "stage", before.get("stage")),
            b=value(ctx, "stage", after.get("stage")),
        )
    if action == "assign":
        return say(
            "gave it to {b} (was {a})",
            "分配给 {b}（原负责人 {a}）",
            a=value(ctx, "owner_id", before.get("owner_id")),
            b=value(ctx, "owner_id", after.get("owner_id")),
        )
    if action == "claim":
        return say("claimed it from the pool", "从公海领取")
    if action == "release":
        return say("released it to the pool", "释放到公海")
    if action == "pool_return":
        return say(
            "returned it to the pool from {a}: untouched {d} days",
            "{d} 天未跟进，从 {a} 退回公海",
            a=value(ctx, "owner_id", before.get("owner_id")),
            d=after.get("untouched_days", "?"),
        )
    if action == "handoff":
        return say(
            "handed over from {a} to {b}",
            "交接：{a} → {b}",
            a=before.get("owner", "?"),
            b=after.get("owner", "?"),
        )
    if action == "won":
        return say("won it: {v}", "赢单：{v}", v=value(ctx, "won_amount", after.get("won_amount")))
    if action == "lost":
        return say("lost it: {r}", "输单：{r}", r=after.get("lost_reason") or "-")
    if action == "edit":
        return say("changed {c}", "修改了 {c}", c=changes(ctx, before, after))
    if action == "snooze":
        return say(
            "snoozed its nudges until {d}",
            "暂缓提醒至 {d}",
            d=value(ctx, "snoozed_until", after.get("snoozed_until")),
        )
    if action == "followup":
        planned = after.get("next_followup_on")
        if planned and planned != before.get("next_followup_on"):
            return say(
                "logged a follow-up; next {d}",
                "记录跟进，下次跟进 {d}",
                d=value(ctx, "next_followup_on", planned),
            )
        if not planned and before.get("next_followup_on"):
            return say(
                "logged a follow-up and cleared the next date", "记录跟进，并清除了下次跟进日期"
            )
        return say("logged a follow-up", "记录跟进")
    if action == "plan":
        return say(
            "planned the next follow-up for {d}",
            "约定下次跟进：{d}",
            d=value(ctx, "next_followup_on", after.get("next_followup_on")),
        )
    if action == "quote":
        return say("asked for a quote", "提交报价")
    if action == "care":
        return say("logged a care visit", "记录回访")
    if action == "grade":
        return say("graded the customer {g}", "客户等级设为 {g}", g=after.get("grade") or "-")
    if action == "care_scheduled":
        return say(
            "planned care for {d}",
            "安排回访：{d}",
            d=value(ctx, "next_due_on", after.get("next_due_on")),
        )
    if action == "transfer_ask":
        return say(
            "asked to take it over from {o}: {r}",
            "申请从 {o} 接手：{r}",
            o=after.get("owner") or ctx.t("word.pool"),
            r=after.get("reason") or "-",
        )
    if action == "transfer":
        return say(
            "handed it to {b} as asked", "同意转移，转给 {b}", b=after.get("requester") or "?"
        )
    if action in ("transfer_rejected", "transfer_cancelled"):
        note = after.get("note")
        text = (
            say("turned down the request to take it over", "驳回了转移申请")
            if action == "transfer_rejected"
            else say("withdrew the request to take it over", "撤回了转移申请")
        )
        return text + (say(": {n}", "：{n}", n=note) if note else "")
    if action == "transfer_stale":
        return say(
            "closed the request to take it over: the lead was settled",
            "转移申请已关闭：线索已结束或退回公海",
        )
    if action == "transfer_escalate":
        return say(
            "passed the request to take it over to {to} after {h}h",
            "转移申请等待 {h} 小时，已转给 {to} 决定",
            to=("、" if ctx.zh else ", ").join(after.get("to") or []) or "-",
            h=after.get("waited_hours", "?"),
        )
    if action == "forget":
        erased = names.LEAD_FIELDS.labels(ctx.locale, after.get("erased") or [])
        redacted = sum(int(n) for n in (after.get("redacted") or {}).values())
        text = say(
            "erased the customer's personal data ({f})",
            "删除了客户的个人信息（{f}）",
            f=erased or ctx.t("word.none"),
        )
        if redacted:
            text += say(
                ", and removed it from {n} other records", "，并从另外 {n} 条记录中抹去", n=redacted
            )
        return text
    shown = changes(ctx, before, after)
    return f"{action} {shown}".strip()
