"""Wire WeChat accounts into the app, the simulated one too when the app serves the WeChat simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.channels.plugin import ChannelPlugin, Lifetime, PluginContext
from bot.settings import Settings, WeChatAccount
from bot.storage.simulators import reply_progress

from .adapter import WeChatChannel, wechat_capabilities


def wechat_accounts(settings: Settings, simulated: WeChatAccount | None = None) -> list[tuple[str, str, WeChatAccount]]:
    """(name, path, settings) of each account to serve; the simulated one last, when its simulator is served."""
    accounts: list[tuple[str, str, WeChatAccount]] = []
    if settings.wechat.configured:
        accounts.append(("default", "/wechat", settings.wechat))
    accounts += [(name, f"/wechat/{name}", cfg) for name, cfg in settings.wechat_accounts.items() if cfg.configured]
    if simulated is not None:
        accounts.append(("default", "/wechat", simulated))
    return accounts


def wechat_link_channels(ctx: PluginContext) -> list[WeChatChannel]:
    """Channels for the CLI: enough to create scene QR codes through each account's API."""
    return [WeChatChannel(dispatch=ctx.dispatcher.dispatch, account=name, config=cfg, sessions=ctx.sessions,
                          path=path) for name, path, cfg in wechat_accounts(ctx.settings, ctx.simulated.get("wechat"))]


def _wechat_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    simulated = ctx.simulated.get("wechat")
    accounts = wechat_accounts(ctx.settings, simulated)
    if not accounts:
        return None
    channels = [WeChatChannel(dispatch=ctx.dispatcher.dispatch, account=name, config=cfg,
                              sessions=ctx.sessions, path=path) for name, path, cfg in accounts]
    for channel in channels:
        app.router.add_routes(channel.routes())
    ctx.channels.extend(channels)
    if simulated is not None:
        app.router.add_get("/simulator/wechat/bot/progress", _progress_route(ctx, channels[-1]))

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        for channel in channels:
            await channel.start()
        yield
        for channel in reversed(channels):
            await channel.stop()

    return lifetime


def _configured(settings: Settings) -> bool:
    return settings.wechat.configured or any(cfg.configured for cfg in settings.wechat_accounts.values())


wechat_plugin = ChannelPlugin("wechat", _wechat_plugin, capabilities=lambda s: wechat_capabilities(s.wechat),
                              configured=_configured, order=10)


def _progress_route(ctx: PluginContext, channel: WeChatChannel) -> Handler:
    """``GET /simulator/wechat/bot/progress?openid=``: how many replies to that follower still wait.

    Served only beside the simulator, for the terminal console: a callback is answered after its
    message is stored, so only replies sent later through the API can still be on their way.
    """
    async def progress(request: web.Request) -> web.Response:
        openid = request.query.get("openid", "")
        if not 1 <= len(openid) <= 128:
            return web.json_response({"error": "openid is required"}, status=400)
        _handled, pending = await reply_progress(ctx.sessions, channel="wechat", account=channel.account,
                                                 external_id=openid)
        return web.json_response({"pending_replies": pending})

    return progress
