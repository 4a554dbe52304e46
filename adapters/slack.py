"""Slack: slash commands, button clicks and App Home through one slack-bolt `AsyncApp`; replies as
Block Kit; the outbox's `SlackSender`. The adapter translates and nothing else: every command goes
through `dispatch`, whose permission checks apply to typed and clicked commands alike."""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.internals import extract_team_id, extract_user_id, parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters.base import (
    AuthBroken,
    RateLimited,
    Target,
    TargetGone,
    Transient,
    Unchangeable,
    identifier,
    unix_seconds,
)
from commands import FAMILIES
from commands.inbox import Inbox, Received
from commands.types import Invocation, Mention, Reply

if TYPE_CHECKING:
    from adapters.slack_oauth import SlackOAuth

log = logging.getLogger("dealbot.slack")

# Every verb family's English word is a slash command; /dealbot is the umbrella for workspaces that
# limit how many commands an app may have.
COMMANDS = (*(f"/{family.name}" for family in FAMILIES), "/dealbot")
ACTION_PREFIX = "dealbot_cmd"
# A response_url takes answers for 30 minutes; later ones go to the person's DM.
RESPONSE_URL_LIFE = timedelta(minutes=29)
MAX_BLOCKS = 50  # Slack refuses a message with more blocks
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_GONE = {"channel_not_found", "is_archived", "not_in_channel", "user_not_found", "cannot_dm_bot", "user_disabled",
         "account_inactive_user", "messages_tab_disabled"}
# chat.update's answers for a message that can no longer change: it stays as it is.
_UNCHANGEABLE = {"message_not_found", "cant_update_message", "edit_window_closed"}
_AUTH = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission",
         "missing_scope", "not_allowed_token_type"}

# Events that take the app's tokens away (bolt's own listeners remove them from the store).
REVOCATIONS = ("app_uninstalled", "tokens_revoked")
# What a person in a workspace without the app's token is told (bolt answers it for us).
NOT_INSTALLED = ("dealbot is not installed in this workspace (or was uninstalled): ask whoever "
                 "runs it for the install link (/slack/install).\n"
                 "dealbot 未安装到此工作区（或已被卸载）：请向部署 dealbot 的人"
                 "索取安装链接（/slack/install）。")

Dispatch = Callable[[Invocation], Reply]


# --- Reply → Block Kit --------------------------------------------------------------------------

def escape(text: str) -> str:
    """&, < and > as Slack requires in any text it formats: what people typed (`<!channel>`,
    `<@U2>`, `<https://evil.example|click>`) shows as typed instead of pinging or linking."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Our markup (**bold**, `code`) in Slack's mrkdwn, with &, <, > escaped as Slack requires."""
    return re.sub(r"\*\*(.+?)\*\*", r"*\1*", escape(text))


def blocks(reply: Reply) -> list[dict[str, Any]]:
    """Section text, fields, a compact table in a code block, and buttons whose value is the command."""
    out: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(reply.text)[:3000]}}]
    fields = [{"type": "mrkdwn", "text": f"*{mrkdwn(label)}*\n{mrkdwn(value)}"[:2000]} for label, value in reply.fields]
    for start in range(0, len(fields), 10):
        out.append({"type": "section", "fields": fields[start:start + 10]})
    if reply.table:
        widths = [max(len(row[i]) for row in reply.table if i < len(row)) for i in range(len(reply.table[0]))]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in reply.table]
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": ("```" + mrkdwn("\n".join(lines)) + "```")[:3000]}})
    index = 0
    for row in reply.button_rows():  # an actions block per row: at most 25 buttons, 50 blocks
        if len(out) >= MAX_BLOCKS:
            break
        elements = []
        for button in row[:25]:
            element: dict[str, Any] = {"type": "button", "action_id": f"{ACTION_PREFIX}_{index}",
                                       "text": {"type": "plain_text", "text": button.label[:75]},
                                       "value": button.command[:2000]}
            if button.style != "default":
                element["style"] = button.style
            elements.append(element)
            index += 1
        out.append({"type": "actions", "elements": elements})
    return out


def fallback_text(reply: Reply) -> str:
    """The notification text (and what clients without blocks show): Slack formats it too, so it
    is escaped like the blocks."""
    return escape(reply.text.replace("**", ""))[:3000]


# --- inbound ------------------------------------------------------------------------------------

class UserNames:
    """Display names from users.info, cached: a member is named as Slack shows them."""

    def __init__(self, client: AsyncWebClient, size: int = 2048) -> None:
        self.client = client
        self.size = size
        self._names: OrderedDict[str, str] = OrderedDict()
        self._zones: dict[str, str] = {}  # the user's tz from the same answer, when it gives one

    def known(self, user_id: str, fallback: str = "") -> str:
        """The name without asking Slack: cached, else `fallback`."""
        return self._names.get(user_id) or fallback or user_id

    async def name(self, user_id: str, fallback: str = "",
                   client: AsyncWebClient | None = None) -> str:
        """`client`: the one holding the token of the person's workspace (bolt's, per request)."""
        if user_id in self._names:
            self._names.move_to_end(user_id)
            return self._names[user_id]
        name = fallback or user_id
        try:
            answer = await (client or self.client).users_info(user=user_id)
            user = answer.get("user") or {}
            profile = user.get("profile") or {}
            name = profile.get("display_name") or profile.get("real_name") or user.get("name") or name
            if isinstance(user.get("tz"), str):
                self._zones[user_id] = user["tz"]
        except SlackApiError as error:
            log.warning("users.info failed for %s: %s", user_id, error.response.get("error"))
        self._names[user_id] = name
        if len(self._names) > self.size:
            gone, _ = self._names.popitem(last=False)
            self._zones.pop(gone, None)
        return name

    def timezone(self, user_id: str) -> str | None:
        return self._zones.get(user_id)


async def mentions_in(text: str, names: UserNames, *, look_up: bool = True,
                      client: AsyncWebClient | None = None) -> dict[str, Mention]:
    """Mentions Slack itself encoded (`<@U123|bob>`). Typed look-alikes arrive escaped (`&lt;@U…`) and
    are not matched, so nobody can mention a person they only typed."""
    found = {}
    for match in _MENTION.finditer(text):
        user_id, label = match.group(1), match.group(2) or ""
        name = await names.name(user_id, label, client) if look_up else names.known(user_id, label)
        found[match.group(0)] = Mention(user_key=user_id, name=name)
    return found


def command_text(command: str, text: str) -> str:
    """`/dealbot lead add X` is `/lead add X`; other slash commands keep their name."""
    if command == "/dealbot":
        return "/" + text.strip() if text.strip() else "/help"
    return f"{command} {text}".strip()


def plain(text: str) -> str:
    """Slack escapes &, < and > in what people type; commands see the characters they typed."""
    return html.unescape(text)


class SlackAdapter:
    platform = "slack"

    @classmethod
    def from_settings(cls, settings: Any, dispatch: Dispatch,
                      oauth: SlackOAuth | None = None) -> SlackAdapter:
        """`oauth`: workspaces install the app at /slack/install, each with a token of its own,
        instead of the one SLACK_BOT_TOKEN."""
        return cls(dispatch, token=settings.slack_bot_token or "", signing_secret=settings.slack_signing_secret,
                   api_url=settings.slack_api_url, oauth=oauth)

    def routes(self) -> list[Route]:
        """`POST /slack/events`: slash commands, interactivity and events, all verified by bolt.
        Without a signing secret (Socket Mode) nothing is mounted: no request goes unverified."""
        if self.signing_secret is None:
            return []
        handler = AsyncSlackRequestHandler(self.app)
        secret = self.signing_secret

        async def events(request: Request) -> Response:
            # bolt parses the body before it checks the signature and answers 500 to a body or a
            # timestamp it cannot parse: the signature is checked first here, and what bolt still
            # cannot parse is a 400 (the body is already bounded by the web app's size limit).
            # Every request is checked, Slack's ssl_check too: no field buys a way around it.
            body = await request.body()
            if not signed(secret, request, body):
                return Response(status_code=401)
            if not identified(body, request.headers.get("content-type")):
                log.warning("slack request without a user or team refused (400)")
                return Response(status_code=400)
            try:
                return await handler.handle(request)
            except (ValueError, LookupError, TypeError, AttributeError) as error:
                # bolt reading a body of an unexpected shape (never one from Slack itself)
                log.warning("slack request refused (400): %s", type(error).__name__)
                return Response(status_code=400)

        routes = [Route("/slack/events", events, methods=["POST"])]
        if self.oauth is not None:
            # A browser's, not Slack's: bolt checks the OAuth state (its cookie and the store).
            async def installing(request: Request) -> Response:
                return await handler.handle(request)

            routes += [Route("/slack/install", installing, methods=["GET"]),
                       Route("/slack/oauth_redirect", installing, methods=["GET"])]
        return routes

    def sender(self) -> SlackSender:
        return SlackSender(self.client,
                           tokens=self.oauth.tokens if self.oauth is not None else None)

    def __init__(self, dispatch: Dispatch, *, token: str, signing_secret: str | None, api_url: str,
                 client: AsyncWebClient | None = None, oauth: SlackOAuth | None = None) -> None:
        self.dispatch = dispatch
        self.inbox: Inbox | None = None  # set by the wiring: commands kept until answered
        self.signing_secret = signing_secret
        self.oauth = oauth
        # With OAuth this client holds no token: bolt gives each request a client with the token of
        # the workspace it comes from, and pushes take theirs from the installation store.
        self.client = client or AsyncWebClient(token=token if oauth is None else None,
                                               base_url=api_url)
        self.names = UserNames(self.client)
        self.app = AsyncApp(client=self.client, signing_secret=signing_secret,
                            request_verification_enabled=signing_secret is not None, process_before_response=False,
                            ignoring_self_events_enabled=True,
                            oauth_settings=oauth.settings(self.client) if oauth else None,
                            user_facing_authorize_error_message=NOT_INSTALLED if oauth else None)
        if oauth is not None:
            self.app.middleware(self._on_revocation)
        for command in COMMANDS:
            self.app.command(command)(self._on_command)
        self.app.action(re.compile(f"^{ACTION_PREFIX}_\\d+$"))(self._on_click)
        self.app.event("app_home_opened")(self._on_home)
        self.app.error(self._on_error)

    async def _on_revocation(self, body: dict[str, Any], context: Any,
                             next: Callable[[], Awaitable[None]]) -> BoltResponse | None:  # noqa: A002
        """app_uninstalled, tokens_revoked: the workspace's token leaves the store (bolt's own
        listeners) before Slack hears "received", so nothing is sent there afterwards, and Slack
        sends the event again if that failed."""
        event = body.get("event") if body.get("type") == "event_callback" else None
        kind = event.get("type") if isinstance(event, dict) else None
        if kind == "app_uninstalled":
            await self.app.default_app_uninstalled_event_listener()(context=context)
        elif kind == "tokens_revoked":
            await self.app.default_tokens_revoked_event_listener()(event=event, context=context)
        else:
            await next()
            return None
        log.info("slack %s: workspace %s", kind, context.team_id or context.enterprise_id)
        return BoltResponse(status=200, body="")

    async def _on_error(self, error: Exception,
                        response: BoltResponse | None) -> BoltResponse | None:
        """bolt's unhandled errors. A signed body of a shape Slack never sends (a string where
        `user` belongs, an empty `actions`) is a 400 and a warning, not a 500; the rest stay errors.
        (`response` is None for a listener's error: it ran after the request was answered.)"""
        if isinstance(error, LookupError | TypeError | AttributeError | ValueError):
            log.warning("slack request of an unexpected shape (%s)", type(error).__name__,
                        exc_info=error)
            return BoltResponse(status=400, body="") if response is not None else None
        log.error("slack request failed", exc_info=error)
        return None

    async def _invocation(self, *, team_id: str, user_id: str, user_name: str, channel: str | None, text: str,
                          delivery_id: str | None = None, press: Any = None,
                          look_up: bool = True, client: AsyncWebClient | None = None) -> Invocation:
        """`look_up`: ask Slack for names not known yet (not before an acknowledgement, which
        Slack wants within 3 seconds)."""
        if not (identifier(team_id) and identifier(user_id)):
            raise ValueError("a slack request without a user or team is never dispatched")
        name = await self.names.name(user_id, user_name, client) if look_up \
            else self.names.known(user_id, user_name)
        return Invocation(platform="slack", team_key=team_id, channel=channel, user_key=user_id,
                          press=press, user_name=name, text=plain(text),
                          timezone=self.names.timezone(user_id),
                          mentions=await mentions_in(text, self.names, look_up=look_up,
                                                     client=client),
                          received_at=datetime.now(UTC), delivery_id=delivery_id)

    async def _receive(self, ack: Any, invocation: Invocation, *, response_url: str | None,
                       channel: str | None, user: str) -> Received | None:
        """Keep the command, then acknowledge it: once Slack (which never sends a slash command or
        a click again) is told "received", the command survives this process."""
        received = None
        if self.inbox is not None and invocation.delivery_id:
            received = await self.inbox.receive(invocation, {
                "response_url": response_url, "channel": channel, "user": user,
                "team": invocation.team_key})
        await ack()
        return received

    async def _run(self, invocation: Invocation, received: Received | None = None) -> Reply:
        if self.inbox is not None:
            return await self.inbox.run(received, invocation)
        return await asyncio.to_thread(self.dispatch, invocation)

    async def _answered(self, received: Received | None) -> None:
        if self.inbox is not None:
            await self.inbox.answered(received)

    async def answer_later(self, answer_to: dict[str, Any], reply: Reply, age: timedelta) -> None:
        """Answer a command this process did not receive (its receiver died): on its response_url
        while Slack takes answers there, else in the person's DM."""
        url, user = answer_to.get("response_url"), answer_to.get("user")
        sender = self.sender()
        team = answer_to.get("team")
        # The workspace's own token (TargetGone when the app was uninstalled there since).
        client = await sender.client_for(team)
        if url and age < RESPONSE_URL_LIFE:
            try:
                await self._answer(_Responder(url), reply, channel=answer_to.get("channel"),
                                   user=user, client=client)
                return
            except TargetGone as error:  # used up or expired after all
                log.warning("response_url refused a late answer (%s): sent to the DM", error)
        if not user:
            raise TargetGone("no response_url and no user to answer")
        await sender.send(Target(kind="member", key=user),
                          reply.model_copy(update={"team_key": team}))

    async def _on_command(self, ack: Any, body: dict[str, Any], respond: Any, request: Any,
                          client: AsyncWebClient) -> None:
        # Slash commands carry no delivery id, and a signed request replayed within the five minutes
        # bolt accepts would run twice: the signature (unique per timestamp and body) is its id.
        signature = (request.headers.get("x-slack-signature") or [None])[0]
        fields = dict(team_id=body.get("team_id", ""), user_id=body.get("user_id", ""),
                      user_name=body.get("user_name", ""), channel=body.get("channel_id"),
                      text=command_text(body.get("command", ""), body.get("text", "")),
                      delivery_id=f"command:{signature}" if signature else None)
        received = await self._receive(ack, await self._invocation(**fields, look_up=False),
                                       response_url=body.get("response_url"),
                                       channel=body.get("channel_id"), user=body.get("user_id", ""))
        if received is not None and received.repeat:
            return
        reply = await self._run(await self._invocation(**fields, client=client), received)
        await self._answer(_answering(respond, body), reply, channel=body.get("channel_id"),
                           user=body.get("user_id"), client=client)
        await self._answered(received)

    async def _answer(self, respond: Any, reply: Reply, *, channel: str | None, replace: bool = False,
                      user: str | None = None, client: AsyncWebClient | None = None) -> None:
        if reply.duplicate:
            return
        client = client or self.client
        ephemeral = reply.private or not reply.ok
        await respond(text=fallback_text(reply), blocks=blocks(reply),
                      response_type="ephemeral" if ephemeral else "in_channel",
                      replace_original=replace and not ephemeral)
        if reply.image is not None and channel and not ephemeral:
            await client.files_upload_v2(channel=channel, content=reply.image.png,
                                         filename=reply.image.filename, title=reply.image.alt[:250])
        if reply.file is not None:
            # A private file (an export) goes to the person's DM, never to everyone in the channel.
            where = channel if not ephemeral else (
                (await client.conversations_open(users=user))["channel"]["id"] if user else None)
            if where:
                await client.files_upload_v2(channel=where, content=reply.file.data,
                                             filename=reply.file.filename, title=reply.file.filename)

    async def _on_click(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any,
                        client: AsyncWebClient) -> None:
        """A button runs its command as the person who clicked; the message then shows the outcome.
        The workspace comes in Slack's signed envelope of every click, direct messages included, so
        the team a card was posted in is the team its buttons act in."""
        user = body.get("user") or {}
        team = body.get("team") or {}
        channel = (body.get("channel") or {}).get("id")
        command = str(action.get("value", ""))
        team_id = team.get("id") or user.get("team_id", "")
        fields = dict(team_id=team_id, user_id=user.get("id", ""), press="bound" if team_id else "unbound",
                      user_name=user.get("name", ""), channel=channel, text=command,
                      delivery_id=f"click:{body.get('trigger_id') or action.get('action_ts')}")
        received = await self._receive(ack, await self._invocation(**fields, look_up=False),
                                       response_url=body.get("response_url"), channel=channel,
                                       user=user.get("id", ""))
        if received is not None and received.repeat:
            return
        reply = await self._run(await self._invocation(**fields, client=client), received)
        if not body.get("response_url") and isinstance(body.get("view"), dict):
            await self._answer_in_view(body["view"], reply, team_id=team_id,
                                       user=user.get("id", ""), client=client)
        else:
            await self._answer(_answering(respond, body), reply, channel=channel,
                               replace=reply.ok and reply.settles, user=user.get("id"),
                               client=client)
        await self._answered(received)

    async def _answer_in_view(self, view: dict[str, Any], reply: Reply, *, team_id: str,
                              user: str, client: AsyncWebClient) -> None:
        """A click in the App Home or a modal has no response_url: the view it was in is shown
        anew (the Home tab as it is now, the modal with the answer) and the answer goes to the
        person's DM, where it stays."""
        if reply.duplicate:
            return
        sender = SlackSender(client)
        if view.get("type") == "home":
            await self._publish_home(team_id, user, client=client)
        elif view.get("type") == "modal" and view.get("id"):
            title = view.get("title") or {"type": "plain_text", "text": "dealbot"}
            await sender._call(client.views_update, view_id=view["id"], hash=view.get("hash"),
                               view={"type": "modal", "title": title, "blocks": blocks(reply)})
        await sender.send(Target(kind="member", key=user), reply)

    async def _publish_home(self, team_id: str, user_id: str, *, client: AsyncWebClient,
                            delivery_id: str | None = None) -> None:
        invocation = await self._invocation(team_id=team_id, user_id=user_id, user_name="",
                                            channel=None, text="/me", client=client,
                                            delivery_id=delivery_id)
        reply = await self._run(invocation)
        if reply.duplicate:
            return
        await client.views_publish(user_id=user_id, view={"type": "home", "blocks": blocks(reply)})

    async def _on_home(self, event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        await self._publish_home(body.get("team_id", ""), event.get("user", ""), client=client,
                                 delivery_id=f"event:{body.get('event_id')}")


def signed(secret: str, request: Request, body: bytes) -> bool:
    """Whether Slack signed this request within the last five minutes (a malformed timestamp,
    signature or body is simply not signed)."""
    stamp = request.headers.get("x-slack-request-timestamp", "")
    signature = request.headers.get("x-slack-signature", "")
    if unix_seconds(stamp) is None or not signature.isascii():
        return False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return SignatureVerifier(secret).is_valid(text, stamp, signature)


def identified(body: bytes, content_type: str | None) -> bool:
    """Whether a request names the user and the workspace it comes from, as bolt will read them;
    only Slack's own checks of the app (ssl_check, url_verification) name neither."""
    try:
        payload = parse_body(body.decode("utf-8"), content_type)
    except (ValueError, LookupError, TypeError):
        return True  # a body bolt cannot read: its 400 comes from the handler
    if not isinstance(payload, dict):
        return True
    if payload.get("ssl_check") == "1" or payload.get("type") == "url_verification":
        return True
    event = payload.get("event")
    if isinstance(event, dict) and event.get("type") in REVOCATIONS:
        # Said of the whole workspace, by nobody in it: the team alone identifies them.
        return identifier(payload.get("team_id")) or identifier(payload.get("enterprise_id"))
    try:
        team, user = extract_team_id(payload), extract_user_id(payload)
    except (AttributeError, LookupError, TypeError):
        return False
    return identifier(team) and identifier(user)


def _answering(respond: Any, body: dict[str, Any]) -> Any:
    """What answers a request: its response_url, through a responder that says when Slack refused
    (a kept command is then answered later)."""
    url = body.get("response_url")
    return _Responder(url) if isinstance(url, str) and url else respond


class _Responder:
    """Posts to a response_url as bolt's `respond` does, and says when Slack refused."""

    def __init__(self, url: str) -> None:
        self.client = AsyncWebhookClient(url)

    async def __call__(self, **message: Any) -> None:
        try:
            answer = await self.client.send_dict(message)
        except (TimeoutError, OSError) as error:
            raise Transient(f"slack response_url unreachable: {error}") from error
        if answer.status_code in (403, 404, 410):
            raise TargetGone(f"slack response_url: {answer.status_code} {answer.body[:80]}")
        if answer.status_code >= 300:
            raise Transient(f"slack response_url: {answer.status_code} {answer.body[:80]}")


# --- outbound -----------------------------------------------------------------------------------

# The bot token of a workspace installed through OAuth; None when the app is not (or no longer)
# installed there.
WorkspaceToken = Callable[[str | None], Awaitable[str | None]]


class SlackSender:
    """Delivers outbox messages: chat.postMessage to channels, and to people through their DM.
    With `tokens` (OAuth), each message goes out with the token of its team's workspace."""

    platform = "slack"

    def __init__(self, client: AsyncWebClient, tokens: WorkspaceToken | None = None) -> None:
        self.client = client
        self.tokens = tokens
        self._dm: dict[tuple[str | None, str], str] = {}

    async def client_for(self, team: str | None) -> AsyncWebClient:
        """The client that speaks for the team's workspace. Without its token (the app was
        uninstalled, or never installed there) nothing can reach it: TargetGone, and the outbox
        gives the message up instead of trying it for ever."""
        if self.tokens is None:
            return self.client
        token = await self.tokens(team)
        if token is None:
            raise TargetGone(f"dealbot is not installed in slack workspace {team or '?'}")
        return AsyncWebClient(token=token, base_url=self.client.base_url,
                              timeout=self.client.timeout,
                              retry_handlers=list(self.client.retry_handlers))

    async def _channel(self, client: AsyncWebClient, team: str | None, target: Target) -> str:
        if target.kind != "member":
            return target.key
        if (team, target.key) not in self._dm:
            answer = await self._call(client.conversations_open, users=target.key)
            self._dm[team, target.key] = answer["channel"]["id"]
        return self._dm[team, target.key]

    async def send(self, target: Target, reply: Reply) -> str:
        client = await self.client_for(reply.team_key)
        channel = await self._channel(client, reply.team_key, target)
        answer = await self._call(client.chat_postMessage, channel=channel,
                                  text=fallback_text(reply), blocks=blocks(reply))
        if reply.image is not None:
            await self._call(client.files_upload_v2, channel=answer.get("channel", channel),
                             content=reply.image.png, filename=reply.image.filename,
                             title=reply.image.alt[:250])
        if reply.file is not None:
            await self._call(client.files_upload_v2, channel=answer.get("channel", channel),
                             content=reply.file.data, filename=reply.file.filename,
                             title=reply.file.filename)
        return f"{answer.get('channel', channel)}:{answer.get('ts', '')}"

    async def update(self, message_ref: str, reply: Reply) -> None:
        channel, _, ts = message_ref.partition(":")
        client = await self.client_for(reply.team_key)
        await self._call(client.chat_update, channel=channel, ts=ts, text=fallback_text(reply),
                         blocks=blocks(reply))

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        try:
            return await method(**kwargs)
        except SlackApiError as error:
            response = error.response
            code = response.get("error", "") if hasattr(response, "get") else ""
            if response.status_code == 429 or code == "ratelimited":
                retry_after = float(response.headers.get("Retry-After", response.headers.get("retry-after", 1)))
                raise RateLimited(retry_after, "slack 429") from error
            if code in _AUTH:
                raise AuthBroken(f"slack refused our token: {code}") from error
            if code in _GONE:
                raise TargetGone(f"slack: {code}") from error
            if code in _UNCHANGEABLE:
                raise Unchangeable(f"slack: {code}") from error
            raise Transient(f"slack: {code or response.status_code}") from error
        except (TimeoutError, OSError) as error:
            raise Transient(f"slack unreachable: {error}") from error
