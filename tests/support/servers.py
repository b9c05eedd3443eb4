"""Run aiohttp apps on loopback ports for tests (real HTTP, as the platforms would call us)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from bot.channels.base import Channel
from bot.web import error_middleware


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` and yield its base URL; clean up on exit."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = runner.addresses
    bound = sockets[0][1] if sockets else port
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_channel(channel: Channel, *, middlewares: Sequence[Any] = (error_middleware,)) -> AsyncIterator[str]:
    """Serve ``channel``'s routes on loopback and start it; yield its base URL; stop it on exit."""
    app = web.Application(middlewares=list(middlewares))
    app.router.add_routes(channel.routes())
    async with serve(app) as url:
        await channel.start()
        try:
            yield url
        finally:
            await channel.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
