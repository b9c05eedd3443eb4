"""Telegram's answers as engagebot's typed failures: the only say a channel has in delivery.

What happens next (wait in place, reschedule, give up) is ``bot.delivery``'s retry policy.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError

from bot.errors import EngagebotError, FollowerGone, NotSent, PlatformAPIError, QuotaExceeded, platform_text


def retry_after_seconds(exc: RetryAfter) -> float:
    """``RetryAfter.retry_after`` warns in PTB 22 (int vs timedelta); read the timedelta it keeps."""
    value = getattr(exc, "_retry_after", None)
    if value is not None and hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return 1.0


def surely_not_sent(exc: NetworkError) -> bool:
    """True when the request cannot have reached Telegram, or Telegram answered an error (5xx).

    PTB raises NetworkError for an error status without a cause; transport failures carry the
    httpx exception. Only failures before the request was written are safe to repeat.
    """
    cause = exc.__cause__
    if cause is None:
        return True
    return isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def send_failure(exc: TelegramError, redact: Callable[[BaseException], str]) -> EngagebotError:
    """The typed failure for what Telegram answered to a send (``redact`` hides the token).

    - 429: ``QuotaExceeded`` with Telegram's ``retry_after``, for this chat only;
    - 403 (blocked, deactivated): ``FollowerGone``;
    - unreachable, or a 5xx (nothing was sent): ``NotSent``;
    - no answer to a request that was written: ``PlatformAPIError`` (it may have been delivered,
      and a second copy is worse than a reported failure);
    - anything else: ``PlatformAPIError`` with Telegram's words.
    """
    match exc:
        case RetryAfter():
            return QuotaExceeded(f"telegram flood control: {platform_text(exc)}",
                                 retry_after=retry_after_seconds(exc), chat_only=True)
        case Forbidden():
            return FollowerGone(platform_text(exc))
        case InvalidToken():
            return PlatformAPIError(401, "bot token rejected")
        case BadRequest() | ChatMigrated():  # BadRequest is a NetworkError in PTB
            return PlatformAPIError(400, str(exc))
        case NetworkError():  # TimedOut too
            if surely_not_sent(exc):
                return NotSent(f"telegram unavailable: {redact(exc)}")
            return PlatformAPIError(-1, f"no answer from Telegram, not retried (may have been delivered): "
                                        f"{redact(exc)}")
    return PlatformAPIError(-1, redact(exc))


__all__ = ["retry_after_seconds", "send_failure", "surely_not_sent"]
