"""A stop that cancels a task while its connection goes back to the pool logs one line, not an ERROR.

CI saw ``test_a_stop_at_any_moment_of_the_start_ends_it_cleanly`` fail on a traceback: a SIGTERM right
after the duties were taken cancelled one of them while its session was closing, and SQLAlchemy's pool
logged "Exception during reset or similar" at ERROR with the CancelledError's traceback (the pool then
closes the connection; nothing uncommitted survives that).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.logs import setup_logging


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("INFO", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _pool_reset_failed(exc: BaseException) -> None:
    """Log what SQLAlchemy's pool logs when a connection's reset on return raises (``_finalize_fairy``)."""
    try:
        raise exc
    except BaseException:
        logging.getLogger("sqlalchemy.pool.impl.AsyncAdaptedQueuePool").error(
            "Exception during reset or similar", exc_info=True)


def test_a_reset_cancelled_with_its_task_is_one_info_line(log_lines: io.StringIO) -> None:
    _pool_reset_failed(asyncio.CancelledError())
    record = json.loads(log_lines.getvalue())
    assert record["level"] == "INFO" and record["logger"].startswith("sqlalchemy.pool")
    assert "cancelled" in record["event"]
    assert "Traceback" not in log_lines.getvalue()


async def test_the_pool_logs_its_cancelled_reset_through_that_filter(
        tmp_path: Path, log_lines: io.StringIO) -> None:
    """The record the filter rewrites is the one this SQLAlchemy emits: its logger and exception, from a
    real pool whose reset on return is interrupted by a cancellation."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")

    def cancelled_reset(*_args: object, **_kwargs: object) -> None:
        raise asyncio.CancelledError

    async with engine.connect() as conn:
        await conn.execute(text("select 1"))
        await conn.commit()
        fairy = (await conn.get_raw_connection())
        setattr(fairy, "_reset", cancelled_reset)  # noqa: B010 (a private method of the pool's, replaced)
        with pytest.raises(asyncio.CancelledError):
            await conn.close()
    records = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [(r["logger"], r["level"]) for r in records] == [("sqlalchemy.pool.impl.AsyncAdaptedQueuePool", "INFO")], records
    assert "Traceback" not in log_lines.getvalue()
    await engine.dispose()


def test_other_pool_errors_keep_their_level_and_traceback(log_lines: io.StringIO) -> None:
    _pool_reset_failed(OSError("disk gone"))
    record = json.loads(log_lines.getvalue())
    assert record["level"] == "ERROR"
    assert "disk gone" in log_lines.getvalue() and "Traceback" in log_lines.getvalue()
