"""The ASGI app every platform adapter mounts into; served by uvicorn (`dealbot serve`)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import Bot
from bot.bodylimit import BodyLimit


def create_app(bot: Bot) -> Starlette:
    def ping() -> None:
        with bot.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    async def healthz(request: Request) -> JSONResponse:
        try:
            await asyncio.to_thread(ping)  # a slow database must not stall the other requests
        except Exception as error:  # noqa: BLE001 - report any database failure as unhealthy
            return JSONResponse({"ok": False, "database": type(error).__name__}, status_code=503)
        return JSONResponse({"ok": True, "database": "ok", "platforms": bot.settings.platforms})

    async def metrics(request: Request) -> Response:
        body, content_type = await asyncio.to_thread(bot.metrics.render)  # the outbox gauge reads the database
        return Response(body, media_type=content_type)

    bot.metrics.watch_outbox(bot.engine)
    routes = [Route("/healthz", healthz), Route("/metrics", metrics)]
    for adapter in bot.adapters:
        routes += adapter.routes()
    # Every route, before any handler reads a body (slack-bolt reads it whole).
    limit = Middleware(BodyLimit, limit=bot.settings.max_body_bytes,
                       timeout=bot.settings.body_timeout_seconds)
    return Starlette(routes=routes, middleware=[limit])
