"""Feishu / Lark (飞书) self-built app with a bot: event subscription over HTTP
(`POST /feishu/events`: the URL check, `im.message.receive_v1`, the card callback
`card.action.trigger`), replies as text messages or interactive cards, and the outbox's
`FeishuSender`. Platform facts: docs/feishu.md.

The adapter translates and nothing else. Feishu wants an answer within 3 seconds and delivers an
event again when it gets none, so an event is answered `{}` at once and the command runs in a
background task; the reply goes out through `im/v1/messages`. Every re-delivery carries the same
`event_id`: one seen by this process is acknowledged and dropped before anything else happens, and
the dispatcher runs a delivery id once across processes.

A button's value is its command (`{"command": "/审批 同意 Q7"}`); Feishu echoes the value back in
the click. The click is sealed with the app's Encrypt Key and names the tenant, so it acts in the
team of the tenant, whatever chat the card sits in.

Targets: a member is an open_id (`ou_…`), a channel a chat id (`oc_…`).

Not built on the official SDK (lark-oapi): its webhook handler decrypts and parses a request before
it checks the signature and has no freshness window or de-duplication; its HTTP client is
synchronous (requests) unless each call is awaited through its own httpx client, and its answers
would still need mapping to the outbox's errors. The long-connection (WebSocket) mode, where the
SDK does the job well, is built on it (adapters/feishu_ws.py): without an Encrypt Key and
Verification Token there is no request URL, and events come that way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.app_api import AppApi
from adapters.base import (
    AuthBroken,
    DeliveryError,
    RateLimited,
    Target,
    TargetGone,
    Transient,
    Unchangeable,
    identifier,
    read_body,
)
from adapters.feishu_crypto import FeishuCrypto, Rejected
from adapters.wecom import split_bytes
from commands.inbox import Inbox, Received
from commands.types import Invocation, Mention, Reply

if TYPE_CHECKING:
    from adapters.feishu_ws import LongConnection

log = logging.getLogger("dealbot.feishu")

Dispatch = Callable[[Invocation], Reply]
Sleep = Callable[[float], Awaitable[None]]

DOMAINS = {"feishu": "https://open.feishu.cn", "lark": "https://open.larksuite.com"}
MAX_BODY = 256 * 1024  # an event is a few KB; a text message at most 150 KB
TEXT_BYTES = 30 * 1024  # one text message; Feishu takes 150 KB, people read less
CARD_BYTES = 20 * 1024  # a card's markdown; Feishu refuses cards past 30 KB
MAX_MENTIONS = 10
SEEN = 4096  # event ids remembered per process (Feishu re-delivers for up to 7 hours)
REF_CHARS = 200  # outbox.message_ref's column

# codes (docs/feishu.md, with sources) and what the outbox should do about them
REFRESH = {
    99991661,
    99991663,
    99991668,
}  # missing / invalid / expired token: fetch anew, retry once
AUTH = {10003, 10014, 99991401, 99991672, 230006}
GONE = {230002, 230013}
UNCHANGEABLE = {230011, 230031}  # a card withdrawn, or sent more than 14 days ago
LIMITED = {99991400: 1.0, 230020: 1.0}  # code → seconds to wait when no reset header says
STYLES = {"primary": "primary", "default": "default", "danger": "danger"}
FILE_TYPES = {".xlsx": "xls", ".xls": "xls", ".pdf": "pdf", ".doc": "doc", ".docx": "doc"}
_MENTION_KEY = re.compile(r"@_user_\d{1,3}")


# --- Reply → Feishu -----------------------------------------------------------------------------

# A text message renders `<at user_id="…">` (and `<at user_id="all">` pings everyone); a card's
# markdown also renders links, `<font>` and `<at>`. None is our markup, so their opening characters
# become full-width forms that read the same and render as themselves.
_INERT_TEXT = str.maketrans({"<": "＜", ">": "＞"})
_INERT_CARD = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］"})


def _lines(reply: Reply, *, bold: bool) -> list[str]:
    lines = [reply.text]
    lines += [
        f"**{label}**: {value}" if bold else f"{label}: {value}" for label, value in reply.fields
    ]
    if reply.table:
        header, *rows = reply.table
        lines.append(("**" + " | ".join(header) + "**") if bold else " | ".join(header))
        lines += [" | ".join(row) for row in rows]
    return lines


def text(reply: Reply) -> str:
    """A text message: no markup (Feishu's text shows `**` as written); a button becomes the
    command to type."""
    lines = _lines(reply, bold=False)
    for row in reply.button_rows():
        lines.append(" · ".join(f"{b.label}: {b.command.strip()}" for b in row))
    return "\n".join(lines).replace("**", "").replace("`", "").translate(_INERT_TEXT)


def card(reply: Reply, *, buttons: bool = True) -> dict[str, Any]:
    """An interactive card (schema 1.0): the reply as markdown, then a row of buttons per row,
    each button's value its command. Shared (`update_multi`), so an update shows to everyone."""
    content = "\n".join(_lines(reply, bold=True)).translate(_INERT_CARD)
    if len(content.encode()) > CARD_BYTES:
        content = split_bytes(content, CARD_BYTES - 3)[0] + "…"
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": content}]
    if buttons:
        for row in reply.button_rows():
            elements.append(
                {
                    "tag": "action",
                    "actions": [
                        {
                            "tag": "button",
                            "text": {"tag": "plain_text", "content": b.label[:40]},
                            "type": STYLES[b.style],
                            "value": {"command": b.command.strip()},
                        }
                        for b in row
                    ],
                }
            )
    return {"config": {"wide_screen_mode": True, "update_multi": True}, "elements": elements}


# --- the server API -----------------------------------------------------------------------------


class FeishuApi(AppApi):
    """Feishu's open API for one self-built app: the tenant_access_token (cached until half an hour
    before it expires, when Feishu starts handing out its successor; one fetch shared by concurrent
    callers; fetched anew once when refused), and every error code turned into the outbox's typed
    errors."""

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str,
        timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            base_url=base_url, timeout=timeout, monotonic=monotonic, transport=transport
        )
        self.app_id = app_id
        self.app_secret = app_secret

    async def fetch_token(self) -> tuple[str, float]:
        path = "/open-apis/auth/v3/tenant_access_token/internal"
        answer = self._checked(
            await self._request(
                "POST",
                path,
                what="tenant_access_token",
                json={"app_id": self.app_id, "app_secret": self.app_secret},
            ),
            "tenant_access_token",
        )
        token = str(answer.get("tenant_access_token") or "")
        if not token:
            raise Transient("feishu tenant_access_token: no token in the answer")
        lifetime = float(answer.get("expire") or 7200)
        return token, (lifetime - 1800 if lifetime > 3600 else lifetime / 2)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An authenticated call; a refused token is fetched anew and the call retried once."""
        answer: dict[str, Any] = {}
        for attempt in range(2):
            token = await self.token()
            answer = await self._request(
                method,
                path,
                what=path,
                json=json,
                params=params,
                data=data,
                files=files,
                headers={"Authorization": f"Bearer {token}"},
            )
            if answer.get("code") in REFRESH and attempt == 0:
                self._forget(token)
                continue
            break
        return self._checked(answer, path)

    async def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._state().client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise Transient(f"feishu {what} unreachable: {type(error).__name__}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        code = answer.get("code") if isinstance(answer, dict) else None
        if response.status_code == 429 or code in LIMITED:
            # Feishu says when its window resets; without that, its documented pause.
            reset = response.headers.get("x-ogw-ratelimit-reset", "")
            wait = float(reset) if reset.isdigit() else LIMITED.get(code or 0, 1.0)
            raise RateLimited(max(wait, 0.1), f"feishu {what}: errcode {code or 429} rate limited")
        if not isinstance(answer, dict):
            raise Transient(f"feishu {what}: answer is not JSON (HTTP {response.status_code})")
        if response.status_code >= 500 and not code:
            raise Transient(f"feishu {what}: HTTP {response.status_code}")
        return answer

    @staticmethod
    def _checked(answer: dict[str, Any], what: str) -> dict[str, Any]:
        code = answer.get("code", 0)
        if code == 0:
            return answer
        detail = f"feishu {what}: errcode {code} {str(answer.get('msg', ''))[:160]}".strip()
        if code in REFRESH or code in AUTH:
            raise AuthBroken(detail)
        if code in GONE:
            raise TargetGone(detail)
        if code in UNCHANGEABLE:
            raise Unchangeable(detail)
        raise Transient(detail)

    async def bot_open_id(self) -> str:
        answer = await self.call("GET", "/open-apis/bot/v3/info")
        bot = answer.get("bot")
        return str(bot.get("open_id") or "") if isinstance(bot, dict) else ""

    async def user_name(self, open_id: str) -> str | None:
        """The member's name from the contact API; None when Feishu will not say (no such
        member, or the app may not read the directory)."""
        try:
            answer = await self.call(
                "GET", f"/open-apis/contact/v3/users/{open_id}", params={"user_id_type": "open_id"}
            )
        except (TargetGone, AuthBroken, Transient):
            return None
        user = (answer.get("data") or {}).get("user") or {}
        name = user.get("name") if isinstance(user, dict) else None
        return str(name) if name else None

    async def upload_image(self, png: bytes, filename: str) -> str:
        answer = await self.call(
            "POST",
            "/open-apis/im/v1/images",
            data={"image_type": "message"},
            files={"image": (filename, png, "image/png")},
        )
        return str((answer.get("data") or {}).get("image_key") or "")

    async def upload_file(self, data: bytes, filename: str, mime: str) -> str:
        suffix = filename[filename.rfind(".") :].lower() if "." in filename else ""
        answer = await self.call(
            "POST",
            "/open-apis/im/v1/files",
            data={"file_type": FILE_TYPES.get(suffix, "stream"), "file_name": filename},
            files={"file": (filename, data, mime)},
        )
        return str((answer.get("data") or {}).get("file_key") or "")


class Names:
    """Members' names: from mentions (Feishu names the mentioned) and the contact API, cached."""

    def __init__(self, api: FeishuApi, size: int = 2048) -> None:
        self.api = api
        self.size = size
        self._names: OrderedDict[str, str] = OrderedDict()

    def remember(self, open_id: str, name: str) -> None:
        if name:
            self._names[open_id] = name
            self._names.move_to_end(open_id)
            while len(self._names) > self.size:
                self._names.popitem(last=False)

    def known(self, open_id: str) -> str | None:
        return self._names.get(open_id)

    async def name(self, open_id: str) -> str:
        known = self.known(open_id)
        if known:
            return known
        name = await self.api.user_name(open_id)
        if name:
            self.remember(open_id, name)
        return name or open_id


# --- outbound -----------------------------------------------------------------------------------


class FeishuSender:
    """Delivers outbox messages to a member (open_id) or a chat (chat_id): text, or a card when the
    reply has buttons; the chart as an image and an export as a file, each uploaded first."""

    platform = "feishu"

    def __init__(self, api: FeishuApi) -> None:
        self.api = api

    @staticmethod
    def _receiver(target: Target) -> tuple[str, str]:
        return ("open_id" if target.kind == "member" else "chat_id"), target.key

    async def send(self, target: Target, reply: Reply) -> str:
        id_type, receiver = self._receiver(target)
        if not receiver:
            raise TargetGone("feishu: no chat to send to (set digest_channel to a chat id oc_…)")
        if reply.buttons:
            message_id = await self.message(id_type, receiver, "interactive", card(reply))
            kind = "card"
        else:
            message_id = ""
            for part in split_bytes(text(reply), TEXT_BYTES):
                message_id = await self.message(id_type, receiver, "text", {"text": part})
            kind = "text"
        await self.media(id_type, receiver, reply)
        ref = f"{kind}|{message_id}|{id_type}|{receiver}"
        return ref if len(ref) <= REF_CHARS else f"{kind}|{message_id}"[:REF_CHARS]

    async def update(self, message_ref: str, reply: Reply) -> None:
        """A card is replaced in place (for everyone who sees it), keeping the buttons `reply`
        still offers (someone who has yet to sign). A text message cannot become a card, and a
        deleted or too old card cannot change: Unchangeable, nothing new is sent."""
        kind, message_id = (message_ref.split("|") + [""])[:2]
        if kind != "card" or not message_id:
            raise Unchangeable(f"feishu {kind or 'message'} messages cannot be edited")
        try:
            await self.edit_card(message_id, reply, buttons=True)
        except TargetGone as error:
            raise Unchangeable(f"feishu card {message_id}: {error}") from error

    async def edit_card(self, message_id: str, reply: Reply, *, buttons: bool = False) -> None:
        await self.api.call(
            "PATCH",
            f"/open-apis/im/v1/messages/{message_id}",
            json={"content": json.dumps(card(reply, buttons=buttons), ensure_ascii=False)},
        )

    async def message(
        self, id_type: str, receiver: str, msg_type: str, content: dict[str, Any]
    ) -> str:
        answer = await self.api.call(
            "POST",
            "/open-apis/im/v1/messages",
            params={"receive_id_type": id_type},
            json={
                "receive_id": receiver,
                "msg_type": msg_type,
                "content": json.dumps(content, ensure_ascii=False),
            },
        )
        return str((answer.get("data") or {}).get("message_id") or "")

    async def media(self, id_type: str, receiver: str, reply: Reply) -> None:
        """The chart and the file of a reply, in that order, after its text."""
        if not receiver:
            return
        if reply.image is not None:
            key = await self.api.upload_image(reply.image.png, reply.image.filename)
            await self.message(id_type, receiver, "image", {"image_key": key})
        if reply.file is not None:
            key = await self.api.upload_file(reply.file.data, reply.file.filename, reply.file.mime)
            await self.message(id_type, receiver, "file", {"file_key": key})


# --- inbound ------------------------------------------------------------------------------------


class TooLarge(Rejected):
    status = 413


@dataclass(frozen=True)
class Inbound:
    """What the adapter uses of a message event or a card click."""

    event_id: str
    tenant: str
    user: str
    create_time: str = ""  # milliseconds
    text: str = ""
    chat_id: str = ""
    group: bool = False
    mentions: tuple[tuple[str, str, str], ...] = ()  # (key as in the text, open_id, name)
    command: str = ""  # a click's
    message_id: str = ""  # the clicked card's

    @property
    def click(self) -> bool:
        return bool(self.command)

    @property
    def received_at(self) -> datetime:
        if (
            self.create_time.isascii()
            and self.create_time.isdigit()
            and len(self.create_time) <= 16
        ):
            try:
                return datetime.fromtimestamp(int(self.create_time) / 1000, UTC)
            except (ValueError, OverflowError, OSError):
                pass
        return datetime.now(UTC)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_event(event: dict[str, Any]) -> Inbound | None:
    """A message or a click from a decrypted v2 event; None for anything else."""
    header = _dict(event.get("header"))
    body = _dict(event.get("event"))
    kind, event_id = _str(header.get("event_type")), _str(header.get("event_id"))
    tenant = _str(header.get("tenant_key"))
    if kind == "im.message.receive_v1":
        sender, message = _dict(body.get("sender")), _dict(body.get("message"))
        if sender.get("sender_type") != "user" or message.get("message_type") != "text":
            return None
        try:
            content = json.loads(_str(message.get("content")) or "{}")
        except ValueError:
            return None
        mentions = tuple(
            (_str(m.get("key")), _str(_dict(m.get("id")).get("open_id")), _str(m.get("name")))
            for m in message.get("mentions") or []
            if isinstance(m, dict)
        )
        return Inbound(
            event_id=event_id,
            tenant=tenant or _str(sender.get("tenant_key")),
            user=_str(_dict(sender.get("sender_id")).get("open_id")),
            create_time=_str(message.get("create_time")),
            text=_str(_dict(content).get("text")),
            chat_id=_str(message.get("chat_id")),
            group=message.get("chat_type") == "group",
            mentions=mentions,
        )
    if kind == "card.action.trigger":
        operator, action = _dict(body.get("operator")), _dict(body.get("action"))
        context = _dict(body.get("context"))
        command = _str(_dict(action.get("value")).get("command")).strip()
        if not command:
            return None
        return Inbound(
            event_id=event_id,
            tenant=tenant or _str(operator.get("tenant_key")),
            user=_str(operator.get("open_id")),
            create_time=_str(header.get("create_time"))[:13],
            command=command,
            chat_id=_str(context.get("open_chat_id")),
            message_id=_str(context.get("open_message_id")),
        )
    return None


def command_text(inbound: Inbound, bot: str | None) -> tuple[str, dict[str, Mention]] | None:
    """The command a message carries, with the people it mentions; None when it is not addressed to
    the bot (in a group: neither @bot first nor a leading `/`).

    Feishu writes each mention into the text as a key (`@_user_1`) and names it beside the text.
    Leading mentions of the bot are dropped (when the bot's open_id is not known yet, the first
    mention is taken for it: in a group the bot only hears messages that mention it). Any other
    mention stays in the text as its key, resolved to the person Feishu names."""
    people = {key: (open_id, name) for key, open_id, name in inbound.mentions if key}
    rest, addressed = inbound.text.strip(), False
    while True:
        match = _MENTION_KEY.match(rest)
        if not match or match.group(0) not in people:
            break
        open_id = people[match.group(0)][0]
        if (bot is None and addressed) or (bot is not None and open_id != bot):
            break
        rest, addressed = rest[match.end() :].lstrip(), True
    if not rest or (inbound.group and not addressed and not rest.startswith("/")):
        return None
    found: dict[str, Mention] = {}
    for key in _MENTION_KEY.findall(rest)[:MAX_MENTIONS]:
        if key in people and identifier(people[key][0]):
            open_id, name = people[key]
            found[key] = Mention(user_key=open_id, name=name or open_id)
    return rest, found


class FeishuAdapter:
    platform = "feishu"

    @classmethod
    def from_settings(cls, settings: Any, dispatch: Dispatch) -> FeishuAdapter:
        api = FeishuApi(
            app_id=settings.feishu_app_id or "",
            app_secret=settings.feishu_app_secret or "",
            base_url=settings.feishu_base_url,
        )
        adapter = cls(dispatch, api=api, crypto=None)
        if settings.feishu_encrypt_key and settings.feishu_verification_token:
            adapter.crypto = FeishuCrypto(
                settings.feishu_encrypt_key, settings.feishu_verification_token
            )
        else:
            from adapters.feishu_ws import LongConnection

            # No keys for a request URL: events come over the long connection instead.
            adapter.long_connection = LongConnection(
                adapter, app_id=api.app_id, app_secret=api.app_secret, domain=api.base_url
            )
        return adapter

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        api: FeishuApi,
        crypto: FeishuCrypto | None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.dispatch = dispatch
        self.inbox: Inbox | None = None  # set by the wiring: commands kept until answered
        self.api = api
        self.crypto = crypto
        self.max_body = max_body
        self.names = Names(api)
        self.bot: str | None = None  # the bot's own open_id, once asked
        self._bot_retry_at = 0.0
        self.long_connection: LongConnection | None = None  # started by `dealbot serve`
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._sender = FeishuSender(api)

    def routes(self) -> list[Route]:
        if self.crypto is None:
            return []
        return [Route("/feishu/events", self.events, methods=["POST"])]

    def sender(self) -> FeishuSender:
        return self._sender

    async def events(self, request: Request) -> Response:
        crypto = self.crypto
        assert crypto is not None  # routes() mounts this only with keys
        try:
            body = await read_body(request, self.max_body)
            if body is None:
                raise TooLarge("body too large")
            event = crypto.open(request.headers, body)
        except Rejected as error:
            log.warning("feishu event refused (%s): %s", error.status, error)
            return Response(status_code=error.status)
        if event.get("type") == "url_verification":
            return JSONResponse({"challenge": _str(event.get("challenge"))})
        try:
            work = await self.accept(event)
        except Rejected as error:
            log.warning("feishu event refused (%s): %s", error.status, error)
            return Response(status_code=error.status)
        if work is None:
            return JSONResponse({})
        return JSONResponse({}, background=BackgroundTask(self.handle, *work))

    async def accept(self, event: dict[str, Any]) -> tuple[Inbound, Received | None] | None:
        """An authenticated event (over HTTP, or the long connection): a repeat or anything that
        is no command is dropped; a command is kept (before Feishu is told "received") and what
        to run returned."""
        header = _dict(event.get("header"))
        app_id = _str(header.get("app_id"))
        if app_id and app_id != self.api.app_id:
            return None  # another app's event, sent here with the same keys
        event_id = _str(header.get("event_id"))
        if not event_id:
            raise Rejected("event without an event_id")
        if event_id in self._seen:
            return None  # a re-delivery: acknowledged, nothing else
        self._seen[event_id] = None
        while len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        inbound = parse_event(event)
        if inbound is None:
            return None
        if not (identifier(inbound.user) and identifier(inbound.tenant)):
            raise Rejected("event without a sender or tenant")
        # The bot's own open_id tells a command from chatter: asked once, before the first answer.
        bot = None if inbound.click else await self._bot()
        invocation = self._invocation(inbound, bot=bot)
        if invocation is None:
            return None
        received = await self._receive(inbound, invocation)
        if received is not None and received.repeat:
            return None
        return inbound, received

    async def _receive(self, inbound: Inbound, invocation: Invocation) -> Received | None:
        """Keep a command before Feishu is told "received", so that it survives this process."""
        if self.inbox is None:
            return None
        return await self.inbox.receive(
            invocation, {"user": inbound.user, "chat": inbound.chat_id if inbound.group else None}
        )

    def _invocation(
        self, inbound: Inbound, *, bot: str | None, name: str | None = None
    ) -> Invocation | None:
        if inbound.click:
            text, mentions, channel, press = inbound.command, {}, None, "bound"
        else:
            found = command_text(inbound, bot)
            if found is None:
                return None
            (text, mentions), press = found, None
            channel = inbound.chat_id if inbound.group else None
            for mention in mentions.values():
                self.names.remember(mention.user_key, mention.name)
        return Invocation(
            platform="feishu",
            team_key=inbound.tenant,
            channel=channel,
            press=press,
            user_key=inbound.user,
            user_name=name or self.names.known(inbound.user) or inbound.user,
            text=text,
            mentions=mentions,
            received_at=inbound.received_at,
            delivery_id=inbound.event_id,
        )

    async def _bot(self) -> str | None:
        """The bot's open_id; after a failed lookup not asked again for a minute, so events are
        still acknowledged in time (the first mention stands in for the bot meanwhile)."""
        if self.bot is None and self.api.monotonic() >= self._bot_retry_at:
            try:
                self.bot = await self.api.bot_open_id() or None
            except DeliveryError as error:
                self._bot_retry_at = self.api.monotonic() + 60
                log.warning("feishu bot/v3/info failed: %s", error)
        return self.bot

    async def handle(self, inbound: Inbound, received: Received | None = None) -> None:
        """Run what an event asks for; never raises (it runs after the answer was sent)."""
        try:
            bot = None if inbound.click else await self._bot()
            if self._invocation(inbound, bot=bot) is None:
                await self._answered(received)  # the bot was not addressed after all
                return
            invocation = self._invocation(
                inbound, bot=bot, name=await self.names.name(inbound.user)
            )
            assert invocation is not None
            reply = await self._run(invocation, received)
            if reply.duplicate:
                return
            if inbound.click:
                await self._on_click(inbound, reply, received)
                return
            public = reply.ok and not reply.private
            target = (
                Target(kind="channel", key=inbound.chat_id)
                if inbound.group and public
                else Target(kind="member", key=inbound.user)
            )
            if await self._deliver(target, reply):
                await self._answered(received)
        except Exception:
            log.exception("feishu event handling failed")

    async def _on_click(self, inbound: Inbound, reply: Reply, received: Received | None) -> None:
        """A decision replaces the card (for everyone who sees it) with its outcome; anything
        else goes to the person who clicked."""
        if reply.ok and reply.settles and inbound.message_id:
            try:
                await self._sender.edit_card(inbound.message_id, reply)
                await self._sender.media("open_id", inbound.user, reply)
                await self._answered(received)
                return
            except DeliveryError as error:
                log.warning("feishu card update failed: %s", error)
        if await self._deliver(Target(kind="member", key=inbound.user), reply):
            await self._answered(received)

    async def answer_later(self, answer_to: dict[str, Any], reply: Reply, age: timedelta) -> None:
        """Answer a command this process did not receive (its receiver died)."""
        chat, user = answer_to.get("chat"), str(answer_to.get("user") or "")
        public = reply.ok and not reply.private
        await self._sender.send(
            Target(kind="channel", key=chat)
            if chat and public
            else Target(kind="member", key=user),
            reply,
        )

    async def _run(self, invocation: Invocation, received: Received | None) -> Reply:
        if self.inbox is not None:
            return await self.inbox.run(received, invocation)
        return await asyncio.to_thread(self.dispatch, invocation)

    async def _answered(self, received: Received | None) -> None:
        if self.inbox is not None:
            await self.inbox.answered(received)

    async def _deliver(self, target: Target, reply: Reply) -> bool:
        try:
            await self._sender.send(target, reply)
        except DeliveryError as error:
            log.warning("feishu reply to %s not delivered: %s", target.kind, error)
            return False
        return True
