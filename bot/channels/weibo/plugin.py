"""Wire the Weibo account into the app when its settings are there; without them, nothing happens here.

The Weibo simulator (``bot.simulators.weibo``) is mounted by the composition root, not here: this
plugin serves the real (or simulated, through ``ctx.simulated["weibo"]``) account's callback at
``/weibo`` and runs its outbox and its megaphone poller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from bot.channels.plugin import ChannelPlugin, Lifetime, PluginContext
from bot.settings import Settings, WeiboSettings

from .adapter import WeiboChannel, weibo_capabilities
from .megaphone import Megaphone


def weibo_settings(settings: Settings, simulated: WeiboSettings | None = None) -> WeiboSettings | None:
    """The account to serve: the configured one, else the simulated one when its simulator is served."""
    if settings.weibo.configured:
        return settings.weibo
    return simulated


def weibo_link_channels(ctx: PluginContext) -> list[WeiboChannel]:
    """Channels for the CLI: enough to give each campaign scene its Weibo QR link."""
    config = weibo_settings(ctx.settings, ctx.simulated.get("weibo"))
    if config is None:
        return []
    return [WeiboChannel(dispatch=ctx.dispatcher.dispatch, account="default", config=config, sessions=ctx.sessions)]


def _weibo_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    config = weibo_settings(ctx.settings, ctx.simulated.get("weibo"))
    if config is None:
        return None
    channel = WeiboChannel(dispatch=ctx.dispatcher.dispatch, account="default", config=config, sessions=ctx.sessions)
    app.router.add_routes(channel.routes())
    ctx.channels.append(channel)
    # Under a duty, the megaphone's own lease (which fences its cursors) is no longer than the duty's, so
    # a standby taking the duty over from a dead process polls at once.
    megaphone = Megaphone(api=channel.api, sessions=ctx.sessions, account=channel.account, brand_uid=channel.brand_uid,
                          services=ctx.services, catalogs=ctx.catalogs, default_locale=ctx.settings.default_locale,
                          per_hour=config.public_replies_per_hour, interval=config.poll_interval,
                          lease=ctx.duties.ttl if ctx.duties is not None else None)

    async def poll_while_held() -> None:
        try:
            await megaphone.run()
        finally:
            await megaphone.release()  # another instance may take the poll over at once

    if ctx.duties is not None:
        ctx.duties.add(f"weibo-megaphone:{channel.account}", poll_while_held)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await channel.start()
        poller = None
        if ctx.duties is None:
            poller = asyncio.create_task(poll_while_held(), name="weibo-megaphone")
        yield
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await channel.stop()

    return lifetime


weibo_plugin = ChannelPlugin("weibo", _weibo_plugin, capabilities=lambda s: weibo_capabilities(s.weibo),
                             configured=lambda s: s.weibo.configured, order=30)
