"""DingTalk (钉钉) enterprise internal app with a robot: the robot's HTTP callback
(`POST /dingtalk/callback`), replies through the message's `sessionWebhook`, interactive cards
whose buttons call back, group and one-to-one pushes through the robot APIs, and a custom robot
(自定义机器人) webhook for a team's digests. Platform facts and sources: docs/dingtalk.md.

The adapter translates and nothing else. The callback's `sign` is an HMAC of the timestamp alone
(not of the body), so it is checked before the body is read, and the body is trusted no further
than the headers make it: a `sessionWebhook` is only posted to when it is DingTalk's own
`/robot/sendBySession` on the configured host, so a forged body cannot make us post elsewhere.

Button ids are the button's command (packed as WeCom's keys are when long): a click names the
id it pressed, so nothing is stored per card.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
)
from adapters.wecom import RobotWindow, button_key, command_of, split_bytes
from commands.inbox import Inbox, Received
from commands.types import Invocation, Mention, Reply
from reminders.limits import Limit

log = logging.getLogger("dealbot.dingtalk")

Dispatch = Callable[[Invocation], Reply]

API_URL = "https://api.dingtalk.com"
MAX_BODY = 64 * 1024  # a robot message is a few kilobytes at most
WINDOW_MS = 5 * 60 * 1000  # DingTalk allows an hour; five minutes is what we accept
MARKDOWN_BYTES = 4000  # per message; DingTalk publishes no figure we could confirm
TITLE_CHARS = 40
MAX_BUTTONS = 6
REF_CHARS = 200  # outbox.message_ref's column
SEEN = 4096  # msgIds remembered per process (replays inside the window)
ROBOT = "robot"  # the channel key of the custom robot (DINGTALK_WEBHOOK_TOKEN)
SESSION_PATH = "/robot/sendBySession"

# Legacy (oapi) errcodes and what the outbox should do about them.
REFRESH = {40014, 42001, 88}  # invalid or expired access token: fetch anew, retry once
LIMITED = {
    90002: 60.0,
    90005: 1.0,
    90006: 3600.0,
    90018: 1.0,
    410100: 600.0,
}  # custom robot over 20 a minute: DingTalk throttles it for 10 minutes
AUTH = {40001, 40089, 43007, 300001, 310000}
# New-API (api.dingtalk.com) error `code`s meaning "too fast".
QPS = {
    "Forbidden.AccessDenied.QpsLimitForApi",
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
    "Throttling",
    "Throttling.Api",
}


class RedactSessions(logging.Filter):
    """httpx logs request URLs; a sessionWebhook's `session`, an access token and a custom robot's
    sign are credentials."""

    _SECRET = re.compile(r"((?:session|access_token|sign)=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self._SECRET.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                self._SECRET.sub(r"\1***", str(arg)) if isinstance(arg, str | httpx.URL) else arg
                for arg in record.args
            )
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(known, RedactSessions) for known in _httpx_log.filters):
    _httpx_log.addFilter(RedactSessions())


# --- signatures and hosts -----------------------------------------------------------------------


def sign(secret: str, timestamp: str) -> str:
    """base64(HMAC-SHA256(secret, timestamp + "\\n" + secret)): the robot callback's `sign` header
    (with the AppSecret) and the custom robot's `sign` parameter (with its SEC… secret)."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed(secret: str, timestamp: str, signature: str, now_ms: int) -> bool:
    """Whether a callback's headers are DingTalk's, within five minutes of now (milliseconds)."""
    if not (0 < len(timestamp) <= 15 and timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(now_ms - int(timestamp)) > WINDOW_MS or not signature.isascii():
        return False
    return hmac.compare_digest(sign(secret, timestamp), signature)


def legacy_base(api_url: str) -> str:
    """The old API's base (media upload, sessionWebhook, custom robot): `oapi.dingtalk.com` beside
    the default `api.dingtalk.com`; an overridden base (a proxy, a test's fake) serves both."""
    parts = urlsplit(api_url.rstrip("/"))
    if parts.hostname == "api.dingtalk.com":
        return "https://oapi.dingtalk.com"
    return api_url.rstrip("/")


def session_webhook_allowed(url: str, api_url: str) -> bool:
    """A sessionWebhook we post to: DingTalk's `/robot/sendBySession` on the old API's host, with
    its scheme and port, and nothing that could redirect the request (credentials, a fragment)."""
    if not isinstance(url, str) or len(url) > 2048:
        return False
    try:
        parts, base = urlsplit(url), urlsplit(legacy_base(api_url))
        port, base_port = parts.port, base.port
    except ValueError:
        return False
    return (
        parts.scheme == base.scheme
        and parts.hostname == base.hostname
        and port == base_port
        and parts.username is None
        and parts.password is None
        and parts.path == SESSION_PATH
        and not parts.fragment
    )


def webhook_token(value: str) -> str:
    """The custom robot's access_token, given alone or as the whole webhook URL DingTalk shows."""
    value = value.strip()
    if "access_token=" in value:
        return parse_qs(urlsplit(value).query).get("access_token", [""])[0]
    return value


# --- Reply → DingTalk ---------------------------------------------------------------------------

# DingTalk's markdown renders links, images and HTML-ish tags; none is our markup. Their opening
# characters become full-width forms, which read the same and render as themselves.
_INERT = str.maketrans({"<": "＜", ">": "＞", "[": "［", "]": "］"})


def plain(text: str) -> str:
    return text.replace("**", "").replace("`", "")


def markdown(reply: Reply) -> str:
    """Our markup is a subset of DingTalk's markdown; fields, table and buttons become lines.
    Lines end in a hard break: DingTalk's clients join single newlines."""
    lines = [reply.text]
    lines += [f"**{label}**: {value}" for label, value in reply.fields]
    if reply.table:
        header, *rows = reply.table
        lines.append("**" + " | ".join(header) + "**")
        lines += [" | ".join(row) for row in rows]
    for row in reply.button_rows():
        lines.append(" · ".join(f"{b.label}: `{b.command.strip()}`" for b in row))
    text = "\n".join(lines).translate(_INERT)
    return "  \n".join(text.split("\n"))


def title(reply: Reply) -> str:
    """The notification's title (what the chat list shows)."""
    first = plain(reply.text).strip().partition("\n")[0] or "dealbot"
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"


def card_data(reply: Reply, *, buttons: bool = True) -> dict[str, Any]:
    """A StandardCard (the robot's built-in card template): a title, the reply as markdown, and
    buttons of actionType `request` whose ids are their commands."""
    body = markdown(reply.model_copy(update={"buttons": []}))
    first, _, rest = body.partition("  \n")
    contents: list[dict[str, Any]] = [{"type": "markdown", "text": rest or first, "id": "text"}]
    actions = []
    for button in reply.buttons if buttons else []:
        key = button_key(button.command)
        if key is None or any(known["id"] == key for known in actions):
            continue
        actions.append(
            {
                "type": "button",
                "actionType": "request",
                "id": key,
                "status": "primary" if button.style == "primary" else "normal",
                "label": {
                    "type": "text",
                    "text": plain(button.label)[:20],
                    "id": f"label-{len(actions)}",
                },
            }
        )
    if actions:
        contents.append({"type": "action", "actions": actions[:MAX_BUTTONS], "id": "actions"})
    return {
        "config": {"autoLayout": True, "enableForward": False},
        "header": {"title": {"type": "text", "text": title(reply)}},
        "contents": contents,
    }


def new_card_id() -> str:
    return f"dealbot-{uuid.uuid4().hex}"


# --- the server API -----------------------------------------------------------------------------


class DingTalkApi(AppApi):
    """The app's access token (oauth2, cached until five minutes before it expires, one fetch
    shared by concurrent callers, fetched anew once when refused), the robot APIs, the old API's
    media upload, sessionWebhooks and the custom robot; every refusal an outbox error."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        robot_code: str,
        base_url: str,
        webhook_token: str | None = None,
        webhook_secret: str | None = None,
        timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        super().__init__(base_url=base_url, timeout=timeout, monotonic=monotonic)
        self.client_id = client_id
        self.client_secret = client_secret
        self.robot_code = robot_code or client_id
        self.legacy_url = legacy_base(base_url)
        self.webhook_token = webhook_token
        self.webhook_secret = webhook_secret
        self.wall_ms = wall_ms

    def new_client(self) -> httpx.AsyncClient:
        # Absolute URLs only: the new API, the old one and sessionWebhooks have different hosts.
        return httpx.AsyncClient(timeout=self.timeout)

    async def token(self) -> str:
        if not (self.client_id and self.client_secret):
            raise AuthBroken(
                "set DINGTALK_CLIENT_ID and DINGTALK_CLIENT_SECRET to send through the app"
            )
        return await super().token()

    async def fetch_token(self) -> tuple[str, float]:
        response = await self._exchange(
            "POST",
            f"{self.base_url}/v1.0/oauth2/accessToken",
            "accessToken",
            json={"appKey": self.client_id, "appSecret": self.client_secret},
        )
        answer = self._new_api(response, "accessToken")
        token = str(answer.get("accessToken") or "")
        if not token:
            raise Transient("dingtalk accessToken: no accessToken in the answer")
        lifetime = float(answer.get("expireIn") or 7200)
        return token, max(lifetime - 300, lifetime / 2)

    async def _exchange(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._state().client.request(method, url, **kwargs)
        except httpx.HTTPError as error:
            # The error's text may hold the URL, and the URL a credential: name the type only.
            raise Transient(f"dingtalk {what} unreachable: {type(error).__name__}") from None

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            answer = response.json()
        except ValueError:
            raise Transient(
                f"dingtalk {what}: answer is not JSON (HTTP {response.status_code})"
            ) from None
        if not isinstance(answer, dict):
            raise Transient(f"dingtalk {what}: unexpected answer")
        return answer

    def _new_api(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """api.dingtalk.com answers errors with an HTTP status and `{"code", "message"}`."""
        status = response.status_code
        if status >= 500:
            raise Transient(f"dingtalk {what}: HTTP {status}")
        answer = self._json(response, what) if response.content else {}
        if status < 300:
            return answer
        code = str(answer.get("code") or "")
        detail = (
            f"dingtalk {what}: HTTP {status} {code} {str(answer.get('message', ''))[:120]}".strip()
        )
        if status == 429 or code in QPS or code.startswith("Forbidden.AccessDenied.QpsLimit"):
            retry_after = response.headers.get("Retry-After", "")
            raise RateLimited(float(retry_after) if retry_after.isdigit() else 1.0, detail)
        if status in (401, 403):
            raise AuthBroken(detail)
        if status in (400, 404):
            raise TargetGone(detail)
        raise Transient(detail)

    async def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """A robot API call with the token in its header; a refused token is fetched anew once."""
        for attempt in range(2):
            token = await self.token()
            response = await self._exchange(
                method,
                f"{self.base_url}{path}",
                path,
                json=body,
                headers={"x-acs-dingtalk-access-token": token},
            )
            if response.status_code == 401 and attempt == 0:
                self._forget(token)
                continue
            return self._new_api(response, path)
        raise AssertionError("unreachable")

    @staticmethod
    def _legacy(answer: dict[str, Any], what: str) -> dict[str, Any]:
        code = answer.get("errcode", 0)
        if code == 0:
            return answer
        detail = f"dingtalk {what}: errcode {code} {str(answer.get('errmsg', ''))[:120]}".strip()
        if code in LIMITED:
            raise RateLimited(LIMITED[code], detail)
        if code in REFRESH or code in AUTH:
            raise AuthBroken(detail)
        raise Transient(detail)

    async def register_card_callback(self, url: str) -> None:
        """Route clicks on our cards (their callbackRouteKey is the robot code) to `url`."""
        await self.call(
            "POST",
            "/v1.0/card/callbacks/register",
            {"callbackRouteKey": self.robot_code, "callbackUrl": url, "forceUpdate": True},
        )

    async def upload(self, data: bytes, filename: str, mime: str, kind: str = "image") -> str:
        """A media id for an image or a file (the old API, with the same access token)."""
        for attempt in range(2):
            token = await self.token()
            response = await self._exchange(
                "POST",
                f"{self.legacy_url}/media/upload",
                "media/upload",
                params={"access_token": token, "type": kind},
                data={"type": kind},
                files={"media": (filename, data, mime)},
            )
            if response.status_code >= 500:
                raise Transient(f"dingtalk media/upload: HTTP {response.status_code}")
            answer = self._json(response, "media/upload")
            if answer.get("errcode") in REFRESH and attempt == 0:
                self._forget(token)
                continue
            return str(self._legacy(answer, "media/upload")["media_id"])
        raise AssertionError("unreachable")

    async def session(self, url: str, message: dict[str, Any]) -> None:
        """Post to a sessionWebhook (its `session` parameter is its credential)."""
        if not session_webhook_allowed(url, self.base_url):
            raise TargetGone(
                "dingtalk sessionWebhook: not DingTalk's sendBySession on the configured host"
            )
        response = await self._exchange("POST", url, "sendBySession", json=message)
        if response.status_code == 429:
            raise RateLimited(1.0, "dingtalk sendBySession: HTTP 429")
        if response.status_code >= 500:
            raise Transient(f"dingtalk sendBySession: HTTP {response.status_code}")
        if response.status_code in (403, 404, 410):
            raise TargetGone(f"dingtalk sendBySession: HTTP {response.status_code}")
        self._legacy(self._json(response, "sendBySession"), "sendBySession")

    async def robot(self, message: dict[str, Any]) -> None:
        """Post to the custom robot: its access_token, and a signed timestamp with its secret."""
        if not self.webhook_token:
            raise TargetGone("no custom robot: set DINGTALK_WEBHOOK_TOKEN")
        params = {"access_token": self.webhook_token}
        if self.webhook_secret:
            stamp = str(self.wall_ms())
            params |= {"timestamp": stamp, "sign": sign(self.webhook_secret, stamp)}
        response = await self._exchange(
            "POST", f"{self.legacy_url}/robot/send", "robot/send", params=params, json=message
        )
        if response.status_code >= 500:
            raise Transient(f"dingtalk robot/send: HTTP {response.status_code}")
        self._legacy(self._json(response, "robot/send"), "robot/send")


# --- outbound -----------------------------------------------------------------------------------


class DingTalkSender:
    """Delivers outbox messages: to people through `oToMessages/batchSend`, to groups through
    `groupMessages/send`, cards through the robot's interactive cards, and the custom robot.

    Targets: a member is their userid (staffId); a channel is a group's openConversationId, or
    `robot` (or empty) for the custom robot."""

    platform = "dingtalk"

    def __init__(self, api: DingTalkApi, *, robot: RobotWindow | None = None) -> None:
        self.api = api
        self.robot = robot or RobotWindow()

    async def send(self, target: Target, reply: Reply) -> str:
        if target.kind != "member" and target.key in ("", ROBOT):
            return await self.to_robot(reply)
        if reply.buttons:
            ref = await self.card(target, reply)
        else:
            for part in split_bytes(markdown(reply), MARKDOWN_BYTES):
                await self._message(target, "sampleMarkdown", {"title": title(reply), "text": part})
            ref = f"{'user' if target.kind == 'member' else 'group'}|{target.key}"
        await self.media(target, reply)
        return ref[:REF_CHARS]

    async def media(self, target: Target, reply: Reply) -> None:
        """The chart and the file of a reply, uploaded first."""
        if reply.image is not None:
            media_id = await self.api.upload(reply.image.png, reply.image.filename, "image/png")
            await self._message(target, "sampleImageMsg", {"photoURL": media_id})
        if reply.file is not None:
            media_id = await self.api.upload(
                reply.file.data, reply.file.filename, reply.file.mime, "file"
            )
            name, _, suffix = reply.file.filename.rpartition(".")
            await self._message(
                target,
                "sampleFile",
                {
                    "mediaId": media_id,
                    "fileName": reply.file.filename,
                    "fileType": suffix if name else "file",
                },
            )

    async def _message(self, target: Target, key: str, param: dict[str, Any]) -> None:
        body: dict[str, Any] = {
            "robotCode": self.api.robot_code,
            "msgKey": key,
            "msgParam": json.dumps(param, ensure_ascii=False),
        }
        if target.kind == "member":
            answer = await self.api.call(
                "POST", "/v1.0/robot/oToMessages/batchSend", body | {"userIds": [target.key]}
            )
            if target.key in (answer.get("flowControlledStaffIdList") or []):
                raise RateLimited(60.0, "dingtalk oToMessages: flow controlled")
            if target.key in (answer.get("invalidStaffIdList") or []):
                raise TargetGone(
                    f"dingtalk oToMessages: {target.key} is not a member the robot can reach"
                )
        else:
            await self.api.call(
                "POST", "/v1.0/robot/groupMessages/send", body | {"openConversationId": target.key}
            )

    async def card(self, target: Target, reply: Reply) -> str:
        biz_id = new_card_id()
        body: dict[str, Any] = {
            "cardTemplateId": "StandardCard",
            "robotCode": self.api.robot_code,
            "cardBizId": biz_id,
            "callbackRouteKey": self.api.robot_code,
            "cardData": json.dumps(card_data(reply), ensure_ascii=False),
            "sendOptions": {},
        }
        if target.kind == "member":
            body["singleChatReceiver"] = json.dumps({"userId": target.key})
        else:
            body["openConversationId"] = target.key
        await self.api.call("POST", "/v1.0/im/v1.0/robot/interactiveCards/send", body)
        return f"card|{biz_id}"

    async def update(self, message_ref: str, reply: Reply) -> None:
        """A card is replaced by the reply (its buttons gone once it settles). Other robot
        messages cannot be edited: Unchangeable, nothing new is sent."""
        kind, _, key = message_ref.partition("|")
        if kind != "card":
            raise Unchangeable(f"dingtalk {kind or 'message'} messages cannot be edited")
        try:
            await self.update_card(key, reply)
        except TargetGone as error:
            raise Unchangeable(f"dingtalk card {key}: {error}") from error

    async def update_card(self, biz_id: str, reply: Reply) -> None:
        data = card_data(reply, buttons=not reply.settles)
        await self.api.call(
            "PUT",
            "/v1.0/im/robots/interactiveCards",
            {"cardBizId": biz_id, "cardData": json.dumps(data, ensure_ascii=False)},
        )

    async def to_robot(self, reply: Reply) -> str:
        """The custom robot: markdown only (it has no image message), paced at its published 20
        messages a minute before DingTalk has to throttle it for ten."""
        parts = split_bytes(markdown(reply), MARKDOWN_BYTES)
        self.robot.check(len(parts))
        for part in parts:
            await self.api.robot(
                {"msgtype": "markdown", "markdown": {"title": title(reply), "text": part}}
            )
            self.robot.record()
        return f"{ROBOT}|{len(parts)}"

    async def to_session(self, url: str, reply: Reply) -> None:
        for part in split_bytes(markdown(reply), MARKDOWN_BYTES):
            await self.api.session(
                url, {"msgtype": "markdown", "markdown": {"title": title(reply), "text": part}}
            )


# --- inbound ------------------------------------------------------------------------------------


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class Inbound:
    """A robot message (`msgtype` text) or a card's button click, as the adapter uses them."""

    kind: str  # message | click
    user: str
    corp: str
    text: str
    msg_id: str = ""
    user_name: str = ""
    conversation: str = ""
    group: bool = False
    webhook: str = ""
    webhook_expires: int = 0  # milliseconds
    created: int = 0  # milliseconds
    card: str = ""  # outTrackId of a clicked card
    at_users: tuple[str, ...] = ()

    @classmethod
    def parse(cls, body: dict[str, Any], chatbot_user: str = "") -> Inbound | None:
        """None for what the adapter does not act on (pictures, files, other callbacks)."""
        if "outTrackId" in body:
            try:
                content = json.loads(_text(body.get("content")) or _text(body.get("value")) or "{}")
                actions = content["cardPrivateData"]["actionIds"]
            except (ValueError, TypeError, KeyError):
                return None
            if not (isinstance(actions, list) and actions and isinstance(actions[0], str)):
                return None
            return cls(
                kind="click",
                user=_text(body.get("userId")),
                corp=_text(body.get("corpId")),
                text=command_of(actions[0]),
                card=_text(body.get("outTrackId")),
            )
        if body.get("msgtype") != "text" or not isinstance(body.get("text"), dict):
            return None
        at_users = tuple(
            _text(user.get("staffId"))
            for user in body.get("atUsers") or []
            if isinstance(user, dict)
            and user.get("staffId")
            and user.get("dingtalkId") != (chatbot_user or body.get("chatbotUserId"))
        )
        stamps = [body.get(name) for name in ("sessionWebhookExpiredTime", "createAt")]
        expires, created = (value if isinstance(value, int) else 0 for value in stamps)
        return cls(
            kind="message",
            user=_text(body.get("senderStaffId")),
            corp=_text(body.get("chatbotCorpId")) or _text(body.get("senderCorpId")),
            text=_text(body["text"].get("content")).strip(),
            msg_id=_text(body.get("msgId")),
            user_name=_text(body.get("senderNick")),
            conversation=_text(body.get("conversationId")),
            group=body.get("conversationType") == "2",
            webhook=_text(body.get("sessionWebhook")),
            webhook_expires=expires,
            created=created,
            at_users=at_users,
        )

    @property
    def delivery_id(self) -> str:
        if self.kind == "message":
            return f"msg:{self.msg_id}"
        return f"click:{self.card}:{self.user}:{self.text}"[:200]


_MENTION = re.compile(r"(?<![\w@])@(\S{1,64})")


def mentions(inbound: Inbound) -> dict[str, Mention]:
    """DingTalk lists the people a message @-mentions (their staffIds, in order) but not where:
    the typed `@name`s are paired with them in order, and only when the counts agree."""
    typed = [match.group(0) for match in _MENTION.finditer(inbound.text)]
    if not typed or len(typed) != len(inbound.at_users):
        return {}
    return {
        token: Mention(user_key=staff, name=token[1:])
        for token, staff in zip(typed, inbound.at_users, strict=True)
        if identifier(staff)
    }


class DingTalkAdapter:
    platform = "dingtalk"

    @classmethod
    def from_settings(cls, settings: Any, dispatch: Dispatch) -> DingTalkAdapter:
        api = DingTalkApi(
            client_id=settings.dingtalk_client_id or "",
            client_secret=settings.dingtalk_client_secret or "",
            robot_code=settings.dingtalk_robot_code or "",
            base_url=settings.dingtalk_api_url,
            webhook_token=webhook_token(settings.dingtalk_webhook_token or "") or None,
            webhook_secret=settings.dingtalk_webhook_secret or None,
        )
        limit = Limit.parse(settings.dingtalk_robot_rate)
        adapter = cls(dispatch, api=api, robot=RobotWindow(limit.count, limit.seconds))
        adapter.streaming = bool(settings.dingtalk_stream and api.client_id and api.client_secret)
        return adapter

    def __init__(
        self,
        dispatch: Dispatch,
        *,
        api: DingTalkApi,
        robot: RobotWindow | None = None,
        max_body: int = MAX_BODY,
        now_ms: Callable[[], int] | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.inbox: Inbox | None = None  # set by the wiring: commands kept until answered
        self.api = api
        self.max_body = max_body
        self.now_ms = now_ms or api.wall_ms
        self._sender = DingTalkSender(api, robot=robot)
        self._seen: OrderedDict[str, int] = OrderedDict()
        self.streaming = False  # DINGTALK_STREAM: `dealbot serve` opens the Stream connection
        self.stream: Any = None

    def routes(self) -> list[Route]:
        if not self.api.client_secret:
            return []
        return [Route("/dingtalk/callback", self.callback, methods=["POST"])]

    def sender(self) -> DingTalkSender:
        return self._sender

    async def start_stream(self) -> None:
        """Receive over Stream mode (the SDK's WebSocket) in this event loop."""
        from adapters.dingtalk_stream import Stream

        self.stream = Stream(self)
        self.stream.start()

    async def stop_stream(self) -> None:
        if self.stream is not None:
            await self.stream.stop()

    async def callback(self, request: Request) -> Response:
        now = self.now_ms()
        # The sign covers the timestamp alone: checked before a byte of the body is read.
        if not signed(
            self.api.client_secret,
            request.headers.get("timestamp", ""),
            request.headers.get("sign", ""),
            now,
        ):
            log.warning("dingtalk callback refused (401): sign or timestamp")
            return Response(status_code=401)
        body = await read_body(request, self.max_body)
        if body is None:
            return Response(status_code=413)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            log.warning("dingtalk callback refused (400): not a JSON object")
            return Response(status_code=400)
        status, work = await self.take(payload, now)
        if work is None:
            return Response(status_code=status)
        return Response(status_code=status, background=BackgroundTask(self.handle, *work))

    async def take(
        self, payload: dict[str, Any], now: int
    ) -> tuple[int, tuple[Inbound, Received | None] | None]:
        """A message or click that DingTalk vouched for (a signed callback, or the Stream
        connection): the status to answer, and the work to do after answering (None: nothing)."""
        inbound = Inbound.parse(payload)
        if inbound is None:
            return 200, None  # a message type dealbot does not read
        if not (identifier(inbound.user) and identifier(inbound.corp)) or not inbound.text:
            # Nobody to run it as (an external sender has no staffId): refused, not run as "".
            log.warning("dingtalk message refused (400): no staffId or corp")
            return 400, None
        if inbound.kind == "message" and not self._first(inbound.msg_id, now):
            return 200, None  # a replay inside the window: answered, not run
        received = await self._receive(inbound)
        if received is not None and received.repeat:
            return 200, None
        return 200, (inbound, received)

    def _first(self, msg_id: str, now: int) -> bool:
        """Whether this process sees `msg_id` for the first time in the window."""
        if not msg_id:
            return False
        while self._seen and (
            len(self._seen) > SEEN or next(iter(self._seen.values())) < now - WINDOW_MS
        ):
            self._seen.popitem(last=False)
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = now
        return True

    def _invocation(self, inbound: Inbound) -> Invocation:
        received = (
            datetime.fromtimestamp(inbound.created / 1000, UTC)
            if inbound.created
            else datetime.now(UTC)
        )
        return Invocation(
            platform="dingtalk",
            team_key=inbound.corp,
            channel=inbound.conversation if inbound.group else None,
            press="bound" if inbound.kind == "click" else None,
            user_key=inbound.user,
            user_name=inbound.user_name or inbound.user,
            text=inbound.text,
            mentions=mentions(inbound),
            received_at=received,
            delivery_id=inbound.delivery_id,
        )

    async def _receive(self, inbound: Inbound) -> Received | None:
        if self.inbox is None:
            return None
        return await self.inbox.receive(
            self._invocation(inbound),
            {
                "user": inbound.user,
                "chat": inbound.conversation if inbound.group else None,
                "webhook": inbound.webhook or None,
                "expires": inbound.webhook_expires,
                "card": inbound.card or None,
            },
        )

    async def _run(self, invocation: Invocation, received: Received | None) -> Reply:
        if self.inbox is not None:
            return await self.inbox.run(received, invocation)
        return await asyncio.to_thread(self.dispatch, invocation)

    async def handle(self, inbound: Inbound, received: Received | None = None) -> None:
        """Run what a callback asks for; never raises (it runs after the answer was sent)."""
        try:
            reply = await self._run(self._invocation(inbound), received)
            if reply.duplicate:
                return
            answer_to = {
                "user": inbound.user,
                "chat": inbound.conversation if inbound.group else None,
                "webhook": inbound.webhook,
                "expires": inbound.webhook_expires,
                "card": inbound.card or None,
            }
            await self._answer(answer_to, reply)
            if self.inbox is not None:
                await self.inbox.answered(received)
        except DeliveryError as error:
            log.warning("dingtalk reply not delivered: %s", error)
        except Exception:
            log.exception("dingtalk callback handling failed")

    async def answer_later(self, answer_to: dict[str, Any], reply: Reply, age: timedelta) -> None:
        await self._answer(answer_to, reply)

    async def _answer(self, answer_to: dict[str, Any], reply: Reply) -> None:
        """A decision replaces the clicked card; an answer for everyone goes to the conversation
        (its sessionWebhook while it lasts, cards and media through the robot API); a private one
        or a refusal to the person alone."""
        user, chat, card = (
            str(answer_to.get("user") or ""),
            answer_to.get("chat"),
            answer_to.get("card"),
        )
        public = reply.ok and not reply.private
        if card and reply.ok and reply.settles:
            await self._sender.update_card(str(card), reply)
            if reply.image is not None or reply.file is not None:
                await self._sender.media(Target(kind="member", key=user), reply)
            return
        target = (
            Target(kind="channel", key=str(chat))
            if chat and public
            else Target(kind="member", key=user)
        )
        webhook = str(answer_to.get("webhook") or "")
        expires = int(answer_to.get("expires") or 0)
        # A sessionWebhook elsewhere than DingTalk's came in a forged body: never posted to; the
        # answer goes through the robot API, which only reaches this app's own chats.
        usable = session_webhook_allowed(webhook, self.api.base_url)
        fresh = usable and (not expires or expires > self.now_ms())
        if webhook and not usable:
            log.warning(
                "dingtalk sessionWebhook not on the configured host: answered through the API"
            )
        if card or reply.buttons or not fresh or (chat and not public):
            await self._sender.send(target, reply)
            return
        await self._sender.to_session(webhook, reply)
        await self._sender.media(target, reply)
