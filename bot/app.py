"""The composition root: read settings, build every part, start and stop them in order."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client.core import Metric
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.admin.console import console_plugin
from bot.admin.handoff import QueueTimeoutSweeper
from bot.admin.plugin import admin_api_plugin
from bot.broadcast.plugin import broadcast_plugin
from bot.channels.base import Channel
from bot.channels.mock import MOCK_CAPABILITIES, MockChannel, SqlDeliverySink
from bot.channels.plugin import ChannelPlugin, Plugin, PluginContext
from bot.channels.registry import channel_plugins, handler_routers
from bot.channels.telegram.adapter import TelegramChannel
from bot.channels.telegram.plugin import telegram_config, telegram_link_channel
from bot.channels.wechat.plugin import wechat_link_channels
from bot.channels.weibo.plugin import weibo_link_channels
from bot.connections import ConnectionGuard
from bot.core.dispatcher import Dispatcher
from bot.core.router import Router
from bot.core.services import Services
from bot.health import SCRAPE_SOURCES, Readiness, metrics, outbox_source, readyz_handler
from bot.i18n import Catalogs, default_catalogs
from bot.landing import LANDING_LINKS, landing_page
from bot.metrics import ScrapeSources, lease_holders
from bot.offers.index import OfferIndex, OfferKeywordMatcher
from bot.rules import PromptRuleCache
from bot.settings import Settings, own_base_url
from bot.simulation import (
    PAGES,
    PLATFORMS,
    SIMULATORS,
    is_loopback_host,
    load_simulator_credentials,
    mount_simulators,
    simulated_accounts,
    simulator_credentials,
    simulator_wanted,
    simulators_to_mount,
    startup_lines,
    unstored_credentials,
)
from bot.storage.duties import Duties, run_while
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.leases import holders
from bot.storage.migrate import upgrade
from bot.storage.retention import RetentionDuty
from bot.storage.store import SqlStore
from bot.web import error_middleware, healthz, request_id_middleware

# The composition root wires the built-in handlers. No circle: handlers import ``bot``'s public API
# (bot/__init__.py), which imports core and i18n only, never bot.app.
from handlers import default_router

log = logging.getLogger("engagebot.app")

# Lines for the operator printed when the server is up (where the simulators are, ...).
STARTUP_NOTES = web.AppKey("startup_notes", list[str])
# Timeouts and the connection cap of the public port (bot.connections); `engagebot run` serves through it.
CONNECTION_GUARD = web.AppKey("connection_guard", ConnectionGuard)
# The retention duty (started and stopped with the app); a lease may wrap its start and stop.
RETENTION = web.AppKey("retention", RetentionDuty)


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


CORE = web.AppKey("core", Core)
# The duties this process runs while it holds their lease (``bot.storage.leases.holders`` lists every holder).
DUTIES = web.AppKey("duties", Duties)


def build_router(extra: list[Router] | None = None) -> Router:
    """``extra`` first, then the installed ``engagebot.handlers`` (in their order), then the built-in handlers."""
    root = Router("app")
    root.include(*(extra or []), *handler_routers(), default_router())
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
    offers = OfferIndex(ttl=settings.prompt_rules_ttl)
    services.add(offers)
    services.offer_keywords = OfferKeywordMatcher(sessions, offers)
    store = SqlStore(sessions, engine, send_lease=timedelta(seconds=settings.outbox.lease_seconds))
    dispatcher = Dispatcher(
        store=store, router=build_router(routers), catalogs=catalogs,
        default_locale=settings.default_locale, international_locale=settings.international_locale,
        tz=ZoneInfo(settings.timezone), services=services,
    )
    return Core(settings=settings, engine=engine, sessions=sessions, catalogs=catalogs,
                prompt_rules=prompt_rules, dispatcher=dispatcher, store=store, services=services)


def default_plugins(settings: Settings | None = None) -> list[Plugin]:
    """The installed channels (each with its simulator when the platform is not configured), then the rest.

    Order matters: channels first (others look them up in the context's channels), workers last. The
    channels come from the ``engagebot.channels`` entry points (``bot.channels.registry``); a broken
    one stops startup when it is engagebot's own or configured in ``settings``.
    """
    return [*channel_plugins(settings), admin_api_plugin, console_plugin, broadcast_plugin]


def plugin_context(core: Core, simulated: dict[str, object] | None = None,
                   duties: Duties | None = None) -> PluginContext:
    """What the plugins (and the CLI's link channels) build with: ``core``'s parts, this server's address."""
    return PluginContext(settings=core.settings, dispatcher=core.dispatcher, sessions=core.sessions,
                         catalogs=core.catalogs, channels=core.channels, services=core.services,
                         base_url=own_base_url(core.settings), simulated=simulated or {}, duties=duties)


async def open_link_channels(core: Core) -> list[Channel]:
    """Channels for the CLI, without a server: each can answer ``scene_link`` (campaign QR codes).

    With the embedded default they reach the simulators of a running ``engagebot run`` (with the
    credentials stored in the same database). ``core`` must be open.
    """
    ctx = plugin_context(core, await simulated_for(core))
    channels: list[Channel] = list(wechat_link_channels(ctx))
    channels += weibo_link_channels(ctx)
    try:
        telegram = await telegram_link_channel(ctx)
    except Exception as exc:
        log.warning("telegram unavailable for links", extra={"reason": str(exc) or type(exc).__name__})
        telegram = None
    if telegram is not None:
        channels.append(telegram)
    return channels


async def simulated_for(core: Core) -> dict[str, object]:
    """The simulated accounts (``PluginContext.simulated``) of a process without a server (the CLI).

    With the embedded default they reach the simulators of a running ``engagebot run`` (with the
    credentials stored in the same database). ``core`` must be open.
    """
    mounted = simulators_to_mount(core.settings)
    if not mounted:
        return {}
    credentials = await load_simulator_credentials(core)
    return simulated_accounts(credentials, own_base_url(core.settings), mounted)


def render_only_simulated(core: Core) -> dict[str, object]:
    """The simulated accounts ``simulated_for`` gives, with unstored credentials: for channels built only to
    render replies (``engagebot prompts try``, ``promo preview``), which need no real secret and write nothing."""
    mounted = simulators_to_mount(core.settings)
    return simulated_accounts(unstored_credentials(), own_base_url(core.settings), mounted) if mounted else {}


async def close_link_channels(channels: list[Channel]) -> None:
    for channel in channels:
        application = getattr(channel, "application", None)
        if application is not None:
            await application.shutdown()
        else:
            await channel.stop()


# -- a worker-only process's channels ------------------------------------------------------------------
SEND_CHANNEL_NAMES = ("wechat", "telegram", "weibo", "mock")


class SendChannels:
    """The started channels of a worker-only process; :meth:`close` stops them (and the mock sink)."""

    def __init__(self, channels: list[Channel], sink: SqlDeliverySink | None = None) -> None:
        self.channels = channels
        self._sink = sink

    async def close(self) -> None:
        for channel in reversed(self.channels):
            await channel.stop()
        if self._sink is not None:
            await self._sink.close()


async def open_send_channels(core: Core, *, only: Sequence[str] = (), mock_sink: str | None = None,
                             mock_account: str = "mock", mock_rate: float | None = None,
                             mock_chat_rate: float | None = None) -> SendChannels:
    """Build and start the configured channels (``only`` these names, when given) to send only.

    The channels a worker-only process (``engagebot broadcast work``) sends through: the same accounts
    ``engagebot run`` serves, built to send only: no webhook is served and Telegram is not polled (the
    web instances receive; a second poller would take their updates). With the embedded defaults
    they reach the simulators of a running ``engagebot run``.
    """
    ctx = plugin_context(core, await simulated_for(core))  # the embedded default: the simulators' credentials
    wanted = set(only) or set(SEND_CHANNEL_NAMES)
    channels: list[Channel] = []
    if "wechat" in wanted:
        channels += wechat_link_channels(ctx)
    if "telegram" in wanted and (config := telegram_config(ctx.settings, ctx.simulated.get("telegram"))) is not None:
        channels.append(TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config,
                                        receive=False))
    if "weibo" in wanted:  # DMs and sendall only: the megaphone polls in `engagebot run`
        channels += weibo_link_channels(ctx)
    sink = None
    sink_url = mock_sink or core.settings.mock_sink
    if "mock" in wanted and sink_url is not None:
        sink = SqlDeliverySink(sink_url)
        await sink.open()
        caps = replace(MOCK_CAPABILITIES, max_sends_per_second=mock_rate or None,
                       max_sends_per_chat_per_second=mock_chat_rate or None)
        channels.append(MockChannel(dispatch=core.dispatcher.dispatch, account=mock_account, capabilities=caps,
                                    sink=sink))
    opened = SendChannels(channels, sink)
    try:
        for channel in channels:
            await channel.start()
    except BaseException:
        await opened.close()
        raise
    return opened


async def create_app(settings: Settings, *, plugins: Sequence[Plugin] | None = None,
                     routers: list[Router] | None = None) -> web.Application:
    """Build the app as ``engagebot run`` serves it: with the simulators' stored credentials loaded first.

    Use this rather than :func:`build_app` whenever simulators may be mounted (the embedded default).
    """
    core = build_core(settings, routers=routers)
    if simulators_to_mount(settings):
        try:
            await upgrade(core.engine)
            await load_simulator_credentials(core)
        except BaseException:
            await core.engine.dispose()
            raise
    return build_app(settings, plugins=plugins, routers=routers, core=core)


async def _lease_holders(core: Core) -> list[Metric]:
    return [lease_holders((await holders(core.sessions)).items())]


def build_app(settings: Settings, *, plugins: Sequence[Plugin] | None = None,
              routers: list[Router] | None = None, core: Core | None = None) -> web.Application:
    """Build the aiohttp app: core first, then the simulators to serve, then each plugin in order."""
    limits = settings.http
    guard = ConnectionGuard(header_timeout=limits.header_timeout, body_timeout=limits.body_timeout,
                            max_connections=limits.max_connections)
    app = web.Application(middlewares=[request_id_middleware, guard.middleware, error_middleware],
                          client_max_size=1024 * 1024)
    app[CONNECTION_GUARD] = guard
    app.on_shutdown.append(guard.stop_waiting_for_bodies)
    core = core or build_core(settings, routers=routers)
    app[CORE] = core
    app[STARTUP_NOTES] = []
    app[SIMULATORS] = {}
    app[LANDING_LINKS] = []
    app.router.add_get("/healthz", healthz)
    readiness = Readiness(core.engine, settings.ready_timeout)
    app.router.add_get("/readyz", readyz_handler(readiness))
    # Scrape-time readers of the database; more are added at startup (the lease holders: bot.metrics.lease_holders).
    app[SCRAPE_SOURCES] = ScrapeSources()
    app[SCRAPE_SOURCES].add("outbox", outbox_source(core.engine))
    app.router.add_get("/metrics", metrics)
    app[RETENTION] = RetentionDuty(core.engine, days=settings.retention_days)

    async def core_lifetime(app: web.Application) -> AsyncIterator[None]:
        await core.open()
        log.info("database ready", extra={"backend": core.engine.dialect.name})
        yield
        await core.close()
        await readiness.close()

    app.cleanup_ctx.append(core_lifetime)
    plugins = default_plugins(settings) if plugins is None else list(plugins)
    base_url = own_base_url(settings)
    # A platform's simulator is served only with its channel plugin, and only when simulators_to_mount says so.
    served = {p.platform for p in plugins if isinstance(p, ChannelPlugin)}
    platforms = [p for p in simulators_to_mount(settings) if p in served]
    simulated: dict[str, object] = {}
    if platforms:
        credentials = simulator_credentials(core)
        simulated = simulated_accounts(credentials, base_url, platforms)
        simulators_lifetime = mount_simulators(app, core.sessions, credentials, base_url, platforms)
        if simulators_lifetime is not None:
            app.cleanup_ctx.append(simulators_lifetime)
    for plugin in plugins:  # the simulators that installed channels bring with them
        if isinstance(plugin, ChannelPlugin) and plugin.simulator is not None and plugin.platform not in PLATFORMS \
                and simulator_wanted(settings, plugin.platform):
            mounted_sim = plugin.simulator(app, base_url)
            simulated[plugin.platform] = mounted_sim.settings
            app[SIMULATORS][plugin.platform] = mounted_sim.simulator
            if mounted_sim.lifetime is not None:
                app.cleanup_ctx.append(mounted_sim.lifetime)
    app.router.add_get("/", landing_page(core.catalogs, settings, [p for p in app[SIMULATORS] if p in PAGES]))
    duties = app[DUTIES] = Duties(core.sessions, ttl=timedelta(seconds=settings.duty_lease_seconds))
    retention = app[RETENTION]
    duties.add("retention", lambda: run_while(retention.start, retention.stop))  # one pruner in the deployment
    handoff = QueueTimeoutSweeper(core.sessions, catalogs=core.catalogs,
                                  timeout=timedelta(seconds=settings.handoff_timeout),
                                  default_locale=settings.default_locale,
                                  international_locale=settings.international_locale)
    duties.add("handoff-timeout", lambda: run_while(handoff.start, handoff.stop))  # one sweeper of the queue
    app[SCRAPE_SOURCES].add("leases", lambda: _lease_holders(core))
    ctx = plugin_context(core, simulated, duties)
    for plugin in plugins:
        lifetime = plugin(app, ctx)
        if lifetime is not None:
            app.cleanup_ctx.append(lifetime)

    async def duties_lifetime(app: web.Application) -> AsyncIterator[None]:
        # Last in, first out: the duties start once what they use has started, and stop (their leases
        # given up for a standby) before it stops.
        await duties.start()
        yield
        await duties.stop()

    app.cleanup_ctx.append(duties_lifetime)
    mounted = list(app[SIMULATORS].keys())
    if mounted:
        log.info("simulators mounted", extra={"simulators": mounted, "host": settings.host})
        if not is_loopback_host(settings.host):
            log.warning("simulators reachable from other machines", extra={"host": settings.host})
    app[STARTUP_NOTES][:0] = startup_lines(settings, mounted, base_url)
    return app
