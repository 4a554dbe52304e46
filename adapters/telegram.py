"""Telegram: a python-telegram-bot `Application` fed from `POST /telegram/webhook` (or long polling
when no webhook URL is set). Commands in groups (`/lead …`, `/lead@OurBot …`), Chinese aliases typed
as text when the bot is mentioned or replied to (`@OurBot 线索 新建 …`; `/线索` is not a valid Telegram
command name), inline-keyboard approvals, and the outbox's `TelegramSender`."""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
)
from telegram import User as TelegramUser
from telegram.constants import ChatType, ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from adapters.base import AuthBroken, RateLimited, Target, TargetGone, Transient
from commands import FAMILIES
from commands.types import Invocation, Mention, Reply

log = logging.getLogger("dealbot.telegram")

COMMANDS = (*(family.name for family in FAMILIES), "start", "dealbot")
MAX_BODY = 1 << 20
MAX_CALLBACK_BYTES = 64
MAX_KEYBOARD_BUTTONS = 100
MAX_TEXT = 4096

Dispatch = Callable[[Invocation], Reply]


# --- Reply → Telegram HTML + inline keyboard -------------------------------------------------------

def to_html(reply: Reply) -> str:
    """Our markup in Telegram's HTML parse mode; everything people typed is escaped first."""
    def inline(text: str) -> str:
        escaped = html.escape(text, quote=False)
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
        return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)

    parts = [inline(reply.text)]
    parts += [f"<b>{inline(label)}</b>: {inline(value)}" for label, value in reply.fields]
    if reply.table:
        widths = [max(len(row[i]) for row in reply.table if i < len(row)) for i in range(len(reply.table[0]))]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in reply.table]
        parts.append("<pre>" + html.escape("\n".join(lines), quote=False) + "</pre>")
    text = "\n".join(parts)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Buttons whose callback data is the command. A command too long for 64 bytes, or one that
    still needs words from the user (it ends with a space), pre-fills the input field instead."""
    if not reply.buttons:
        return None
    rows: list[list[InlineKeyboardButton]] = []
    for row in reply.button_rows():
        buttons = []
        for button in row:
            command = button.command
            if command.endswith(" ") or len(command.encode()) > MAX_CALLBACK_BYTES:
                buttons.append(InlineKeyboardButton(button.label, switch_inline_query_current_chat=command.strip() + " "))
            else:
                buttons.append(InlineKeyboardButton(button.label, callback_data=command))
        rows += [buttons[i:i + 2] for i in range(0, len(buttons), 2)]  # two fit a phone's width
    # Telegram takes at most 100 buttons in a keyboard: whole rows, in order, up to that.
    kept, count = [], 0
    for buttons in rows:
        count += len(buttons)
        if count > MAX_KEYBOARD_BUTTONS:
            break
        kept.append(buttons)
    return InlineKeyboardMarkup(kept)


# --- inbound --------------------------------------------------------------------------------------

def _user_name(user: TelegramUser) -> str:
    return user.full_name or user.username or str(user.id)


def read_message(message: Message, bot_username: str) -> tuple[str, dict[str, Mention]]:
    """The command text and the mentions Telegram itself marked up; our own @name is removed."""
    text = message.text or ""
    mentions: dict[str, Mention] = {}
    for entity, value in message.parse_entities([MessageEntity.MENTION, MessageEntity.TEXT_MENTION]).items():
        if entity.type == MessageEntity.MENTION:
            handle = value.lstrip("@")
            if handle.lower() == bot_username.lower():
                text = text.replace(value, " ", 1)
                continue
            mentions[value] = Mention(handle=handle.lower(), name=handle)
        elif entity.user is not None:
            token = f"@{entity.user.username or entity.user.id}"
            text = text.replace(value, token, 1)
            mentions[token] = Mention(user_key=str(entity.user.id), name=_user_name(entity.user),
                                      handle=(entity.user.username or "").lower() or None)
    words = text.split(maxsplit=1)
    if words and words[0].startswith("/") and "@" in words[0]:
        words[0] = words[0].split("@", 1)[0]
        text = " ".join(words)
    return " ".join(text.split()), mentions


def _team_of(message: Message) -> tuple[str, str]:
    """A group is a team; a private chat means the user's own team (the dispatcher finds it)."""
    chat = message.chat
    if chat.type == ChatType.PRIVATE:
        return "", ""
    return str(chat.id), chat.title or ""


class TelegramAdapter:
    platform = "telegram"

    @classmethod
    def from_settings(cls, settings: Any, dispatch: Dispatch) -> TelegramAdapter:
        return cls(dispatch, token=settings.telegram_bot_token or "", api_url=settings.telegram_api_url,
                   webhook_secret=settings.telegram_webhook_secret, polling=not settings.telegram_webhook_url)

    def __init__(self, dispatch: Dispatch, *, token: str, api_url: str, webhook_secret: str | None,
                 polling: bool = False) -> None:
        self.dispatch = dispatch
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.polling = polling
        builder = (Application.builder().token(token).base_url(f"{self.api_url}/bot")
                   .base_file_url(f"{self.api_url}/file/bot"))
        if not polling:
            builder = builder.updater(None)
        self.application = builder.build()
        self.application.add_handler(CommandHandler(list(COMMANDS), self._on_command,
                                                    filters=filters.UpdateType.MESSAGE))
        self.application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE,
                                                    self._on_text))
        self.application.add_handler(CallbackQueryHandler(self._on_press))
        self.application.add_error_handler(self._on_error)
        self._ready = asyncio.Lock()
        self._initialized = False

    def routes(self) -> list[Route]:
        """`POST /telegram/webhook`, mounted only when a secret token guards it."""
        if not self.webhook_secret:
            return []
        return [Route("/telegram/webhook", self.webhook, methods=["POST"])]

    def sender(self) -> TelegramSender:
        return TelegramSender(self.token, self.api_url)

    async def ready(self) -> Application:
        async with self._ready:
            if not self._initialized:
                await self.application.initialize()
                self._initialized = True
        return self.application

    async def webhook(self, request: Request) -> Response:
        """Checks the secret before reading anything else; then hands the update to PTB."""
        secret = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not self.webhook_secret or not hmac.compare_digest(secret.encode(), self.webhook_secret.encode()):
            return Response(status_code=401)
        if int(request.headers.get("content-length") or 0) > MAX_BODY:
            return Response(status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return Response(status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or "update_id" not in data:
                raise ValueError("not an update")
            application = await self.ready()
            update = Update.de_json(data, application.bot)
        except Exception:  # noqa: BLE001 - not the shape of an update (a date past 9999 …)
            return Response(status_code=400)
        try:
            await application.process_update(update)
        except Exception as error:  # noqa: BLE001 - PTB does not check types: a malformed update
            # (a dict where an id belongs …) fails in its own bookkeeping, never in our handlers,
            # whose errors it catches itself. Only someone holding the secret can send one.
            log.warning("telegram update refused (400): %s", type(error).__name__)
            return Response(status_code=400)
        return Response(status_code=200)

    async def _dispatch(self, update: Update, *, text: str, mentions: dict[str, Mention], user: TelegramUser,
                        message: Message) -> Reply:
        team_key, team_name = _team_of(message)
        invocation = Invocation(platform="telegram", team_key=team_key, team_name=team_name,
                                channel=str(message.chat.id), user_key=str(user.id), user_name=_user_name(user),
                                user_handle=user.username, text=text, mentions=mentions,
                                locale="zh" if (user.language_code or "").startswith("zh") else None,
                                received_at=datetime.now(UTC), delivery_id=f"update:{update.update_id}")
        return await asyncio.to_thread(self.dispatch, invocation)

    async def _answer(self, message: Message, reply: Reply) -> None:
        if reply.duplicate:
            return
        await message.reply_text(to_html(reply), parse_mode=ParseMode.HTML, reply_markup=keyboard(reply),
                                 do_quote=not reply.ok)
        if reply.image is not None:
            await message.reply_photo(reply.image.png, caption=reply.image.alt[:1024])
        if reply.file is not None:
            await self._send_file(message, reply)

    async def _send_file(self, message: Message, reply: Reply) -> None:
        """A private file (an export) asked for in a group goes to the person's private chat."""
        assert reply.file is not None
        if message.chat.type == ChatType.PRIVATE or not reply.private or message.from_user is None:
            await message.reply_document(reply.file.data, filename=reply.file.filename)
            return
        try:
            await message.get_bot().send_document(chat_id=message.from_user.id, document=reply.file.data,
                                                   filename=reply.file.filename)
        except Forbidden:
            await message.reply_text("📎 Open a private chat with me and press Start, then ask again. "
                                     "请先私聊我并点击“开始”，再重新导出。")

    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or user.is_bot:
            return
        text, mentions = read_message(message, context.bot.username)
        if text.split(maxsplit=1)[0] == "/dealbot":
            text = "/" + text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else "/help"
        if text.split(maxsplit=1)[0] == "/start":
            text = "/help"
        await self._answer(message, await self._dispatch(update, text=text, mentions=mentions, user=user,
                                                         message=message))

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Plain text is a command only in a private chat, or when it mentions or replies to the bot."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None or user.is_bot:
            return
        bot = context.bot
        addressed = message.chat.type == ChatType.PRIVATE or (
            message.reply_to_message is not None and message.reply_to_message.from_user is not None
            and message.reply_to_message.from_user.id == bot.id) or any(
            value.lstrip("@").lower() == (bot.username or "").lower()
            for value in message.parse_entities([MessageEntity.MENTION]).values())
        if not addressed:
            return
        text, mentions = read_message(message, bot.username)
        if not text:
            return
        await self._answer(message, await self._dispatch(update, text=text, mentions=mentions, user=user,
                                                         message=message))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A handler's error. PTB does not check an update's types, so one of a shape Telegram
        never sends (a list where text belongs) fails in a handler: a warning; the rest are errors."""
        error = context.error
        if isinstance(error, LookupError | TypeError | AttributeError | ValueError):
            log.warning("telegram update of an unexpected shape (%s)", type(error).__name__,
                        exc_info=error)
        else:
            log.error("telegram update failed", exc_info=error)

    async def _on_press(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button runs its command as the person who pressed it; the message then shows the outcome."""
        query = update.callback_query
        if (query is None or not isinstance(query.message, Message) or not query.data
                or query.from_user is None):
            if query is not None and query.from_user is not None:
                await query.answer()
            return
        reply = await self._dispatch(update, text=query.data, mentions={}, user=query.from_user,
                                     message=query.message)
        if reply.duplicate:
            await query.answer()
            return
        if not reply.ok:
            await query.answer(reply.text.replace("**", "")[:200], show_alert=True)
            return
        await query.answer(reply.text.replace("**", "")[:200])
        if _decides(query.data):
            await query.edit_message_text(to_html(reply), parse_mode=ParseMode.HTML, reply_markup=keyboard(reply))
        else:
            await self._answer(query.message, reply)

    async def start_polling(self) -> None:
        """Long polling for a bot without a public URL (a laptop)."""
        application = await self.ready()
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(allowed_updates=["message", "callback_query"])

    async def set_webhook(self, url: str) -> None:
        """Register the webhook with its secret, and the command menu in English and Chinese."""
        bot = (await self.ready()).bot
        await bot.set_webhook(url=url, secret_token=self.webhook_secret,
                              allowed_updates=["message", "callback_query"])
        menu = [family for family in FAMILIES if family.name in COMMANDS]
        await bot.set_my_commands([BotCommand(f.name, f.summary_en) for f in menu])
        await bot.set_my_commands([BotCommand(f.name, f.summary_zh) for f in menu], language_code="zh")


def _decides(command: str) -> bool:
    words = command.split()
    return len(words) >= 2 and words[1] in ("approve", "reject", "同意", "驳回", "claim", "领取")


# --- outbound ---------------------------------------------------------------------------------------

class TelegramSender:
    """Delivers outbox messages with sendMessage / sendPhoto; maps Telegram's errors to the outbox's."""

    platform = "telegram"

    def __init__(self, token: str, api_url: str) -> None:
        self.token = token
        self.api_url = api_url.rstrip("/")
        self._bots: dict[int, Bot] = {}

    def _bot(self) -> Bot:
        # PTB's HTTP client belongs to one event loop; the worker and tests may run several.
        loop = id(asyncio.get_running_loop())
        if loop not in self._bots:
            self._bots = {loop: Bot(self.token, base_url=f"{self.api_url}/bot",
                                    base_file_url=f"{self.api_url}/file/bot")}
        return self._bots[loop]

    async def send(self, target: Target, reply: Reply) -> str:
        bot = self._bot()
        try:
            message = await bot.send_message(chat_id=int(target.key) if target.key.lstrip("-").isdigit() else target.key,
                                             text=to_html(reply), parse_mode=ParseMode.HTML,
                                             reply_markup=keyboard(reply))
            if reply.image is not None:
                await bot.send_photo(chat_id=message.chat_id, photo=reply.image.png, caption=reply.image.alt[:1024])
            if reply.file is not None:
                await bot.send_document(chat_id=message.chat_id, document=reply.file.data,
                                        filename=reply.file.filename)
        except RetryAfter as error:
            retry = error.retry_after
            seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
            raise RateLimited(seconds, "telegram 429") from error
        except Forbidden as error:
            raise TargetGone(f"telegram: {error.message} (has the person started a chat with the bot?)") from error
        except InvalidToken as error:
            raise AuthBroken(f"telegram refused our token: {error.message}") from error
        except BadRequest as error:
            if "chat not found" in error.message.lower() or "user not found" in error.message.lower():
                raise TargetGone(f"telegram: {error.message}") from error
            raise Transient(f"telegram: {error.message}") from error
        except TelegramError as error:
            raise Transient(f"telegram: {error.message}") from error
        return f"{message.chat_id}:{message.message_id}"

    async def update(self, message_ref: str, reply: Reply) -> None:
        chat_id, _, message_id = message_ref.partition(":")
        await self._bot().edit_message_text(chat_id=int(chat_id), message_id=int(message_id), text=to_html(reply),
                                            parse_mode=ParseMode.HTML, reply_markup=keyboard(reply))
