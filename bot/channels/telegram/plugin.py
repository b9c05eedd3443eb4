"""Wire the Telegram channel into the app: a real bot when a token is set, else the in-process simulator.

Without any real platform (and unless simulators are turned off), a simulated Bot API server is
mounted on the app itself (``/bot<token>/...`` and the chat page ``/simulator/telegram``) and the
adapter polls it over HTTP like it would poll Telegram. The adapter connects in the background,
since the app's port only listens after every lifetime hook has started.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from telegram import Update

from .adapter import TelegramChannel
from .config import TelegramConfig
from .updates import update_to_inbound

if TYPE_CHECKING:
    from bot.app import Core
    from bot.simulators.telegram import TelegramBotAPISimulator

TELEGRAM_CHANNEL = web.AppKey("telegram_channel", TelegramChannel)
TELEGRAM_SIMULATOR = web.AppKey("telegram_simulator", object)  # a TelegramBotAPISimulator when mounted
PROGRESS_PATH = "/simulator/telegram/bot/progress"


def telegram_config(core: Core) -> TelegramConfig | None:
    """The bot to run: the configured token, else the in-process simulator's (the embedded default)."""
    from bot.app import own_base_url
    from bot.simulation import simulator_credentials, simulator_mounted

    settings = core.settings
    if simulator_mounted(settings, "telegram"):
        base = own_base_url(settings)
        return TelegramConfig(token=simulator_credentials(core).telegram_token, mode="polling",
                              base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", connect_backoff=(0.05, 2.0))
    if settings.telegram.token is not None:
        return TelegramConfig.from_settings(settings.telegram)
    return None


async def telegram_link_channel(core: Core) -> TelegramChannel | None:
    """A channel that only answers ``scene_link`` (for the CLI): it asks getMe, and receives nothing."""
    config = telegram_config(core)
    if config is None:
        return None
    channel = TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config)
    await channel.application.initialize()  # getMe: the bot's username makes the deep link
    channel.bot_username = channel.application.bot.username
    channel.ready.set()
    return channel


def telegram_plugin(app: web.Application, core: Core) -> Callable[[web.Application], AsyncIterator[None]] | None:
    """Build the channel (and maybe its simulator) now; return its lifetime for ``app.cleanup_ctx``."""
    from bot.simulation import SimulatorPersistence, simulator_mounted

    config = telegram_config(core)
    if config is None:
        return None
    persistence = None
    if simulator_mounted(core.settings, "telegram"):
        simulator = _mount_simulator(app, config.token)
        persistence = SimulatorPersistence(core.sessions, "telegram", simulator)
    channel = TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config)
    core.channels.append(channel)
    app[TELEGRAM_CHANNEL] = channel
    app.add_routes(channel.routes())
    if persistence is not None:
        app.router.add_post(PROGRESS_PATH, _progress_route(core, channel))

    async def stop_receiving(app: web.Application) -> None:
        await channel.stop_receiving()

    # Before the simulator's own shutdown hook releases its long polls (ours would spin otherwise).
    app.on_shutdown.insert(0, stop_receiving)

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        if persistence is not None:
            await persistence.restore()
            persistence.start()
        await channel.start()
        try:
            yield
        finally:
            await channel.stop()
            if persistence is not None:
                await persistence.stop()

    return lifetime


def _progress_route(core: Core, channel: TelegramChannel) -> Callable[[web.Request], object]:
    """``POST /simulator/telegram/bot/progress`` ``{"update": {...}}``: was it handled, do replies still wait?

    Served only beside the simulator, for the terminal console, which sends back the update the
    simulator made of what the user did. The update becomes an Inbound the way the adapter makes
    it; it was handled once it is stored (with its replies), and its replies are all out once
    none of the chat's waits in the outbox.
    """
    from bot.storage.simulators import reply_progress

    async def progress(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.content.read(64 * 1024 + 1))
            if not isinstance(body, dict) or not isinstance(body.get("update"), dict):
                raise ValueError("body must be {\"update\": {...}}")
            msg = update_to_inbound(Update.de_json(body["update"], channel.application.bot),
                                    channel=channel.name, account=channel.account)
        except Exception as exc:  # noqa: BLE001 - whatever the shape, it is the caller's bad input
            return web.json_response({"error": f"not an update: {type(exc).__name__}: {exc}"[:300]}, status=400)
        if msg is None:  # nothing the bot handles (a group, an edit): nothing to wait for
            return web.json_response({"handled": True, "pending_replies": 0})
        handled, pending = await reply_progress(core.sessions, channel=channel.name, account=channel.account,
                                                external_id=msg.external_id, inbound_key=msg.message_id)
        return web.json_response({"handled": handled, "pending_replies": pending})

    return progress


class _SimulatorGoneFilter(logging.Filter):
    """Drop PTB's error about confirming the last updates at shutdown when the simulator is in-process.

    aiohttp stops listening before any shutdown hook runs, so PTB's final ``getUpdates`` cannot
    reach the in-process simulator; the updates it would confirm go away with the simulator anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Error while calling `get_updates` one more time")


def _mount_simulator(app: web.Application, token: str) -> TelegramBotAPISimulator:
    from bot.simulation import SIMULATED_TELEGRAM_USERNAME, SIMULATORS
    from bot.simulators.telegram import TelegramBotAPISimulator

    simulator = TelegramBotAPISimulator(token, bot_username=SIMULATED_TELEGRAM_USERNAME)
    simulator.add_routes(app)
    app[TELEGRAM_SIMULATOR] = simulator
    app[SIMULATORS]["telegram"] = simulator
    updater_log = logging.getLogger("telegram.ext.Updater")
    if not any(isinstance(f, _SimulatorGoneFilter) for f in updater_log.filters):
        updater_log.addFilter(_SimulatorGoneFilter())
    return simulator
