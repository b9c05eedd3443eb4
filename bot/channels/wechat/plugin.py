"""Wire WeChat accounts into the app; without any real platform, run the platform simulator in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import SecretStr

from bot.settings import WeChatAccount

from .adapter import WeChatChannel

if TYPE_CHECKING:
    from bot.app import Core


def simulated_account(core: Core, base_url: str) -> WeChatAccount:
    """Settings for the in-process simulator: safe mode, the API on this server, this database's secrets."""
    from bot.simulation import SIMULATED_WECHAT_ACCOUNT_ID, SIMULATED_WECHAT_APP_ID, simulator_credentials

    credentials = simulator_credentials(core)
    return WeChatAccount(
        token=SecretStr(credentials.wechat_token), app_id=SIMULATED_WECHAT_APP_ID,
        app_secret=SecretStr(credentials.wechat_app_secret), aes_key=SecretStr(credentials.wechat_aes_key),
        account_id=SIMULATED_WECHAT_ACCOUNT_ID, api_base=base_url,
    )


def wechat_accounts(core: Core) -> list[tuple[str, str, WeChatAccount]]:
    """(name, path, settings) of each account to serve; the simulated one when its simulator is served."""
    from bot.app import own_base_url
    from bot.simulation import simulator_mounted

    settings = core.settings
    accounts: list[tuple[str, str, WeChatAccount]] = []
    if settings.wechat.configured:
        accounts.append(("default", "/wechat", settings.wechat))
    accounts += [(name, f"/wechat/{name}", cfg) for name, cfg in settings.wechat_accounts.items() if cfg.configured]
    if simulator_mounted(settings, "wechat"):
        accounts.append(("default", "/wechat", simulated_account(core, own_base_url(settings))))
    return accounts


def wechat_link_channels(core: Core) -> list[WeChatChannel]:
    """Channels for the CLI: enough to create scene QR codes through each account's API."""
    return [WeChatChannel(dispatch=core.dispatcher.dispatch, account=name, config=cfg, sessions=core.sessions,
                          path=path) for name, path, cfg in wechat_accounts(core)]


def wechat_plugin(app: web.Application, core: Core) -> Callable[[web.Application], AsyncIterator[None]] | None:
    from bot.app import own_base_url
    from bot.simulation import (
        SIMULATED_WECHAT_ACCOUNT_ID,
        SIMULATED_WECHAT_APP_ID,
        SIMULATORS,
        SimulatorPersistence,
        simulator_credentials,
        simulator_mounted,
    )

    settings = core.settings
    accounts = wechat_accounts(core)
    simulator = persistence = None
    if simulator_mounted(settings, "wechat"):
        from bot.simulators.wechat import WeChatSimulator

        credentials = simulator_credentials(core)
        simulator = WeChatSimulator(
            token=credentials.wechat_token, app_id=SIMULATED_WECHAT_APP_ID,
            app_secret=credentials.wechat_app_secret, aes_key=credentials.wechat_aes_key,
            account_id=SIMULATED_WECHAT_ACCOUNT_ID, callback_url=f"{own_base_url(settings)}/wechat",
        )
        simulator.add_routes(app)
        app[SIMULATORS]["wechat"] = simulator
        persistence = SimulatorPersistence(core.sessions, "wechat", simulator)
    if not accounts:
        return None
    channels = [WeChatChannel(dispatch=core.dispatcher.dispatch, account=name, config=cfg,
                              sessions=core.sessions, path=path) for name, path, cfg in accounts]
    for channel in channels:
        app.router.add_routes(channel.routes())
    core.channels.extend(channels)
    if simulator is not None:
        app.router.add_get("/simulator/wechat/bot/progress", _progress_route(core, channels[-1]))

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        if persistence is not None:
            await persistence.restore()
            persistence.start()
        for channel in channels:
            await channel.start()
        yield
        for channel in reversed(channels):
            await channel.stop()
        if persistence is not None:
            await persistence.stop()
        if simulator is not None:
            await simulator.close()

    return lifetime


def _progress_route(core: Core, channel: WeChatChannel) -> Callable[[web.Request], object]:
    """``GET /simulator/wechat/bot/progress?openid=``: how many replies to that follower still wait.

    Served only beside the simulator, for the terminal console: a callback is answered after its
    message is stored, so only replies sent later through the API can still be on their way.
    """
    from bot.storage.simulators import reply_progress

    async def progress(request: web.Request) -> web.Response:
        openid = request.query.get("openid", "")
        if not 1 <= len(openid) <= 128:
            return web.json_response({"error": "openid is required"}, status=400)
        _handled, pending = await reply_progress(core.sessions, channel="wechat", account=channel.account,
                                                 external_id=openid)
        return web.json_response({"pending_replies": pending})

    return progress
