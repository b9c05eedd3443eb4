"""Wire the Telegram channel into the app: a real bot when a token is set, else the in-process simulator.

Without a token (and unless simulators are turned off), a simulated Bot API server is mounted on
the app itself (``/bot<token>/...`` and the chat page ``/simulator/telegram``) and the adapter
polls it over HTTP like it would poll Telegram. The adapter connects in the background, since the
app's port only listens after every lifetime hook has started.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .adapter import TelegramChannel
from .config import TelegramConfig

if TYPE_CHECKING:
    from bot.app import Core
    from bot.settings import Settings
    from bot.simulators.telegram import TelegramBotAPISimulator

SIMULATOR_TOKEN = "123456:SIMULATED"
SIMULATOR_USERNAME = "engagebot_demo_bot"
TELEGRAM_CHANNEL = web.AppKey("telegram_channel", TelegramChannel)
TELEGRAM_SIMULATOR = web.AppKey("telegram_simulator", object)  # a TelegramBotAPISimulator when mounted


def telegram_config(settings: Settings) -> TelegramConfig | None:
    """The bot to run: the configured token, else the in-process simulator's (the embedded default)."""
    from bot.app import own_base_url, use_simulator

    if use_simulator(settings, configured=settings.telegram.token is not None):
        base = own_base_url(settings)
        return TelegramConfig(token=SIMULATOR_TOKEN, mode="polling", base_url=f"{base}/bot",
                              base_file_url=f"{base}/file/bot", connect_backoff=(0.05, 2.0))
    if settings.telegram.token is not None:
        return TelegramConfig.from_settings(settings.telegram)
    return None


async def telegram_link_channel(core: Core) -> TelegramChannel | None:
    """A channel that only answers ``scene_link`` (for the CLI): it asks getMe, and receives nothing."""
    config = telegram_config(core.settings)
    if config is None:
        return None
    channel = TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config)
    await channel.application.initialize()  # getMe: the bot's username makes the deep link
    channel.bot_username = channel.application.bot.username
    channel.ready.set()
    return channel


def telegram_plugin(app: web.Application, core: Core) -> Callable[[web.Application], AsyncIterator[None]] | None:
    """Build the channel (and maybe its simulator) now; return its lifetime for ``app.cleanup_ctx``."""
    from bot.app import STARTUP_NOTES, own_base_url, use_simulator

    settings = core.settings
    config = telegram_config(settings)
    if config is None:
        return None
    if use_simulator(settings, configured=settings.telegram.token is not None):
        simulator = _mount_simulator(app)
        app[STARTUP_NOTES].append(f"Telegram simulator: open {own_base_url(settings)}/simulator/telegram "
                                  f"(bot @{simulator.bot_username})")
    channel = TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config)
    core.channels.append(channel)
    app[TELEGRAM_CHANNEL] = channel
    app.add_routes(channel.routes())

    async def stop_receiving(app: web.Application) -> None:
        await channel.stop_receiving()

    # Before the simulator's own shutdown hook releases its long polls (ours would spin otherwise).
    app.on_shutdown.insert(0, stop_receiving)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        await channel.start()
        try:
            yield
        finally:
            await channel.stop()

    return lifetime


class _SimulatorGoneFilter(logging.Filter):
    """Drop PTB's error about confirming the last updates at shutdown when the simulator is in-process.

    aiohttp stops listening before any shutdown hook runs, so PTB's final ``getUpdates`` cannot
    reach the in-process simulator; the updates it would confirm go away with the simulator anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Error while calling `get_updates` one more time")


def _mount_simulator(app: web.Application) -> TelegramBotAPISimulator:
    from bot.simulators.telegram import TelegramBotAPISimulator

    simulator = TelegramBotAPISimulator(SIMULATOR_TOKEN, bot_username=SIMULATOR_USERNAME)
    simulator.add_routes(app)
    app[TELEGRAM_SIMULATOR] = simulator
    updater_log = logging.getLogger("telegram.ext.Updater")
    if not any(isinstance(f, _SimulatorGoneFilter) for f in updater_log.filters):
        updater_log.addFilter(_SimulatorGoneFilter())
    return simulator
