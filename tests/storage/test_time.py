"""Storage owns time: every datetime column hands back an aware UTC datetime, on SQLite (which
stores naive values) and PostgreSQL alike, whatever the server's zone. Code above storage compares
and formats what it reads without converting it first."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from bot.storage.models import Follower
from bot.testing import BotHarness

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def server_in_shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's own zone is not UTC: nothing may depend on it."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("written", [
    NOW,
    datetime(2026, 5, 1, 20, 0, tzinfo=timezone(timedelta(hours=8))),  # the same moment seen from Beijing
    datetime(2026, 5, 1, 12, 0),  # naive: read as UTC
], ids=["utc", "beijing", "naive"])
async def test_a_stored_time_comes_back_aware_in_utc(harness: BotHarness, server_in_shanghai: None,
                                                     written: datetime) -> None:
    alice = harness.follower("alice")
    await alice.say("hi")
    async with harness.sessions() as session:
        await session.execute(update(Follower).values(followed_at=written))
        await session.commit()
    async with harness.sessions() as session:
        row = (await session.execute(select(Follower))).scalar_one()
        column = (await session.execute(select(Follower.followed_at))).scalar_one()
    for value in (row.followed_at, column):
        assert value == NOW
        assert value.utcoffset() == timedelta(0) and value.hour == 12
