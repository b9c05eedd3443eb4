"""The composition root: read settings, build every part, start and stop them in order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.base import Channel
from bot.connections import ConnectionGuard
from bot.core.dispatcher import Dispatcher
from bot.core.router import Router
from bot.core.services import Services
from bot.i18n import Catalogs, default_catalogs
from bot.offers.index import OfferIndex
from bot.rules import PromptRuleCache
from bot.settings import Settings
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade
from bot.storage.store import SqlStore
from bot.web import error_middleware, healthz

log = logging.getLogger("engagebot.app")

CORE = web.AppKey("core", "Core")
# Lines for the operator printed when the server is up (where the simulators are, ...).
STARTUP_NOTES = web.AppKey("startup_notes", list[str])
# Timeouts and the connection cap of the public port (bot.connections); `engagebot run` serves through it.
CONNECTION_GUARD = web.AppKey("connection_guard", ConnectionGuard)


@dataclass
class Core:
    """Everything but HTTP: database, catalogs, rules and the dispatcher. The CLI uses it alone."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    catalogs: Catalogs
    prompt_rules: PromptRuleCache
    dispatcher: Dispatcher
    store: SqlStore
    channels: list[Channel] = field(default_factory=list)
    services: Services = field(default_factory=Services)

    async def open(self) -> None:
        """Bring the schema up to date (``engagebot run`` upgrades by itself) and load the rules."""
        await upgrade(self.engine)
        await self.prompt_rules.start()

    async def close(self) -> None:
        await self.prompt_rules.stop()
        await self.store.close()
        await self.engine.dispose()


def build_router(extra: list[Router] | None = None) -> Router:
    from handlers import default_router

    root = Router("app")
    root.include(*(extra or []), default_router())
    return root


def build_core(settings: Settings, *, routers: list[Router] | None = None) -> Core:
    # SQL parameters (openids, message text) appear in database errors only when asked for DEBUG.
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous,
                           hide_parameters=settings.log_level != "DEBUG")
    sessions = make_sessionmaker(engine)
    catalogs = default_catalogs()
    prompt_rules = PromptRuleCache(sessions, ttl=settings.prompt_rules_ttl,
                                   max_chars=settings.prompt_rules_max_chars)
    services = Services(prompt_rules=prompt_rules)
    services.add(OfferIndex(ttl=settings.prompt_rules_ttl))
    store = SqlStore(sessions, engine, send_lease=timedelta(seconds=settings.outbox.lease_seconds))
    dispatcher = Dispatcher(
        store=store, router=build_router(routers), catalogs=catalogs,
        default_locale=settings.default_locale, international_locale=settings.international_locale,
        tz=ZoneInfo(settings.timezone), services=services,
    )
    return Core(settings=settings, engine=engine, sessions=sessions, catalogs=catalogs,
                prompt_rules=prompt_rules, dispatcher=dispatcher, store=store, services=services)


# A plugin adds routes to the app at build time and returns a cleanup_ctx generator for its lifetime.
Plugin = Callable[[web.Application, Core], Callable[[web.Application], AsyncIterator[None]] | None]


def default_plugins() -> list[Plugin]:
    """The channels (each with its simulator when the platform is not configured), then the rest."""
    from importlib import import_module

    found: list[Plugin] = []
    for module, name in PLUGINS:
        try:
            found.append(getattr(import_module(module), name))
        except ModuleNotFoundError as exc:  # an optional part not installed
            if exc.name != module:
                raise
    return found


# Order matters: channels first (others look them up in core.channels), workers last.
PLUGINS = [
    ("bot.channels.wechat.plugin", "wechat_plugin"),
    ("bot.channels.telegram.plugin", "telegram_plugin"),
    ("bot.channels.mock_plugin", "mock_plugin"),
    ("bot.offers.admin", "admin_plugin"),
    ("bot.broadcast.plugin", "broadcast_plugin"),
]


async def open_link_channels(core: Core) -> list[Channel]:
    """Channels for the CLI, without a server: each can answer ``scene_link`` (campaign QR codes).

    With the embedded default they reach the simulators of a running ``engagebot run`` (with the
    credentials stored in the same database). ``core`` must be open.
    """
    from bot.channels.telegram.plugin import telegram_link_channel
    from bot.channels.wechat.plugin import wechat_link_channels
    from bot.simulation import load_simulator_credentials, simulators_to_mount

    if simulators_to_mount(core.settings):
        await load_simulator_credentials(core)

    channels: list[Channel] = list(wechat_link_channels(core))
    try:
        telegram = await telegram_link_channel(core)
    except Exception as exc:  # noqa: BLE001 - a platform that cannot be reached gives no link; say why
        log.warning("telegram unavailable for links", extra={"reason": str(exc) or type(exc).__name__})
        telegram = None
    if telegram is not None:
        channels.append(telegram)
    return channels


async def close_link_channels(channels: list[Channel]) -> None:
    for channel in channels:
        application = getattr(channel, "application", None)
        if application is not None:
            await application.shutdown()
        else:
            await channel.stop()


def own_base_url(settings: Settings) -> str:
    """How this process reaches itself over HTTP (the in-process simulators call the bot like a platform)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


async def create_app(settings: Settings, *, plugins: list[Plugin] | None = None,
                     routers: list[Router] | None = None) -> web.Application:
    """Build the app as ``engagebot run`` serves it: with the simulators' stored credentials loaded first.

    Use this rather than :func:`build_app` whenever simulators may be mounted (the embedded default).
    """
    from bot.simulation import load_simulator_credentials, simulators_to_mount

    core = build_core(settings, routers=routers)
    if simulators_to_mount(settings):
        try:
            await upgrade(core.engine)
            await load_simulator_credentials(core)
        except BaseException:
            await core.engine.dispose()
            raise
    return build_app(settings, plugins=plugins, routers=routers, core=core)


def build_app(settings: Settings, *, plugins: list[Plugin] | None = None,
              routers: list[Router] | None = None, core: Core | None = None) -> web.Application:
    """Build the aiohttp app: core first, then each channel (and its simulator) in order."""
    from bot.landing import LANDING_LINKS, landing_page
    from bot.simulation import SIMULATORS, is_loopback_host, startup_lines

    limits = settings.http
    guard = ConnectionGuard(header_timeout=limits.header_timeout, body_timeout=limits.body_timeout,
                            max_connections=limits.max_connections)
    app = web.Application(middlewares=[guard.middleware, error_middleware], client_max_size=1024 * 1024)
    app[CONNECTION_GUARD] = guard
    core = core or build_core(settings, routers=routers)
    app[CORE] = core
    app[STARTUP_NOTES] = []
    app[SIMULATORS] = {}
    app[LANDING_LINKS] = []
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", landing_page)

    async def core_lifetime(app: web.Application) -> AsyncIterator[None]:
        await core.open()
        log.info("database ready", extra={"backend": core.engine.dialect.name})
        yield
        await core.close()

    app.cleanup_ctx.append(core_lifetime)
    for plugin in plugins if plugins is not None else default_plugins():
        lifetime = plugin(app, core)
        if lifetime is not None:
            app.cleanup_ctx.append(lifetime)
    mounted = list(app[SIMULATORS])
    if mounted:
        log.info("simulators mounted", extra={"simulators": mounted, "host": settings.host})
        if not is_loopback_host(settings.host):
            log.warning("simulators reachable from other machines", extra={"host": settings.host})
    app[STARTUP_NOTES][:0] = startup_lines(settings, mounted, own_base_url(settings))
    return app
