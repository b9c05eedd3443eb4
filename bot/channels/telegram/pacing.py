"""Send pacing for the Bot API: about 30 messages/s overall, about 1/s per chat, and 429 pauses per chat.

``PacedRateLimiter`` is the PTB rate limiter of the bot. It wraps PTB's ``AIORateLimiter`` (the
overall and group limits) and adds what that one lacks:

- a per-chat token bucket (a short burst, then ``chat_per_second``), charged at the moment the
  request really goes out, so a send held up in the overall queue cannot bunch up with the next;
- on a 429 only that chat waits ``retry_after`` (``AIORateLimiter`` halts every request), then the
  request is retried, a few times, before the ``RetryAfter`` reaches the caller.

Why the overall limiter is configured as one request per ``1/overall_per_second``: aiolimiter is a
leaky bucket, so ``AsyncLimiter(30, 1)`` lets 30 requests go at once and then refills at 30/s,
which is up to ~59 in the first second. Telegram counts any one second, so requests are spaced
evenly instead, a little under 30/s to allow for network jitter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter, BaseRateLimiter

log = logging.getLogger("engagebot.telegram.pacing")

OVERALL_PER_SECOND = 25.0  # Telegram: about 30 messages/s to different chats
CHAT_PER_SECOND = 1.0  # Telegram: about 1 message/s in one chat, short bursts tolerated
CHAT_BURST = 3
GROUP_PER_MINUTE = 20


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` warns in PTB 22 (int vs timedelta); read the timedelta it keeps."""
    value = getattr(exc, "_retry_after", None)
    if value is not None and hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return 1.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    paused_until: float = 0.0


class ChatPacer:
    """Token buckets per chat, plus the pause Telegram asked for after a 429."""

    def __init__(self, *, per_second: float = CHAT_PER_SECOND, burst: int = CHAT_BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[int | str, _Bucket] = {}

    def _bucket(self, chat: int | str, now: float) -> _Bucket:
        bucket = self._buckets.get(chat)
        if bucket is None:
            if len(self._buckets) > 4096:
                self._prune(now)
            bucket = self._buckets[chat] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
            bucket.updated = now
        return bucket

    def _prune(self, now: float) -> None:
        for chat, bucket in list(self._buckets.items()):
            full = bucket.tokens + (now - bucket.updated) * self.per_second >= self.burst
            if full and bucket.paused_until <= now:
                del self._buckets[chat]

    def wait_time(self, chat: int | str, *, metered: bool = True) -> float:
        """Seconds until ``chat`` may get the next message (0: now)."""
        now = self.clock()
        bucket = self._bucket(chat, now)
        wait = max(bucket.paused_until - now, 0.0)
        if metered and bucket.tokens < 1:
            wait = max(wait, (1 - bucket.tokens) / self.per_second)
        return wait

    async def ready(self, chat: int | str, *, metered: bool = True) -> None:
        while (wait := self.wait_time(chat, metered=metered)) > 0:
            await asyncio.sleep(wait)

    def take(self, chat: int | str) -> None:
        """Charge one message to ``chat``, now (may go below zero if two senders raced)."""
        self._bucket(chat, self.clock()).tokens -= 1

    def pause(self, chat: int | str, seconds: float) -> None:
        now = self.clock()
        bucket = self._bucket(chat, now)
        bucket.paused_until = max(bucket.paused_until, now + seconds)
        bucket.tokens = min(bucket.tokens, 0.0)


class _Flood(Exception):
    """Carries a RetryAfter past AIORateLimiter, which would log it as an error and halt every chat."""

    def __init__(self, error: RetryAfter) -> None:
        super().__init__(str(error))
        self.error = error


class _NotYet(Exception):
    """The chat got paused while this request waited in the overall queue: wait again."""


class PacedRateLimiter(BaseRateLimiter[int]):
    """PTB's AIORateLimiter for the overall and group limits, plus per-chat pacing and 429 pauses.

    ``rate_limit_args`` (an int, as for AIORateLimiter) overrides ``max_retries`` for one call.
    """

    def __init__(self, *, overall_per_second: float = OVERALL_PER_SECOND, chat_per_second: float = CHAT_PER_SECOND,
                 chat_burst: int = CHAT_BURST, max_retries: int = 3, max_retry_after: float = 60.0) -> None:
        self.overall = AIORateLimiter(overall_max_rate=1, overall_time_period=1 / overall_per_second,
                                      group_max_rate=GROUP_PER_MINUTE, group_time_period=60, max_retries=0)
        self.chats = ChatPacer(per_second=chat_per_second, burst=chat_burst)
        self.max_retries = max_retries
        self.max_retry_after = max_retry_after
        self.floods = 0  # 429s seen, for logs and tests

    async def initialize(self) -> None:
        await self.overall.initialize()

    async def shutdown(self) -> None:
        await self.overall.shutdown()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat = _chat_key(data.get("chat_id"))
        metered = isinstance(chat, int) and chat > 0  # private chats; groups are AIORateLimiter's
        retries = self.max_retries if rate_limit_args is None else rate_limit_args
        attempt = 0

        async def send(*a: Any, **kw: Any) -> Any:
            if chat is not None:
                if self.chats.wait_time(chat, metered=metered) > 0:
                    raise _NotYet()
                if metered:
                    self.chats.take(chat)
            try:
                return await callback(*a, **kw)
            except RetryAfter as exc:
                raise _Flood(exc) from None

        while True:
            if chat is not None:
                await self.chats.ready(chat, metered=metered)
            try:
                return await self.overall.process_request(send, args, kwargs, endpoint, data, None)
            except _NotYet:
                continue
            except _Flood as flood:
                error = flood.error
            self.floods += 1
            seconds = retry_after_seconds(error)
            if chat is not None:
                self.chats.pause(chat, seconds)
            if attempt >= retries or seconds > self.max_retry_after:
                raise error
            attempt += 1
            log.info("flood control, retrying", extra={"method": endpoint, "retry_after": seconds, "attempt": attempt})
            if chat is None:
                await asyncio.sleep(seconds)


def _chat_key(value: Any) -> int | str | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)  # @channelusername
