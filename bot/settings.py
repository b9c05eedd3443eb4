"""One validated Settings object: environment ``ENGAGEBOT_*`` (nested with ``__``) and an optional file."""

from __future__ import annotations

import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from bot.errors import ConfigError
from bot.i18n import SUPPORTED_LOCALES
from bot.storage.engine import DEFAULT_DATABASE_URL, DatabaseURLError, check_database_url


# The config file's values while load_settings builds a Settings (a source, below env and flags).
_FILE_VALUES: ContextVar[dict[str, Any]] = ContextVar("engagebot_config_file", default={})


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENGAGEBOT_", env_nested_delimiter="__", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    default_locale: Literal["en", "zh_Hans"] = "zh_Hans"
    timezone: str = "Asia/Shanghai"
    admin_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: text on a terminal, JSON otherwise
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    prompt_rules_ttl: float = Field(default=2.0, ge=0, le=3600)
    simulators: bool | None = None  # None: run a simulator for each platform that has no settings
    wechat: WeChatAccount = WeChatAccount()
    wechat_accounts: dict[str, WeChatAccount] = {}  # more accounts, served at /wechat/<name>
    telegram: TelegramSettings = TelegramSettings()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        try:
            return check_database_url(v)
        except DatabaseURLError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("wechat_accounts")
    @classmethod
    def _account_names(cls, v: dict[str, WeChatAccount]) -> dict[str, WeChatAccount]:
        for name in v:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", name):
                raise ValueError(f"account name {name!r} must be lowercase letters, digits, _ or -")
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
    p = Path(path)
    try:
        raw = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p}: not UTF-8 text") from None
    try:
        data = tomllib.loads(raw) if p.suffix == ".toml" else yaml.safe_load(raw)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {p}: does not parse: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping of settings at the top")
    return data


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the settings, or raise ConfigError with one line naming the bad setting."""
    token = _FILE_VALUES.set(read_config_file(config_file) if config_file else {})
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "__".join(str(p) for p in err["loc"]) or "settings"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"setting ENGAGEBOT_{name.upper()}: {err['msg']}{more}") from None
    finally:
        _FILE_VALUES.reset(token)
