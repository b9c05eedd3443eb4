"""Wire the Weibo account into the app when its settings are there; without them, nothing happens here.

The Weibo simulator (``bot.simulators.weibo``) is mounted by the composition root, not here: this
plugin serves the real (or simulated, through ``ctx.simulated["weibo"]``) account's callback at
``/weibo`` and runs its outbox and its megaphone poller.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.channels.plugin import ChannelPlugin, Lifetime, PluginContext
from bot.settings import Settings, WeiboSettings

from .adapter import WeiboChannel


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

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await channel.start()
        yield
        await channel.stop()

    return lifetime


weibo_plugin = ChannelPlugin("weibo", _weibo_plugin)
