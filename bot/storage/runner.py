"""One thread hop per batch: a batch's statements run together, as a synchronous function of a Connection.

Through aiosqlite every cursor call is a round trip to the connection's thread and back (a wake-up
of the event loop each); a batch of a few statements cost a dozen hops, and the hops, not SQLite,
were most of the hot path's CPU. On a SQLite file the batch runs instead in a thread of its own,
on a connection of the stdlib driver kept open there: one hop per batch. On PostgreSQL (asyncpg,
no threads) and on an in-memory SQLite database the same function runs through ``run_sync`` on the
async engine, so there is one body of SQL for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import WRITE_GATE_WAIT_SECONDS, histogram

from .engine import sqlite_file_twin, sqlite_gate

R = TypeVar("R")


class BatchRunner:
    """Run ``fn(connection)`` for a batch; ``writes``: on SQLite, hold the write gate meanwhile, and
    the file's writers' lock (:func:`writers_lock_path`) against the batch writers of other processes."""

    def __init__(self, engine: AsyncEngine, *, name: str, writes: bool) -> None:
        self.engine = engine
        self.name = name
        self.writes = writes
        self._twin: Engine | None = sqlite_file_twin(engine)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name) if self._twin is not None else None
        self._conn: Connection | None = None  # used and closed in the thread only
        self._writers_lock: int | None = None  # a file descriptor, opened in the thread on first use

    async def run(self, fn: Callable[[Connection], R]) -> R:
        if self._thread is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        gate = sqlite_gate(self.engine) if self.writes else None
        if gate is None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, fn)
        waiting = time.perf_counter()
        async with gate.lock:
            histogram(WRITE_GATE_WAIT_SECONDS, self.name).observe(time.perf_counter() - waiting)
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._call, fn)

    def _call(self, fn: Callable[[Connection], R]) -> R:
        assert self._twin is not None
        if self._conn is None:
            self._conn = self._twin.connect()
        locked = self._lock_writers() if self.writes else None
        try:
            result = fn(self._conn)
        except BaseException:
            # Whatever state the connection is in (a failed commit, a lost file), the next batch gets a new one.
            self._close()
            raise
        finally:
            if locked is not None:
                fcntl.flock(locked, fcntl.LOCK_UN)
        if self._conn.in_transaction():  # a read: end it, so the WAL is not pinned at an old snapshot
            self._conn.rollback()
        return result

    def _lock_writers(self) -> int:
        """Wait (in this thread, without the GIL) for the other processes' batch writers of this file.

        SQLite's own wait for its write lock is a busy handler that sleeps in growing steps (1, 2, 5
        ... 100 ms); worker processes taking turns at every commit lost most of their time in those
        sleeps. A blocking ``flock`` wakes the next writer the moment the lock is given back. Writers
        that do not take it (a handler's session) still meet SQLite's lock and its busy timeout.
        """
        assert self._twin is not None
        if self._writers_lock is None:
            self._writers_lock = os.open(writers_lock_path(str(self._twin.url.database)),
                                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._writers_lock, fcntl.LOCK_EX)
        return self._writers_lock

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _close_all(self) -> None:
        self._close()
        if self._writers_lock is not None:
            os.close(self._writers_lock)
            self._writers_lock = None

    async def close(self) -> None:
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_all)
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._twin is not None:
            self._twin.dispose()


def writers_lock_path(database: str) -> str:
    """The lock file the batch writers of a SQLite file take in turn (beside the file, as its -wal is)."""
    return f"{database}-writers.lock"
