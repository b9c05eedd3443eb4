"""The Telegram channel (python-telegram-bot 22): adapter, rendering, error mapping and app plugin."""

from .adapter import TELEGRAM_CAPABILITIES, TelegramChannel
from .config import TelegramConfig

__all__ = ["TELEGRAM_CAPABILITIES", "TelegramChannel", "TelegramConfig"]
