"""A writer cancelled at any point gives SQLite's write gate back: later writers are not stuck behind it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.storage.engine import SQLiteWriteGate, create_engine, hold_write_gate, make_sessionmaker, sqlite_gate
from bot.storage.migrate import upgrade
from bot.storage.models import Lease
from tests.support.db import backend

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="the write gate is SQLite's")


@dataclass
class GatedRig:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    gate: SQLiteWriteGate
    write: Callable[[], Awaitable[None]]  # one writer: takes the gate, bumps the lease row, commits


async def gated_lease_table(database_url: str) -> GatedRig:
    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    gate = sqlite_gate(engine)
    assert gate is not None
    async with sessions.begin() as session:
        session.add(Lease(name="n", holder="h", expires_at=utcnow(), generation=1))

    async def write() -> None:
        async with sessions() as session:
            await hold_write_gate(session)
            await session.execute(update(Lease).values(generation=Lease.generation + 1))
            await session.commit()

    return GatedRig(engine, sessions, gate, write)


async def test_writers_cancelled_mid_commit_leave_the_gate_free(database_url: str) -> None:
    rig = await gated_lease_table(database_url)
    engine, gate, write = rig.engine, rig.gate, rig.write
    rng = random.Random(7)
    try:
        for _ in range(300):
            task = asyncio.create_task(write())
            await asyncio.sleep(rng.random() * 0.003)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert not gate.lock.locked()
        await asyncio.wait_for(write(), 5)
    finally:
        await engine.dispose()


async def test_a_writer_cancelled_while_closing_still_rolls_back_before_the_gate_goes_back(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A stop cancels in waves: a cancel can land in a writer's close, during its rollback.

    Before, the pool then failed to reset the connection ("Exception during reset or similar") and
    the gate went back while the connection's transaction was still open, holding SQLite's write
    lock: the next writer waited in SQLite's busy handler (10 s) and a stop ran past its budget.
    Now the close runs to its end first: no failed reset, and the next writer is served at once.
    """
    rig = await gated_lease_table(database_url)
    engine, sessions, gate, write = rig.engine, rig.sessions, rig.gate, rig.write
    caplog.set_level(logging.ERROR, logger="sqlalchemy.pool")
    try:
        for i in range(120):
            session = sessions()
            await hold_write_gate(session)
            await session.execute(update(Lease).values(generation=Lease.generation + 1))
            closing = asyncio.create_task(session.close())
            for _ in range(1 + i % 7):  # cancelled at each step of the close in turn
                await asyncio.sleep(0)
            closing.cancel()
            await asyncio.gather(closing, return_exceptions=True)
            assert not gate.lock.locked()
            await asyncio.wait_for(write(), 5)
        assert not [r for r in caplog.records if "reset" in r.getMessage()]
    finally:
        await engine.dispose()


async def test_a_cancelled_close_that_never_finishes_is_waited_for_a_bounded_time_only() -> None:
    """A driver that never answers must not make a cancelled writer uncancellable for ever."""
    from bot.storage.engine import _outlast_cancels

    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiter = asyncio.create_task(_outlast_cancels(never, 0.3))
    for _ in range(3):  # cancels in waves do not end the wait early...
        await asyncio.sleep(0.05)
        waiter.cancel()
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(waiter, 5)  # ...and the bound ends it, without raising
    assert asyncio.get_running_loop().time() - started < 1
    never.set_exception(RuntimeError("late"))  # retrieved by the callback left on it: no warning at exit
    await asyncio.sleep(0)
