"""Per-chat work queues: a chat's updates are handled in order, different chats side by side."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from bot.logs import REQUEST_ID, new_request_id

log = logging.getLogger("engagebot.telegram")


class ChatQueues:
    """One worker per busy chat: items of a chat run in order, chats run side by side."""

    def __init__(self, handle: Callable[[Any], Awaitable[None]]) -> None:
        self._handle = handle
        self._queues: dict[str, deque[Any]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    def submit(self, key: str, item: Any) -> None:
        # Each update is logged under its own request id: the webhook request's, or a new one (polling).
        self._queues.setdefault(key, deque()).append((item, REQUEST_ID.get() or new_request_id()))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key), name=f"telegram-chat-{hash(key) & 0xffff:x}")

    async def _work(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item, request_id = queue.popleft()
                REQUEST_ID.set(request_id)
                try:
                    await self._handle(item)
                except asyncio.CancelledError:
                    raise
                except Exception:  # one bad message must not stop the chat's later ones
                    log.exception("telegram update failed")
        finally:
            del self._workers[key]
            if not queue:
                del self._queues[key]

    @property
    def busy(self) -> int:
        return len(self._workers)

    async def drain(self, timeout: float) -> None:
        """Let queued items finish (up to ``timeout``), then cancel what is left."""
        workers = list(self._workers.values())
        if workers:
            _done, pending = await asyncio.wait(workers, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("telegram updates cancelled at stop", extra={"count": len(pending)})
                await asyncio.gather(*pending, return_exceptions=True)
