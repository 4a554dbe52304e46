"""Feishu's long-connection mode (长连接): events over a WebSocket the app opens itself, so no
public URL is needed, as Slack's Socket Mode. Built on the official SDK (`lark_oapi.ws.Client`),
which fetches the connection's address with the app's credentials, speaks the framed protocol,
pings, reconnects and acknowledges each event.

The SDK's client runs its own event loop and blocks in it (its module keeps that loop in a global),
so it runs in a thread of its own; each event is handed to the server's loop, kept there like an
event over HTTP (`FeishuAdapter.accept`) before the SDK acknowledges it, and run after that. The
connection is authenticated by the App Secret over TLS: its events carry no signature to check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapters.feishu import FeishuAdapter

log = logging.getLogger("dealbot.feishu")

EVENTS = ("im.message.receive_v1", "card.action.trigger")
KEEP_SECONDS = 2.5  # Feishu re-sends an event not acknowledged within 3 seconds


class LongConnection:
    def __init__(
        self, adapter: FeishuAdapter, *, app_id: str, app_secret: str, domain: str
    ) -> None:
        self.adapter = adapter
        self.app_id = app_id
        self.app_secret = app_secret
        self.domain = domain.rstrip("/")
        self.connected = threading.Event()
        self._server_loop: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Connect from a thread of its own; events are handled on the calling event loop."""
        self._server_loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name="feishu-long-connection", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection without reconnecting and end the thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        if self._thread is not None:
            self._thread.join(timeout)

    async def _shutdown(self) -> None:
        # The SDK has no way to stop its client: turn reconnecting off, close, end its tasks
        # (the one it blocks in among them, which ends `start`).
        client = self._client
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()
        if client is not None:
            client._auto_reconnect = False
            if client._conn is not None:
                with contextlib.suppress(Exception):
                    await client._conn.close()

    def _run(self) -> None:
        import lark_oapi as lark
        from lark_oapi.ws import client as ws_client

        # The SDK's client uses the loop its module made at import; this thread's must be it.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ws_client.loop = loop
        self._loop = loop
        builder = lark.EventDispatcherHandler.builder("", "")
        for kind in EVENTS:
            builder = builder.register_p2_customized_event(kind, self._on_event)
        client = lark.ws.Client(
            self.app_id,
            self.app_secret,
            event_handler=builder.build(),
            domain=self.domain,
            log_level=lark.LogLevel.WARNING,
        )
        client.on_reconnected = self.connected.set
        self._client = client
        loop.call_later(0, self._watch, client)
        try:
            client.start()
        except asyncio.CancelledError:
            pass  # stop()
        except Exception:
            log.exception("feishu long connection stopped")
        finally:
            self.connected.clear()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _watch(self, client: Any) -> None:
        """Tell `connected` once the SDK holds a connection (it has no hook for the first)."""
        if client._conn is not None:
            self.connected.set()
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_later(0.05, self._watch, client)

    def _on_event(self, data: Any) -> None:
        """The SDK's handler, on its thread: the event is kept on the server's loop before this
        returns (and the SDK acknowledges it); it runs after."""
        import lark_oapi as lark

        event = json.loads(lark.JSON.marshal(data) or "{}")
        assert self._server_loop is not None
        future = asyncio.run_coroutine_threadsafe(self._take(event), self._server_loop)
        try:
            future.result(timeout=KEEP_SECONDS)
        except FutureTimeout:
            log.warning("feishu event not kept within %ss; Feishu may send it again", KEEP_SECONDS)

    async def _take(self, event: dict[str, Any]) -> None:
        from adapters.feishu_crypto import Rejected

        try:
            work = await self.adapter.accept(event)
        except Rejected as error:
            log.warning("feishu long-connection event refused: %s", error)
            return
        if work is not None:
            task = asyncio.create_task(self.adapter.handle(*work))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
