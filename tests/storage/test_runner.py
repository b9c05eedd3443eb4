"""BatchRunner: a batch's statements run together, in one hop, and a failed batch spoils nothing after it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from bot.storage.engine import create_engine, is_sqlite, sqlite_gate
from bot.storage.runner import BatchRunner


async def test_on_a_sqlite_file_every_batch_runs_off_the_loop_in_one_thread_of_its_own(database_url: str) -> None:
    engine = create_engine(database_url)
    if not is_sqlite(engine):
        pytest.skip("the thread is SQLite's; PostgreSQL runs the batch through run_sync")
    runner = BatchRunner(engine, name="test-runner", writes=False)
    try:
        threads = {await runner.run(lambda _conn: threading.get_ident()) for _ in range(3)}
        assert len(threads) == 1 and threading.get_ident() not in threads
    finally:
        await runner.close()
        await engine.dispose()


async def test_a_batch_that_fails_leaves_the_next_one_a_working_connection(database_url: str) -> None:
    engine = create_engine(database_url)
    runner = BatchRunner(engine, name="test-runner", writes=True)

    def create(conn: Connection) -> None:
        with conn.begin():
            conn.execute(text("CREATE TABLE runner_probe (v TEXT NOT NULL)"))

    def drop(conn: Connection) -> None:
        with conn.begin():
            conn.execute(text("DROP TABLE IF EXISTS runner_probe"))

    def insert(value: str | None) -> object:
        def run(conn: Connection) -> object:
            with conn.begin():
                conn.execute(text("INSERT INTO runner_probe (v) VALUES (:v)"), {"v": value})
            return conn.execute(text("SELECT count(*) FROM runner_probe")).scalar_one()
        return run

    try:
        await runner.run(create)
        assert await runner.run(insert("first")) == 1
        with pytest.raises(Exception, match="(?i)not null|null value"):
            await runner.run(insert(None))  # refused, and rolled back
        assert await runner.run(insert("second")) == 2
    finally:
        await runner.run(drop)
        await runner.close()
        await engine.dispose()


async def test_a_writing_batch_waits_for_the_sqlite_write_gate(database_url: str) -> None:
    engine = create_engine(database_url)
    gate = sqlite_gate(engine)
    if gate is None:
        pytest.skip("PostgreSQL has no write gate")
    runner = BatchRunner(engine, name="test-runner", writes=True)
    try:
        await gate.lock.acquire()
        batch = asyncio.create_task(runner.run(lambda _conn: "ran"))
        await asyncio.sleep(0.05)
        assert not batch.done()  # held back while someone else writes
        gate.lock.release()
        assert await batch == "ran"
    finally:
        await runner.close()
        await engine.dispose()


async def test_a_writing_batch_waits_for_the_batch_writers_of_other_processes(database_url: str) -> None:
    """On a SQLite file the batch writers of every process take turns through a lock file beside it,
    which wakes the next one at once, instead of meeting in SQLite's sleeping busy handler."""
    import fcntl
    import multiprocessing

    from bot.storage.runner import writers_lock_path

    engine = create_engine(database_url)
    if sqlite_gate(engine) is None:
        pytest.skip("PostgreSQL queues its writers itself")
    runner = BatchRunner(engine, name="test-runner", writes=True)
    reader = BatchRunner(engine, name="test-reader", writes=False)
    path = writers_lock_path(str(engine.url.database))
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    other = context.Process(target=_hold_lock, args=(path, held, release))
    other.start()
    try:
        assert held.wait(30)
        batch = asyncio.create_task(runner.run(lambda _conn: "wrote"))
        assert await reader.run(lambda _conn: "read") == "read"  # readers take no turn
        await asyncio.sleep(0.1)
        assert not batch.done()  # held back while another process's writer holds the turn
        release.set()
        assert await asyncio.wait_for(batch, 10) == "wrote"
        with open(path, "rb") as probe:  # and the turn is given back after the batch
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        release.set()
        other.join(10)
        await runner.close()
        await reader.close()
        await engine.dispose()


def _hold_lock(path: str, held: object, release: object) -> None:
    import fcntl

    with open(path, "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.set()  # type: ignore[attr-defined]
        release.wait(30)  # type: ignore[attr-defined]



async def test_a_writer_turn_held_too_long_or_unusable_lets_the_batch_go_on_with_a_warning(
        database_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A holder that is stopped (not dead) must not stall every writer forever: past the bound the
    batch goes on and SQLite's own lock decides, as it does when the lock file cannot be opened."""
    import fcntl
    import os
    import stat

    from bot.storage import runner as runner_module
    from bot.storage.runner import writers_lock_path

    engine = create_engine(database_url)
    if sqlite_gate(engine) is None:
        pytest.skip("PostgreSQL queues its writers itself")
    database = str(engine.url.database)
    monkeypatch.setattr(runner_module, "WRITERS_LOCK_WAIT", 0.3)
    os.chmod(database, 0o640)
    runner = BatchRunner(engine, name="test-runner", writes=True)
    try:
        assert await runner.run(lambda _conn: "first") == "first"
        # Created with the database file's mode, as SQLite creates its -wal.
        assert stat.S_IMODE(os.stat(writers_lock_path(database)).st_mode) == 0o640
        with open(writers_lock_path(database), "rb") as holder:
            fcntl.flock(holder, fcntl.LOCK_EX)  # held, and never given back meanwhile
            with caplog.at_level("WARNING", logger="engagebot.storage"):
                assert await asyncio.wait_for(runner.run(lambda _conn: "went on"), 10) == "went on"
                # Its wait is still queued behind the holder: the next batch does not queue (nor warn) again.
                assert await asyncio.wait_for(runner.run(lambda _conn: "again"), 10) == "again"
        assert caplog.text.count("held the SQLite writers' turn") == 1
        # The holder gave the turn back: the abandoned wait takes it and gives it back at once.
        stuck = runner._stuck_waiter
        assert stuck is not None
        await asyncio.to_thread(stuck.join, 10)
        assert not stuck.is_alive()
        with open(writers_lock_path(database), "rb") as probe:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(probe, fcntl.LOCK_UN)
        assert await runner.run(lambda _conn: "turn again") == "turn again"
    finally:
        await runner.close()
    os.unlink(writers_lock_path(database))
    os.mkdir(writers_lock_path(database))  # a lock file that cannot be opened
    caplog.clear()
    other = BatchRunner(engine, name="test-runner", writes=True)
    try:
        with caplog.at_level("WARNING", logger="engagebot.storage"):
            assert [await other.run(lambda _conn, n=n: n) for n in range(3)] == [0, 1, 2]
        assert caplog.text.count("lock file cannot be used") == 1  # said once, not per batch
    finally:
        await other.close()
        os.rmdir(writers_lock_path(database))
        await engine.dispose()


async def test_a_batchs_phases_add_up_and_opening_its_connection_is_not_the_writers_turn(tmp_path: Path) -> None:
    """``writers' turn`` is the wait for the other processes' writers only: a slow open of the runner's
    connection (its first batch, or the one after a failed batch) is time in the thread."""
    import time

    from prometheus_client import REGISTRY
    from sqlalchemy import text

    from bot.storage.engine import create_engine
    from bot.storage.runner import BatchRunner

    def phase(name: str) -> float:
        return REGISTRY.get_sample_value("engagebot_batch_phase_seconds_sum",
                                         {"batcher": "phases-writer", "phase": name}) or 0.0

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'phases.db'}")
    runner = BatchRunner(engine, name="phases-writer", writes=True)
    assert runner._twin is not None
    connect = runner._twin.connect

    def slow_connect():  # type: ignore[no-untyped-def]
        time.sleep(0.2)
        return connect()

    runner._twin.connect = slow_connect  # type: ignore[method-assign]
    phases = ("to thread", "writers' turn", "in thread", "to loop")
    before = {name: phase(name) for name in phases}
    started = time.perf_counter()
    try:
        assert await runner.run(lambda conn: conn.execute(text("select 1")).scalar()) == 1
        whole = time.perf_counter() - started
        spent = {name: phase(name) - before[name] for name in phases}
        assert spent["writers' turn"] < 0.1  # one process: nobody to take turns with
        assert spent["in thread"] >= 0.2  # the slow open is the thread's own time
        assert 0.2 <= sum(spent.values()) <= whole + 0.001  # the phases add up to the hop, no more
    finally:
        await runner.close()
        await engine.dispose()
