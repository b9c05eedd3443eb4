"""Text hygiene shared by the router and adapters."""

from __future__ import annotations

import re

_SURROGATES = re.compile(r"[\ud800-\udfff]")


def sanitize_text(text: str) -> str:
    """Make text storable everywhere: join valid surrogate pairs, replace lone ones and NULs with U+FFFD."""
    if _SURROGATES.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


def cut_text(text: str, limit: int, *, ellipsis: str = "…") -> str:
    """Cut ``text`` to at most ``limit`` characters, never splitting a surrogate pair or a markup entity."""
    if len(text) <= limit:
        return text
    end = max(limit - len(ellipsis), 0)
    # Back off from a half-written HTML entity (&amp;) or tag (<a href=...>), which would break markup.
    amp, semi = text.rfind("&", 0, end), text.rfind(";", 0, end)
    if amp > semi and end - amp <= 10:
        end = amp
    lt, gt = text.rfind("<", 0, end), text.rfind(">", 0, end)
    if lt > gt:
        end = lt
    if end and "\ud800" <= text[end - 1] <= "\udbff":
        end -= 1
    return text[:end] + ellipsis

