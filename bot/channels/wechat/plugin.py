"""Wire WeChat accounts into the app; without settings, run the platform simulator in-process."""

from __future__ import annotations

import secrets
import string
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import SecretStr

from bot.settings import WeChatAccount

from .adapter import WeChatChannel

if TYPE_CHECKING:
    from bot.app import Core

SIMULATOR_APP_ID = "wxsimulated00000001"
SIMULATOR_ACCOUNT_ID = "gh_simulated"


def _random(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def simulated_account(base_url: str) -> WeChatAccount:
    """Settings for the in-process simulator: fresh secrets, safe mode, the API on this server."""
    return WeChatAccount(
        token=SecretStr(_random(32)), app_id=SIMULATOR_APP_ID, app_secret=SecretStr(_random(32)),
        aes_key=SecretStr(_random(43)), account_id=SIMULATOR_ACCOUNT_ID, api_base=base_url,
    )


def wechat_plugin(app: web.Application, core: Core) -> Callable[[web.Application], AsyncIterator[None]] | None:
    from bot.app import STARTUP_NOTES, own_base_url, use_simulator

    settings = core.settings
    accounts: list[tuple[str, str, WeChatAccount]] = []
    if settings.wechat.configured:
        accounts.append(("default", "/wechat", settings.wechat))
    accounts += [(name, f"/wechat/{name}", cfg) for name, cfg in settings.wechat_accounts.items() if cfg.configured]
    simulator = None
    if use_simulator(settings, configured=bool(accounts)):
        from bot.simulators.wechat import WeChatSimulator

        base = own_base_url(settings)
        config = simulated_account(base)
        assert config.token and config.app_secret and config.aes_key and config.app_id
        simulator = WeChatSimulator(
            token=config.token.get_secret_value(), app_id=config.app_id,
            app_secret=config.app_secret.get_secret_value(), aes_key=config.aes_key.get_secret_value(),
            account_id=SIMULATOR_ACCOUNT_ID, callback_url=f"{base}/wechat",
        )
        simulator.add_routes(app)
        accounts.append(("default", "/wechat", config))
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
