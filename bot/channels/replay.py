"""Signed callbacks used once: a timestamp window and a replay cache shared through the database.

WeChat (and Weibo) sign the query string (token, timestamp, nonce), not the body, and those query
strings end up in access logs. Without more, one signature would be good forever and with any
body. So a channel that takes such callbacks:

1. refuses a timestamp farther than ``max_skew`` seconds from the server clock (either way), in
   the platform's unit (WeChat: seconds, Weibo: milliseconds);
2. records each accepted (timestamp, nonce, signature) with a hash of its body, in the database
   (every instance sees it), until the timestamp leaves the window. The same triple with the same
   body again is the platform retrying (it is answered as before: the dispatcher dedupes on the
   platform's message id); the same triple with another body is a replay and is refused (403)
   before anything is stored.

The triple is recorded only once the body has parsed, so a malformed request uses up nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.errors import PayloadError, ReplayError
from bot.storage.replay import ReplayLedger, Seen

DEFAULT_MAX_SKEW = 300.0  # seconds; the platforms' clocks are NTP-synchronized
MAX_TIMESTAMP_DIGITS = 16  # milliseconds until the year 2286


def request_key(timestamp: str, nonce: str, signature: str) -> str:
    """A fixed-size key for a signed request (hex signatures compare case-insensitively)."""
    return hashlib.sha256(f"{timestamp}\n{nonce}\n{signature.lower()}".encode()).hexdigest()


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class ReplayGuard:
    """The window and the replay cache of signed requests in ``scope`` (e.g. ``"wechat"``).

    The scope is where a signature verifies: a channel's accounts share one when they share a
    token, so the scope is the channel, and the key (made from the signature) tells tokens apart.

    ``units_per_second`` is 1 for timestamps in seconds (WeChat), 1000 in milliseconds (Weibo).
    """

    def __init__(self, ledger: ReplayLedger, *, scope: str, max_skew: float = DEFAULT_MAX_SKEW,
                 units_per_second: int = 1, clock: Callable[[], float] = time.time) -> None:
        if max_skew <= 0:
            raise ValueError("max_skew must be positive")
        self.ledger = ledger
        self.scope = scope
        self.max_skew = max_skew
        self.units_per_second = units_per_second
        self.clock = clock

    def check_window(self, timestamp: str) -> float:
        """Return the timestamp in unix seconds; raise ``ReplayError`` when outside the window."""
        if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
            raise PayloadError(f"timestamp must be at most {MAX_TIMESTAMP_DIGITS} ASCII digits")
        seconds = int(timestamp) / self.units_per_second
        if abs(self.clock() - seconds) > self.max_skew:
            raise ReplayError(f"timestamp more than {self.max_skew:g} s away from the server clock")
        return seconds

    async def admit(self, *, timestamp: str, nonce: str, signature: str, body: bytes) -> None:
        """Record the signed request; raise ``ReplayError`` if its signature came before with another body."""
        seconds = self.check_window(timestamp)
        expires = datetime.fromtimestamp(seconds + self.max_skew, UTC)
        seen = Seen(self.scope, request_key(timestamp, nonce, signature), body_hash(body), expires)
        if not await self.ledger.admit(seen):
            raise ReplayError("signature already used with another body")
