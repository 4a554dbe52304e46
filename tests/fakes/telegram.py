"""What Telegram's Bot API answers, for the fake servers that stand in for it in tests and
benchmarks: the bot itself (getMe), a message it sent, and a flood refusal."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.http import Answer, Recorded

BOT_USER = {"id": 999000, "is_bot": True, "first_name": "Deal", "username": "DealTestBot"}


def arguments(request: Recorded) -> dict[str, Any]:
    """A method's arguments, however PTB sent them (query, form or JSON)."""
    return {**request.query, **request.form, **(request.json or {})}


def me() -> Answer:
    return Answer(body={"ok": True, "result": BOT_USER})


def sent_message(args: dict[str, Any], *, message_id: int, group: int) -> Answer:
    """The Message a send method returns: in the chat it was sent to (a numeric chat id), else in
    `group`."""
    chat = str(args.get("chat_id", ""))
    chat_id = int(chat) if chat.lstrip("-").isdigit() else group
    return Answer(body={"ok": True, "result": {
        "message_id": message_id, "date": int(time.time()), "text": str(args.get("text", "")),
        "chat": {"id": chat_id, "type": "supergroup", "title": "Sales"}}})  # fmt: skip


def too_many_requests(retry_after: int) -> Answer:
    return Answer(status=429, body={"ok": False, "error_code": 429,
                                    "description": f"Too Many Requests: retry after {retry_after}",
                                    "parameters": {"retry_after": retry_after}})  # fmt: skip
