"""A request the database refuses fails alone: the batch it came with is split until it is isolated."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot import Kind
from bot.storage.batching import Batcher
from bot.storage.engine import is_row_error
from bot.storage.models import Follower, Message
from bot.testing import BotHarness
from handlers import default_router


async def test_a_follower_row_the_database_refuses_fails_alone_in_the_reader_batch(database_url: str) -> None:
    """A first contact whose id no database stores (a lone surrogate) must not fail the others' lookups."""
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        ids = [f"fan-{i}" for i in range(60)]
        ids[17] = "fan-\ud800-unstorable"
        results = await asyncio.gather(*(bot.channel.receive(fan, Kind.TEXT, "hello", message_id=f"m-{n}")
                                         for n, fan in enumerate(ids)), return_exceptions=True)
        failed = [n for n, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [17]
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Follower)) == 59
            assert await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 59


async def test_the_batcher_splits_until_the_culprits_are_alone() -> None:
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(items)
        if 13 in items or 40 in items:
            raise ValueError("a value the database refuses")
        return [i * 2 for i in items]

    batcher: Batcher[int, int] = Batcher(run, max_batch=64, isolate=is_row_error)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(64)), return_exceptions=True)
    await batcher.close()
    assert [i for i, r in enumerate(results) if isinstance(r, ValueError)] == [13, 40]
    assert [r for i, r in enumerate(results) if i not in (13, 40)] == [i * 2 for i in range(64) if i not in (13, 40)]
    assert len(runs) <= 2 * 2 * 6 + 1  # about log2(64) rounds per culprit, not one run per request


async def test_an_unreachable_database_is_not_split_request_by_request() -> None:
    runs: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        runs.append(items)
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    batcher: Batcher[int, int] = Batcher(run, max_batch=64, isolate=is_row_error)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(64)), return_exceptions=True)
    await batcher.close()
    assert all(isinstance(r, OperationalError) for r in results)
    assert len(runs) <= 2  # whatever queued while the first batch ran, never 64 tries


@pytest.mark.parametrize(("exc", "row"), [
    (ValueError("x"), True), (OverflowError("x"), True), (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "x"), True),
    (OperationalError("s", {}, OSError("gone")), False), (ConnectionRefusedError(), False),
    (TimeoutError(), False),
])
def test_row_errors_are_told_from_an_unreachable_database(exc: BaseException, row: bool) -> None:
    assert is_row_error(exc) is row
