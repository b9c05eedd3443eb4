"""Replies in Telegram's shape: text split at 4096 UTF-16 units, inline keyboards, captions, deep links.

Telegram counts lengths in UTF-16 code units (an emoji outside the BMP counts two), so the
splitting here measures that way, with the one cutter of ``bot.core.text``: never inside a grapheme
cluster (combining marks, ZWJ emoji sequences, flags, keycaps).
Everything is sent as plain text, without ``parse_mode``: no markup can break at a split.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.core.reply import Article, Button
from bot.core.text import cut_text, plain, split_text, utf16_units

MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts them
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
# callback_data longer than 64 bytes travels as this prefix plus a hash; the adapter maps it back.
TOKEN_PREFIX = "#~"
_ROW_WIDTH = 30  # characters of labels per keyboard row
_ROW_BUTTONS = 3


def utf16_len(text: str) -> int:
    return utf16_units(text)


def split_message(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split ``text`` into messages of at most ``limit`` UTF-16 units, at a paragraph, line or word
    break (``bot.core.text.split_text``); the whitespace at each break is dropped."""
    parts = split_text(text, limit, measure=utf16_units)
    if len(parts) == 1:
        return parts
    last = len(parts) - 1
    kept = [p for p in ((p.lstrip() if i else p).rstrip() if i < last else p.lstrip()
                        for i, p in enumerate(parts)) if p]
    return kept or [""]


def cut_to(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """Cut ``text`` to ``limit`` UTF-16 units (captions), ending with an ellipsis when cut."""
    cut = cut_text(text, limit, measure=utf16_units, markup=plain, ellipsis=ellipsis)
    return cut if cut is text else cut.removesuffix(ellipsis).rstrip() + ellipsis


def callback_data_for(payload: str) -> str:
    """Return the ``callback_data`` for a button payload: itself, or a short token when too long.

    Telegram allows 1..64 bytes. A longer payload (or one that looks like a token) becomes
    ``#~`` plus 24 characters of its BLAKE2b hash; the adapter remembers the mapping and can find
    it again in the stored outbound message after a restart.
    """
    if 1 <= len(payload.encode()) <= MAX_CALLBACK_DATA and not payload.startswith(TOKEN_PREFIX):
        return payload
    digest = hashlib.blake2b(payload.encode(), digest_size=18).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest).decode()


def keyboard(buttons: Sequence[Button]) -> InlineKeyboardMarkup:
    """Lay buttons out in rows of up to three short labels (one per row when labels are long)."""
    rows: list[list[InlineKeyboardButton]] = []
    row: list[InlineKeyboardButton] = []
    width = 0
    for button in buttons:
        label = button.label.strip() or button.payload or "?"
        if row and (len(row) >= _ROW_BUTTONS or width + len(label) > _ROW_WIDTH):
            rows.append(row)
            row, width = [], 0
        row.append(InlineKeyboardButton(label, callback_data=callback_data_for(button.payload)))
        width += len(label)
    if row:
        rows.append(row)
    return InlineKeyboardMarkup(rows)


def article_text(article: Article) -> str:
    return "\n".join(p for p in (article.title, article.description, article.url) if p)


def deep_link(bot_username: str, scene: str) -> str | None:
    """Return ``https://t.me/<bot>?start=<scene>``, or None when the scene is not a valid payload."""
    if not DEEP_LINK_PAYLOAD.fullmatch(scene):
        return None
    return f"https://t.me/{bot_username}?start={scene}"
