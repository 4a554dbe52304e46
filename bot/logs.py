"""Structured logs: one JSON line per event on stderr (structlog), dealbot's own and every
library's, with phone numbers, e-mail addresses and credentials masked in whatever text reaches
a line."""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
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
# Phone numbers as people write them, not any long number: ids, amounts, durations and epochs
# (a Telegram group -1001234567890, a WeCom MsgId, 1234567 ms) pass. Matched on the text with
# full-width digits and signs made ASCII (one character for one, so positions stay).
_WIDE = str.maketrans("０１２３４５６７８９＋（）－．　", "0123456789+()-. ")
_AREA = r"(?:10|2\d|[3-9]\d\d)"  # Chinese area codes: 010 Beijing, 02x, 0755 …
_LOCAL = r"(?:\d{7,8}|\d{3,4}[ \-]\d{4})"
_PHONES = (
    # Chinese mobiles: 13800138000, 138 0013 8000, 138-0013-8000, +86 …, 0086 …, (+86) …
    r"(?:(?:\+|00)?86[ \-]?|\(\+?86\)[ \-]?)?1[3-9]\d(?:\d{8}|[ \-.]?\d{4}[ \-.]?\d{4})",
    # Chinese landlines: 010-12345678, (0755) 8888-6666, 021 6123 4567, +86 10 1234 5678
    rf"\(0{_AREA}\)[ \-]?{_LOCAL}|0{_AREA}[ \-]?{_LOCAL}",
    rf"(?:\+|00)86[ \-]?(?:\(0?{_AREA}\)|0?{_AREA})[ \-]?{_LOCAL}",
    # North American: (415) 555-2671, 415-555-2671, 415.555.2671, +1 415 555 2671, 400-800-8888
    r"(?:\+?1[ \-.]?)?(?:\([2-9]\d\d\)[ \-.]?|[2-9]\d\d[ \-.])[2-9]\d\d[ \-.]\d{4}",
    # Any other number written with its country code: +44 20 7946 0958
    r"\+[1-9](?:[ \-.()]{0,2}\d){7,14}",
)
_PHONE = re.compile(
    # Not inside a word or a longer number, except right after an escaped newline or tab in
    # logged JSON (`\n13944172851`); not the decimals of a number (0.13800138000).
    r"(?:(?<![0-9A-Za-z+])|(?<=\\n)|(?<=\\t)|(?<=\\r))(?<!\d\.)"
    rf"(?:{'|'.join(_PHONES)})(?![0-9A-Za-z])"
)
_TOKEN = re.compile(
    r"xox[a-z]-[A-Za-z0-9\-]+"  # Slack bot and user tokens
    r"|xapp-[A-Za-z0-9\-]+"  # Slack app-level tokens
    r"|\d{5,}:[A-Za-z0-9_\-]{30,}"  # Telegram bot tokens
    r"|(?<=/bot)\d+:[^/\s\"']+"  # Telegram bot tokens inside /bot<token>/ URLs, however short
    r"|(?<=Bearer )[^\s\"',]+"  # Authorization headers
    r"|(?<=[?&]key=)[^&\s\"']+"  # WeCom group-robot webhook keys
)
# A URL's password (a database's): configured ones are masked anyway, but not when short.
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@/\s]+(?=@)")
# WeCom's access token and app secret, and any other credential in a query or form field.
_CREDENTIAL_FIELD = re.compile(
    r"(?<![A-Za-z_])((?:access_token|corpsecret|secret|token|msg_signature|signature|echostr)=)"
    r"[^&\s\"']+"
)
# Moments (2026-12-03 07:36:12.345678+00:00, 07:36:12) are not phone numbers: found first, kept.
_MOMENT = (
    r"(?<!\d)(?:\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}(?::\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?)?)?"
    r"|\d{1,2}:\d{2}:\d{2}(?:[.,]\d{1,9})?)"
    r"(?:Z|[+-]\d{2}:\d{2})?(?!\d)"
)
# Nor are IPv4 addresses (who called in: 203.0.113.45): four numbers to 255, no leading zero.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_ADDRESS = rf"(?<!\d)(?<!\d\.)(?:{_OCTET}\.){{3}}{_OCTET}(?!\.?\d)"
_PHONE_OR_MOMENT = re.compile(f"(?P<moment>{_MOMENT}|{_ADDRESS})|{_PHONE.pattern}")
_SECRET_FIELDS = re.compile(r"token|secret|key|password", re.IGNORECASE)
_known: frozenset[str] = frozenset()  # the configured credentials, masked wherever they appear


def _masked_phones(text: str) -> str:
    wide = text.translate(_WIDE)
    kept, last = [], 0
    for match in _PHONE_OR_MOMENT.finditer(wide):
        if match.group("moment") is None:
            kept += [text[last : match.start()], "[phone]"]
            last = match.end()
    return "".join(kept) + text[last:] if kept else text


def redact(text: str) -> str:
    """The text with credentials, e-mail addresses and phone numbers masked."""
    for secret in _known:
        text = text.replace(secret, "[secret]")
    text = _TOKEN.sub("[token]", text)
    text = _CREDENTIAL_FIELD.sub(r"\1[token]", text)
    text = _URL_PASSWORD.sub(r"\1[secret]", text)
    text = _EMAIL.sub("[email]", text)
    return _masked_phones(text)


def credentials(settings: Any) -> list[str]:
    """The secret values among a settings object's fields (tokens, secrets, keys) and the database
    URL's password: what no log line may ever show, whatever a library wraps them in."""
    found = [
        str(value)
        for name, value in settings
        if value and isinstance(value, str) and _SECRET_FIELDS.search(name)
    ]
    password = re.search(r"://[^:/@\s]*:([^@\s]+)@", str(getattr(settings, "database_url", "")))
    return found + ([password.group(1)] if password else [])


class HeldLines(io.TextIOBase):
    """A log stream that keeps its lines until `release` writes them out: the console's log, held
    while someone types at its prompt (the worker thread logs at any moment)."""

    def __init__(self, out: TextIO) -> None:
        super().__init__()
        self.out = out
        self._lines: list[str] = []
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._lines.append(text)
        return len(text)

    def release(self) -> None:
        with self._lock:
            text, self._lines = "".join(self._lines), []
        if text:
            self.out.write(text)
            self.out.flush()


class SchedulerChatter(logging.Filter):
    """APScheduler tells at INFO of every run of every job ("Running job …", "… executed
    successfully", every 5 s for the outbox): its INFO lines are DEBUG lines here. Its warnings
    (a missed run) and errors stay what they are."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("apscheduler") and record.levelno == logging.INFO:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


class RedactRecords(logging.Filter):
    """Masks a record's message (its arguments merged in) before any formatter sees it, for every
    logger whose records reach the handler, the standard library's and every library's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "_from_structlog", False) and not isinstance(record.msg, dict):
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # a library's malformed format string
                message = f"{record.msg} {record.args}"
            record.msg, record.args = redact(message), None
        return True


# Libraries that log whole requests and answers (contact names, notes, tokens in URLs) at DEBUG,
# and SQL with its parameters at INFO: never below these levels, whatever level is asked for.
QUIET_FLOORS = {
    "slack_sdk": logging.INFO,
    "slack_bolt": logging.INFO,
    "telegram": logging.INFO,
    "httpcore": logging.INFO,
    "hpack": logging.INFO,
    "httpx": logging.WARNING,  # every request URL at INFO, and Telegram's carry the bot token
    "sqlalchemy": logging.WARNING,
}


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


def configure(
    level: str = "INFO", stream: TextIO | None = None, *, secrets: Iterable[str] = ()
) -> None:
    """Route structlog and the standard library's logging into one redacted JSON-lines handler;
    `secrets` (see `credentials`) are masked wherever they appear."""
    global _known
    # Short values ("hook") would mask ordinary words; real credentials are long.
    _known = frozenset(secret for secret in secrets if len(secret) >= 8)
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
    root.setLevel(level.upper())
    handler.addFilter(SchedulerChatter(root.level))
    handler.addFilter(RedactRecords())
    root.handlers = [handler]
    for name, floor in QUIET_FLOORS.items():
        logging.getLogger(name).setLevel(max(floor, root.level))
    # Migration chatter would drown the console; real problems still surface as warnings.
    logging.getLogger("alembic").setLevel(logging.WARNING)


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
