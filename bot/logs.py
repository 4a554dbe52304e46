"""Structured logs: one JSON line per event on stderr (structlog), dealbot's own and every
library's, with phone numbers, e-mail addresses and credentials masked in whatever text reaches
a line."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.stdlib import ProcessorFormatter

from commands.dispatch import Handled
from reminders.outbox import Delivered

events = structlog.get_logger("dealbot.events")


def stdlib_defaults() -> None:
    """Until `configure` runs (the CLI calls it), hand events to the standard library's logging as
    plain records: nothing is printed unless the host application configured a handler."""
    structlog.configure(
        processors=[structlog.stdlib.add_log_level, structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


if not structlog.is_configured():
    stdlib_defaults()

# Fields that hold platform ids and measurements, never free text: left as they are, so a Telegram
# group id (-1001234567890) stays readable even though it looks like a phone number.
_KEPT = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "platform",
        "team",
        "verb",
        "outcome",
        "error_key",
        "duration_ms",
        "attempts",
        "outbox_id",
        "kind",
        "status",
    }
)
_SECRET_KEYS = re.compile(r"token|secret|password|authorization|signature|cookie", re.IGNORECASE)
# \w is Unicode: internationalised addresses (shaseng@例子.公司) are addresses too.
_EMAIL = re.compile(r"[\w.%+\-]+(?:@|＠)[\w\-]+(?:[.。][\w\-]+)+")
# Seven or more digits, possibly split by spaces, dashes, dots or brackets (138-0013-8000,
# +86 138 0013 8000, (0755) 8888-6666); letters around a run of digits make it an id instead.
_PHONE = re.compile(
    # …except right after an escaped newline or tab inside logged JSON (`\n13944172851`).
    r"(?:(?<![0-9A-Za-z])|(?<=\\n)|(?<=\\t)|(?<=\\r))"
    r"\+?[0-9０-９](?:[\s\-.()（）]{0,2}[0-9０-９]){6,}(?![0-9A-Za-z])"
)
_TOKEN = re.compile(
    r"xox[a-z]-[A-Za-z0-9\-]+"  # Slack bot and user tokens
    r"|xapp-[A-Za-z0-9\-]+"  # Slack app-level tokens
    r"|\d{5,}:[A-Za-z0-9_\-]{30,}"  # Telegram bot tokens (also inside /bot<token>/ URLs)
    r"|(?<=access_token=)[^&\s\"']+"  # WeCom access tokens in query strings
    r"|(?<=[?&]key=)[^&\s\"']+"  # WeCom group-robot webhook keys
)


_DATE = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2})?"
)  # 2026-11-26 09:00 is a moment, not a phone


def _phone(match: re.Match[str]) -> str:
    return match.group(0) if _DATE.fullmatch(match.group(0)) else "[phone]"


def redact(text: str) -> str:
    """The text with credentials, e-mail addresses and phone numbers masked."""
    text = _TOKEN.sub("[token]", text)
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(_phone, text)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            key: "[secret]" if _SECRET_KEYS.search(str(key)) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set):
        return [_redacted(item) for item in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact(str(value))


def redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask every field but the known id and measurement fields."""
    for key, value in list(event.items()):
        if _SECRET_KEYS.search(key):
            event[key] = "[secret]"
        elif key not in _KEPT:
            event[key] = _redacted(value)
    return event


def configure(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library's logging into one redacted JSON-lines handler."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # tests reconfigure; the lookup is cheap
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_event,
                structlog.processors.JSONRenderer(ensure_ascii=False),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # Migration chatter would drown the console; real problems still surface as warnings.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # httpx logs every request URL at INFO, and Telegram's URLs carry the bot token: warnings only.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def log_command(event: Handled) -> None:
    """Dispatcher observer: one line per command, without its text."""
    events.info(
        "command",
        platform=event.platform,
        team=event.team_key,
        verb=event.verb,
        outcome=event.outcome,
        error_key=event.error,
        duration_ms=event.duration_ms,
    )


def log_delivery(event: Delivered) -> None:
    """Outbox observer: one line per push attempt, without the message."""
    error = f"{type(event.error).__name__}: {event.error}" if event.error is not None else None
    events.info(
        "push",
        platform=event.platform,
        team=event.team_id,
        kind=event.kind,
        outcome=event.outcome,
        attempts=event.attempts,
        outbox_id=event.outbox_id,
        duration_ms=event.duration_ms,
        error=error,
    )
