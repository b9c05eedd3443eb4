"""A local Telegram Bot API server for tests and for chatting with the bot without a real token.

It shares no code with the bot: python-telegram-bot (or anything else) talks to it over HTTP, pointed at
``base_url("http://HOST:PORT/bot")`` and ``base_file_url("http://HOST:PORT/file/bot")``.
"""

from __future__ import annotations

from collections.abc import Callable

from .methods import BotAPIMethods
from .page import ChatPage
from .params import APIError, Upload
from .server import Call, HTTPServer
from .state import SimState, random_bot_token

__all__ = ["APIError", "Call", "TelegramBotAPISimulator", "Upload", "random_bot_token"]


class TelegramBotAPISimulator(ChatPage, HTTPServer, BotAPIMethods, SimState):
    """Plays Telegram's Bot API for one bot token.

    ``enforce_limits``: answer 429 like Telegram's flood control (30 messages/s overall, 20/min per group,
    short bursts then about 1/s per private chat); violations are also listed in ``limit_violations``.
    ``webhook_retry_delay``: first pause before re-delivering an update the webhook did not accept (doubles).
    ``clock``: unix time for ``date`` fields (default ``time.time``).
    ``token``: the bot token it accepts; by default a random one for bot id 123456 (read ``.token``).
    Stored files are capped (``max_file_bytes``, ``max_files``, ``max_files_bytes``; the oldest go
    first), served as downloads, and webhooks are delivered to loopback addresses only.
    """

    def __init__(self, token: str | None = None, *, bot_username: str = "engagebot_demo_bot",
                 bot_id: int | None = None, bot_first_name: str = "Engagebot Demo",
                 clock: Callable[[], float] | None = None, enforce_limits: bool = False,
                 webhook_retry_delay: float = 0.5, webhook_timeout: float = 10.0) -> None:
        SimState.__init__(self, token=token or random_bot_token(), bot_username=bot_username, bot_id=bot_id, clock=clock,
                          bot_first_name=bot_first_name)
        self._init_server(enforce_limits=enforce_limits, webhook_retry_delay=webhook_retry_delay,
                          webhook_timeout=webhook_timeout)
