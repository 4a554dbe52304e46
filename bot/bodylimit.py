"""A request body limit for every route, applied before any handler reads the body.

slack-bolt reads a whole body before it checks the signature, so the limit cannot be left to the
adapters: a declared `Content-Length` over the limit is refused at once, unread; a body without one
(chunked) is counted as it arrives and refused as soon as it passes the limit. A body that does not
arrive within `timeout` seconds is refused too, so a slow client cannot hold a request open.
"""

from __future__ import annotations

import asyncio

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_LIMIT = 1 << 20
DEFAULT_TIMEOUT = 15.0


class BodyLimit:
    """ASGI middleware: the request body, bounded in size and time, handed on as one message."""

    def __init__(
        self, app: ASGIApp, *, limit: int = DEFAULT_LIMIT, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next(
            (value for name, value in scope["headers"] if name == b"content-length"), None
        )
        if declared is not None and not declared.strip().isdigit():
            await PlainTextResponse("bad Content-Length", 400)(scope, receive, send)
            return
        if declared is not None and int(declared) > self.limit:
            await PlainTextResponse("request body too large", 413)(scope, receive, send)
            return
        body = bytearray()
        try:
            async with asyncio.timeout(self.timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    body += message.get("body", b"")
                    if len(body) > self.limit:
                        await PlainTextResponse("request body too large", 413)(scope, receive, send)
                        return
                    more = bool(message.get("more_body", False))
        except TimeoutError:
            await PlainTextResponse("request body too slow", 408)(scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the buffered body first, then listens for the disconnect."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
