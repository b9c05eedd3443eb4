"""Replies in Telegram's shape: text split at 4096 UTF-16 units, inline keyboards, captions, deep links.

Telegram counts lengths in UTF-16 code units (an emoji outside the BMP counts two), so the
splitting here measures that way, and never cuts inside a character, a surrogate pair or a
grapheme cluster it can recognise (combining marks, ZWJ emoji sequences, flags, keycaps).
Everything is sent as plain text, without ``parse_mode``: no markup can break at a split.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot.core.reply import Article, Button

MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts them
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
# callback_data longer than 64 bytes travels as this prefix plus a hash; the adapter maps it back.
TOKEN_PREFIX = "#~"
_ROW_WIDTH = 30  # characters of labels per keyboard row
_ROW_BUTTONS = 3


def utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _fitting_prefix(text: str, limit: int) -> int:
    """Return how many code points of ``text`` fit in ``limit`` UTF-16 units."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _extends(ch: str) -> bool:
    """True for a code point that belongs to the character before it."""
    code = ord(ch)
    return (
        unicodedata.combining(ch) != 0
        or unicodedata.category(ch) in ("Mn", "Me", "Mc")
        or code == 0x200D  # zero-width joiner
        or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
        or code == 0x20E3  # keycap
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def safe_cut(text: str, cut: int) -> int:
    """Move ``cut`` left until it does not split a character; keep it if the whole prefix is one cluster."""
    start = cut
    while 0 < cut < len(text) and (_extends(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    if 0 < cut < len(text) and _is_regional(text[cut]) and _is_regional(text[cut - 1]):
        run = 0
        while cut - run > 0 and _is_regional(text[cut - run - 1]):
            run += 1
        if run % 2:  # an odd run before the cut: the cut halves a flag
            cut -= 1
    return cut if cut > 0 else start


def split_message(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split ``text`` into messages of at most ``limit`` UTF-16 units, at a paragraph, line or word break."""
    parts: list[str] = []
    while utf16_len(text) > limit:
        end = _fitting_prefix(text, limit)
        window = text[:end]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            found = window.rfind(sep)
            if found >= end // 2:
                cut = found
                break
        if cut <= 0:
            cut = safe_cut(text, end)
        head, text = text[:cut].rstrip(), text[cut:].lstrip()
        if head:
            parts.append(head)
    if text or not parts:
        parts.append(text)
    return parts


def cut_to(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """Cut ``text`` to ``limit`` UTF-16 units (captions), ending with an ellipsis when cut."""
    if utf16_len(text) <= limit:
        return text
    end = safe_cut(text, _fitting_prefix(text, limit - utf16_len(ellipsis)))
    return text[:end].rstrip() + ellipsis


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
