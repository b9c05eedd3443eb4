"""A batch cut by its runner when it is about to be written: what arrived while it waited joins it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.core.clock import utcnow
from bot.storage.batching import Batcher
from bot.storage.engine import create_engine, is_row_error, sqlite_gate
from bot.storage.migrate import upgrade
from bot.storage.models import SeenRequest
from bot.storage.replay import Seen
from bot.storage.writer import GroupWriter


class HeldRunner:
    """A ``run_late`` that waits (in a thread, as the SQLite runner does) until released, then cuts."""

    def __init__(self, *, fail: Callable[[list[int]], None] | None = None, take: bool = True) -> None:
        self.entered = asyncio.Event()
        self.release = threading.Event()
        self.cuts: list[list[int]] = []
        self.fail = fail
        self.take = take

    async def __call__(self, take: Callable[[], list[int]]) -> list[int]:
        self.entered.set()

        def in_thread() -> list[int]:
            self.release.wait(5)
            if not self.take:
                return []
            items = take()
            self.cuts.append(items)
            if self.fail is not None:
                self.fail(items)
            return [i * 10 for i in items]

        return await asyncio.to_thread(in_thread)


async def fixed(items: list[int]) -> list[int]:
    """The retries' runner (halves of a batch that failed): cut in the loop, as before."""
    if 13 in items:
        raise ValueError("a value the database refuses")
    return [i * 10 for i in items]


async def test_requests_that_arrive_while_a_batch_waits_join_it() -> None:
    runner = HeldRunner()
    batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, name="late")
    first = asyncio.create_task(batcher.submit(1))
    await runner.entered.wait()  # the batch is with its runner, not cut yet
    later = [asyncio.create_task(batcher.submit(i)) for i in range(2, 7)]
    await asyncio.sleep(0.01)
    runner.release.set()
    assert await asyncio.gather(first, *later) == [10, 20, 30, 40, 50, 60]
    assert runner.cuts == [[1, 2, 3, 4, 5, 6]] and batcher.batches == 1
    await batcher.close()


async def test_a_late_cut_takes_no_more_than_max_batch_and_the_rest_goes_next() -> None:
    runner = HeldRunner()
    batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, max_batch=4, name="late")
    sent = [asyncio.create_task(batcher.submit(i)) for i in range(10)]
    await runner.entered.wait()
    runner.release.set()
    assert await asyncio.gather(*sent) == [i * 10 for i in range(10)]
    assert runner.cuts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    await batcher.close()


async def test_a_late_batch_that_fails_on_one_row_is_split_and_only_its_culprit_fails() -> None:
    def refuse(items: list[int]) -> None:
        if 13 in items:
            raise ValueError("a value the database refuses")

    runner = HeldRunner(fail=refuse)
    batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, isolate=lambda exc: isinstance(exc, ValueError),
                                         name="late")
    sent = [asyncio.create_task(batcher.submit(i)) for i in range(20)]
    await runner.entered.wait()
    runner.release.set()
    results = await asyncio.gather(*sent, return_exceptions=True)
    assert [i for i, r in enumerate(results) if isinstance(r, ValueError)] == [13]
    assert [r for i, r in enumerate(results) if i != 13] == [i * 10 for i in range(20) if i != 13]
    await batcher.close()


async def test_a_late_batch_that_fails_before_its_cut_fails_what_was_queued_and_the_batcher_goes_on() -> None:
    calls = 0

    async def unreachable(take: Callable[[], list[int]]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("the database is not answering")
        return [i * 10 for i in take()]

    batcher: Batcher[int, int] = Batcher(fixed, run_late=unreachable, isolate=is_row_error, name="late")
    results = await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ConnectionRefusedError) for r in results)
    assert await batcher.submit(7) == 70  # the next batch runs
    await batcher.close()


async def test_a_runner_that_never_cuts_its_batch_fails_its_requests_rather_than_leaving_them_waiting() -> None:
    runner = HeldRunner(take=False)
    runner.release.set()
    batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, name="late")
    with pytest.raises(RuntimeError, match="without taking its batch"):
        await asyncio.wait_for(batcher.submit(1), 5)
    runner.take = True
    assert await asyncio.wait_for(batcher.submit(2), 5) == 20  # the same batcher serves the next
    await batcher.close()


async def test_closing_waits_for_a_batch_its_runner_has_not_cut_yet() -> None:
    runner = HeldRunner()
    batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, name="late")
    sent = asyncio.create_task(batcher.submit(3))
    await runner.entered.wait()
    closing = asyncio.create_task(batcher.close(timeout=5))
    await asyncio.sleep(0.05)
    assert not closing.done()  # the request is in neither the queue nor a cut batch: the batch is running
    runner.release.set()
    await closing
    assert await sent == 30


async def test_the_group_writer_cuts_its_batch_once_the_sqlite_write_gate_is_its(tmp_path: Path) -> None:
    """What queues while the writer waits for the gate (a handler's transaction holds it) is written in
    the same transaction: one commit, not one for the request that came first and one for the rest."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'late.db'}")
    await upgrade(engine)
    writer = GroupWriter(engine)
    gate = sqlite_gate(engine)
    assert gate is not None
    expires = utcnow() + timedelta(minutes=5)

    def seen(n: int) -> Seen:
        return Seen(scope="wechat", key=f"sig-{n}", body_hash=f"body-{n}", expires_at=expires)

    try:
        async with gate.lock:  # another writer of this process holds the database
            first = asyncio.create_task(writer.admit(seen(0)))
            await asyncio.sleep(0.05)  # the writer's batch waits for the gate
            later = [asyncio.create_task(writer.admit(seen(n))) for n in range(1, 8)]
            await asyncio.sleep(0.05)
        assert await asyncio.gather(first, *later) == [True] * 8
        assert writer._batcher.batches == 1
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(SeenRequest)) == 8
    finally:
        writer.users = 1
        await writer.close()
        await engine.dispose()


async def test_a_batch_cut_while_its_batcher_stops_is_answered_and_a_cut_after_takes_nothing() -> None:
    """Stopping (close() past its timeout, the loop shutting down) while the runner's thread is about to
    cut: whoever was queued hears of it; a take() of the stopped task cuts nothing (it would write
    requests whose callers were answered already, or steal the next task's)."""
    release = threading.Event()
    cuts: list[list[int]] = []
    finished = threading.Semaphore(0)  # one release per runner thread done: the stopped task's has no awaiter

    async def runner(take: Callable[[], list[int]]) -> list[int]:
        def in_thread() -> list[int]:
            try:
                release.wait(5)
                items = take()
                cuts.append(items)
                return [i * 10 for i in items]
            finally:
                finished.release()

        return await asyncio.to_thread(in_thread)

    batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, name="late")
    sent = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0.05)  # the batch is in the runner's thread, not cut
    await batcher.close(timeout=0.05)  # past its timeout: the batcher task is cancelled
    with pytest.raises(RuntimeError, match="stopped before this request's result was known"):
        await asyncio.wait_for(sent, 2)
    after = asyncio.create_task(batcher.submit(2))  # a new batcher task; its batch waits for the same thread
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.wait_for(after, 5) == 20
    # Both threads done (the stopped task's thread may finish after the new one's under load), then their cuts:
    assert await asyncio.to_thread(lambda: finished.acquire(timeout=5) and finished.acquire(timeout=5))
    assert sorted(cuts) == [[], [2]]  # the stopped task's take() cut nothing; the new one's cut its own request
    await batcher.close()


async def test_a_stop_and_a_cut_in_the_runners_thread_never_lose_a_request_between_them() -> None:
    """Many stops racing many cuts (a thread switch every microsecond): every caller hears, none waits."""
    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(200):
            go = threading.Event()

            async def runner(take: Callable[[], list[int]], go: threading.Event = go) -> list[int]:
                def in_thread() -> list[int]:
                    go.wait(5)
                    return [i * 10 for i in take()]

                return await asyncio.to_thread(in_thread)

            batcher: Batcher[int, int] = Batcher(fixed, run_late=runner, name="late")
            sent = [asyncio.create_task(batcher.submit(i)) for i in range(20)]
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            task = batcher._task
            assert task is not None
            go.set()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            done, waiting = await asyncio.wait(sent, timeout=2)
            assert not waiting
            for result in done:
                assert result.exception() is None or isinstance(result.exception(), RuntimeError)
    finally:
        sys.setswitchinterval(old)
