"""Inside ``engagebot run`` the plugin drains broadcasts through ``core.channels``."""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.app import Core, build_app
from bot.broadcast import Audience, create_broadcast, expand_broadcast
from bot.broadcast.plugin import broadcast_plugin
from bot.channels.mock import CountingSink, MockChannel
from bot.settings import load_settings
from tests.support.broadcast import add_followers, statuses


async def test_the_server_sends_broadcasts_through_its_channels(database_url: str) -> None:
    sink = CountingSink()

    def mock_channel_plugin(app: web.Application, core: Core) -> None:
        core.channels.append(MockChannel(dispatch=core.dispatcher.dispatch, sink=sink))

    app = build_app(load_settings(database_url=database_url), plugins=[mock_channel_plugin, broadcast_plugin])
    runner = web.AppRunner(app)
    await runner.setup()  # runs the cleanup_ctx startups: database, then the broadcast worker
    try:
        from bot.app import CORE

        core = app[CORE]
        await add_followers(core.sessions, 20, channel="mock", account="mock")
        async with core.sessions() as session:
            broadcast = await create_broadcast(session, name="srv", texts={"en": "Hi"}, audience=Audience(),
                                               default_locale="en")
            await session.commit()
        await expand_broadcast(core.sessions, broadcast.id)
        async with asyncio.timeout(15):
            while sink.count < 20 or (await statuses(core.sessions, broadcast.id)) != {"sent": 20}:
                await asyncio.sleep(0.1)
    finally:
        await runner.cleanup()
    assert sink.count == 20
