"""The passive-reply deadline, shared by the channels whose platform reads the reply from its own
HTTP request (WeChat, Weibo): answer inline when the handler is done in time, else answer the request
empty and send the replies through the platform's API (the outbox) once they are stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from bot.core.dispatcher import Dispatched, LanguageLookup, PassiveSlot, follower_hash, message_hash
from bot.core.inbound import Inbound
from bot.core.store import Exchange
from bot.delivery.outbox import OutboxSender


class InTimeChannel(Protocol):
    @property
    def name(self) -> str: ...

    outbox: OutboxSender

    async def dispatch(self, msg: Inbound, *, passive: PassiveSlot | None = None,
                       language_lookup: LanguageLookup | None = None) -> Dispatched: ...


async def dispatch_in_time(channel: InTimeChannel, msg: Inbound, deadline: float, *,
                           spawn: Callable[[Coroutine[Any, Any, Any]], None],
                           language_lookup: LanguageLookup | None = None) -> Exchange | None:
    """Dispatch ``msg``; past ``deadline`` (loop time) hand its replies to the send API and return None.

    ``spawn`` runs the later sends in the channel's own background tasks (awaited when it stops).
    """
    slot = PassiveSlot()
    task = asyncio.create_task(channel.dispatch(msg, passive=slot, language_lookup=language_lookup))
    remaining = max(deadline - asyncio.get_running_loop().time(), 0.0)
    done, _pending = await asyncio.wait({task}, timeout=remaining)
    if not done:
        if slot.give_up():
            logging.getLogger(f"engagebot.{channel.name}").info("passive deadline passed; replying through the API", extra={
                "channel": channel.name, "follower": follower_hash(msg), "message_id": message_hash(msg)})
            spawn(_deliver_when_done(channel.outbox, task))
            return None
        # The reply is being committed as passive right now: it is only milliseconds away.
    result = await asyncio.shield(task)
    if not result.duplicate and result.exchange.pending_ids:
        spawn(channel.outbox.deliver(result.exchange.pending_ids))
    return result.exchange


async def _deliver_when_done(outbox: OutboxSender, task: asyncio.Task[Dispatched]) -> None:
    result = await task
    if not result.duplicate and result.exchange.pending_ids:
        await outbox.deliver(result.exchange.pending_ids)
