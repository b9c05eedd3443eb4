"""Batches of concurrent requests: what queues up while one batch runs becomes the next batch.

Under load, a database round trip costs about the same for one row as for a hundred; callers wait
on their own future and never see the batching.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bot.logs import REQUEST_ID
from bot.metrics import BATCH_REQUESTS, BATCH_SECONDS, histogram

T = TypeVar("T")
R = TypeVar("R")

RunBatch = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]
Isolate = Callable[[BaseException], bool]


class Batcher(Generic[T, R]):
    """Feed requests to ``run_batch`` in batches of at most ``max_batch``, from one task.

    ``run_batch`` returns one result (or exception) per request, in order; if it raises, every
    request of that batch gets the exception and the batcher goes on with the next. When
    ``isolate`` says the exception may come from one request (a row the database refuses, not an
    unreachable database), the batch is run again in halves until the culprit is alone: the
    others go through and only the culprit's caller hears of the failure.
    """

    def __init__(self, run_batch: RunBatch[T, R], *, max_batch: int = 256, name: str = "batcher",
                 isolate: Isolate | None = None) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.name = name
        self._isolate = isolate
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._in_flight: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.done = 0

    async def submit(self, item: T) -> R:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=self.name)
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        return await future

    async def close(self, *, timeout: float = 30.0) -> None:
        """Finish what is queued and the batch in flight, then stop the task."""
        if self._task is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while (self._queue or self._in_flight) and not self._task.done() and loop.time() < deadline:
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        REQUEST_ID.set(None)  # started by some request, it serves them all: its lines are no one request's
        try:
            await self._serve()
        finally:
            # Stopped (or crashed): nobody may wait forever on a batch that will not run.
            for _item, future in [*self._in_flight, *self._queue]:
                if not future.done():
                    future.set_exception(RuntimeError(f"{self.name} stopped before this request ran"))
            self._in_flight, self._queue = [], []

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
                self._in_flight = batch
                started = time.perf_counter()
                results = await self._run_split([item for item, _ in batch])
                histogram(BATCH_SECONDS, self.name).observe(time.perf_counter() - started)
                histogram(BATCH_REQUESTS, self.name).observe(len(batch))
                self.batches += 1
                self.done += len(batch)
                self._in_flight = []
                for (_item, future), result in zip(batch, results):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)

    async def _run_split(self, items: list[T]) -> Sequence[R | BaseException]:
        """Run ``items``; on an error one of them may cause, run each half again (log2(n) extra rounds)."""
        try:
            return await self._run_batch(items)
        except Exception as exc:
            if len(items) == 1 or self._isolate is None or not self._isolate(exc):
                return [exc] * len(items)
        middle = len(items) // 2
        return [*await self._run_split(items[:middle]), *await self._run_split(items[middle:])]
