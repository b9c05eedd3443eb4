"""How engagebot finds, configures and builds the web chat channel (entry point ``engagebot.channels: webchat``).

Settings: ``ENGAGEBOT_CHANNELS__WEBCHAT__SECRET`` (shared with the widget's server) and
``ENGAGEBOT_CHANNELS__WEBCHAT__API_BASE``; without them, and when engagebot serves simulators, the
fake platform of :mod:`webchat_channel.simulator` is mounted on engagebot's port and the channel talks to it.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from bot.channels.plugin import ChannelPlugin, Lifetime, PluginContext, Simulated, channel_settings

from .adapter import WebChatChannel, webchat_capabilities
from .simulator import PREFIX, WebChatPlatform


class WebChatSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: str = Field(min_length=16, max_length=128)
    api_base: str = Field(pattern=r"^https?://")
    passive_deadline_seconds: float = Field(default=2.5, gt=0, le=2.9)  # the widget waits 3 s


def setup(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    config = channel_settings(ctx.settings, plugin) or ctx.simulated.get("webchat")
    if config is None:
        return None
    channel = WebChatChannel(dispatch=ctx.dispatcher.dispatch, sessions=ctx.sessions, secret=config.secret,
                             api_base=config.api_base, passive_deadline=config.passive_deadline_seconds)
    app.router.add_routes(channel.routes())
    ctx.channels.append(channel)

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await channel.start()
        yield
        await channel.stop()

    return lifetime


def simulator(app: web.Application, base_url: str) -> Simulated:
    """The fake widget server on engagebot's own port, with a fresh secret."""
    secret = secrets.token_hex(16)
    platform = WebChatPlatform(secret=secret, callback_url=f"{base_url}/webchat")
    app.router.add_routes(platform.routes())

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        yield
        await platform.close()

    return Simulated(settings=WebChatSettings(secret=secret, api_base=f"{base_url}{PREFIX}"), simulator=platform,
                     lifetime=lifetime)


plugin = ChannelPlugin("webchat", setup, capabilities=lambda _settings: webchat_capabilities(),
                       settings_model=WebChatSettings, simulator=simulator)
