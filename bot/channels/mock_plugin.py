"""``ENGAGEBOT_MOCK_SINK``: the mock channel inside ``engagebot run``, with a database as its platform.

Followers' actions arrive as JSON at ``POST /mock`` and are answered inline; sends through the API
(broadcasts) go into table ``mock_delivery`` of the sink database, deduplicated by idempotency key.
For tests and demos that drive a real server process without any platform (the crash tests).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .mock import MOCK_CAPABILITIES, MockChannel, SqlDeliverySink
from .plugin import ChannelPlugin, Lifetime, PluginContext

MOCK_PATH = "/mock"


def _mock_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    url = ctx.settings.mock_sink
    if url is None:
        return None
    sink = SqlDeliverySink(url)
    channel = MockChannel(dispatch=ctx.dispatcher.dispatch, sink=sink, path=MOCK_PATH)
    app.router.add_routes(channel.routes())
    ctx.channels.append(channel)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await sink.open()
        yield
        await sink.close()

    return lifetime


mock_plugin = ChannelPlugin("mock", _mock_plugin, capabilities=lambda _s: MOCK_CAPABILITIES,
                            configured=lambda s: s.mock_sink is not None, order=40,
                            real_platform=False)
