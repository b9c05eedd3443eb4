"""One retry policy: what delivery does after each typed failure a channel raises.

A channel maps its platform's answers to typed failures (``bot.errors``) and decides nothing
else; this module holds every number about trying again:

- ``QuotaExceeded(retry_after=N, chat_only=True)``: this chat's own limit (Telegram's 429). The
  chat is paused N s and the send waited out in place, a few times (``waits_in_place``, and only
  if N is at most ``longest_wait_in_place``), keeping the chat's order; then as below.
- ``NotSent``: the request surely never reached the platform (a refused connection, a 5xx). It is
  repeated in place after each of ``quick_pauses``; then as below.
- ``QuotaExceeded`` otherwise (and any unexpected error): the row is rescheduled, after
  ``retry_after`` or an exponential backoff, until ``max_attempts`` claims; then it fails.
- ``FollowerGone``, ``OutsideReplyWindow``, ``PlatformAPIError``: final at once (the outbox
  records them: undeliverable, held for a mass send, failed with the platform's reason).

A mass send (``bot.broadcast.mass``) asks :meth:`RetryPolicy.postpones_mass_send`: a "retry after"
short enough keeps the call for later (repeated with the same idempotency key), else it fails.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bot.errors import NotSent, QuotaExceeded

MAX_ATTEMPTS = 8  # claims of a row before a failure worth retrying becomes final


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = MAX_ATTEMPTS
    longest_backoff: float = 300.0  # seconds between claims of a row, at most
    quick_pauses: tuple[float, ...] = (0.5, 1.0)  # a send that surely did not go: repeated in place
    waits_in_place: int = 3  # a chat's "retry after" waited out in place this many times per send
    longest_wait_in_place: float = 60.0  # a longer "retry after" reschedules the row instead
    longest_mass_postpone: float = 120.0  # a mass send told to retry after longer than this fails

    def backoff(self, attempts: int) -> float:
        """Seconds before a row claimed ``attempts`` times is due again."""
        return min(2.0 ** attempts, self.longest_backoff)

    def gives_up(self, attempts: int) -> bool:
        """True when a row claimed ``attempts`` times is not rescheduled again."""
        return attempts >= self.max_attempts

    def postpones_mass_send(self, exc: QuotaExceeded) -> bool:
        """True when a mass send answered ``exc`` is kept, to be called again once its lease has passed."""
        return exc.retry_after is not None and exc.retry_after <= self.longest_mass_postpone

    def wait_in_place(self, exc: Exception, tries: Counter[str]) -> float | None:
        """Seconds to wait before repeating this send where it is, or None: record the failure.

        ``tries`` counts the waits already made for this send, by kind; it is updated here.
        """
        if isinstance(exc, NotSent):
            if tries["quick"] < len(self.quick_pauses):
                tries["quick"] += 1
                return self.quick_pauses[tries["quick"] - 1]
            return None
        if isinstance(exc, QuotaExceeded) and exc.chat_only and exc.retry_after is not None:
            if tries["chat"] < self.waits_in_place and exc.retry_after <= self.longest_wait_in_place:
                tries["chat"] += 1
                return exc.retry_after
        return None


__all__ = ["MAX_ATTEMPTS", "RetryPolicy"]
