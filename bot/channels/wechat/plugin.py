"""Wire WeChat accounts into the app; without settings, run the platform simulator in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import SecretStr

from bot.settings import WeChatAccount

from .adapter import WeChatChannel

if TYPE_CHECKING:
    from bot.app import Core
    from bot.settings import Settings

SIMULATOR_APP_ID = "wxsimulated00000001"
SIMULATOR_ACCOUNT_ID = "gh_simulated"


# The in-process simulator's credentials. Fixed, so that the CLI (campaign QR codes) reaches the
# simulator of a running `engagebot run`; they guard nothing but a local simulator.
SIMULATOR_TOKEN = "engagebotSimulatorToken"
SIMULATOR_SECRET = "engagebot-simulator-app-secret"
SIMULATOR_AES_KEY = "EngagebotSimulatorKeyForSafeModeOnLocalhost"


def simulated_account(base_url: str) -> WeChatAccount:
    """Settings for the in-process simulator: safe mode, the API on this server."""
    return WeChatAccount(
        token=SecretStr(SIMULATOR_TOKEN), app_id=SIMULATOR_APP_ID, app_secret=SecretStr(SIMULATOR_SECRET),
        aes_key=SecretStr(SIMULATOR_AES_KEY), account_id=SIMULATOR_ACCOUNT_ID, api_base=base_url,
    )


def wechat_accounts(settings: Settings) -> list[tuple[str, str, WeChatAccount]]:
    """(name, path, settings) of each account to serve; the simulated one when none is configured."""
    from bot.app import own_base_url, use_simulator

    accounts: list[tuple[str, str, WeChatAccount]] = []
    if settings.wechat.configured:
        accounts.append(("default", "/wechat", settings.wechat))
    accounts += [(name, f"/wechat/{name}", cfg) for name, cfg in settings.wechat_accounts.items() if cfg.configured]
    if use_simulator(settings, configured=bool(accounts)):
        accounts.append(("default", "/wechat", simulated_account(own_base_url(settings))))
    return accounts


def wechat_link_channels(core: Core) -> list[WeChatChannel]:
    """Channels for the CLI: enough to create scene QR codes through each account's API."""
    return [WeChatChannel(dispatch=core.dispatcher.dispatch, account=name, config=cfg, sessions=core.sessions,
                          path=path) for name, path, cfg in wechat_accounts(core.settings)]


def wechat_plugin(app: web.Application, core: Core) -> Callable[[web.Application], AsyncIterator[None]] | None:
    from bot.app import STARTUP_NOTES, own_base_url, use_simulator

    settings = core.settings
    accounts = wechat_accounts(settings)
    simulator = None
    if use_simulator(settings, configured=settings.wechat.configured or any(
            cfg.configured for cfg in settings.wechat_accounts.values())):
        from bot.simulators.wechat import WeChatSimulator

        base = own_base_url(settings)
        simulator = WeChatSimulator(
            token=SIMULATOR_TOKEN, app_id=SIMULATOR_APP_ID, app_secret=SIMULATOR_SECRET,
            aes_key=SIMULATOR_AES_KEY, account_id=SIMULATOR_ACCOUNT_ID, callback_url=f"{base}/wechat",
        )
        simulator.add_routes(app)
        app[STARTUP_NOTES].append(
            f"WeChat simulator: open {base}/simulator/wechat (a follower's phone), "
            "or run: engagebot chat --channel wechat")
    if not accounts:
        return None
    channels = [WeChatChannel(dispatch=core.dispatcher.dispatch, account=name, config=cfg,
                              sessions=core.sessions, path=path) for name, path, cfg in accounts]
    for channel in channels:
        app.router.add_routes(channel.routes())
    core.channels.extend(channels)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        for channel in channels:
            await channel.start()
        yield
        for channel in reversed(channels):
            await channel.stop()
        if simulator is not None:
            await simulator.close()

    return lifetime
