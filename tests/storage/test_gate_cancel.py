"""A writer cancelled at any point gives SQLite's write gate back: later writers are not stuck behind it."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import update

from bot.core.clock import utcnow
from bot.storage.engine import create_engine, hold_write_gate, make_sessionmaker, sqlite_gate
from bot.storage.migrate import upgrade
from bot.storage.models import Lease
from tests.support.db import backend

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="the write gate is SQLite's")


async def test_writers_cancelled_mid_commit_leave_the_gate_free(database_url: str) -> None:
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
