"""Group commit for claims made outside a message (admin API, bulk grants, the bench).

On SQLite every write transaction is serialized and each commit is a sync to disk, so one
transaction per claim caps claims per second at the disk's commit rate. A :class:`ClaimBatcher`
gathers the claims that arrive while a transaction is running and makes them in the next one,
each with the same :func:`claim` (the database still enforces quota, limits and codes: several
batchers in several processes stay correct), then commits once for all of them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .claims import ClaimResult, claim
from .models import Promotion


@dataclass(slots=True)
class _Request:
    promotion: Promotion
    follower: Any
    options: dict[str, Any]
    future: asyncio.Future[ClaimResult] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class ClaimBatcher:
    """``await batcher.claim(promotion, follower)`` from many tasks; one transaction per batch."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_batch: int = 256) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        self._queue: list[_Request] = []
        self._worker: asyncio.Task[None] | None = None

    async def claim(self, promotion: Promotion, follower: Any, **options: Any) -> ClaimResult:
        request = _Request(promotion, follower, options)
        self._queue.append(request)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="claim-batcher")
        return await request.future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            try:
                results = await self._run(batch)
            except Exception:
                # Something unexpected failed the shared transaction: retry each alone, so one
                # bad request cannot fail the others.
                for request in batch:
                    try:
                        result = (await self._run([request]))[0]
                    except Exception as exc:
                        if not request.future.done():
                            request.future.set_exception(exc)
                    else:
                        if not request.future.done():
                            request.future.set_result(result)
                continue
            for request, result in zip(batch, results):
                if not request.future.done():
                    request.future.set_result(result)

    async def _run(self, batch: list[_Request]) -> list[ClaimResult]:
        async with self.sessions() as session:
            results = [await claim(session, r.promotion, r.follower, **r.options) for r in batch]
            await session.commit()
        return results
