"""The write path under concurrency: batched reads and group commit keep every message, once."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bot import Kind
from bot.storage.models import Follower, Message
from bot.testing import BotHarness


async def test_a_burst_of_first_contacts_creates_each_follower_once(database_url: str) -> None:
    async with BotHarness(database_url=database_url) as bot:
        sends = [bot.channel.receive(f"fan-{i % 50}", Kind.FOLLOW if i < 50 else Kind.TEXT, "" if i < 50 else "hi",
                                     payload="event-poster" if i < 50 else None, message_id=f"m{i}")
                 for i in range(100)]
        replies = await asyncio.gather(*sends)
        assert all(replies)
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Follower)) == 50
            assert await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 100
            sources = set((await s.execute(select(Follower.first_source))).scalars())
        assert sources == {"event-poster"}


async def test_concurrent_messages_of_one_follower_all_commit_with_their_replies(database_url: str) -> None:
    async with BotHarness(database_url=database_url) as bot:
        await bot.channel.receive("busy", Kind.TEXT, "hello", message_id="first")
        results = await asyncio.gather(*(bot.channel.receive("busy", Kind.TEXT, f"question {i}", message_id=f"q{i}")
                                         for i in range(40)))
        assert all(len(r) == 1 for r in results)
        async with bot.sessions() as s:
            inbound = await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))
            outbound = await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))
        assert (inbound, outbound) == (41, 41)
