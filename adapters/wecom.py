"""WeCom (企业微信) self-built app: the encrypted callback (`GET|POST /wecom/callback`), replies as
markdown app messages or `button_interaction` template cards, group pushes through the group robot
or an app chat, and the outbox's `WeComSender`. Protocol facts: ../shared/platforms.md.

The adapter translates and nothing else. WeCom waits 5 seconds for an answer, so the callback
answers an empty 200 at once and runs the command in a background task, sending the reply through
`message/send`; a retried delivery carries the same MsgId (events: sender, time and key), which the
dispatcher runs once.

Button keys are the button's command itself (`/审批 同意 Q7`): WeCom echoes the key back as the
click's EventKey and allows 1024 bytes, which every command a verb puts on a button fits. A longer
command is packed as `z:` + urlsafe-base64(zlib(command)) and unpacked on the click, so nothing is
stored; one that still does not fit is left off the card (it stays typeable).

Channels: an outbox target of kind "channel" whose key is `robot` (or empty) goes to the group robot
(`WECOM_WEBHOOK_KEY`); any other key is an app chat id (`appchat/send`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
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
    unix_seconds,
)
from adapters.wecom_crypto import (
    Rejected,
    WeComCrypto,
    parse_xml,
    passive_text,
    xml_fields,
)
from commands.inbox import Inbox, Received
from commands.types import Invocation, Mention, Reply
from reminders.limits import Limit

log = logging.getLogger("dealbot.wecom")

Dispatch = Callable[[Invocation], Reply]
Sleep = Callable[[float], Awaitable[None]]

MAX_BODY = 64 * 1024  # a callback is a few hundred bytes; anything near this is not WeCom
APP_MARKDOWN_BYTES = 2048  # message/send and appchat/send markdown.content
ROBOT_MARKDOWN_BYTES = 4096  # webhook/send markdown.content
BUTTON_KEY_BYTES = 1024
MAX_BUTTONS = 6
TITLE_CHARS = 36  # main_title.title, as WeCom recommends
OUTCOME_CHARS = 40  # the disabled button's text after a decision
MAX_MENTIONS = 10
ROBOT = "robot"
PACKED = "z:"
REF_CHARS = 200  # outbox.message_ref's column

# errcodes (WeCom's global list) and what the outbox should do about them
REFRESH = {40014, 42001}  # invalid / expired access_token: fetch a new one and retry once
BUSY = -1
AUTH = {40001, 40013, 40056, 40091, 41004, 48002, 50003, 60020, 93000}
GONE = {40003, 40031, 40050, 46004, 50002, 60111, 81013, 82001, 86001, 86003}
LIMITED = {45009: 60.0, 45033: 1.0, 130101: 60.0}  # errcode → seconds to wait
STYLES = {"primary": 1, "default": 2, "danger": 3}
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.\-]{1,64})")


class RedactSecrets(logging.Filter):
    """httpx logs every request's URL at INFO, and ours carry the app secret, the access token or
    the robot key: those values are masked before any handler sees them."""

    _SECRET = re.compile(r"((?:access_token|corpsecret|key)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._SECRET.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self._SECRET.sub(r"\1***", str(arg))
                                if isinstance(arg, str | httpx.URL) else arg for arg in record.args)
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(known, RedactSecrets) for known in _httpx_log.filters):
    _httpx_log.addFilter(RedactSecrets())


# --- Reply → WeCom ------------------------------------------------------------------------------

# WeCom's markdown has no escape syntax (no backslash escapes; entities are not documented), and
# it renders links `[x](url)`, `<font color=…>` and `<@userid>` mentions. None of these is our
# markup, so their opening characters become their full-width forms, which read the same and
# render as themselves: a name can neither link, recolour nor ping.
_INERT = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］"})


def inert(text: str) -> str:
    """Text that WeCom's markdown shows as written (our **bold** and `code` stay markup)."""
    return text.translate(_INERT)


def markdown(reply: Reply) -> str:
    """Our markup is a subset of WeCom's markdown; fields, table and buttons become lines (a
    button shows the command to type where no card can carry it)."""
    lines = [reply.text]
    lines += [f"**{label}**: {value}" for label, value in reply.fields]
    if reply.table:
        header, *rows = reply.table
        lines.append("**" + " | ".join(header) + "**")
        lines += [" | ".join(row) for row in rows]
    for row in reply.button_rows():
        lines.append(" · ".join(f"{b.label}: `{b.command.strip()}`" for b in row))
    return inert("\n".join(lines))


def plain(text: str) -> str:
    """Text for places without markdown (card titles, button names)."""
    return text.replace("**", "").replace("`", "")


def _pieces(line: str, limit: int) -> Iterator[str]:
    """A line cut at character boundaries into pieces of at most `limit` UTF-8 bytes."""
    start, size = 0, 0
    for index, char in enumerate(line):
        width = len(char.encode())
        if size + width > limit:
            yield line[start:index]
            start, size = index, 0
        size += width
    if start < len(line):
        yield line[start:]


def split_bytes(text: str, limit: int) -> list[str]:
    """Messages of at most `limit` UTF-8 bytes, cut after a line where possible; joined they give
    `text` back exactly."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        for piece in _pieces(line, limit):
            width = len(piece.encode())
            if current and size + width > limit:
                parts.append("".join(current))
                current, size = [], 0
            current.append(piece)
            size += width
    if current:
        parts.append("".join(current))
    return parts or [""]


def button_key(command: str) -> str | None:
    """The key a button carries: its command, packed when longer than WeCom allows."""
    command = command.strip()
    if len(command.encode()) <= BUTTON_KEY_BYTES and not command.startswith(PACKED):
        return command
    packed = PACKED + base64.urlsafe_b64encode(zlib.compress(command.encode(), 9)).decode()
    return packed if len(packed) <= BUTTON_KEY_BYTES else None


def command_of(key: str, *, limit: int = 64 * 1024) -> str:
    """The command a clicked key stands for; "" for a key we did not make."""
    if not key.startswith(PACKED):
        return key.strip()
    try:
        inflater = zlib.decompressobj()
        data = inflater.decompress(base64.urlsafe_b64decode(key[len(PACKED):]), limit)
        if inflater.unconsumed_tail:
            return ""
        return data.decode().strip()
    except (ValueError, zlib.error):
        return ""


def template_card(reply: Reply, *, task_id: str) -> dict[str, Any] | None:
    """A `button_interaction` card whose button keys are commands; None when no button fits."""
    buttons: list[dict[str, Any]] = []
    for button in reply.buttons:
        key = button_key(button.command)
        if key is None or any(known["key"] == key for known in buttons):
            continue
        buttons.append({"text": plain(button.label)[:16], "style": STYLES[button.style],
                        "key": key})
    if not buttons:
        return None
    text = plain(reply.text).strip()
    first, _, rest = text.partition("\n")
    title = first if len(first) <= TITLE_CHARS else first[:TITLE_CHARS - 1] + "…"
    details = [text if title != first else rest]
    shown = reply.fields[:6]
    details += [f"{label}: {value}" for label, value in reply.fields[6:]]
    details += [" | ".join(row) for row in reply.table]
    card: dict[str, Any] = {"card_type": "button_interaction", "task_id": task_id,
                            "main_title": {"title": title}, "button_list": buttons[:MAX_BUTTONS]}
    sub_title = "\n".join(line for line in details if line).strip()
    if sub_title:
        card["sub_title_text"] = sub_title[:1000]
    if shown:
        card["horizontal_content_list"] = [
            {"keyname": plain(label)[:16], "value": plain(value)[:64]} for label, value in shown]
    return card


def new_task_id() -> str:
    """Unique per app, from `[0-9A-Za-z_-@]`, at most 128 bytes."""
    return f"dealbot-{uuid.uuid4().hex}"


def outcome_text(reply: Reply) -> tuple[str, bool]:
    """The disabled button's text after a decision, and whether it is the whole reply."""
    text = plain(reply.text).strip()
    first = text.partition("\n")[0]
    if len(first) <= OUTCOME_CHARS:
        return first, first == text and not reply.fields and not reply.table and not reply.image
    return first[:OUTCOME_CHARS - 1] + "…", False


# --- the server API -----------------------------------------------------------------------------

class WeComApi(AppApi):
    """WeCom's server API for one self-built app: the access token (cached until shortly before it
    expires, one fetch shared by concurrent callers, refreshed once when refused), WeCom's busy
    answer retried with back-off, and every other errcode turned into the outbox's typed errors."""

    def __init__(self, *, corp_id: str, secret: str, agent_id: int | None, base_url: str,
                 webhook_key: str | None = None, timeout: float = 10.0, busy_retries: int = 3,
                 sleep: Sleep = asyncio.sleep, monotonic: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url=base_url, timeout=timeout, monotonic=monotonic,
                         transport=transport)
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.webhook_key = webhook_key
        self.busy_retries = busy_retries
        self.sleep = sleep

    async def fetch_token(self) -> tuple[str, float]:
        answer = self._checked(await self._request(
            "GET", "/cgi-bin/gettoken", what="gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret}), "gettoken")
        token = str(answer.get("access_token") or "")
        if not token:
            raise Transient("wecom gettoken: no access_token in the answer")
        lifetime = float(answer.get("expires_in") or 7200)
        # Refresh early: five minutes before expiry, or at half-life for short-lived tokens.
        return token, max(lifetime - 300, lifetime / 2)

    async def call(self, method: str, path: str, *, json: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None,
                   files: dict[str, Any] | None = None) -> dict[str, Any]:
        """An authenticated call; on 40014/42001 the token is fetched anew and the call retried
        once."""
        answer: dict[str, Any] = {}
        for attempt in range(2):
            token = await self.token()
            answer = await self._request(method, path, what=path, json=json, files=files,
                                         params={**(params or {}), "access_token": token})
            if answer.get("errcode") in REFRESH and attempt == 0:
                self._forget(token)
                continue
            break
        return self._checked(answer, path)

    async def robot(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Post to the group robot (its key is its credential; no access token)."""
        if not self.webhook_key:
            raise TargetGone("no group robot: set WECOM_WEBHOOK_KEY")
        path = "/cgi-bin/webhook/send"
        answer = await self._request("POST", path, what=path, json=payload,
                                     params={"key": self.webhook_key})
        return self._checked(answer, path)

    async def _request(self, method: str, path: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        """One exchange, repeated with back-off while WeCom answers "busy" (-1)."""
        attempt = 0
        while True:
            try:
                response = await self._state().client.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                # The error's text may hold the URL, and the URL the token: name the type only.
                raise Transient(f"wecom {what} unreachable: {type(error).__name__}") from None
            if response.status_code == 429:
                retry_after = response.headers.get("Retry-After", "60")
                raise RateLimited(float(retry_after) if retry_after.isdigit() else 60.0,
                                  f"wecom {what}: HTTP 429")
            if response.status_code >= 500:
                raise Transient(f"wecom {what}: HTTP {response.status_code}")
            try:
                answer = response.json()
            except ValueError:
                raise Transient(f"wecom {what}: answer is not JSON "
                                f"(HTTP {response.status_code})") from None
            if not isinstance(answer, dict):
                raise Transient(f"wecom {what}: unexpected answer")
            if answer.get("errcode") == BUSY and attempt + 1 < self.busy_retries:
                await self.sleep(0.5 * 2 ** attempt)
                attempt += 1
                continue
            return answer

    @staticmethod
    def _checked(answer: dict[str, Any], what: str) -> dict[str, Any]:
        code = answer.get("errcode", 0)
        if code == 0:
            return answer
        detail = f"wecom {what}: errcode {code} {str(answer.get('errmsg', ''))[:160]}".strip()
        if code in REFRESH or code in AUTH:
            raise AuthBroken(detail)
        if code in GONE:
            raise TargetGone(detail)
        if code in LIMITED:
            raise RateLimited(LIMITED[code], detail)
        raise Transient(detail)

    async def user_name(self, user_id: str) -> str | None:
        """The member's name from `user/get`; None when no such member exists."""
        try:
            answer = await self.call("GET", "/cgi-bin/user/get", params={"userid": user_id})
        except TargetGone:
            return None
        return str(answer.get("name") or user_id)

    async def upload(self, kind: str, data: bytes, filename: str, mime: str) -> str:
        """A temporary media id (valid 3 days) for an `image` or a `file`: app messages and app
        chats send media by id."""
        answer = await self.call("POST", "/cgi-bin/media/upload", params={"type": kind},
                                 files={"media": (filename, data, mime)})
        return str(answer["media_id"])


class UserNames:
    """Members' names from `user/get`, cached (LRU). WeCom hides names from apps created after
    mid-2022 unless they may read the directory; the user id stands in then."""

    def __init__(self, api: WeComApi, size: int = 2048) -> None:
        self.api = api
        self.size = size
        self._names: OrderedDict[str, str] = OrderedDict()

    async def lookup(self, user_id: str) -> str | None:
        """The member's name, or None when WeCom knows no such member."""
        if user_id in self._names:
            self._names.move_to_end(user_id)
            return self._names[user_id]
        try:
            name = await self.api.user_name(user_id)
        except DeliveryError as error:
            log.warning("user/get failed: %s", error)
            return None  # not cached: the next message asks again
        if name is not None:  # someone who joins later is found then
            self._names[user_id] = name
            if len(self._names) > self.size:
                self._names.popitem(last=False)
        return name

    async def name(self, user_id: str) -> str:
        return await self.lookup(user_id) or user_id

    def known(self, user_id: str) -> str | None:
        """The cached name, without asking WeCom."""
        return self._names.get(user_id)


# --- outbound -----------------------------------------------------------------------------------

class RobotWindow:
    """The group robot's limit (20 messages a minute) kept in memory, so a push that would break it
    waits in the outbox instead of being refused half-sent."""

    def __init__(self, count: int = 20, seconds: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.count = count
        self.seconds = seconds
        self.monotonic = monotonic
        self._sent: deque[float] = deque()

    def _prune(self) -> float:
        now = self.monotonic()
        while self._sent and self._sent[0] <= now - self.seconds:
            self._sent.popleft()
        return now

    def check(self, messages: int) -> None:
        """Raise RateLimited unless `messages` more fit in the window now."""
        now = self._prune()
        if self._sent and len(self._sent) + messages > self.count:
            # Wait until enough of the oldest sends leave the window (all of them at most).
            index = min(len(self._sent) + messages - self.count, len(self._sent)) - 1
            raise RateLimited(max(self._sent[index] + self.seconds - now, 0.1),
                              f"wecom robot: {self.count} messages per {self.seconds:g}s")

    def record(self) -> None:
        self._prune()
        self._sent.append(self.monotonic())


class WeComSender:
    """Delivers outbox messages: to members as app messages (markdown, or a template card when the
    reply has buttons), to the group robot, or to an app chat.

    A message longer than one WeCom message goes out in parts. When a part fails (a rate limit
    midway), the parts already sent are remembered, so the outbox's retry sends only the rest."""

    platform = "wecom"

    def __init__(self, api: WeComApi, *, robot: RobotWindow | None = None) -> None:
        self.api = api
        self.robot = robot or RobotWindow()
        self._progress: OrderedDict[str, int] = OrderedDict()

    async def send(self, target: Target, reply: Reply) -> str:
        if target.kind == "member":
            return await self.to_member(target.key, reply)
        if target.key in ("", ROBOT):
            return await self.to_robot(reply)
        return await self.to_chat(target.key, reply)

    async def update(self, message_ref: str, reply: Reply) -> None:
        """Only a card can change in WeCom, and only once (its response_code is spent by the
        change, and lapses after 72 h): its buttons give way to one greyed button reading the
        outcome, the first line of `reply`. A reply that still offers buttons (progress on a
        decision not made yet) leaves the card as it is, keeping that one change for the outcome;
        other messages cannot change at all."""
        kind, _, rest = message_ref.partition("|")
        user, _, code = rest.partition("|")
        if kind != "card" or not code:
            raise Unchangeable("wecom: only a template card can be changed")
        if reply.buttons:
            return
        try:
            await self.update_card(code, user, outcome_text(reply)[0])
        except (TargetGone, Transient) as error:
            if isinstance(error, Transient) and "errcode" not in str(error):
                raise  # WeCom unreachable: try again
            # WeCom refused this card's change: its code was used (the card was pressed) or lapsed.
            raise Unchangeable(f"wecom: {error}") from error

    async def update_card(self, response_code: str, user: str, text: str) -> None:
        await self.api.call("POST", "/cgi-bin/message/update_template_card", json={
            "userids": [user], "agentid": self._agent(), "response_code": response_code,
            "button": {"replace_name": text}})

    def _agent(self) -> int:
        if self.api.agent_id is None:
            raise AuthBroken("WECOM_AGENT_ID is not set (a number, from the app's page)")
        return self.api.agent_id

    async def to_member(self, user: str, reply: Reply) -> str:
        card = template_card(reply, task_id=new_task_id()) if reply.buttons else None
        if card is not None:
            answer = await self._app_message(user, {"msgtype": "template_card",
                                                    "template_card": card})
            ref = f"card|{user}|{answer.get('response_code', '')}"
        else:
            answers = await self._parts(f"member:{user}", markdown(reply), APP_MARKDOWN_BYTES,
                                        lambda part: self._app_message(user, {
                                            "msgtype": "markdown", "markdown": {"content": part}}))
            ref = f"msg|{user}|{answers[-1].get('msgid', '') if answers else ''}"
        for message in await self._media(reply):
            await self._app_message(user, message)
        return ref if len(ref) <= REF_CHARS else f"msg|{user}|"[:REF_CHARS]

    async def _media(self, reply: Reply) -> list[dict[str, Any]]:
        """The chart and the file of a reply as media messages (uploaded first), in that order."""
        messages = []
        if reply.image is not None:
            media_id = await self.api.upload("image", reply.image.png, reply.image.filename,
                                             "image/png")
            messages.append({"msgtype": "image", "image": {"media_id": media_id}})
        if reply.file is not None:
            media_id = await self.api.upload("file", reply.file.data, reply.file.filename,
                                             reply.file.mime)
            messages.append({"msgtype": "file", "file": {"media_id": media_id}})
        return messages

    async def _app_message(self, user: str, message: dict[str, Any]) -> dict[str, Any]:
        answer = await self.api.call("POST", "/cgi-bin/message/send",
                                     json={"touser": user, "agentid": self._agent(), **message})
        if user in str(answer.get("invaliduser") or "").split("|"):
            raise TargetGone(f"wecom message/send: {user} is not a member the app can reach")
        return answer

    async def to_robot(self, reply: Reply) -> str:
        text = markdown(reply)
        parts = split_bytes(text, ROBOT_MARKDOWN_BYTES)
        done = self._progress.get(self._progress_key(ROBOT, text), 0)
        self.robot.check(len(parts) - done + (1 if reply.image is not None else 0))

        async def post(part: str) -> dict[str, Any]:
            answer = await self.api.robot({"msgtype": "markdown", "markdown": {"content": part}})
            self.robot.record()
            return answer

        await self._parts(ROBOT, text, ROBOT_MARKDOWN_BYTES, post)
        if reply.image is not None:
            await self.api.robot({"msgtype": "image", "image": {
                "base64": base64.b64encode(reply.image.png).decode(),
                "md5": hashlib.md5(reply.image.png).hexdigest()}})
            self.robot.record()
        return f"{ROBOT}|{len(parts)}"

    async def to_chat(self, chat_id: str, reply: Reply) -> str:
        async def post(part: str) -> dict[str, Any]:
            return await self.api.call("POST", "/cgi-bin/appchat/send", json={
                "chatid": chat_id, "msgtype": "markdown", "markdown": {"content": part}})

        await self._parts(f"chat:{chat_id}", markdown(reply), APP_MARKDOWN_BYTES, post)
        for message in await self._media(reply):
            await self.api.call("POST", "/cgi-bin/appchat/send", json={"chatid": chat_id, **message})
        return f"chat|{chat_id}"[:REF_CHARS]

    @staticmethod
    def _progress_key(where: str, text: str) -> str:
        return hashlib.sha256(f"{where}\0{text}".encode()).hexdigest()

    async def _parts(self, where: str, text: str, limit: int,
                     post: Callable[[str], Awaitable[dict[str, Any]]]) -> list[dict[str, Any]]:
        """Send `text` in parts of at most `limit` bytes, resuming after parts already sent."""
        parts = split_bytes(text, limit)
        key = self._progress_key(where, text)
        done = self._progress.pop(key, 0)
        answers = []
        for index in range(done, len(parts)):
            try:
                answers.append(await post(parts[index]))
            except DeliveryError:
                if index:
                    self._progress[key] = index
                    while len(self._progress) > 256:
                        self._progress.popitem(last=False)
                raise
        return answers


# --- inbound ------------------------------------------------------------------------------------

class TooLarge(Rejected):
    status = 413


@dataclass(frozen=True)
class Inbound:
    """The fields of a decrypted callback message that the adapter uses."""

    msg_type: str
    user: str
    create_time: str
    content: str = ""
    msg_id: str = ""
    event: str = ""
    event_key: str = ""
    task_id: str = ""
    response_code: str = ""
    chat_id: str = ""
    agent_id: str = ""

    @classmethod
    def parse(cls, xml: bytes) -> Inbound:
        fields = xml_fields(parse_xml(xml))
        return cls(msg_type=fields.get("MsgType", ""), user=fields.get("FromUserName", ""),
                   create_time=fields.get("CreateTime", ""), content=fields.get("Content", ""),
                   msg_id=fields.get("MsgId", ""), event=fields.get("Event", ""),
                   event_key=fields.get("EventKey", ""), task_id=fields.get("TaskId", ""),
                   response_code=fields.get("ResponseCode", ""), chat_id=fields.get("ChatId", ""),
                   agent_id=fields.get("AgentID", ""))

    @property
    def delivery_id(self) -> str:
        """WeCom's retries repeat MsgId; events have none, and several may share a second (batch
        approvals), so an event is identified by sender, time, key and card."""
        if self.msg_id:
            return self.msg_id
        return f"event:{self.user}:{self.create_time}:{self.event_key}:{self.task_id}"[:200]

    @property
    def received_at(self) -> datetime:
        sent = unix_seconds(self.create_time)
        try:
            return datetime.fromtimestamp(sent, UTC) if sent is not None else datetime.now(UTC)
        except (ValueError, OverflowError, OSError):
            return datetime.now(UTC)


class WeComAdapter:
    platform = "wecom"

    @classmethod
    def from_settings(cls, settings: Any, dispatch: Dispatch) -> WeComAdapter:
        corp_id = settings.wecom_corp_id or ""
        agent = str(settings.wecom_agent_id or "").strip()
        api = WeComApi(corp_id=corp_id, secret=settings.wecom_secret or "",
                       agent_id=int(agent) if agent.isdigit() else None,
                       base_url=settings.wecom_api_url, webhook_key=settings.wecom_webhook_key)
        crypto = None
        if settings.wecom_token and settings.wecom_encoding_aes_key:
            crypto = WeComCrypto(settings.wecom_token, settings.wecom_encoding_aes_key, corp_id)
        else:
            log.warning("WECOM_TOKEN / WECOM_ENCODING_AES_KEY not set: /wecom/callback is off, "
                        "pushes still go out")
        limit = Limit.parse(settings.wecom_robot_rate)
        return cls(dispatch, api=api, crypto=crypto, robot=RobotWindow(limit.count, limit.seconds))

    def __init__(self, dispatch: Dispatch, *, api: WeComApi, crypto: WeComCrypto | None,
                 robot: RobotWindow | None = None, max_body: int = MAX_BODY) -> None:
        self.dispatch = dispatch
        self.inbox: Inbox | None = None  # set by the wiring: commands kept until answered
        self.api = api
        self.crypto = crypto
        self.max_body = max_body
        self.names = UserNames(api)
        self._sender = WeComSender(api, robot=robot)

    def routes(self) -> list[Route]:
        """`GET /wecom/callback` (URL verification) and `POST /wecom/callback` (messages)."""
        if self.crypto is None:
            return []
        return [Route("/wecom/callback", self.callback, methods=["GET", "POST"])]

    def sender(self) -> WeComSender:
        return self._sender

    async def callback(self, request: Request) -> Response:
        crypto = self.crypto
        assert crypto is not None  # routes() mounts this only with keys
        query = request.query_params
        signature, timestamp, nonce = (query.get(name, "") for name in
                                       ("msg_signature", "timestamp", "nonce"))
        try:
            if not (signature and timestamp and nonce):
                raise Rejected("missing msg_signature, timestamp or nonce")
            if request.method == "GET":
                # A '+' the sender did not URL-encode arrives as a space; base64 has no spaces.
                echo = query.get("echostr", "").replace(" ", "+")
                return Response(crypto.open(signature, timestamp, nonce, echo),
                                media_type="text/plain")
            body = await read_body(request, self.max_body)
            if body is None:
                raise TooLarge("body too large")
            envelope = xml_fields(parse_xml(body))
            inbound = Inbound.parse(crypto.open(signature, timestamp, nonce,
                                                envelope.get("Encrypt", "")))
            if not identifier(inbound.user):
                # Nobody to run it as and nobody to answer: refused, not run as user "".
                raise Rejected("no FromUserName that names a member")
        except Rejected as error:
            log.warning("wecom callback refused (%s): %s", error.status, error)
            return Response(status_code=error.status)
        received = await self._receive(inbound)
        if received is not None and received.repeat:
            return Response(status_code=200)
        # An empty 200 is WeCom's "received, no passive reply"; the work runs after it is sent.
        return Response(status_code=200, background=BackgroundTask(self.handle, inbound, received))

    async def _receive(self, inbound: Inbound) -> Received | None:
        """Keep a command before WeCom is told "received", so that it survives this process. The
        kept one names people as far as they are known without asking WeCom (5 seconds)."""
        if self.inbox is None:
            return None
        invocation = await self._invocation(inbound, look_up=False)
        if invocation is None:
            return None
        return await self.inbox.receive(invocation, {"user": inbound.user,
                                                     "chat": inbound.chat_id or None})

    async def handle(self, inbound: Inbound, received: Received | None = None) -> None:
        """Run what a callback asks for; never raises (it runs after the answer was sent)."""
        try:
            invocation = await self._invocation(inbound)
            if invocation is None:
                return
            if invocation.press is None:
                await self._on_text(inbound, invocation, received)
            else:
                await self._on_click(inbound, invocation, received)
        except Exception:
            log.exception("wecom callback handling failed (%s)", inbound.msg_type)

    async def answer_later(self, answer_to: dict[str, Any], reply: Reply, age: timedelta) -> None:
        """Answer a command this process did not receive (its receiver died): in the chat it
        came from when the answer is for everyone, else to the person."""
        chat, user = answer_to.get("chat"), str(answer_to.get("user") or "")
        public = reply.ok and not reply.private
        await self._sender.send(Target(kind="channel", key=chat) if chat and public
                                else Target(kind="member", key=user), reply)

    async def _invocation(self, inbound: Inbound, *, look_up: bool = True) -> Invocation | None:
        """The command a callback carries (a message, or a card's button), None for anything else.
        `look_up`: ask WeCom for names not known yet (not before the acknowledgement)."""
        agent = self.api.agent_id
        if agent is not None and inbound.agent_id and inbound.agent_id != str(agent):
            return None  # another app of the corp pointed at this URL
        if inbound.msg_type == "text":
            text, channel, press = inbound.content.strip(), inbound.chat_id or None, None
        elif inbound.msg_type == "event" and inbound.event == "template_card_event":
            text, channel, press = command_of(inbound.event_key), None, "bound"
        else:
            return None
        if not text:
            return None
        name = await self.names.name(inbound.user) if look_up else self.names.known(inbound.user)
        # The team is the corp this app belongs to: every callback is sealed with its key, so a
        # click always acts in it, whatever chat the card sits in.
        return Invocation(platform="wecom", team_key=self.api.corp_id, channel=channel, press=press,
                          user_key=inbound.user, user_name=name or inbound.user,
                          text=text, mentions=await self._mentions(text, look_up=look_up),
                          received_at=inbound.received_at, delivery_id=inbound.delivery_id)

    async def _mentions(self, text: str, *, look_up: bool = True) -> dict[str, Mention]:
        """`@userid` names a member when WeCom knows that user id (there is no mention markup in
        app messages); the name then comes from WeCom, not from what was typed."""
        found: dict[str, Mention] = {}
        for match in list(_MENTION.finditer(text))[:MAX_MENTIONS]:
            user_id = match.group(1)
            name = await self.names.lookup(user_id) if look_up else self.names.known(user_id)
            if name is not None:
                found[match.group(0)] = Mention(user_key=user_id, name=name)
        return found

    async def _run(self, invocation: Invocation, received: Received | None = None) -> Reply:
        if self.inbox is not None:
            return await self.inbox.run(received, invocation)
        return await asyncio.to_thread(self.dispatch, invocation)

    async def _answered(self, received: Received | None) -> None:
        if self.inbox is not None:
            await self.inbox.answered(received)

    async def _on_text(self, inbound: Inbound, invocation: Invocation,
                       received: Received | None) -> None:
        reply = await self._run(invocation, received)
        if reply.duplicate:
            return
        channel = invocation.channel
        public = reply.ok and not reply.private
        if await self._deliver(Target(kind="channel", key=channel) if channel and public
                               else Target(kind="member", key=inbound.user), reply):
            await self._answered(received)

    async def _on_click(self, inbound: Inbound, invocation: Invocation,
                        received: Received | None) -> None:
        """A button runs its command as the person who clicked; a decision then replaces the
        card's buttons with its outcome ("✅ Q7 已由 李经理 同意 · 10:02")."""
        reply = await self._run(invocation, received)
        if reply.duplicate:
            return
        if reply.ok and reply.settles and inbound.response_code:
            text, whole = outcome_text(reply)
            try:
                await self._sender.update_card(inbound.response_code, inbound.user, text)
                if whole:
                    await self._answered(received)
                    return
            except DeliveryError as error:
                log.warning("update_template_card failed: %s", error)
        if await self._deliver(Target(kind="member", key=inbound.user), reply):
            await self._answered(received)

    async def _deliver(self, target: Target, reply: Reply) -> bool:
        """Whether the reply went out (one that did not is answered later, when it was kept)."""
        try:
            await self._sender.send(target, reply)
        except DeliveryError as error:
            log.warning("wecom reply to %s not delivered: %s", target.kind, error)
            return False
        return True

    def passive_reply(self, inbound: Inbound, text: str) -> str:
        """An encrypted passive text reply to `inbound` (the body a callback may answer with)."""
        assert self.crypto is not None
        return self.crypto.seal(passive_text(to_user=inbound.user, corp_id=self.api.corp_id,
                                             content=text, create_time=int(self.crypto.now())))
