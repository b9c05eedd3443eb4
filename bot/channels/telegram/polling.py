"""Long polling that never loses an update: ask for the next ones only past those stored.

``getUpdates`` with ``offset = N`` tells Telegram it may forget every update before N. PTB's
``Updater`` moves the offset as soon as it has *fetched* a batch, so a crash before the batch is
stored loses it. Here each batch is handed to the channel, which returns a future per update that is
done once the update is stored; the next request's offset passes only the leading run of stored
updates. Whatever was not stored is fetched again (the dispatcher drops the ones stored meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError
from telegram import Update
from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from .errors import retry_after_seconds
from .updates import ALLOWED_UPDATES

log = logging.getLogger("engagebot.telegram")

# An update whose storing keeps failing for a reason other than the database being unreachable is
# skipped after this many rounds (logged), so one malformed update cannot stop the bot for good.
MAX_UPDATE_FAILURES = 5
TRANSIENT = (OperationalError, InterfaceError, OSError, TimeoutError)

# What PTB raises when it cannot build an ``Update`` from what Telegram sent.
UNREADABLE = (ValueError, TypeError, KeyError, OverflowError, RecursionError)

Stored = asyncio.Future[None] | None  # None: nothing to store (a group message, an edit...)


class UpdatePoller:
    """Fetch updates with ``bot.get_updates`` and acknowledge only the stored ones."""

    def __init__(self, bot: Any, submit: Callable[[Update], Stored], *, poll_timeout: int,
                 backoff: tuple[float, float], redact: Callable[[BaseException], str]) -> None:
        self.bot = bot
        self.submit = submit
        self.poll_timeout = poll_timeout
        self.backoff = backoff
        self.redact = redact
        self.offset: int | None = None  # the next getUpdates offset: every update before it is stored
        self._batch: list[tuple[int, Stored]] = []  # the batch being stored
        self._failures: dict[int, int] = {}  # update id -> rounds its storing failed

    async def run(self) -> None:
        first, longest = self.backoff
        delay = first
        one_at_a_time = False  # after a batch PTB could not build: find the update it chokes on
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=self.offset, timeout=0 if one_at_a_time else self.poll_timeout,
                    limit=1 if one_at_a_time else None, allowed_updates=list(ALLOWED_UPDATES))
            except InvalidToken:
                log.error("telegram rejected the bot token; polling stops")
                return
            except RetryAfter as exc:
                await asyncio.sleep(retry_after_seconds(exc))
                continue
            except (TelegramError, OSError) as exc:  # Conflict: another process polls this bot
                level = logging.WARNING if isinstance(exc, Conflict) or delay >= longest else logging.INFO
                log.log(level, "getUpdates failed, retrying", extra={"error": self.redact(exc), "in_s": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
                continue
            except UNREADABLE as exc:
                # PTB could not build an update of the batch (a date past datetime's range, nesting past the
                # recursion limit). It can never be stored. Fetch one at a time to find it, then skip it, or
                # polling would stop at it for good.
                if not one_at_a_time:
                    one_at_a_time = True
                elif await self._skip_unreadable(exc):
                    one_at_a_time = False
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, longest)
                continue
            delay = first
            one_at_a_time = False
            if not updates:
                continue
            self._batch = [(u.update_id, self.submit(u)) for u in updates]
            await asyncio.gather(*(f for _id, f in self._batch if f is not None), return_exceptions=True)
            self.offset = self._stored_through(self._batch)
            self._batch = []
            if self.offset <= updates[-1].update_id:  # something was not stored: fetch it again, later
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)

    async def _skip_unreadable(self, exc: BaseException) -> bool:
        """Acknowledge the first pending update, which PTB cannot build (read raw: JSON, no ``Update``).

        False when its id cannot be read (the connection failed meanwhile): polling tries again.
        """
        try:
            query = {"timeout": 0, "limit": 1, "allowed_updates": list(ALLOWED_UPDATES)}
            if self.offset is not None:
                query["offset"] = self.offset
            raw = await self.bot.do_api_request("getUpdates", api_kwargs=query)
            update_id = int(raw[0]["update_id"])
        except (TelegramError, OSError, ValueError, TypeError, KeyError, IndexError):
            return False
        log.error("telegram update skipped: it cannot be read", extra={
            "update_id": update_id, "error": f"{type(exc).__name__}: {self.redact(exc)}"[:200]})
        self.offset = update_id + 1
        return True

    def _stored_through(self, batch: list[tuple[int, Stored]]) -> int:
        """The offset acknowledging the leading run of stored updates of ``batch``."""
        for update_id, stored in batch:
            if stored is None:
                continue
            settled = stored.done() and not stored.cancelled()
            exc = stored.exception() if settled else None
            if settled and exc is None:
                self._failures.pop(update_id, None)
                continue
            rounds = self._failures[update_id] = self._failures.get(update_id, 0) + 1
            if exc is not None and not isinstance(exc, TRANSIENT) and rounds >= MAX_UPDATE_FAILURES:
                log.error("telegram update skipped: it could not be stored", exc_info=exc,
                          extra={"update_id": update_id, "rounds": rounds})
                self._failures.pop(update_id, None)
                continue
            return update_id
        return batch[-1][0] + 1

    async def acknowledge(self) -> None:
        """At an orderly stop (the batch handled or given up), tell Telegram which updates are stored."""
        if self._batch:
            self.offset = self._stored_through(self._batch)
            self._batch = []
        if self.offset is None:
            return
        try:
            await asyncio.wait_for(self.bot.get_updates(offset=self.offset, timeout=0, limit=1,
                                                        allowed_updates=list(ALLOWED_UPDATES)), 2.0)
        except (TelegramError, OSError, TimeoutError) as exc:  # fetched again then, and dropped as duplicates
            log.info("last getUpdates acknowledgement failed", extra={"error": self.redact(exc)})
