"""The simulator's own Weibo wire code: signatures, created_at, URL-encoded JSON, ids.

Written from the published protocol (PROTOCOLS.md, Weibo section), independently of the bot's adapter,
so that a bug in the adapter's protocol code cannot be mirrored here. Nothing in this module does HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from typing import Any

__all__ = [
    "ProtocolError",
    "created_at",
    "decode_data",
    "encode_data",
    "new_nonce",
    "signature",
    "signatures_match",
]

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_DATA_CHARS = 64 * 1024
MAX_JSON_DEPTH = 20


class ProtocolError(ValueError):
    """A body, data field or signature that does not follow the protocol."""


def signature(app_secret: str, timestamp: str, nonce: str) -> str:
    """sha1 of the sorted [app secret, timestamp (milliseconds), nonce], concatenated."""
    return hashlib.sha1("".join(sorted((app_secret, timestamp, nonce))).encode("utf-8")).hexdigest()


def signatures_match(expected: str, given: str | None) -> bool:
    """Compare two signatures in constant time."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def new_nonce() -> str:
    """A numeric nonce like the platform's."""
    return str(secrets.randbelow(10**10))


def created_at(unix: float) -> str:
    """Weibo's time format, in Beijing time whatever the host's locale: ``Mon Jul 16 18:09:20 +0800 2012``."""
    t = time.gmtime(int(unix) + 8 * 3600)
    return (f"{_DAYS[t.tm_wday]} {_MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} "
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0800 {t.tm_year}")


def encode_data(value: dict[str, Any]) -> str:
    """JSON, then URL-encoded: the ``data`` field of passive replies and of messages/reply.json."""
    return urllib.parse.quote(json.dumps(value, ensure_ascii=False, separators=(",", ":")), safe="")


def _depth(value: Any, limit: int) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def decode_data(raw: Any) -> dict[str, Any]:
    """Read a URL-encoded JSON object (``data``); ProtocolError says what is wrong with it."""
    if not isinstance(raw, str) or not raw:
        raise ProtocolError("data is required")
    if len(raw) > MAX_DATA_CHARS:
        raise ProtocolError(f"data is longer than {MAX_DATA_CHARS} characters")
    if any(c in raw for c in '{}"[] '):
        raise ProtocolError("data must be URL-encoded JSON (found unencoded JSON characters)")
    try:
        value = json.loads(urllib.parse.unquote_plus(raw, errors="strict"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ProtocolError("data is not URL-encoded UTF-8 JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("data must be a JSON object")
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ProtocolError("data is nested too deeply")
    return value
