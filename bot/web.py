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


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read a request body of at most ``limit`` bytes; raise PayloadTooLarge past it, without reading on."""
    from bot.errors import PayloadTooLarge

    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
    return b"".join(chunks)
