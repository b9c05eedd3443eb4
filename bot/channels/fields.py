"""Checks on every field a platform sends, at the protocol edge, before anything is stored.

Two kinds of field, two rules (the same on every channel):

- **identifiers** (a follower's id, a message id, an account id, a message type, a language tag):
  at most ``max_length`` characters of printable ASCII, no space, no control character. Anything
  else is refused (``PayloadError``, HTTP 400, naming the field): an identifier is never altered,
  since an altered id would merge two followers or two messages.
- **text** (what the follower wrote, a name, a caption, a menu key, a URL): at most ``max_length``
  characters; NUL becomes U+FFFD (the replacement character) and lone surrogates too, like
  everywhere in engagebot (``bot.core.text.sanitize_text``). Longer text is refused, not cut.

The limits below are the widths of the columns the fields are stored in (a test holds them equal to
``bot.storage.models``), so a field that passes here fits its column on every database.
"""

from __future__ import annotations

import re

from bot.core.text import sanitize_text
from bot.errors import PayloadError

MAX_EXTERNAL_ID = 128  # follower.external_id
MAX_MESSAGE_ID = 160  # message.dedupe_key
MAX_PAYLOAD = 512  # message.payload
MAX_DISPLAY_NAME = 128  # follower.display_name
MAX_LANGUAGE_HINT = 35  # follower.locale_hint (an IETF tag is at most 35 characters in practice)

_IDENTIFIER = re.compile(r"[\x21-\x7e]+")


def identifier(field: str, value: str, *, max_length: int, required: bool = True) -> str:
    """Return ``value`` if it is a well-formed identifier; raise ``PayloadError`` naming ``field``."""
    if not value:
        if required:
            raise PayloadError(f"missing field {field}")
        return value
    if len(value) > max_length:
        raise PayloadError(f"field {field} is longer than {max_length} characters")
    if not _IDENTIFIER.fullmatch(value):
        raise PayloadError(f"field {field} must be printable ASCII without spaces or control characters")
    return value


def text(field: str, value: str, *, max_length: int) -> str:
    """Return ``value`` cleaned (NUL and lone surrogates to U+FFFD); raise ``PayloadError`` if too long."""
    if len(value) > max_length:
        raise PayloadError(f"field {field} is longer than {max_length} characters")
    return sanitize_text(value)


def coordinate(field: str, value: object, *, bound: float) -> float:
    """A latitude (``bound`` 90) or longitude (180), given as a number or its decimal text; NaN, booleans
    and anything out of range are refused (``PayloadError`` naming ``field``)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise PayloadError(f"field {field} must be a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -bound <= value <= bound:
        raise PayloadError(f"field {field} must be a number within ±{bound:g}")  # NaN fails the range too
    return float(value)


def number(field: str, value: int, *, bits: int = 63) -> int:
    """Return an integer id if it fits a signed ``bits``-bit integer; raise ``PayloadError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not -(2 ** bits) <= value < 2 ** bits:
        raise PayloadError(f"field {field} must be an integer of at most {bits} bits")
    return value
