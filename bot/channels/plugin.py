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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.dispatcher import Dispatcher
from bot.core.services import Services
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
class ChannelPlugin:
    """A plugin serving one platform: the app mounts that platform's simulator (when it serves one) first."""

    platform: str
    setup: Callable[[web.Application, PluginContext], Lifetime | None]

    def __call__(self, app: web.Application, ctx: PluginContext) -> Lifetime | None:
        return self.setup(app, ctx)
