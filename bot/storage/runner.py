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
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.metrics import BATCH_PHASE_SECONDS, BATCH_THREAD_CPU_SECONDS, WRITE_GATE_WAIT_SECONDS, counter, histogram

from .engine import sqlite_file_twin, sqlite_gate

R = TypeVar("R")

log = logging.getLogger("engagebot.storage")

# How long a batch writer waits for its turn among the processes (SQLite's busy timeout, 10 s).
WRITERS_LOCK_WAIT = 10.0


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
        self._no_writers_lock = False  # it could not be opened: not tried again
        self._stuck_waiter: threading.Thread | None = None  # a turn waited for past the bound, still queued

    async def run(self, fn: Callable[[Connection], R]) -> R:
        if self._thread is None:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        gate = sqlite_gate(self.engine) if self.writes else None
        if gate is None:
            return await self._in_thread(fn)
        waiting = time.perf_counter()
        async with gate.lock:
            histogram(WRITE_GATE_WAIT_SECONDS, self.name).observe(time.perf_counter() - waiting)
            return await self._in_thread(fn)

    async def _in_thread(self, fn: Callable[[Connection], R]) -> R:
        """Run ``fn`` in the runner's thread; observe the phases of the hop (``BATCH_PHASE_SECONDS``)."""
        handed = time.perf_counter()
        result, stamps = await asyncio.get_running_loop().run_in_executor(self._thread, self._call, fn)
        resumed = time.perf_counter()
        started, turn, ended = stamps
        # The phases add up to the hop's whole time; a batch that raised is observed by none.
        histogram(BATCH_PHASE_SECONDS, self.name, "to thread").observe(started - handed)
        if self.writes:
            histogram(BATCH_PHASE_SECONDS, self.name, "writers' turn").observe(turn)
        histogram(BATCH_PHASE_SECONDS, self.name, "in thread").observe(ended - started - turn)
        histogram(BATCH_PHASE_SECONDS, self.name, "to loop").observe(resumed - ended)
        return result

    def _call(self, fn: Callable[[Connection], R]) -> tuple[R, tuple[float, float, float]]:
        """:meth:`_run`, with the CPU this thread used for it counted (``BATCH_THREAD_CPU_SECONDS``), failed or not."""
        cpu_started = time.thread_time()
        try:
            return self._run(fn)
        finally:
            counter(BATCH_THREAD_CPU_SECONDS, self.name).inc(time.thread_time() - cpu_started)

    def _run(self, fn: Callable[[Connection], R]) -> tuple[R, tuple[float, float, float]]:
        """``fn``'s result, and when (``time.perf_counter``, the same clock in every thread) this thread
        started and ended, and how long of that it waited for the writers' turn (only that: a connection
        opened meanwhile is time in the thread, not another process's doing)."""
        started = time.perf_counter()
        assert self._twin is not None
        if self._conn is None:
            self._conn = self._twin.connect()
        waiting = time.perf_counter()
        locked = self._lock_writers() if self.writes else None
        turn = time.perf_counter() - waiting
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
        return result, (started, turn, time.perf_counter())

    def _lock_writers(self) -> int | None:
        """Wait (in this thread, the GIL released) for the other processes' batch writers of this file.

        SQLite's own wait for its write lock is a busy handler that sleeps in growing steps (1, 2, 5
        ... 100 ms); worker processes taking turns at every commit lost most of their time in those
        sleeps. Polling the lock every 0.2 to 1 ms instead woke this thread (and took the GIL from the
        event loop) several times per turn; so the wait blocks in ``flock`` (:meth:`_wait_for_turn`),
        and the turn is taken the moment it is given back. Past SQLite's busy timeout (a holder
        stopped, not dead: a dead one's lock is gone with it) the batch goes on without its turn, and
        SQLite's lock decides as before; so it does when the lock file cannot be used. Writers that do
        not take it (a handler's session) meet SQLite's lock and its busy timeout.
        """
        lock = self._open_writers_lock()
        if lock is None:
            return None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return lock
        except BlockingIOError:
            pass
        except OSError as exc:  # ENOLCK on a network file system...
            self._lock_unusable(exc)
            return None
        if self._stuck_waiter is not None and self._stuck_waiter.is_alive():
            return None  # still queued behind a holder that kept the turn past the bound: SQLite decides
        return self._wait_for_turn(lock)

    def _wait_for_turn(self, lock: int) -> int | None:
        """Block in ``flock`` in a thread of its own (in the kernel, no GIL, no polling), so that this
        one can stop waiting after ``WRITERS_LOCK_WAIT``; a turn that comes after that is given back."""
        given = threading.Event()
        decided = threading.Lock()
        abandoned = False
        # Its own descriptor of the same open file (the lock belongs to that): the runner may close
        # ``lock`` while an abandoned waiter still waits, and the number could then name another file.
        mine = os.dup(lock)

        def wait() -> None:
            try:
                fcntl.flock(mine, fcntl.LOCK_EX)
                with decided:
                    if abandoned:
                        fcntl.flock(mine, fcntl.LOCK_UN)
                    else:
                        given.set()
            except OSError:
                pass  # given.wait() times out and the batch goes on without its turn, as for a stuck holder
            finally:
                os.close(mine)  # the turn, if taken, stays with the open file: ``lock`` gives it back

        waiter = threading.Thread(target=wait, name=f"{self.name}-turn", daemon=True)
        waiter.start()
        if given.wait(WRITERS_LOCK_WAIT):
            return lock
        with decided:
            if given.is_set():
                return lock
            abandoned = True
        self._stuck_waiter = waiter
        log.warning("another process has held the SQLite writers' turn for %g s; this batch "
                    "goes on without it", WRITERS_LOCK_WAIT, extra={"writer": self.name})
        return None

    def _open_writers_lock(self) -> int | None:
        """The lock file's descriptor, opened once; created with the database file's mode (and, for
        root, its owner), as SQLite creates its -wal and -shm, so any user who may write the database
        may take the turn. None (with one warning) when it cannot be opened."""
        if self._writers_lock is not None or self._no_writers_lock:
            return self._writers_lock
        assert self._twin is not None
        database = str(self._twin.url.database)
        try:
            mode = os.stat(database)
            lock = os.open(writers_lock_path(database), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode.st_mode & 0o666)
        except OSError as exc:
            self._lock_unusable(exc)
            return None
        with contextlib.suppress(OSError):  # not ours to change: it was made by its owner already
            os.fchmod(lock, mode.st_mode & 0o666)
            if os.geteuid() == 0:
                os.fchown(lock, mode.st_uid, mode.st_gid)
        self._writers_lock = lock
        return lock

    def _lock_unusable(self, exc: OSError) -> None:
        self._no_writers_lock = True
        log.warning("the SQLite writers' lock file cannot be used (%s); the batch writers of several processes "
                    "meet in SQLite's busy handler instead", exc.strerror or exc, extra={"writer": self.name})

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
