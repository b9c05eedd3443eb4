"""Wire the Telegram channel into the app: a real bot when a token is set, else the in-process simulator's.

When the app serves the Telegram simulator (``bot.simulation`` mounts it: ``/bot<token>/...`` and the
chat page ``/simulator/telegram``), the context's simulated config points the adapter at it and the
adapter polls it over HTTP like it would poll Telegram. The adapter connects in the background,
since the app's port only listens after every lifetime hook has started.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler
from telegram import Update

from bot.channels.plugin import ChannelPlugin, Lifetime, PluginContext
from bot.settings import Settings
from bot.storage.simulators import reply_progress
from bot.web import read_stream

from .adapter import TELEGRAM_CAPABILITIES, TelegramChannel
from .config import TelegramConfig
from .updates import update_to_inbound

TELEGRAM_CHANNEL = web.AppKey("telegram_channel", TelegramChannel)
PROGRESS_PATH = "/simulator/telegram/bot/progress"


def telegram_config(settings: Settings, simulated: TelegramConfig | None = None) -> TelegramConfig | None:
    """The bot to run: the simulated one when the app serves the simulator, else the configured token."""
    if simulated is not None:
        return simulated
    if settings.telegram.token is not None:
        return TelegramConfig.from_settings(settings.telegram)
    return None


async def telegram_link_channel(ctx: PluginContext) -> TelegramChannel | None:
    """A channel that only answers ``scene_link`` (for the CLI): it asks getMe, and receives nothing."""
    config = telegram_config(ctx.settings, ctx.simulated.get("telegram"))
    if config is None:
        return None
    channel = TelegramChannel(dispatch=ctx.dispatcher.dispatch, sessions=ctx.sessions, config=config)
    await channel.application.initialize()  # getMe: the bot's username makes the deep link
    channel.bot_username = channel.application.bot.username
    channel.ready.set()
    return channel


def _telegram_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    """Build the channel now; return its lifetime for ``app.cleanup_ctx``."""
    simulated = ctx.simulated.get("telegram")
    config = telegram_config(ctx.settings, simulated)
    if config is None:
        return None
    channel = TelegramChannel(dispatch=ctx.dispatcher.dispatch, sessions=ctx.sessions, config=config)
    ctx.channels.append(channel)
    app[TELEGRAM_CHANNEL] = channel
    if ctx.duties is not None and config.mode == "polling":
        channel.polls_by_lease = True
        ctx.duties.add(f"telegram-poll:{channel.account}", channel.poll_while_held)
    app.add_routes(channel.routes())
    if simulated is not None:
        app.router.add_post(PROGRESS_PATH, _progress_route(ctx, channel))

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


telegram_plugin = ChannelPlugin("telegram", _telegram_plugin, capabilities=lambda _s: TELEGRAM_CAPABILITIES,
                                configured=lambda s: s.telegram.token is not None, order=20)


def _progress_route(ctx: PluginContext, channel: TelegramChannel) -> Handler:
    """``POST /simulator/telegram/bot/progress`` ``{"update": {...}}``: was it handled, do replies still wait?

    Served only beside the simulator, for the terminal console, which sends back the update the
    simulator made of what the user did. The update becomes an Inbound the way the adapter makes
    it; it was handled once it is stored (with its replies), and its replies are all out once
    none of the chat's waits in the outbox.
    """
    async def progress(request: web.Request) -> web.Response:
        try:
            body = json.loads(await read_stream(request.content, 64 * 1024))
            if not isinstance(body, dict) or not isinstance(body.get("update"), dict):
                raise ValueError("body must be {\"update\": {...}}")
            msg = update_to_inbound(Update.de_json(body["update"], channel.application.bot),
                                    channel=channel.name, account=channel.account)
        except Exception as exc:
            return web.json_response({"error": f"not an update: {type(exc).__name__}: {exc}"[:300]}, status=400)
        if msg is None:  # nothing the bot handles (a group, an edit): nothing to wait for
            return web.json_response({"handled": True, "pending_replies": 0})
        handled, pending = await reply_progress(ctx.sessions, channel=channel.name, account=channel.account,
                                                external_id=msg.external_id, inbound_key=msg.message_id)
        return web.json_response({"handled": handled, "pending_replies": pending})

    return progress
