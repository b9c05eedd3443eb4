"""HTTP plumbing shared by every route: one place maps typed errors to status codes."""

from __future__ import annotations

import logging

from aiohttp import web

from bot.errors import EngagebotError

log = logging.getLogger("engagebot.web")


@web.middleware
async def error_middleware(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Answer a typed error with its status and reason (JSON unless the route asked for text)."""
    try:
        return await handler(request)
    except EngagebotError as exc:
        if exc.http_status >= 500:
            log.error("request failed", exc_info=exc, extra={"path": request.path})
        else:
            log.info("request refused", extra={"path": request.path, "status": exc.http_status,
                                               "reason": str(exc)})
        return web.json_response({"error": type(exc).__name__, "reason": str(exc)}, status=exc.http_status)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
