"""The ASGI app every platform adapter mounts into; served by uvicorn (`dealbot serve`)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.app import Bot
from bot.bodylimit import BodyLimit


def create_app(bot: Bot) -> Starlette:
    # The health check has a thread of its own, so it never queues behind commands in the default
    # executor during a flood (measured: bench/floods.py).
    health_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthz")

    def ping() -> None:
        # A bare DBAPI connection: no transaction, so on SQLite no wait for the write lock that
        # every unit of work takes at BEGIN.
        connection = bot.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        finally:
            connection.close()

    async def healthz(request: Request) -> JSONResponse:
        try:
            # A slow database must not stall the other requests, nor this one for ever.
            pinged = asyncio.get_running_loop().run_in_executor(health_thread, ping)
            await asyncio.wait_for(pinged, 10)
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
