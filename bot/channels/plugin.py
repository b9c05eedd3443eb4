"""What a plugin of ``engagebot run`` receives: the app's parts, handed down by the composition root.

A plugin adds routes to the aiohttp app at build time and returns its lifetime (a ``cleanup_ctx``
generator) or None. It never asks the app or the simulators anything: ``bot.app`` decides which
simulators are served, this process's own address and the simulated accounts, and passes them here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities
from bot.core.dispatcher import Dispatcher
from bot.core.services import Services
from bot.errors import ConfigError
from bot.i18n import Catalogs
from bot.settings import Settings
from bot.storage.duties import Duties

if TYPE_CHECKING:
    from .base import Channel

Lifetime = Callable[[web.Application], AsyncIterator[None]]


@dataclass(frozen=True)
class PluginContext:
    """The handles a plugin builds with; the lists and dicts are the app's own (plugins add to them)."""

    settings: Settings
    dispatcher: Dispatcher
    sessions: async_sessionmaker[AsyncSession]
    catalogs: Catalogs
    # The app's channels in build order: a channel plugin appends its own, later plugins read them.
    channels: list[Channel]
    services: Services
    # How this process reaches itself over HTTP (an in-process simulator calls the bot like a platform).
    base_url: str
    # The simulated account of each platform whose simulator this app serves (a channel plugin serves
    # it beside the real ones): ``WeChatAccount`` for "wechat", ``TelegramConfig`` for "telegram".
    simulated: Mapping[str, Any] = field(default_factory=dict)
    # The duties that must run once in the deployment (``engagebot run``): a plugin adds its own (a poll)
    # and they run while this process holds their lease. None: a process without a server (the CLI).
    duties: Duties | None = None


class Plugin(Protocol):
    def __call__(self, app: web.Application, ctx: PluginContext, /) -> Lifetime | None: ...


@dataclass(frozen=True)
class Simulated:
    """A fake platform a channel plugin mounted on the app, and the settings that point the channel at it."""

    settings: Any  # what the channel plugin finds in ``ctx.simulated[platform]``
    simulator: Any  # the fake platform itself (``app[bot.simulation.SIMULATORS][platform]``): tests drive it
    lifetime: Lifetime | None = None


# Mount a channel's own simulator on the app (``base_url`` reaches this server): a third-party channel's.
MountSimulator = Callable[[web.Application, str], Simulated]


@dataclass(frozen=True)
class ChannelPlugin:
    """A plugin serving one platform: the app mounts that platform's simulator (when it serves one) first.

    Installed packages register one under the ``engagebot.channels`` entry-point group (docs/adapters.md);
    engagebot's own channels register the same way. ``platform`` is the channel's name, unique among them.
    """

    platform: str
    setup: Callable[[web.Application, PluginContext], Lifetime | None]
    # What the channel declares, for `engagebot channels` and the conformance kit (it may depend on settings).
    capabilities: Callable[[Settings], Capabilities] | None = None
    # A third-party channel's settings: validated from ``ENGAGEBOT_CHANNELS__<PLATFORM>__<FIELD>``
    # (or ``channels: {<platform>: {...}}`` in the config file); see :func:`channel_settings`.
    settings_model: type[BaseModel] | None = None
    # Is a real account configured? None: when its ``channels`` settings are given (third-party channels).
    configured: Callable[[Settings], bool] | None = None
    # The platform's fake, mounted when no real account is configured and simulators are served.
    # Engagebot's own simulators are mounted by ``bot.simulation`` (with their state kept in the database).
    simulator: MountSimulator | None = None
    # Where the channel comes in ``default_plugins`` (then by name): engagebot's own take 10..40.
    order: int = 100
    # False: no platform behind it (the mock), so configuring it leaves the simulators on.
    real_platform: bool = True

    def __call__(self, app: web.Application, ctx: PluginContext) -> Lifetime | None:
        return self.setup(app, ctx)

    def is_configured(self, settings: Settings) -> bool:
        if self.configured is not None:
            return self.configured(settings)
        return self.platform in settings.channels


def channel_settings(settings: Settings, plugin: ChannelPlugin) -> Any:
    """A third-party channel's settings, validated by its ``settings_model``; None when not configured.

    Raises ConfigError naming the variable (``ENGAGEBOT_CHANNELS__WEBCHAT__SECRET``) when they do not validate.
    """
    raw = settings.channels.get(plugin.platform)
    if raw is None or plugin.settings_model is None:
        return None
    try:
        return plugin.settings_model.model_validate(raw)
    except ValidationError as exc:
        prefix = f"ENGAGEBOT_CHANNELS__{plugin.platform.upper()}"
        problems = "; ".join(f"{'__'.join([prefix, *(str(p).upper() for p in e['loc'])])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(f"channel {plugin.platform!r}: {problems}") from None
