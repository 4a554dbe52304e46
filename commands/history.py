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
        return ctx.say("import")
    return ctx.say("dealbot")


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
        return ctx.join(raw)
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
                ctx.say(
                    "{f}: {a} → {b}",
                    f=label,
                    a=value(ctx, key, before[key]),
                    b=value(ctx, key, new),
                )
            )
        else:
            parts.append(ctx.say("{f} {b}", f=label, b=value(ctx, key, new)))
    return ctx.join(parts, "parts")


def sentence(ctx: Ctx, event: AuditEvent) -> str:
    """What happened, as a sentence without its subject (the table names who and when)."""
    before, after = event.before or {}, event.after or {}
    action = event.action
    if action == "add":
        text = ctx.say(
            "added it (owner {o}, stage {s})",
            o=value(ctx, "owner_id", after.get("owner_id")),
            s=value(ctx, "stage", after.get("stage")),
        )
        if after.get("duplicate_of"):
            text += ctx.say(
                ", though it looked like {refs}",
                refs=", ".join(f"L{n}" for n in after["duplicate_of"]),
            )
        return text
    if action == "import":
        owner = value(ctx, "owner_id", after.get("owner_id"))
        if after.get("file"):
            return ctx.say(
                "imported from {file}, row {row} (owner {o})",
                file=after["file"],
                row=after.get("row", "?"),
                o=owner,
            )
        return ctx.say("imported (owner {o})", o=owner)
    if action == "merge":
        return ctx.say("an import filled in {c}", c=changes(ctx, None, after))
    if action == "stage":
        return ctx.say(
            "moved it from {a} to {b}",
            a=value(ctx, "stage", before.get("stage")),
            b=value(ctx, "stage", after.get("stage")),
        )
    if action == "assign":
        return ctx.say(
            "gave it to {b} (was {a})",
            a=value(ctx, "owner_id", before.get("owner_id")),
            b=value(ctx, "owner_id", after.get("owner_id")),
        )
    if action == "claim":
        return ctx.say("claimed it from the pool")
    if action == "release":
        return ctx.say("released it to the pool")
    if action == "pool_return":
        return ctx.say(
            "returned it to the pool from {a}: untouched {d} days",
            a=value(ctx, "owner_id", before.get("owner_id")),
            d=after.get("untouched_days", "?"),
        )
    if action == "handoff":
        return ctx.say(
            "handed over from {a} to {b}",
            a=before.get("owner", "?"),
            b=after.get("owner", "?"),
        )
    if action == "won":
        return ctx.say("won it: {v}", v=value(ctx, "won_amount", after.get("won_amount")))
    if action == "lost":
        return ctx.say("lost it: {r}", r=after.get("lost_reason") or "-")
    if action == "edit":
        return ctx.say("changed {c}", c=changes(ctx, before, after))
    if action == "snooze":
        return ctx.say(
            "snoozed its nudges; they resume {d}",
            d=value(ctx, "snoozed_until", after.get("snoozed_until")),
        )
    if action == "followup":
        planned = after.get("next_followup_on")
        if planned and planned != before.get("next_followup_on"):
            return ctx.say(
                "logged a follow-up; next {d}",
                d=value(ctx, "next_followup_on", planned),
            )
        if not planned and before.get("next_followup_on"):
            return ctx.say("logged a follow-up and cleared the next date")
        return ctx.say("logged a follow-up")
    if action == "plan":
        return ctx.say(
            "planned the next follow-up for {d}",
            d=value(ctx, "next_followup_on", after.get("next_followup_on")),
        )
    if action == "quote":
        return ctx.say("asked for a quote")
    if action == "care":
        return ctx.say("logged a care visit")
    if action == "grade":
        return ctx.say("graded the customer {g}", g=after.get("grade") or "-")
    if action == "care_scheduled":
        return ctx.say(
            "planned care for {d}",
            d=value(ctx, "next_due_on", after.get("next_due_on")),
        )
    if action == "transfer_ask":
        return ctx.say(
            "asked to take it over from {o}: {r}",
            o=after.get("owner") or ctx.t("word.pool"),
            r=after.get("reason") or "-",
        )
    if action == "transfer":
        return ctx.say("handed it to {b} as asked", b=after.get("requester") or "?")
    if action in ("transfer_rejected", "transfer_cancelled"):
        note = after.get("note")
        text = (
            ctx.say("turned down the request to take it over")
            if action == "transfer_rejected"
            else ctx.say("withdrew the request to take it over")
        )
        return text + (ctx.say(": {n}", n=note) if note else "")
    if action == "transfer_stale":
        return ctx.say("closed the request to take it over: the lead was settled")
    if action == "transfer_escalate":
        return ctx.say(
            "passed the request to take it over to {to} after {h}h",
            to=ctx.join(after.get("to") or []) or "-",
            h=after.get("waited_hours", "?"),
        )
    if action == "forget":
        erased = names.LEAD_FIELDS.labels(ctx.locale, after.get("erased") or [])
        redacted = sum(int(n) for n in (after.get("redacted") or {}).values())
        text = ctx.say("erased the customer's personal data ({f})", f=erased or ctx.t("word.none"))
        if redacted:
            text += ctx.say(", and removed it from {n} other records", n=redacted)
        return text
    shown = changes(ctx, before, after)
    return f"{action} {shown}".strip()
