"""Telegram: a python-telegram-bot `Application` fed from `POST /telegram/webhook` (or long polling
when no webhook URL is set). Commands in groups (`/lead …`, `/lead@OurBot …`), Chinese aliases typed
as text when the bot is mentioned or replied to (`@OurBot 线索 新建 …`; `/线索` is not a valid Telegram
command name), inline-keyboard approvals, and the outbox's `TelegramSender`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from adapters.base import (
    AuthBroken,
    RateLimited,
    Target,
    TargetGone,
    Transient,
    Unchangeable,
    read_body,
)
from commands import FAMILIES
from commands.inbox import Inbox, Received
from commands.types import Invocation, Mention, Reply

log = logging.getLogger("dealbot.telegram")

COMMANDS = (*(family.name for family in FAMILIES), "start", "dealbot")
# Bot API answers for a message that can no longer be edited (too old: 48 h in some chats; deleted).
_UNEDITABLE = re.compile(r"can't be edited|to edit not found|message_id_invalid|chat not found",
                         re.IGNORECASE)
MAX_BODY = 1 << 20
MAX_CALLBACK_BYTES = 64
MAX_KEYBOARD_BUTTONS = 100
MAX_TEXT = 4096
MAX_INLINE_QUERY = 256  # what a pre-filled input field may hold
MAX_BOUND_WORDS = 8  # a button's command is a few words: the verb, a sub-verb, an id

Dispatch = Callable[[Invocation], Reply]


# --- Reply → Telegram HTML + inline keyboard -------------------------------------------------------

def to_html(reply: Reply) -> str:
    """Our markup in Telegram's HTML parse mode; everything people typed is escaped first. A reply
    longer than a message is cut between lines, or inside a line's text, never inside a tag or an
    entity: Telegram refuses a message whose HTML does not parse, and the answer would be lost."""
    def escape(text: str) -> str:
        return html.escape(text, quote=False)

    def inline(text: str) -> str:
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escape(text))
        return re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)

    # Each line renders on its own (bold and code never span lines), so any prefix of lines is
    # well-formed HTML.
    def field(label: str) -> Callable[[str], str]:
        return lambda value: f"<b>{inline(label)}</b>: {inline(value)}"

    lines: list[tuple[str, Callable[[str], str]]] = [
        (line, inline) for line in reply.text.split("\n")
    ]
    lines += [(value, field(label)) for label, value in reply.fields]
    rows: list[tuple[str, Callable[[str], str]]] = []
    if reply.table:
        columns = range(len(reply.table[0]))
        widths = [max(len(row[i]) for row in reply.table if i < len(row)) for i in columns]
        rows = [("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), escape)
                for row in reply.table]
    text = "\n".join(render(raw) for raw, render in lines)
    if rows:
        text += "\n<pre>" + "\n".join(render(raw) for raw, render in rows) + "</pre>"
    if len(text) <= MAX_TEXT:
        return text
    shown, room, whole = _fit(lines, MAX_TEXT - 1)  # 1 for the "…"
    text = "\n".join(shown)
    if whole and rows:
        kept, _, whole = _fit(rows, room - len("\n<pre></pre>"))
        if kept:
            text += "\n<pre>" + "\n".join(kept) + "</pre>"
    return text + "…"


def _fit(lines: list[tuple[str, Callable[[str], str]]], room: int) -> tuple[list[str], int, bool]:
    """As many rendered lines as fit in `room` characters (joined by newlines), then the longest
    rendered start of the next line that fits; the room left, and whether every line fit."""
    shown: list[str] = []
    for raw, render in lines:
        joint = 1 if shown else 0
        whole = render(raw)
        if len(whole) + joint <= room:
            shown.append(whole)
            room -= len(whole) + joint
            continue
        low, high = 0, len(raw)
        while low < high:
            middle = (low + high + 1) // 2
            if len(render(raw[:middle])) + joint <= room:
                low = middle
            else:
                high = middle - 1
        if low:
            shown.append(render(raw[:low]))
        return shown, 0, False
    return shown, room, True


class ButtonSeal:
    """Binds a button to the team it was rendered for: callback data `~<team>.<mac> <command>`.

    A press in a private chat carries no team, and a client may send any callback data it likes; so
    the team travels in the data, with an HMAC (keyed from the bot token, which only this bot holds)
    over team and command. Nothing is stored per card, every replica can check a press, and a card
    sent before a restart still works. Data without the `~` prefix is a command of an older card.
    """

    PREFIX = "~"

    def __init__(self, token: str) -> None:
        self._key = hmac.new(token.encode(), b"dealbot button binding", hashlib.sha256).digest()

    def _mac(self, team: str, command: str) -> str:
        digest = hmac.new(self._key, f"{team}\n{command}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:12]).decode()  # 96 bits, 16 characters

    def seal(self, team: str, command: str) -> str:
        return f"{self.PREFIX}{team}.{self._mac(team, command)} {command}"

    def open(self, data: str) -> tuple[str | None, str, bool]:
        """(bound team or None, command, whether the binding verifies)."""
        if not data.startswith(self.PREFIX):
            return None, data, True
        head, _, command = data.partition(" ")
        team, _, mac = head[len(self.PREFIX):].rpartition(".")
        valid = bool(team) and hmac.compare_digest(mac.encode(), self._mac(team, command).encode())
        return (team, command, True) if valid else (None, command, False)

    def open_completed(self, text: str) -> tuple[str | None, str, bool]:
        """A pre-filled button's command the person completed and sent (`~<team>.<mac> /quote
        reject Q1` + their reason): the binding covers the button's words, the rest is theirs."""
        head, _, rest = text.partition(" ")
        words = rest.split(" ")
        for count in range(min(len(words), MAX_BOUND_WORDS), 0, -1):
            team, _, valid = self.open(f"{head} {' '.join(words[:count])}")
            if valid and team:
                return team, rest, True
        return None, rest, False


def keyboard(reply: Reply, seal: ButtonSeal | None = None) -> InlineKeyboardMarkup | None:
    """Buttons whose callback data is the command, bound to the reply's team when a seal is given.
    A command too long for 64 bytes, or one that still needs words from the user (it ends with a
    space), pre-fills the input field instead."""
    if not reply.buttons:
        return None
    team = reply.team_key

    def bound(command: str) -> str:
        return seal.seal(team, command) if seal and team else command

    rows: list[list[InlineKeyboardButton]] = []
    for row in reply.button_rows():
        buttons = []
        for button in row:
            command = button.command
            data = bound(command)
            if command.endswith(" ") or len(data.encode()) > MAX_CALLBACK_BYTES:
                # Completed and sent from any chat, the command still names its team.
                prefill = bound(command.strip())
                if len(prefill) >= MAX_INLINE_QUERY:
                    prefill = command.strip()
                buttons.append(InlineKeyboardButton(
                    button.label, switch_inline_query_current_chat=prefill + " "))
            else:
                buttons.append(InlineKeyboardButton(button.label, callback_data=data))
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


def _identified(update: Update) -> bool:
    """A message or a button press must say who sent it (a real user id and a chat): one that
    does not is refused, never run as nobody or as the chat."""
    event = update.message or update.callback_query
    if event is None:
        return True  # kinds we do not handle (edits, channel posts) are acknowledged and ignored
    sender = event.from_user
    message = event if isinstance(event, Message) else event.message
    return (sender is not None and isinstance(sender.id, int) and sender.id > 0
            and message is not None and getattr(message, "chat", None) is not None
            and isinstance(message.chat.id, int))


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
        self.inbox: Inbox | None = None  # set by the wiring: commands kept until answered
        self._kept: dict[int, Received] = {}  # update id → its kept command, until answered
        self.token = token
        self.api_url = api_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.polling = polling
        self.seal = ButtonSeal(token)
        builder = (Application.builder().token(token).base_url(f"{self.api_url}/bot")
                   .base_file_url(f"{self.api_url}/file/bot"))
        if not polling:
            builder = builder.updater(None)
        self.application = builder.build()
        self.application.add_handler(CommandHandler(list(COMMANDS),
                                                    self._answering(self._on_command),
                                                    filters=filters.UpdateType.MESSAGE))
        self.application.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE,
                                                    self._answering(self._on_text)))
        self.application.add_handler(CallbackQueryHandler(self._answering(self._on_press)))
        self.application.add_error_handler(self._on_error)
        self._ready = asyncio.Lock()
        self._initialized = False
        self._late = TelegramSender(token, self.api_url)

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
        body = await read_body(request, MAX_BODY)
        if body is None:
            return Response(status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or "update_id" not in data:
                raise ValueError("not an update")
            # Text no UTF-8 spells (a lone surrogate escaped in the JSON) could be neither checked,
            # stored nor answered: UnicodeEncodeError refuses the update here.
            json.dumps(data, ensure_ascii=False).encode()
            application = await self.ready()
            update = Update.de_json(data, application.bot)
        except Exception:  # noqa: BLE001 - not the shape of an update (a date past 9999 …)
            return Response(status_code=400)
        if not _identified(update):
            log.warning("telegram update without a sender refused (400)")
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
                        message: Message, press: Any = None,
                        bound_team: str | None = None) -> Reply:
        team_key, team_name = _team_of(message)
        if bound_team is not None:
            team_key, team_name = bound_team, ""
        invocation = Invocation(platform="telegram", team_key=team_key, team_name=team_name,
                                press=press,
                                channel=str(message.chat.id), user_key=str(user.id), user_name=_user_name(user),
                                user_handle=user.username, text=text, mentions=mentions,
                                locale="zh" if (user.language_code or "").startswith("zh") else None,
                                received_at=datetime.now(UTC), delivery_id=f"update:{update.update_id}")
        if self.inbox is None:
            return await asyncio.to_thread(self.dispatch, invocation)
        # Kept before it runs: in polling mode Telegram counts an update delivered once fetched, and
        # a command that ran is answered even if this process dies before it could.
        received = await self.inbox.receive(invocation, {"chat": message.chat.id})
        if received.repeat:
            return Reply(text="", duplicate=True)
        self._kept[update.update_id] = received
        return await self.inbox.run(received, invocation)

    def _answering(self, handler: Callable[[Update, Any], Awaitable[None]]
                   ) -> Callable[[Update, Any], Awaitable[None]]:
        """The handler, then its kept command let go: only once the answer is out (a handler that
        fails leaves the command to be answered later)."""
        async def answering(update: Update, context: Any) -> None:
            try:
                await handler(update, context)
            except BaseException:
                self._kept.pop(update.update_id, None)
                raise
            received = self._kept.pop(update.update_id, None)
            if received is not None and self.inbox is not None:
                await self.inbox.answered(received)

        return answering

    async def answer_later(self, answer_to: dict[str, Any], reply: Reply, age: timedelta) -> None:
        """Answer a command this process did not receive (its receiver died): in its chat."""
        await self._late.send(Target(kind="channel", key=str(answer_to.get("chat", ""))), reply)

    async def _answer(self, message: Message, reply: Reply) -> None:
        if reply.duplicate:
            return
        await message.reply_text(to_html(reply), parse_mode=ParseMode.HTML,
                                 reply_markup=keyboard(reply, self.seal),
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
        if text.startswith(ButtonSeal.PREFIX):  # a pre-filled button's command, completed
            bound_team, text, verified = self.seal.open_completed(text)
            await self._answer(message, await self._dispatch(
                update, text=text, mentions=mentions, user=user, message=message,
                press="bound" if verified else "forged", bound_team=bound_team))
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
        """A button runs its command as the person who pressed it, in the team it was bound to (or,
        for a card of old, the group it is in); the message then shows the outcome."""
        query = update.callback_query
        if (query is None or not isinstance(query.message, Message) or not query.data
                or query.from_user is None):
            if query is not None and query.from_user is not None:
                await query.answer()
            return
        bound_team, command, verified = self.seal.open(query.data)
        in_group = bool(_team_of(query.message)[0])
        press = "forged" if not verified else "bound" if bound_team or in_group else "unbound"
        reply = await self._dispatch(update, text=command, mentions={}, user=query.from_user,
                                     message=query.message, press=press, bound_team=bound_team)
        if reply.duplicate:
            await query.answer()
            return
        if not reply.ok:
            await query.answer(reply.text.replace("**", "")[:200], show_alert=True)
            return
        await query.answer(reply.text.replace("**", "")[:200])
        if reply.settles:
            await query.edit_message_text(to_html(reply), parse_mode=ParseMode.HTML,
                                          reply_markup=keyboard(reply, self.seal))
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
        await bot.set_my_commands([BotCommand(f.name, f.summary("en")) for f in menu])
        await bot.set_my_commands([BotCommand(f.name, f.summary("zh")) for f in menu], language_code="zh")


# --- outbound ---------------------------------------------------------------------------------------

class TelegramSender:
    """Delivers outbox messages with sendMessage / sendPhoto; maps Telegram's errors to the outbox's."""

    platform = "telegram"

    def __init__(self, token: str, api_url: str) -> None:
        self.token = token
        self.api_url = api_url.rstrip("/")
        self._bots: dict[int, Bot] = {}
        self.seal = ButtonSeal(token)

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
                                             reply_markup=keyboard(reply, self.seal))
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
        try:
            await self._bot().edit_message_text(chat_id=int(chat_id), message_id=int(message_id),
                                                text=to_html(reply), parse_mode=ParseMode.HTML,
                                                reply_markup=keyboard(reply, self.seal))
        except RetryAfter as error:
            retry = error.retry_after
            seconds = retry.total_seconds() if hasattr(retry, "total_seconds") else float(retry)
            raise RateLimited(seconds, "telegram 429") from error
        except InvalidToken as error:
            raise AuthBroken(f"telegram refused our token: {error.message}") from error
        except BadRequest as error:
            if "not modified" in error.message.lower():
                return  # it says this already (the card that was pressed)
            if _UNEDITABLE.search(error.message):
                raise Unchangeable(f"telegram: {error.message}") from error
            raise Transient(f"telegram: {error.message}") from error
        except Forbidden as error:  # the person blocked the bot: the message is out of reach
            raise Unchangeable(f"telegram: {error.message}") from error
        except TelegramError as error:
            raise Transient(f"telegram: {error.message}") from error
