"""The ASGI app every platform adapter mounts into; served by uvicorn (`dealbot serve`)."""

from __future__ import annotations

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.app import Bot


def create_app(bot: Bot) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        try:
            with bot.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - report any database failure as unhealthy
            return JSONResponse({"ok": False, "database": type(error).__name__}, status_code=503)
        return JSONResponse({"ok": True, "database": "ok", "platforms": bot.settings.platforms})

    routes = [Route("/healthz", healthz)]
    for adapter in bot.adapters:
        routes += adapter.routes()
    return Starlette(routes=routes)
