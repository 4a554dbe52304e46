"""`/help [verb]` (`/帮助`): usage and an example for every verb, read from the registry itself."""

from __future__ import annotations

import re

import wording
from commands.args import Args
from commands.context import Ctx
from commands.registry import Verb
from commands.types import Reply
from models import leads


def personal_example(ctx: Ctx, verb: Verb) -> str:
    """The verb's example with the reader's own newest lead and quote ids, where they have any."""
    example = verb.example(ctx.locale)
    lead, quote = leads.latest_numbers(ctx.scope)
    if lead is not None:
        example = re.sub(r"\bL\d+\b", f"L{lead}", example)
    if quote is not None:
        example = re.sub(r"\bQ\d+\b", f"Q{quote}", example)
    return example


def did_you_mean(ctx: Ctx, word: str) -> str:
    """` Did you mean /lead?` for a mistyped command word, in the reader's words; else nothing."""
    from commands import closest_family

    family = closest_family(word)
    if family is None:
        return ""
    name = family.words[1] if ctx.zh and len(family.words) > 1 else family.name
    return ctx.t("usage.did_you_mean", command=f"/{name}")


def help_(ctx: Ctx, args: Args) -> Reply:
    from commands import FAMILIES, VERBS, find_family

    if args.words:
        family = find_family(args.words[0].lstrip("/"))
        if family is not None:
            lines = [f"**/{family.words[1] if ctx.zh and len(family.words) > 1 else family.name}** — "
                     f"{family.summary(ctx.locale)}"]
            for verb in VERBS:
                if verb.family == family.name:
                    lines.append(f"· `{verb.usage(ctx.locale)}`")
                    example = personal_example(ctx, verb)
                    lines.append(f"  {ctx.t('usage.example', example=example)}")
            rules = f"help.rules.{family.name}"  # what the usage lines cannot say
            if wording.has(rules):
                lines.append(ctx.t(rules))
            return Reply(text="\n".join(lines), private=True)
    if args.words:  # a word that names no command: say so rather than answer as if none was asked
        lines = [ctx.t("usage.unknown_help", word=args.words[0][:40],
                       hint=did_you_mean(ctx, args.words[0]))]
    else:
        lines = [ctx.say("**dealbot** — what I can do (/help <command> for details):")]
    for family in FAMILIES:
        word = family.words[1] if ctx.zh and len(family.words) > 1 else family.name
        lines.append(f"· /{word} — {family.summary(ctx.locale)}")
    lines.append(ctx.say(
        "Dates: tomorrow, fri, next mon, +3d, 12/1; next week = next Monday. Amounts: 120k, 1.2m, "
        "120,000. Discounts: 5%, 8折 (= 20% off).",
    ))
    return Reply(text="\n".join(lines), private=True)
