"""How the Telegram channel reaches the Bot API and how fast it sends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

OVERALL_PER_SECOND = 25.0  # Telegram: about 30 messages/s to different chats; a little under, for jitter
CHAT_PER_SECOND = 1.0  # Telegram: about 1 message/s in one chat

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    """How to reach the Bot API and how fast to send. ``token`` is a secret: never logged."""

    token: str
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_secret: str | None = None
    base_url: str = "https://api.telegram.org/bot"
    base_file_url: str = "https://api.telegram.org/file/bot"
    # Declared in the channel's Capabilities: the outbox paces its sends by them (bot.delivery).
    overall_per_second: float = OVERALL_PER_SECOND
    chat_per_second: float = CHAT_PER_SECOND
    poll_timeout: int = 10  # long-poll seconds
    send_timeout: float = 20.0  # read/write timeout of API calls: a slow Telegram is waited for
    connect_backoff: tuple[float, float] = (0.2, 30.0)  # first and longest pause between connect tries
    sweep_every: float = 5.0  # outbox sweeper: rows left pending by a crash
    drain_timeout: float = 10.0  # on stop, time for queued updates to be handled
    dispatch_retry_pause: float = 0.5  # first pause before storing an update again (doubles, 3 retries)
    # At most this many messages in the dispatcher at once. A message holds a database connection only
    # while a handler uses ctx.session (the follower reads and the stores are batched, as on WeChat's
    # path), so this bounds memory, not the pool: at 8, group commits held 8 updates and the webhook
    # served half the updates per second it does at 64 (docs/benchmarks.md).
    max_concurrent_dispatch: int = 64
    max_body: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.mode == "webhook":
            if not self.webhook_url or not self.webhook_secret:
                raise ValueError("webhook mode needs webhook_url and webhook_secret")
            if not _SECRET.fullmatch(self.webhook_secret):
                raise ValueError("webhook_secret must be 1..256 of A-Z, a-z, 0-9, _ and -")

    @property
    def bot_id(self) -> str:
        return self.token.split(":", 1)[0]

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> TelegramConfig:
        """Build from ``TelegramSettings`` (token, mode, webhook_url, webhook_secret, api_base)."""
        if settings.token is None:
            raise ValueError("no Telegram token")
        values: dict[str, Any] = dict(
            token=settings.token.get_secret_value(), mode=settings.mode, webhook_url=settings.webhook_url,
            webhook_secret=settings.webhook_secret.get_secret_value() if settings.webhook_secret else None)
        if settings.api_base:
            values.update(base_url=settings.api_base, base_file_url=file_url_for(settings.api_base))
        return cls(**{**values, **overrides})


def file_url_for(base_url: str) -> str:
    """``http://host/bot`` -> ``http://host/file/bot`` (the Bot API's layout, also a local server's)."""
    root = base_url.rstrip("/")
    root = root[: -len("/bot")] if root.endswith("/bot") else root
    return f"{root}/file/bot"
