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


async def test_the_outbox_settings_configure_every_senders_batch_lease_and_concurrency(database_url: str) -> None:
    from datetime import timedelta

    from bot.app import CORE, create_app, default_plugins

    settings = load_settings(database_url=database_url, outbox={
        "batch_size": 40, "lease_seconds": 7, "concurrency": 3, "no_sender_wait_seconds": 12})
    app = await create_app(settings, plugins=default_plugins())  # the simulators' stored credentials
    await app[CORE].engine.dispose()
    channels = app[CORE].channels
    assert {c.name for c in channels} == {"wechat", "telegram", "weibo"}  # the simulated ones of the embedded default
    for channel in channels:
        outbox = channel.outbox  # type: ignore[attr-defined]
        assert (outbox.batch_size, outbox.lease, outbox.journal.lease, outbox.concurrency) == (
            40, timedelta(seconds=7), timedelta(seconds=7), 3)


def test_outbox_settings_come_from_the_environment_and_bad_ones_are_named(monkeypatch) -> None:
    import pytest

    from bot.errors import ConfigError

    monkeypatch.setenv("ENGAGEBOT_OUTBOX__LEASE_SECONDS", "5")
    monkeypatch.setenv("ENGAGEBOT_OUTBOX__BATCH_SIZE", "25")
    settings = load_settings()
    assert (settings.outbox.lease_seconds, settings.outbox.batch_size) == (5, 25)
    monkeypatch.setenv("ENGAGEBOT_OUTBOX__CONCURRENCY", "0")
    with pytest.raises(ConfigError, match="ENGAGEBOT_OUTBOX__CONCURRENCY"):
        load_settings()
