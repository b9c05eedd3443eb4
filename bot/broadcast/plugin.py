"""Run the broadcast workers inside ``engagebot run``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .worker import BroadcastWorker, worker_options

if TYPE_CHECKING:
    from bot.channels.plugin import PluginContext


def broadcast_plugin(app: web.Application, core: PluginContext) -> Callable[[web.Application], AsyncIterator[None]]:
    """Build a worker for ``core.channels`` (the channel plugins ran before) with the outbox settings.

    Built now, so the channels' own senders are configured before any of them starts.
    """
    worker = BroadcastWorker(core.sessions, list(core.channels), catalogs=core.catalogs,
                             duties=core.duties, **worker_options(core.settings))

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        core.services.add(worker)
        await worker.start()
        yield
        await worker.stop()

    return lifetime
