"""The embedded platform simulators: which ones are served, their credentials, their memory across restarts.

``engagebot run`` serves a platform's simulator only when **no** real platform is configured (the
embedded default: everything on one machine), or when ``ENGAGEBOT_SIMULATORS=true`` asks for them
explicitly; a deployment with a real platform never serves a fake one beside it.

The simulators' credentials (WeChat token, EncodingAESKey and AppSecret, the Telegram bot token, the
Weibo app key, app secret and access token) are
random per database: created once, stored, and read by every later ``run`` and CLI command. Their
state (users, chats, followers, timelines, message/update/callback ids, QR tickets) is saved to the
same database as it changes and restored at start, so a restart is invisible to their users.

The simulators stay independent of the bot: they export and restore plain records
(``take_changes()`` / ``restore()``); this module moves those records to and from storage.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import shlex
import string
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.plugin import Lifetime
from bot.channels.registry import installed_channels
from bot.channels.telegram.config import TelegramConfig
from bot.core.services import Services
from bot.settings import Settings, WeChatAccount, WeiboSettings
from bot.simulators.telegram import TelegramBotAPISimulator
from bot.simulators.wechat import WeChatSimulator
from bot.simulators.weibo import WeiboSimulator
from bot.storage.simulators import get_or_create_record, load_records, save_records

log = logging.getLogger("engagebot.simulators")

PLATFORMS = ("wechat", "telegram", "weibo")
LABELS = {"wechat": "WeChat", "telegram": "Telegram", "weibo": "Weibo"}
PAGES = {"wechat": "/simulator/wechat", "telegram": "/simulator/telegram", "weibo": "/simulator/weibo"}
# The simulators mounted on this app, by platform name, in mount order.
SIMULATORS = web.AppKey("simulators", dict)
TELEGRAM_SIMULATOR = web.AppKey("telegram_simulator", TelegramBotAPISimulator)
SIMULATED_WECHAT_APP_ID = "wxsimulated00000001"  # not a secret: the AppID is public on the platform too
SIMULATED_WECHAT_ACCOUNT_ID = "gh_simulated"
SIMULATED_TELEGRAM_BOT_ID = 123456
SIMULATED_TELEGRAM_USERNAME = "engagebot_demo_bot"
SIMULATED_WEIBO_BRAND_UID = 5_000_000_001  # public on the platform too: not a secret
SIMULATED_WEIBO_BRAND_NAME = "engagebot_brand"
WEIBO_CALLBACK_PATH = "/weibo"  # where the simulated fans push: the adapter's callback
DEFAULT_PORT = 8080


# -- which simulators ---------------------------------------------------------------------------------
def real_platforms(settings: Settings) -> list[str]:
    """The platforms with real settings, as each installed channel plugin's own ``configured`` says."""
    return [p.platform for p in installed_channels().plugins if p.real_platform and p.is_configured(settings)]


def simulators_to_mount(settings: Settings) -> list[str]:
    """The simulators to serve: none beside a real platform, unless ENGAGEBOT_SIMULATORS=true says so."""
    real = real_platforms(settings)
    return [p for p in PLATFORMS if _wanted(settings, real, p)]


def simulator_wanted(settings: Settings, platform: str) -> bool:
    """Serve ``platform``'s simulator (a plugin's too)? Not when it is real, nor beside a real one by default."""
    return _wanted(settings, real_platforms(settings), platform)


def _wanted(settings: Settings, real: list[str], platform: str) -> bool:
    wanted = settings.simulators if settings.simulators is not None else not real
    return wanted and platform not in real


def simulator_mounted(settings: Settings, platform: str) -> bool:
    return platform in simulators_to_mount(settings)


def is_loopback_host(host: str) -> bool:
    """Does listening on ``host`` keep the port to this machine?"""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class HasServices(Protocol):
    """What the credentials need of ``bot.app.Core``: its sessions and its services."""

    sessions: async_sessionmaker[AsyncSession]
    services: Services


# -- credentials --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SimulatorCredentials:
    """The simulated accounts' secrets, random per database. Never logged."""

    wechat_token: str
    wechat_app_secret: str
    wechat_aes_key: str
    telegram_token: str
    weibo_app_key: str = ""
    weibo_app_secret: str = ""
    weibo_access_token: str = ""

    def __repr__(self) -> str:
        return "SimulatorCredentials(<hidden>)"


def _new_wechat_credentials() -> dict[str, Any]:
    alphabet = string.ascii_letters + string.digits
    return {"token": secrets.token_hex(16),  # WeChat: 3..32 letters or digits
            "app_secret": secrets.token_hex(16),  # shaped like an AppSecret: 32 hex digits
            "aes_key": "".join(secrets.choice(alphabet) for _ in range(43))}  # the EncodingAESKey's shape


def _new_telegram_credentials() -> dict[str, Any]:
    return {"token": f"{SIMULATED_TELEGRAM_BOT_ID}:{secrets.token_urlsafe(27)[:35]}"}


def _new_weibo_credentials() -> dict[str, Any]:
    return {"app_key": str(1_000_000_000 + secrets.randbelow(9_000_000_000)),  # an App Key: 10 digits
            "app_secret": secrets.token_hex(16),  # an App Secret: 32 hex digits
            "access_token": "2.00" + secrets.token_urlsafe(24)}  # the shape of a Weibo OAuth2 token


async def load_simulator_credentials(core: HasServices) -> SimulatorCredentials:
    """Read the simulators' credentials from the database (creating them the first time) into ``core``.

    The schema must be up to date (``core.open()`` or ``bot.storage.migrate.upgrade``).
    """
    wechat = await get_or_create_record(core.sessions, "wechat", "credentials", "", _new_wechat_credentials)
    telegram = await get_or_create_record(core.sessions, "telegram", "credentials", "", _new_telegram_credentials)
    weibo = await get_or_create_record(core.sessions, "weibo", "credentials", "", _new_weibo_credentials)
    credentials = SimulatorCredentials(wechat_token=wechat["token"], wechat_app_secret=wechat["app_secret"],
                                       wechat_aes_key=wechat["aes_key"], telegram_token=telegram["token"],
                                       weibo_app_key=weibo["app_key"], weibo_app_secret=weibo["app_secret"],
                                       weibo_access_token=weibo["access_token"])
    core.services.add(credentials)
    return credentials


def unstored_credentials() -> SimulatorCredentials:
    """Fresh credentials of the stored shape, kept in memory only: for channels built to render a reply (a dry
    run), which reach no platform, so a preview writes nothing (``load_simulator_credentials`` would store them)."""
    wechat, telegram, weibo = _new_wechat_credentials(), _new_telegram_credentials(), _new_weibo_credentials()
    return SimulatorCredentials(wechat_token=wechat["token"], wechat_app_secret=wechat["app_secret"],
                                wechat_aes_key=wechat["aes_key"], telegram_token=telegram["token"],
                                weibo_app_key=weibo["app_key"], weibo_app_secret=weibo["app_secret"],
                                weibo_access_token=weibo["access_token"])


def simulator_credentials(core: HasServices) -> SimulatorCredentials:
    """The credentials loaded by :func:`load_simulator_credentials` (``create_app`` does it)."""
    credentials = core.services.get(SimulatorCredentials)
    if credentials is None:
        raise RuntimeError("simulators need their stored credentials: build the app with "
                           "`await bot.app.create_app(settings)`, or call load_simulator_credentials(core) first")
    return credentials


# -- state across restarts ----------------------------------------------------------------------------
class Restorable(Protocol):
    def take_changes(self, *, force_meta: bool = False) -> list[tuple[str, str, dict[str, Any] | None]]: ...

    def restore(self, records: list[tuple[str, str, dict[str, Any]]], *, after_crash: bool = False) -> None: ...


class SimulatorPersistence:
    """Keep one simulator's state in the database: restore at start, save changes as they happen.

    Changes are saved every ``interval`` seconds (one transaction for all of them; less often when a
    save takes long); the stop saves the rest and marks the records clean. Records left unclean (a
    crash) make the simulator skip its ids ahead on the next start, so nothing the bot already stored
    is reused.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], name: str, simulator: Restorable, *,
                 interval: float = 0.25) -> None:
        self.sessions = sessions
        self.name = name
        self.simulator = simulator
        self.interval = interval
        self._unsaved: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._clean_saved = True
        self._task: asyncio.Task[None] | None = None

    async def restore(self) -> None:
        records = [r for r in await load_records(self.sessions, self.name) if r[0] != "credentials"]
        meta = next((data for kind, _key, data in records if kind == "meta"), None)
        after_crash = meta is not None and not meta.get("clean", False)
        self.simulator.restore(records, after_crash=after_crash)
        self._clean_saved = not after_crash
        if records:
            log.info("simulator state restored", extra={"simulator": self.name, "records": len(records),
                                                         "after_crash": after_crash})

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"simulator-{self.name}-persistence")

    async def _run(self) -> None:
        took = 0.0
        while True:
            # Under heavy traffic a save takes longer: then save less often (at most ~20% of the time).
            await asyncio.sleep(max(self.interval, 4 * took))
            started = time.perf_counter()
            try:
                await self.flush(clean=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database hiccupped: keep the changes for the next round
                log.warning("simulator state not saved, will retry",
                            extra={"simulator": self.name, "error": type(exc).__name__})
            took = time.perf_counter() - started

    async def flush(self, *, clean: bool) -> None:
        """Save what changed since the last flush; ``clean``: this is the last flush before a stop."""
        force_meta = clean and (not self._clean_saved or ("meta", "") in self._unsaved)
        changes = self.simulator.take_changes(force_meta=force_meta)
        for kind, key, data in changes:
            if kind == "meta" and data is not None:
                data = {**data, "clean": clean}
            self._unsaved[(kind, key)] = data
        if not self._unsaved:
            return
        await save_records(self.sessions, self.name, [(kind, key, data) for (kind, key), data in self._unsaved.items()])
        if ("meta", "") in self._unsaved:
            self._clean_saved = clean
        self._unsaved.clear()  # only once saved: a failed or cancelled save is tried again with the next

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush(clean=True)
        except Exception as exc:  # stopping must go on; the next start sees unclean records and skips ids
            log.warning("simulator state not saved at stop", exc_info=exc,
                        extra={"simulator": self.name, "error": type(exc).__name__})


# -- the simulated accounts and the mounted simulators ----------------------------------------------------
def simulated_accounts(credentials: SimulatorCredentials, base_url: str, platforms: Sequence[str]) -> dict[str, Any]:
    """The settings a channel plugin serves each simulated account with (``PluginContext.simulated``).

    WeChat: safe mode, the API on this server, this database's secrets. Telegram: polling this
    server's simulated Bot API. Weibo: the API on this server, the megaphone polled every 5 s (a
    demo wants public answers soon; a real account polls every ``poll_interval``, 30 s by default).
    """
    found: dict[str, Any] = {}
    if "wechat" in platforms:
        found["wechat"] = WeChatAccount(
            token=SecretStr(credentials.wechat_token), app_id=SIMULATED_WECHAT_APP_ID,
            app_secret=SecretStr(credentials.wechat_app_secret), aes_key=SecretStr(credentials.wechat_aes_key),
            account_id=SIMULATED_WECHAT_ACCOUNT_ID, api_base=base_url,
        )
    if "telegram" in platforms:
        found["telegram"] = TelegramConfig(token=credentials.telegram_token, mode="polling",
                                           base_url=f"{base_url}/bot", base_file_url=f"{base_url}/file/bot",
                                           connect_backoff=(0.05, 2.0))
    if "weibo" in platforms:
        found["weibo"] = WeiboSettings(
            app_key=credentials.weibo_app_key, app_secret=SecretStr(credentials.weibo_app_secret),
            access_token=SecretStr(credentials.weibo_access_token), brand_uid=str(SIMULATED_WEIBO_BRAND_UID),
            api_base=base_url, poll_interval=5,
        )
    return found


class _SimulatorGoneFilter(logging.Filter):
    """Drop PTB's error about confirming the last updates at shutdown when the simulator is in-process.

    aiohttp stops listening before any shutdown hook runs, so PTB's final ``getUpdates`` cannot
    reach the in-process simulator; the updates it would confirm go away with the simulator anyway.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Error while calling `get_updates` one more time")


def mount_simulators(app: web.Application, sessions: async_sessionmaker[AsyncSession],
                     credentials: SimulatorCredentials, base_url: str, platforms: Sequence[str]) -> Lifetime | None:
    """Serve the simulators of ``platforms`` on ``app`` (in ``app[SIMULATORS]``); return their lifetime.

    Mounted before the channel plugins run, so their lifetime restores each simulator's state before
    the channels start, and saves it after they stop.
    """
    mounted: list[tuple[SimulatorPersistence, Callable[[], Any] | None]] = []
    if "wechat" in platforms:
        wechat = WeChatSimulator(
            token=credentials.wechat_token, app_id=SIMULATED_WECHAT_APP_ID,
            app_secret=credentials.wechat_app_secret, aes_key=credentials.wechat_aes_key,
            account_id=SIMULATED_WECHAT_ACCOUNT_ID, callback_url=f"{base_url}/wechat",
        )
        wechat.add_routes(app)
        app[SIMULATORS]["wechat"] = wechat
        mounted.append((SimulatorPersistence(sessions, "wechat", wechat), wechat.close))
    if "telegram" in platforms:
        telegram = TelegramBotAPISimulator(credentials.telegram_token, bot_username=SIMULATED_TELEGRAM_USERNAME)
        telegram.add_routes(app)
        app[TELEGRAM_SIMULATOR] = telegram
        app[SIMULATORS]["telegram"] = telegram
        updater_log = logging.getLogger("telegram.ext.Updater")
        if not any(isinstance(f, _SimulatorGoneFilter) for f in updater_log.filters):
            updater_log.addFilter(_SimulatorGoneFilter())
        mounted.append((SimulatorPersistence(sessions, "telegram", telegram), None))
    if "weibo" in platforms:
        weibo = WeiboSimulator(
            app_key=credentials.weibo_app_key, app_secret=credentials.weibo_app_secret,
            access_token=credentials.weibo_access_token, brand_uid=SIMULATED_WEIBO_BRAND_UID,
            brand_name=SIMULATED_WEIBO_BRAND_NAME, callback_url=f"{base_url}{WEIBO_CALLBACK_PATH}",
        )
        weibo.add_routes(app)
        app[SIMULATORS]["weibo"] = weibo
        mounted.append((SimulatorPersistence(sessions, "weibo", weibo), weibo.close))
    if not mounted:
        return None

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        for persistence, _close in mounted:
            await persistence.restore()
            persistence.start()
        try:
            yield
        finally:
            for persistence, close in reversed(mounted):
                await persistence.stop()
                if close is not None:
                    await close()

    return lifetime


# -- what the operator is told ----------------------------------------------------------------------------
def chat_command(settings: Settings, channel: str) -> str:
    """The exact ``engagebot chat`` command that reaches this server's simulator of ``channel``."""
    words = ["engagebot", "chat", "--channel", channel]
    if settings.host not in ("127.0.0.1", "0.0.0.0", "", "::"):
        words += ["--host", settings.host]
    if settings.port != DEFAULT_PORT:
        words += ["--port", str(settings.port)]
    return shlex.join(words)


def startup_lines(settings: Settings, mounted: list[str], base_url: str) -> list[str]:
    """What ``engagebot run`` prints for people once it listens: the simulators, and how to reach them."""
    lines = [f"home page: {base_url}/"]
    real = real_platforms(settings)
    if not mounted:
        why = f"real platform configured: {', '.join(real)}" if real else "ENGAGEBOT_SIMULATORS=false"
        lines.append(f"simulators: none ({why})")
        return lines
    why = "ENGAGEBOT_SIMULATORS=true" if settings.simulators else "no real platform configured"
    lines.append(f"simulators mounted: {', '.join(LABELS.get(p, p) for p in mounted)} "
                 f"({why}; ENGAGEBOT_SIMULATORS=false turns them off)")
    for platform in (p for p in mounted if p in PAGES):
        lines.append(f"  {LABELS[platform]}: open {base_url}{PAGES[platform]}  or run: "
                     f"{chat_command(settings, platform)}")
    if real:
        lines.append(f"WARNING: simulators are served beside the real {', '.join(LABELS.get(p, p) for p in real)} "
                     "because ENGAGEBOT_SIMULATORS=true")
    if not is_loopback_host(settings.host):
        lines.append(f"WARNING: the simulators listen on {settings.host}, reachable from other machines: anyone "
                     "who reaches this port can act as any simulated follower. Listen on 127.0.0.1, or set "
                     "ENGAGEBOT_SIMULATORS=false.")
    return lines
