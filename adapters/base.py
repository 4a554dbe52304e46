"""What every platform's sender offers the outbox, and the few ways a delivery can fail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

from commands.types import Reply

STAMP_DIGITS = 12  # Unix seconds stay under 12 digits for the next 30,000 years
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.@\-]{1,64}")


def unix_seconds(text: str) -> int | None:
    """A timestamp as platforms send it: ASCII digits only, of a bounded length. Anything else
    (`nan`, `inf`, `1e10`, `+123`, ` 123`, other scripts' digits, nothing) is None, never a
    number that a freshness check could mistake for a recent one."""
    if 0 < len(text) <= STAMP_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


async def read_body(request: Request, limit: int) -> bytes | None:
    """A webhook's body, or None as soon as it is known to exceed `limit` bytes (a 413)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def identifier(value: object) -> bool:
    """Whether `value` can be a platform's id of a user or team (Slack `U0123ABC`, WeCom
    `zhangsan`, Telegram `12345`): an empty or blank sender identifies nobody."""
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


class Rejected(Exception):
    """An inbound request a webhook refuses before anything reads it into the database; `status`
    is the HTTP answer."""

    status = 400


class BadSignature(Rejected):
    status = 401


class StaleTimestamp(Rejected):
    status = 401


class BadCiphertext(Rejected):
    status = 400


@dataclass(frozen=True)
class Target:
    kind: str  # member | channel
    key: str  # the platform's user id or channel id
    label: str = ""


class DeliveryError(Exception):
    """A delivery failed; the subclass tells the outbox what to do next."""


class RateLimited(DeliveryError):
    def __init__(self, retry_after: float, detail: str = "rate limited") -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TargetGone(DeliveryError):
    """The person or channel cannot be reached any more (blocked the bot, channel deleted)."""


class AuthBroken(DeliveryError):
    """Our credentials are refused; retrying will not help until an operator fixes them."""


class Unchangeable(DeliveryError):
    """A message the platform no longer lets us edit (too old, deleted, its one change spent): it
    stays as it is; trying again would change nothing."""


class Transient(DeliveryError):
    """A passing fault (timeout, 5xx): try again later."""


class Sender(Protocol):
    platform: str

    async def send(self, target: Target, reply: Reply) -> str:
        """Deliver; return the platform's reference to the message (for later updates)."""
        ...

    async def update(self, message_ref: str, reply: Reply) -> None:
        """Replace a message sent earlier with `reply` (an approval card after the decision: the
        outcome, no buttons). Raises `Unchangeable` when the platform no longer allows it; never
        sends a new message instead."""
        ...
