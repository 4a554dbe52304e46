"""`/report export [leads|followups|quotes] [csv]` (`/报表 导出`): what you may see, as a file.

An Excel workbook with a sheet per kind (or one kind as CSV), headers in the reply's language. The
answer is private and the file goes only to the person who asked (their DM where the platform
has one), since it holds every customer they may see.
"""

from __future__ import annotations

from bot import exchange
from commands import names
from commands.args import Args
from commands.context import Ctx, UsageError
from commands.types import Attachment, Reply
from models.permissions import visible_leads

FORMATS = {"xlsx": "xlsx", "excel": "xlsx", "csv": "csv"}
_KIND_WORDS = names.Names(
    "export_kinds",
    names.Name("leads", "leads"),
    names.Name("followups", "follow-ups"),
    names.Name("quotes", "quotes"),
)


def export(ctx: Ctx, args: Args) -> Reply:
    scope = ctx.scope
    fmt, named = "xlsx", []
    for word in args.words:
        if word.casefold() in FORMATS:
            fmt = FORMATS[word.casefold()]
        elif word.casefold() in ("all", "全部") or exchange.kinds_in([word]) != list(
            exchange.KINDS
        ):
            named.append(word)
        else:
            raise UsageError(
                "usage.bad_choice", text=word, choices="leads, followups, quotes, all, xlsx, csv"
            )
    kinds = exchange.kinds_in(named)
    if fmt == "csv" and len(kinds) > 1:
        kinds = ["leads"]  # a CSV holds one kind: the one people mean when they name none
    made = exchange.export(
        scope.session,
        scope.team,
        kinds,
        fmt=fmt,
        locale=ctx.locale,
        lead_filter=visible_leads(scope.actor),
        stem=f"dealbot-{scope.today.isoformat()}",
    )
    parts = ctx.join(f"{_KIND_WORDS.label(kind, ctx.locale)} {made.counts[kind]}" for kind in kinds)
    text = ctx.say("📎 Your export — {parts}: {file}", parts=parts, file=made.filename)
    return Reply(
        text=text,
        private=True,
        file=Attachment(data=made.data, filename=made.filename, mime=made.mime),
    )
