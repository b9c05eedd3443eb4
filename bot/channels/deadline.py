"""The passive-reply deadline, shared by the channels whose platform reads the reply from its own
HTTP request (WeChat, Weibo): answer inline when the handler is done in time, else answer the request
empty and send the replies through the platform's API (the outbox) once they are stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from bot.core.dispatcher import Dispatched, LanguageLookup, PassiveSlot, follower_hash, message_hash
from bot.core.inbound import Inbound
from bot.core.store import Exchange
from bot.delivery.outbox import OutboxSender
from bot.errors import ReplayError
from bot.metrics import REPLY_ROUTES, counter


class InTimeChannel(Protocol):
    @property
    def name(self) -> str: ...

    outbox: OutboxSender

    async def dispatch(self, msg: Inbound, *, passive: PassiveSlot | None = None,
                       language_lookup: LanguageLookup | None = None) -> Dispatched: ...


class PassiveDeadline:
    """Dispatches a channel's requests within the platform's deadline and owns the sends of the
    replies that missed it; :meth:`stop` sees them through (up to ``timeout``), then cancels the rest."""

    def __init__(self, channel: InTimeChannel) -> None:
        self.channel = channel
        self._sends: set[asyncio.Task[Any]] = set()

    async def dispatch(self, msg: Inbound, deadline: float, *,
                       language_lookup: LanguageLookup | None = None) -> Exchange | None:
        """Dispatch ``msg``; past ``deadline`` (loop time) hand its replies to the send API and return None."""
        channel = self.channel
        slot = PassiveSlot()
        task = asyncio.create_task(channel.dispatch(msg, passive=slot, language_lookup=language_lookup))
        if not await _done_by(task, deadline):
            if slot.give_up():
                logging.getLogger(f"engagebot.{channel.name}").info(
                    "passive deadline passed; replying through the API",
                    extra={"channel": channel.name, "follower": follower_hash(msg), "message_id": message_hash(msg)})
                self._spawn(self._deliver_when_done(task))
                counter(REPLY_ROUTES, channel.name, "deferred").inc()
                return None
            # The reply is being committed as passive right now: it is only milliseconds away.
        result = await asyncio.shield(task)
        if not result.duplicate:
            counter(REPLY_ROUTES, channel.name, "passive").inc()
        if not result.duplicate and result.exchange.pending_ids:
            self._spawn(channel.outbox.deliver(result.exchange.pending_ids))
        return result.exchange

    async def stop(self, timeout: float = 10) -> None:
        """Replies of slow handlers first (they still go through the outbox): call before the outbox stops."""
        if self._sends:
            await asyncio.wait(self._sends, timeout=timeout)
            for task in self._sends:
                task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _deliver_when_done(self, task: asyncio.Task[Dispatched]) -> None:
        try:
            result = await task
        except ReplayError:  # refused after the deadline (answered 403 already): nothing was stored
            logging.getLogger(f"engagebot.{self.channel.name}").info(
                "late request refused as a replay", extra={"channel": self.channel.name})
            return
        if not result.duplicate and result.exchange.pending_ids:
            await self.channel.outbox.deliver(result.exchange.pending_ids)
            # Under the request's id (this task was started by it): the end of a late reply's story.
            logging.getLogger(f"engagebot.{self.channel.name}").info(
                "late replies handed to the send API",
                extra={"channel": self.channel.name, "rows": len(result.exchange.pending_ids)})


async def _done_by(task: asyncio.Task[Any], deadline: float) -> bool:
    """Wait until ``task`` is done or the loop's clock reaches ``deadline``; whether it is done.

    What ``asyncio.wait({task}, timeout=...)`` does, without its per-call set and coroutine checks
    (about 5% of a WeChat message's CPU): one future, one done callback, one timer.
    """
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not woken.done():
            woken.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_at(deadline, wake)
    try:
        await woken
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()
