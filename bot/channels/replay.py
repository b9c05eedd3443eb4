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
   with nothing stored.

The triple is recorded only once the body has parsed, so a malformed request uses up nothing. It is
recorded in the transaction that stores the message's exchange (:meth:`ReplayGuard.check` and
``bot/core/replay_check.py``), or on its own first where something would change before that, or
when handling the message failed (:func:`answered_when_admitted`: a request answered 500 uses up its
signature too, or a forged body could take it while the platform retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from bot.errors import PayloadError, ReplayError
from bot.storage.replay import REPLAYED, ReplayLedger, Seen

T = TypeVar("T")

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

    def check(self, *, timestamp: str, nonce: str, signature: str, body: bytes) -> PendingCheck:
        """The signed request's check, to travel with its message (``Inbound.replay_check``) and be
        written with its exchange; the caller answers only after :meth:`PendingCheck.wait`."""
        seconds = self.check_window(timestamp)
        expires = datetime.fromtimestamp(seconds + self.max_skew, UTC)
        return PendingCheck(self.ledger, Seen(self.scope, request_key(timestamp, nonce, signature), body_hash(body),
                                              expires))


class PendingCheck:
    """One request's replay check (``bot.core.replay_check.ReplayCheck``): its row is taken by the
    exchange's write, or written on its own by the first :meth:`wait` that finds nobody took it."""

    __slots__ = ("_ledger", "_seen", "_state", "_verdict")

    def __init__(self, ledger: ReplayLedger, seen: Seen) -> None:
        self._ledger = ledger
        self._seen = seen
        self._state = "open"  # or "taken" by an exchange's write, or "alone": written on its own
        # True: admitted; False: a replay; None: the exchange's write failed, so nothing was written.
        self._verdict: asyncio.Future[bool | None] | None = None

    def take(self) -> Seen | None:
        if self._state != "open":
            return None
        self._state = "taken"
        self._verdict = asyncio.get_running_loop().create_future()
        return self._seen

    def settle(self, admitted: bool) -> None:
        if self._state == "taken" and self._verdict is not None and not self._verdict.done():
            self._verdict.set_result(admitted)

    def release(self) -> None:
        if self._state == "taken" and self._verdict is not None and not self._verdict.done():
            self._state = "open"
            self._verdict.set_result(None)
            self._verdict = None

    async def wait(self) -> None:
        while True:
            if self._state == "open":
                self._state = "alone"
                self._verdict = asyncio.ensure_future(self._alone())
            assert self._verdict is not None
            admitted = await asyncio.shield(self._verdict)
            if admitted is None:  # released: whoever waits next checks on its own
                continue
            if not admitted:
                raise ReplayError(REPLAYED)
            return

    async def _alone(self) -> bool | None:
        return await self._ledger.admit(self._seen)


async def answered_when_admitted(check: PendingCheck, handling: Awaitable[T]) -> T:
    """Await ``handling`` (the message's dispatch), then ``check``: what it returns is answered only
    once the request is admitted (``ReplayError`` if it is a replay). When handling fails, the check
    is still written before the error goes on: a request answered 500 must not leave its signature
    free for a forged body within the window."""
    try:
        result = await handling
    except ReplayError:
        raise
    except BaseException:
        with contextlib.suppress(Exception):  # the handler's error is the answer; a replay's too
            await check.wait()
        raise
    await check.wait()
    return result
