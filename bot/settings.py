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

    @model_validator(mode="after")
    def _webhook_complete(self) -> TelegramSettings:
        if self.mode == "webhook" and self.token is not None and not (self.webhook_url and self.webhook_secret):
            raise ValueError("webhook mode needs webhook_url and webhook_secret")
        return self


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
    model_config = SettingsConfigDict(env_prefix="ENGAGEBOT_", env_nested_delimiter="__", extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    default_locale: Literal["en", "zh_Hans"] = "zh_Hans"
    timezone: str = "Asia/Shanghai"
    admin_token: SecretStr | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    prompt_rules_ttl: float = Field(default=2.0, ge=0, le=3600)
    simulators: bool | None = None  # None: run a simulator for each platform that has no settings
    wechat: WeChatAccount = WeChatAccount()
    wechat_accounts: dict[str, WeChatAccount] = {}  # more accounts, served at /wechat/<name>
    telegram: TelegramSettings = TelegramSettings()
    outbox: OutboxSettings = OutboxSettings()
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

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Command-line flags (init values) > environment > config file.
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=_FILE_VALUES.get())


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
