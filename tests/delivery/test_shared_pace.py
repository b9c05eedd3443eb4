"""Per-account pacing across instances on one PostgreSQL: two senders (two instances: an engine each)
send replies of one channel account at once; the platform counts at most the account's rate per second
across both. Skipped without ENGAGEBOT_TEST_DATABASE_URL (on SQLite the sweeps are one process's duty)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities
from bot.core.inbound import utcnow
from bot.delivery.outbox import LEASE, OutboxSender
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade
from bot.storage.models import Follower, Message
from tests.support.broadcast import RecordingChannel, add_followers
from tests.support.db import backend

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="the shared pace lives in PostgreSQL")

Sessions = async_sessionmaker[AsyncSession]
RATE = 10.0  # sends per second for the account, all instances together
REPLIES = 40


@pytest.fixture
async def two_instances(database_url: str) -> AsyncIterator[tuple[Sessions, Sessions]]:
    engines = [create_engine(database_url) for _ in range(2)]
    await upgrade(engines[0])
    yield make_sessionmaker(engines[0]), make_sessionmaker(engines[1])
    for engine in engines:
        await engine.dispose()


async def test_two_instances_together_keep_to_the_accounts_rate(two_instances: tuple[Sessions, Sessions]) -> None:
    first, second = two_instances
    await add_followers(first, REPLIES)
    ids = await _replies_waiting(first)
    caps = Capabilities(max_sends_per_second=RATE)
    channels = [RecordingChannel(caps), RecordingChannel(caps)]  # one account, reached from two instances
    senders = [OutboxSender(channel, sessions) for channel, sessions in zip(channels, (first, second))]
    halves = [ids[::2], ids[1::2]]  # the messages landed on either instance; each sends its own replies
    await asyncio.gather(*(sender.deliver([row]) for sender, half in zip(senders, halves) for row in half))
    for sender in senders:
        await sender.stop()

    times = sorted(t for channel in channels for t, *_ in channel.sends)
    assert len(times) == REPLIES and all(channel.sends for channel in channels)
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= RATE + 1  # one second's worth, give or take the window's edge
    assert times[-1] - times[0] >= (REPLIES - 1) / RATE * 0.9  # and not in bursts either


async def _replies_waiting(sessions: Sessions) -> list[int]:
    """One reply per follower, written ``pending`` and leased to its writer (as a reply is)."""
    now = utcnow()
    async with sessions() as session:
        followers = (await session.execute(select(Follower.id).order_by(Follower.id))).scalars().all()
        rows = [Message(follower_id=fid, channel="fake", account="acct", direction="out", kind="text",
                        status="pending", attempts=0, created_at=now, next_attempt_at=now + LEASE, text="hi",
                        body={"type": "text", "text": "hi"}) for fid in followers]
        session.add_all(rows)
        await session.commit()
        return [r.id for r in rows]
