"""Batches of concurrent requests: what queues up while one batch runs becomes the next batch.

Under load, a database round trip costs about the same for one row as for a hundred; callers wait
on their own future and never see the batching.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bot.logs import REQUEST_ID
from bot.metrics import BATCH_REQUESTS, BATCH_SECONDS, histogram

T = TypeVar("T")
R = TypeVar("R")

RunBatch = Callable[[list[T]], Awaitable[Sequence["R | BaseException"]]]
# Runs the batch that ``take()`` cuts when called: once, where and when the runner is ready to write it.
RunLate = Callable[[Callable[[], list[T]]], Awaitable[Sequence["R | BaseException"]]]
Isolate = Callable[[BaseException], bool]


class Batcher(Generic[T, R]):
    """Feed requests to ``run_batch`` in batches of at most ``max_batch``, from one task.

    ``run_batch`` returns one result (or exception) per request, in order; if it raises, every
    request of that batch gets the exception and the batcher goes on with the next. When
    ``isolate`` says the exception may come from one request (a row the database refuses, not an
    unreachable database), the batch is run again in halves until the culprit is alone: the
    others go through and only the culprit's caller hears of the failure.

    ``run_late``: the batch is cut by the runner, not here. It gets a ``take()`` to call once, where
    the batch is about to be written (in the runner's thread, after the write gate and the other
    processes' writers gave it its turn), so the requests that arrived while it waited for those join
    it: fewer, bigger batches, one commit each. ``take()`` may be called from another thread: it and
    the batcher's stop take from the queue under one lock, and a ``take()`` that comes after its batcher
    task stopped takes nothing (its callers heard already). Retries after an error use ``run_batch`` on
    the requests that were taken.
    """

    def __init__(self, run_batch: RunBatch[T, R], *, max_batch: int = 256, name: str = "batcher",
                 isolate: Isolate | None = None, run_late: RunLate[T, R] | None = None) -> None:
        self._run_batch = run_batch
        self._run_late = run_late
        self.max_batch = max_batch
        self.name = name
        self._isolate = isolate
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._in_flight: list[tuple[T, asyncio.Future[R]]] = []
        # Taking from the queue (possibly in a runner's thread) and the stop's emptying of it are one at a
        # time; each stop starts a new generation, and a take() of an older one takes nothing.
        self._cut_lock = threading.Lock()
        self._generation = 0
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
            # Stopped (or crashed): nobody may wait forever on a batch whose result will not come back.
            with self._cut_lock:
                self._generation += 1
                pending = [*self._in_flight, *self._queue]
                self._in_flight, self._queue = [], deque()
            for _item, future in pending:
                if not future.done():
                    # A batch in flight may have been written meanwhile: "not known", not "not stored".
                    future.set_exception(RuntimeError(f"{self.name} stopped before this request's result was known"))

    async def _serve(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                started = time.perf_counter()
                batch, results = await (self._cut_now() if self._run_late is None else self._cut_late())
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

    def _take(self, generation: int) -> list[tuple[T, asyncio.Future[R]]]:
        """Up to ``max_batch`` requests from the head of the queue, as the batch in flight; none for a
        batcher task that stopped since (``generation``).

        Each is in the batch before it leaves the queue: ``close()``, in the event loop while this runs in a
        runner's thread, never sees a request in neither.
        """
        with self._cut_lock:
            if generation != self._generation:
                return []
            batch = self._in_flight = []
            while self._queue and len(batch) < self.max_batch:
                batch.append(self._queue[0])  # in the batch before it leaves the queue (close() reads both unlocked)
                self._queue.popleft()
            return batch

    async def _cut_now(self) -> tuple[list[tuple[T, asyncio.Future[R]]], Sequence[R | BaseException]]:
        batch = self._take(self._generation)
        return batch, await self._run_split([item for item, _ in batch])

    async def _cut_late(self) -> tuple[list[tuple[T, asyncio.Future[R]]], Sequence[R | BaseException]]:
        assert self._run_late is not None
        generation = self._generation
        taken: list[list[tuple[T, asyncio.Future[R]]]] = []

        def take() -> list[T]:
            if not taken:  # once: a second call gets the same batch
                taken.append(self._take(generation))
            return [item for item, _ in taken[0]]

        try:
            results = await self._run_late(take)
        except Exception as exc:
            items = take()  # failed before its cut (the gate, the connection): the batch is cut here
            if len(items) == 1 or self._isolate is None or not self._isolate(exc):
                return taken[0], [exc] * len(items)
            middle = len(items) // 2
            return taken[0], [*await self._run_split(items[:middle]), *await self._run_split(items[middle:])]
        if not taken:  # a runner's bug: its requests hear of it, and the batcher goes on
            batch = self._take(generation)
            return batch, [RuntimeError(f"{self.name}: the batch runner returned without taking its batch")] * len(batch)
        return taken[0], results

    async def _run_split(self, items: list[T]) -> Sequence[R | BaseException]:
        """Run ``items``; on an error one of them may cause, run each half again (log2(n) extra rounds)."""
        try:
            return await self._run_batch(items)
        except Exception as exc:
            if len(items) == 1 or self._isolate is None or not self._isolate(exc):
                return [exc] * len(items)
        middle = len(items) // 2
        return [*await self._run_split(items[:middle]), *await self._run_split(items[middle:])]
