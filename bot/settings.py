"""One validated Settings object: environment ``ENGAGEBOT_*`` (nested with ``__``) and an optional file."""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse as parse_rate
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.errors import ConfigError
from bot.files import describe_error_message, read_data_file
from bot.i18n import INTERNATIONAL_LOCALE, require_locale

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./engagebot.db"
SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}


class DatabaseURLError(ValueError):
    """The database URL names no supported async driver, or does not parse."""


def check_database_url(url: str) -> str:
    """Return the URL if it names a supported async driver; raise DatabaseURLError otherwise."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseURLError(f"not a database URL: {exc}") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseURLError(
            f"driver {parsed.drivername!r} is not supported; use one of {sorted(SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername.startswith("postgresql") and not parsed.database:
        raise DatabaseURLError("a PostgreSQL URL must name a database")
    return url


ENV_PREFIX = "ENGAGEBOT_"
# The config file's values while load_settings builds a Settings (a source, below env and flags).
_FILE_VALUES: ContextVar[dict[str, Any]] = ContextVar("engagebot_config_file", default={})  # noqa: B039  (read, never mutated)


class WeChatAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    app_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    app_secret: SecretStr | None = None
    aes_key: SecretStr | None = None
    account_id: str | None = Field(default=None, max_length=64)  # the gh_... id, when known
    api_base: str = "https://api.weixin.qq.com"
    window_after_message_hours: float = Field(default=48, gt=0)
    window_after_message_sends: int = Field(default=5, ge=1)
    window_after_event_seconds: float = Field(default=60, gt=0)
    window_after_event_sends: int = Field(default=3, ge=1)
    passive_deadline_seconds: float = Field(default=4.5, gt=0, le=4.9)
    # Safe mode (aes_key set) refuses plaintext bodies unless this is on, for a migration (the key is
    # set here before the platform is switched to compatible or safe mode). Weaker: a plaintext body
    # is covered by no signature. Compatible-mode bodies carry the ciphertext and need no such thing.
    allow_plaintext: bool = False
    # Callbacks whose timestamp is farther from our clock than this are refused; their signatures
    # are remembered (in the database) for as long, so none is accepted twice with another body.
    max_clock_skew: float = Field(default=300, ge=1, le=86400)
    # Mass sends (broadcasts to followers outside the reply window): a subscription account may send
    # 1 per day, a service account 4 per month.
    mass_sends_per_period: int = Field(default=1, ge=0)
    mass_send_period_days: float = Field(default=1, gt=0)

    @field_validator("token")
    @classmethod
    def _token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9]{3,32}", v.get_secret_value()):
            raise ValueError("must be 3 to 32 letters or digits (WeChat's rule)")
        return v

    @field_validator("aes_key")
    @classmethod
    def _aes_key_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9]{43}", v.get_secret_value()):
            raise ValueError("must be exactly 43 letters or digits (the EncodingAESKey)")
        return v

    @property
    def configured(self) -> bool:
        return self.token is not None


class TelegramSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = None
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    api_base: str | None = None  # e.g. http://127.0.0.1:8081/bot for a local Bot API server

    @field_validator("token")
    @classmethod
    def _token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"\d{1,20}:[A-Za-z0-9_-]{1,100}", v.get_secret_value()):
            raise ValueError("does not look like a bot token from BotFather (digits:letters)")
        return v

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", v.get_secret_value()):
            raise ValueError("must be 1 to 256 of A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return v


class WeiboSettings(BaseModel):
    """One Weibo fan-service account (粉丝服务平台) and its public megaphone (comments and @mentions)."""

    model_config = ConfigDict(extra="forbid")

    app_key: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")
    app_secret: SecretStr | None = None  # signs the callbacks (Weibo has no separate token)
    access_token: SecretStr | None = None  # the fan-service / Open API token of the brand account
    brand_uid: str | None = Field(default=None, pattern=r"^[0-9]{1,20}$")  # the brand's uid (int64)
    api_base: str = "https://api.weibo.com"
    poll_interval: float = Field(default=30, ge=1, le=86_400)  # seconds between megaphone polls
    public_replies_per_hour: int = Field(default=60, ge=0, le=100_000)
    passive_deadline_seconds: float = Field(default=4.5, gt=0, le=4.9)
    max_clock_skew: float = Field(default=300, ge=1, le=86400)  # seconds (timestamps come in milliseconds)
    # The fan's window (PROTOCOLS.md, configurable): unlimited replies within 48 h after the fan acted,
    # ``mention_replies`` in 48 h after an @mention only.
    window_hours: float = Field(default=48, gt=0)
    mention_replies: int = Field(default=1, ge=0)
    # Mass sends (sendall.json) to fans outside the window: per day; 0: none (they are undeliverable).
    mass_sends_per_day: int = Field(default=1, ge=0)

    @field_validator("app_secret", "access_token")
    @classmethod
    def _secret_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not re.fullmatch(r"[\x21-\x7e]{1,256}", v.get_secret_value()):
            raise ValueError("must be 1 to 256 printable ASCII characters without spaces")
        return v

    @field_validator("api_base")
    @classmethod
    def _api_base(cls, v: str) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", v):
            raise ValueError("must be an http(s) URL without query")
        return v.rstrip("/")

    @property
    def configured(self) -> bool:
        return self.app_secret is not None


class HttpLimits(BaseModel):
    """Limits of the public HTTP port (see ``bot.connections``); a reverse proxy in front adds its own."""

    model_config = ConfigDict(extra="forbid")

    header_timeout: float = Field(default=10, gt=0, le=300)  # to send a request's headers, from the first byte
    body_timeout: float = Field(default=30, gt=0, le=3600)  # to send its body, once the headers are in
    max_connections: int = Field(default=1000, ge=8, le=1_000_000)  # open at once; the idle ones go first
    # Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: str) -> str:
        for part in filter(None, (p.strip() for p in v.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or network") from None
        return v

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",")
                     if p.strip())


class OutboxSettings(BaseModel):
    """How the outbox sends (replies through the send APIs, broadcasts): see bot/broadcast/README.md."""

    model_config = ConfigDict(extra="forbid")

    # Rows claimed at once; unset: about two seconds of sends at the channel's declared rate, else 500.
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    # A claimed row is another worker's to send only after this (renewed while its sender is alive).
    lease_seconds: float = Field(default=60, ge=1, le=3600)
    # Sends in flight at once per channel account and process: the most a crash can leave in doubt.
    concurrency: int = Field(default=10, ge=1, le=100)
    # Rows of an account no process sends for are given up (undeliverable) after waiting this long.
    no_sender_wait_seconds: float = Field(default=30, gt=0, le=86_400)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    default_locale: str = "zh_Hans"  # any tag naming a catalog: zh-hans, zh_Hant, zh-HK, en-US...
    international_locale: str = INTERNATIONAL_LOCALE  # followers whose language has no catalog (pt-br, ja)
    timezone: str = "Asia/Shanghai"
    admin_token: SecretStr | None = None
    # Wrong admin tokens and unknown codes allowed per client address before 429 (limits' notation).
    admin_failure_limit: str = "10/minute"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: text on a terminal, JSON otherwise
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    prompt_rules_ttl: float = Field(default=2.0, ge=0, le=3600)
    prompt_rules_max_chars: int = Field(default=2000, ge=50, le=1_000_000)  # of a message, for matching
    simulators: bool | None = None  # None: run a simulator for each platform that has no settings
    # `engagebot run`'s worker processes sharing the port; None: one per core (one beside the simulators).
    workers: int | None = Field(default=None, ge=1, le=256)
    # A duty that must run once (polling, sweeping, broadcast expansion) passes to a standby process
    # at most this long (plus a third) after its holder died; the holder renews every third of it.
    duty_lease_seconds: float = Field(default=10, ge=1, le=300)
    wechat: WeChatAccount = WeChatAccount()
    wechat_accounts: dict[str, WeChatAccount] = {}  # more accounts, served at /wechat/<name>
    telegram: TelegramSettings = TelegramSettings()
    weibo: WeiboSettings = WeiboSettings()
    # The settings of channels installed as plugins, by channel name (``ENGAGEBOT_CHANNELS__WEBCHAT__SECRET``):
    # each plugin validates its own (``bot.channels.plugin.channel_settings``); docs/adapters.md.
    channels: dict[str, dict[str, Any]] = {}
    http: HttpLimits = HttpLimits()
    outbox: OutboxSettings = OutboxSettings()
    # Messages and settled outbox rows older than this many days are pruned (claims, codes and
    # campaign touches are kept); 0 keeps them forever. See docs/operations.md.
    retention_days: int = Field(default=90, ge=0, le=36_500)
    # Seconds a follower who asked for a person waits for an agent; then they are told "we will answer
    # soon" and the bot answers again (bot/admin/handoff.py, docs/inbox.md).
    handoff_timeout: float = Field(default=900, ge=10, le=7 * 86_400)
    # SIGTERM: seconds to finish the requests in flight and stop the background duties, then exit.
    shutdown_timeout: float = Field(default=20, ge=1, le=600)
    # Seconds a /readyz probe waits for the database before it answers 503 (under a load balancer's probe timeout).
    ready_timeout: float = Field(default=1.5, ge=0.1, le=30)
    # A database URL: `engagebot run` serves the mock channel at POST /mock and delivers its sends
    # into table mock_delivery there (a stand-in platform for tests and demos). Unset: no mock channel.
    mock_sink: str | None = None

    @field_validator("database_url", "mock_sink")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return check_database_url(v)
        except DatabaseURLError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("default_locale", "international_locale")
    @classmethod
    def _locale(cls, v: str) -> str:
        return require_locale(v)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("admin_failure_limit")
    @classmethod
    def _failure_limit(cls, v: str) -> str:
        try:
            rate = parse_rate(v)
        except ValueError:
            rate = None
        if rate is None or rate.amount < 1:
            raise ValueError(f"{v!r} is not a rate such as 10/minute or 5 per 30 seconds")
        return v

    @field_validator("wechat_accounts")
    @classmethod
    def _account_names(cls, v: dict[str, WeChatAccount]) -> dict[str, WeChatAccount]:
        for name in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
                raise ValueError(f"account name {name!r} must be lowercase letters, digits, _ or -")
        return v

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
                raise ValueError(f"channel name {name!r} must be lowercase letters, digits or _")
        return v

    @model_validator(mode="after")
    def _platforms_complete(self) -> Settings:
        """Refuse a platform configured in part: it would silently run nothing (or a simulator)."""
        missing = missing_platform_settings(self)
        if missing:
            raise ConfigError(f"setting {missing[0]}: incomplete, missing {', '.join(missing[1])}")
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Command-line flags (init values) > environment > config file.
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=_FILE_VALUES.get())


# A WeChat account needs these to serve callbacks and reply through the API; aes_key is optional
# (safe mode). Setting any of them (or aes_key) without the others is a mistake, not a choice.
_WECHAT_REQUIRED = ("token", "app_id", "app_secret")
_WECHAT_CREDENTIALS = (*_WECHAT_REQUIRED, "aes_key")
_WEIBO_REQUIRED = ("app_key", "app_secret", "access_token", "brand_uid")
_TELEGRAM_NEEDS_TOKEN = ("mode", "webhook_url", "webhook_secret", "api_base")


def missing_platform_settings(settings: Settings) -> tuple[str, list[str]] | None:
    """The first platform set in part, and the settings it lacks: (``ENGAGEBOT_WECHAT``, [names])."""
    accounts = [("ENGAGEBOT_WECHAT", settings.wechat)] + [
        (f"ENGAGEBOT_WECHAT_ACCOUNTS__{name.upper()}", cfg) for name, cfg in settings.wechat_accounts.items()]
    for prefix, account in accounts:
        if any(getattr(account, f) is not None for f in _WECHAT_CREDENTIALS):
            lacking = [f"{prefix}__{f.upper()}" for f in _WECHAT_REQUIRED if getattr(account, f) is None]
            if lacking:
                return prefix, lacking
    weibo = settings.weibo
    if any(getattr(weibo, f) is not None for f in _WEIBO_REQUIRED):
        lacking = [f"ENGAGEBOT_WEIBO__{f.upper()}" for f in _WEIBO_REQUIRED if getattr(weibo, f) is None]
        if lacking:
            return "ENGAGEBOT_WEIBO", lacking
    telegram = settings.telegram
    if telegram.token is None and telegram.model_fields_set & set(_TELEGRAM_NEEDS_TOKEN):
        return "ENGAGEBOT_TELEGRAM", ["ENGAGEBOT_TELEGRAM__TOKEN"]
    if telegram.token is not None and telegram.mode == "webhook":
        lacking = [f"ENGAGEBOT_TELEGRAM__{f.upper()}" for f in ("webhook_url", "webhook_secret")
                   if getattr(telegram, f) is None]
        if lacking:
            return "ENGAGEBOT_TELEGRAM", lacking
    return None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings in a YAML or TOML file, as a mapping (not validated yet)."""
    data = read_data_file(path, error=ConfigError, label="config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a mapping of settings at the top")
    return data


# Variables that start like a setting but are read by something else (the test suite).
NOT_SETTINGS = frozenset({"ENGAGEBOT_TEST_DATABASE_URL"})


def setting_names(model: type[BaseModel] = Settings, prefix: str = ENV_PREFIX) -> list[str]:
    """Every environment variable that sets something, e.g. ``ENGAGEBOT_WECHAT__TOKEN``.

    A group may also be given whole, as JSON (``ENGAGEBOT_WECHAT='{...}'``), so it is listed too.
    """
    names = []
    for name, field in model.model_fields.items():
        var = f"{prefix}{name.upper()}"
        names.append(var)
        nested = _nested_model(field.annotation)
        if nested is not None:
            names += setting_names(nested, f"{var}__")
    return names


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """A warning for each ``ENGAGEBOT_*`` variable that sets nothing, naming the closest setting.

    Inside a group (``ENGAGEBOT_WECHAT__TOKN``) an unknown key is refused by the settings
    themselves, naming the closest key; this covers the names that would be ignored silently.
    """
    known = setting_names()
    groups = {f"{ENV_PREFIX}{name.upper()}" for name, field in Settings.model_fields.items()
              if _nested_model(field.annotation) or get_origin(field.annotation) is dict}
    warnings = []
    for var in sorted(environ):
        upper = var.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_SETTINGS or upper in known:
            continue
        if "__" in upper and upper.split("__", 1)[0] in groups:
            continue
        close = difflib.get_close_matches(upper.removeprefix(ENV_PREFIX),
                                          [k.removeprefix(ENV_PREFIX) for k in known], n=1, cutoff=0.6)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        warnings.append(f"{var} is not a setting and is ignored{hint}")
    return warnings


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _mapping_of_models(annotation: Any) -> type[BaseModel] | None:
    if get_origin(annotation) is dict:
        args = get_args(annotation)
        if len(args) == 2:
            return _nested_model(args[1])
    return None


def _model_at(model: type[BaseModel], path: Sequence[str]) -> type[BaseModel] | None:
    """The settings group a location points into (the name of a ``wechat_accounts`` entry is skipped)."""
    current: type[BaseModel] | None = model
    skip_name = False
    for part in path:
        if skip_name:
            skip_name = False
            continue
        field = current.model_fields.get(part) if current is not None else None
        if field is None:
            return None
        current = _nested_model(field.annotation)
        if current is None:
            current = _mapping_of_models(field.annotation)
            skip_name = current is not None
    return None if skip_name else current


def _closest_key(loc: Sequence[str]) -> str | None:
    """For an unknown key at ``loc``, the closest known key of the same group."""
    group = _model_at(Settings, loc[:-1]) if loc else None
    if group is None:
        return None
    close = difflib.get_close_matches(loc[-1].lower(), list(group.model_fields), n=1, cutoff=0.6)
    return close[0] if close else None


def _lookup(data: Any, loc: Sequence[str]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def describe_settings_error(exc: ValidationError, *, flags: Mapping[str, Any], environ: Mapping[str, str],
                            file_values: Mapping[str, Any], config_file: str | Path | None) -> str:
    """One line naming where the first bad setting came from: a flag, a variable, or the file's key."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    close = _closest_key(loc) if err["type"] == "extra_forbidden" else None
    upper_env = {k.upper() for k in environ}
    if loc and flags.get(loc[0]) is not None:
        where, suggestion = f"--{loc[0].replace('_', '-')}", None
    elif config_file is not None and _lookup(file_values, loc) and not _from_environment(loc, upper_env):
        where = f"config file {config_file}: key {'.'.join(loc)!r}"
        suggestion = repr(".".join([*loc[:-1], close])) if close else None
    else:
        where = f"setting {ENV_PREFIX}{'__'.join(loc).upper()}" if loc else "settings"
        suggestion = f"{ENV_PREFIX}{'__'.join([*loc[:-1], close]).upper()}" if close else None
    if err["type"] == "extra_forbidden":
        return f"{where}: not a setting" + (f"; did you mean {suggestion}?" if suggestion else "") + more
    return f"{where}: {describe_error_message(err)}{more}"


def _from_environment(loc: Sequence[str], upper_env: set[str]) -> bool:
    # The value at loc came from a variable for it or for one of its groups (given whole as JSON).
    return any(ENV_PREFIX + "__".join(loc[:n]).upper() in upper_env for n in range(1, len(loc) + 1))


def own_base_url(settings: Settings) -> str:
    """How this process reaches itself over HTTP (the in-process simulators call the bot like a platform)."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def load_settings(config_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None,
                  warn: Callable[[str], None] | None = None, **overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError with one line naming the bad setting and where it came from.

    ``ENGAGEBOT_*`` variables that set nothing are reported to ``warn`` (stderr by default), naming
    the closest real setting.
    """
    environ = os.environ if environ is None else environ
    for line in unknown_environment(environ):
        (warn or _warn)(line)
    file_values = read_config_file(config_file) if config_file else {}
    token = _FILE_VALUES.set(file_values)
    flags = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError(describe_settings_error(exc, flags=flags, environ=environ, file_values=file_values,
                                                  config_file=config_file)) from None
    finally:
        _FILE_VALUES.reset(token)


_WARNED: set[str] = set()


def _warn(line: str) -> None:
    """Print a settings warning on stderr, once per process (a command may read its settings twice)."""
    if line in _WARNED:
        return
    _WARNED.add(line)
    print(f"engagebot: warning: {line}", file=sys.stderr)
