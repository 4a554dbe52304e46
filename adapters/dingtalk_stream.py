"""DingTalk Stream mode (长连接): robot messages and card clicks over the official `dingtalk-stream`
SDK's WebSocket, so no public URL is needed. The SDK keeps the connection (reconnecting, ping) and
acknowledges each frame; what a frame carries goes the way a signed HTTP callback goes
(`DingTalkAdapter.take`), and replies leave as they do for the callback.

The connection is opened at `DINGTALK_API_URL` (`/v1.0/gateway/connections/open`): the SDK reads
its endpoint once, from the environment, when it is imported, so the one method that uses it is
given ours here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import platform
from typing import TYPE_CHECKING, Any

import requests
from dingtalk_stream import AckMessage, CallbackHandler, Credential, DingTalkStreamClient
from dingtalk_stream.chatbot import ChatbotMessage
from dingtalk_stream.frames import CallbackMessage
from dingtalk_stream.version import VERSION_STRING

if TYPE_CHECKING:
    from adapters.dingtalk import DingTalkAdapter

log = logging.getLogger("dealbot.dingtalk.stream")

PYTHON = platform.python_version()
TOPICS = (ChatbotMessage.TOPIC, CallbackHandler.TOPIC_CARD_CALLBACK)


class StreamClient(DingTalkStreamClient):
    def __init__(self, credential: Credential, api_url: str) -> None:
        super().__init__(credential, logger=log)
        self.api_url = api_url.rstrip("/")

    def open_connection(self) -> dict[str, Any] | None:
        """The SDK's request (its body and headers), to our base URL."""
        body = {
            "clientId": self.credential.client_id,
            "clientSecret": self.credential.client_secret,
            "subscriptions": [
                {"type": "CALLBACK", "topic": topic} for topic in self.callback_handler_map
            ],
            "ua": f"dingtalk-sdk-python/v{VERSION_STRING}-union",
            "localIp": self.get_host_ip(),
        }
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"DingTalkStream/1.0 SDK/{VERSION_STRING} Python/{PYTHON}",
        }
        try:
            response = requests.post(
                f"{self.api_url}/v1.0/gateway/connections/open",
                headers=headers,
                data=json.dumps(body),
                timeout=10,
            )
            response.raise_for_status()
            answer = response.json()
        except (requests.RequestException, ValueError) as error:
            # The error's text may hold the request; the secret is in its body, not its URL.
            log.error("dingtalk stream: opening the connection failed (%s)", type(error).__name__)
            return None
        return answer if isinstance(answer, dict) else None


class _Frames(CallbackHandler):
    def __init__(self, adapter: DingTalkAdapter) -> None:
        super().__init__()
        self.adapter = adapter
        self.running: set[asyncio.Task[None]] = set()

    async def process(self, message: CallbackMessage) -> tuple[int, str]:
        payload = message.data if isinstance(message.data, dict) else {}
        status, work = await self.adapter.take(payload, self.adapter.now_ms())
        if work is not None:
            # Acknowledged first: DingTalk resends a frame that is not acknowledged in time.
            task = asyncio.create_task(self.adapter.handle(*work))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        if status != 200:
            return AckMessage.STATUS_BAD_REQUEST, "refused"
        return AckMessage.STATUS_OK, "OK"


class Stream:
    """The running connection of one adapter."""

    def __init__(self, adapter: DingTalkAdapter) -> None:
        api = adapter.api
        self.client = StreamClient(Credential(api.client_id, api.client_secret), api.base_url)
        self.frames = _Frames(adapter)
        for topic in TOPICS:
            self.client.register_callback_handler(topic, self.frames)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.client.start())

    async def stop(self) -> None:
        """The SDK retries after a cancellation too (it sleeps, then reconnects): cancelled until
        it ends."""
        while self.task is not None and not self.task.done():
            self.task.cancel()
            await asyncio.wait([self.task], timeout=0.1)
