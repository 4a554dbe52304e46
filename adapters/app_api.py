"""What the apps of WeCom, Feishu and DingTalk have in common: one access token shared by every
caller, and an HTTP client and lock per event loop (the web server's and each worker run's)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class LoopState:
    """httpx clients and asyncio locks belong to one event loop; the token itself is shared."""

    client: httpx.AsyncClient
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class AppApi:
    """An app's API behind one access token: cached until `fetch_token` says to renew it, one
    fetch shared by concurrent callers, dropped by `forget` when the platform refuses it."""

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float,
        monotonic: Callable[[], float],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.monotonic = monotonic
        self.transport = transport
        self._token: str | None = None
        self._expires = 0.0
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def fetch_token(self) -> tuple[str, float]:
        """A new token from the platform, and how many seconds to use it before fetching anew."""
        raise NotImplementedError

    def new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, transport=self.transport
        )

    def _state(self) -> LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = LoopState(client=self.new_client())
        return state

    async def aclose(self) -> None:
        """Close this event loop's HTTP client."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.aclose()

    def _fresh(self) -> str | None:
        return self._token if self._token and self.monotonic() < self._expires else None

    async def token(self) -> str:
        """The cached access token, fetched when missing or due for renewal."""
        token = self._fresh()
        if token:
            return token
        async with self._state().lock:
            token = self._fresh()  # another caller may have fetched it while we waited
            if token:
                return token
            token, use_for = await self.fetch_token()
            self._token, self._expires = token, self.monotonic() + use_for
            return token

    def _forget(self, token: str) -> None:
        """Drop a refused token, unless a concurrent caller already replaced it."""
        if self._token == token:
            self._token, self._expires = None, 0.0
