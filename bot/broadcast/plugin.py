"""Run the broadcast workers inside ``engagebot run``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .worker import BroadcastWorker

if TYPE_CHECKING:
    from bot.app import Core

BROADCAST_WORKER_SERVICE = "broadcast.worker"


def broadcast_plugin(app: web.Application, core: Core) -> Callable[[web.Application], AsyncIterator[None]]:
    """Start a worker for ``core.channels`` (read at startup, after the channel plugins added theirs)."""

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        worker = BroadcastWorker(core.sessions, list(core.channels), catalogs=core.catalogs,
                                 international_locale=core.settings.international_locale)
        core.services[BROADCAST_WORKER_SERVICE] = worker
        await worker.start()
        yield
        await worker.stop()

    return lifetime
