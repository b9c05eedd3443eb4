"""In doubt means in flight: a row is marked before its send and settled as soon as the platform answers.

These tests look at the database while sends are under way, the way a SIGKILL would find it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import progress, render_progress
from bot.core.capabilities import Capabilities
from bot.core.clock import utcnow
from bot.core.reply import Reply
from bot.delivery.outbox import OutboxSender
from bot.errors import QuotaExceeded
from bot.storage.models import Message
from tests.support.broadcast import RecordingChannel, add_followers, start_broadcast, statuses

Sessions = async_sessionmaker[AsyncSession]


async def count(sessions: Sessions, status: str) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(Message).where(
            Message.status == status, Message.direction == "out"))).scalar_one()


class WatchingChannel(RecordingChannel):
    """At every send, read from the database what a crash at that moment would leave behind."""

    def __init__(self, sessions: Sessions, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = sessions
        self.seen: list[tuple[str, int, int]] = []  # (this row's status, rows "sending", rows "sent")

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        row = (context or {})["message_id"]
        async with self.db() as session:
            mine = (await session.execute(select(Message.status).where(Message.id == row))).scalar_one()
        self.seen.append((mine, await count(self.db, "sending"), await count(self.db, "sent")))
        await super().send_reply(external_id, reply, context=context)


async def test_every_send_leaves_marked_sending_and_at_most_ten_are_in_doubt(sessions: Sessions) -> None:
    await add_followers(sessions, 120)
    broadcast_id = await start_broadcast(sessions)
    channel = WatchingChannel(sessions, latency=0.02)
    sender = OutboxSender(channel, sessions)
    assert sender.batch_size == 500  # the whole broadcast is one batch: the in-doubt bound is not the batch
    while await sender.sweep_once():
        pass
    await sender.stop()
    assert len(channel.seen) == 120
    assert all(status == "sending" for status, _sending, _sent in channel.seen)  # committed before it left
    assert max(sending for _status, sending, _sent in channel.seen) <= 10
    assert sender.most_in_flight == 10
    # Outcomes were written while the batch was still going, not at its end.
    assert channel.seen[-1][2] >= 100
    assert await statuses(sessions, broadcast_id) == {"sent": 120}


class StuckChannel(RecordingChannel):
    """Answers the first ``answered`` sends, then never answers again (the process is about to die)."""

    def __init__(self, answered: int) -> None:
        super().__init__()
        self.answered = answered
        self.stuck = asyncio.Event()

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        if len(self.sends) >= self.answered:
            self.stuck.set()
            await asyncio.Event().wait()
        await super().send_reply(external_id, reply, context=context)


async def test_a_crash_mid_batch_leaves_only_the_sends_in_flight_in_doubt(sessions: Sessions) -> None:
    await add_followers(sessions, 200)
    broadcast_id = await start_broadcast(sessions)
    channel = StuckChannel(answered=37)
    sender = OutboxSender(channel, sessions, lease=timedelta(seconds=1))
    sweep = asyncio.create_task(sender.sweep_once())
    await asyncio.wait_for(channel.stuck.wait(), 10)
    async with asyncio.timeout(10):
        while await count(sessions, "sent") < 37:  # the answered ones are settled while the batch hangs
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)
    # What a SIGKILL now would leave: 37 sent, 10 in doubt, the rest claimed but never started.
    assert await statuses(sessions, broadcast_id) == {"sent": 37, "sending": 10, "pending": 153}
    sweep.cancel()  # the "kill": nothing of the sender runs any more (its journal is dropped, not closed)
    await asyncio.gather(sweep, return_exceptions=True)
    async with sessions() as session:  # its leases run out
        await session.execute(update(Message).where(Message.status.in_(("pending", "sending")))
                              .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        await session.commit()

    restarted = RecordingChannel()
    second = OutboxSender(restarted, sessions)
    while await second.sweep_once():
        pass
    await second.stop()
    assert len(restarted.sends) == 200 - 37 and len(set(restarted.recipients())) == 163
    assert await statuses(sessions, broadcast_id) == {"sent": 200}
    async with sessions() as session:
        p = await progress(session, broadcast_id)
    assert p is not None and p.possibly_twice == 10
    assert "of 200; possibly sent twice 10  (" in render_progress(p)


async def test_in_doubt_rows_are_not_counted_where_the_platform_drops_repeats(sessions: Sessions) -> None:
    await add_followers(sessions, 5)
    broadcast_id = await start_broadcast(sessions)
    async with sessions() as session:
        await session.execute(update(Message).values(status="sending", next_attempt_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    channel = RecordingChannel(Capabilities(idempotent_sends=True))
    sender = OutboxSender(channel, sessions)
    await sender.sweep_once()
    await sender.stop()
    assert [key for *_rest, key in channel.sends] == [f"outbox:{i}" for i in range(1, 6)]  # the same keys again
    async with sessions() as session:
        p = await progress(session, broadcast_id)
    assert p is not None and (p.sent, p.possibly_twice) == (5, 0)


class PausingChannel(RecordingChannel):
    """The platform says "retry after ``pause`` s" once (a 429; for that chat only if ``chat_only``),
    or its first answer takes ``slow`` s."""

    def __init__(self, *, pause: float = 0.0, slow: float = 0.0, chat_only: bool = False) -> None:
        super().__init__(Capabilities(max_sends_per_second=50))
        self.pause, self.slow, self.chat_only = pause, slow, chat_only
        self.first = True

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        first, self.first = self.first, False
        if first and self.pause:
            raise QuotaExceeded("slow down", retry_after=self.pause, chat_only=self.chat_only)
        if first and self.slow:
            await asyncio.sleep(self.slow)  # a slow platform: the row "sending" meanwhile
        await super().send_reply(external_id, reply, context=context)


async def _two_instances_through_a_long_wait(sessions: Sessions, channel: PausingChannel) -> list[RecordingChannel]:
    """One sender waits longer than its lease; another instance sweeps all along. Return both channels."""
    await add_followers(sessions, 30)
    await start_broadcast(sessions)
    lease = timedelta(seconds=1.2)
    first = OutboxSender(channel, sessions, lease=lease)
    other_channel = RecordingChannel(Capabilities(max_sends_per_second=50))
    other = OutboxSender(other_channel, sessions, lease=lease)
    running = asyncio.create_task(first.sweep_once())
    await asyncio.sleep(0.2)
    async with asyncio.timeout(20):
        while not running.done():  # the other instance keeps looking for leases that ran out
            await other.sweep_once()
            await asyncio.sleep(0.1)
    await running
    while await first.sweep_once() or await other.sweep_once():  # the row the 429 put back
        await asyncio.sleep(0.05)
    await first.stop()
    await other.stop()
    return [channel, other_channel]


@pytest.mark.timing  # a 1.2 s lease renewed in time: needs the CPU to itself
async def test_a_rate_limit_pause_longer_than_the_lease_keeps_the_rows_with_their_sender(sessions: Sessions) -> None:
    channels = await _two_instances_through_a_long_wait(sessions, PausingChannel(pause=4.0))
    everyone = [who for c in channels for who in c.recipients()]
    assert sorted(everyone) == sorted(f"f{i}" for i in range(30))  # nobody twice, nobody missed
    assert channels[0].sends and isinstance(channels[0], PausingChannel)
    assert channels[1].sends == [] or len(channels[1].sends) == 1  # the other took at most the row put back
    assert await count(sessions, "sent") == 30


@pytest.mark.timing  # a 1.2 s lease renewed in time: needs the CPU to itself
async def test_a_chats_retry_after_waited_out_in_place_past_the_lease_is_not_sent_twice(sessions: Sessions) -> None:
    """The row waits "sending" for its chat's pause (4 s, the lease 1.2 s): its lease is renewed meanwhile."""
    channels = await _two_instances_through_a_long_wait(sessions, PausingChannel(pause=4.0, chat_only=True))
    everyone = [who for c in channels for who in c.recipients()]
    assert sorted(everyone) == sorted(f"f{i}" for i in range(30))  # nobody twice, nobody missed
    assert channels[1].sends == []  # waited out in place: nothing put back for the other instance
    assert await count(sessions, "sent") == 30
    async with sessions() as session:  # no row claimed twice, none flagged "possibly sent twice"
        assert (await session.execute(select(func.count()).select_from(Message).where(
            (Message.attempts > 1) | Message.resent_in_doubt.is_(True)))).scalar_one() == 0


@pytest.mark.timing  # a 1.2 s lease renewed in time: needs the CPU to itself
async def test_a_send_slower_than_the_lease_is_not_taken_as_in_doubt(sessions: Sessions) -> None:
    channels = await _two_instances_through_a_long_wait(sessions, PausingChannel(slow=4.0))
    everyone = [who for c in channels for who in c.recipients()]
    assert sorted(everyone) == sorted(f"f{i}" for i in range(30))
    assert channels[1].sends == []
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Message).where(
            Message.resent_in_doubt.is_(True)))).scalar_one() == 0


async def test_an_orderly_stop_leaves_nothing_in_doubt_and_gives_back_what_it_did_not_send(sessions: Sessions) -> None:
    await add_followers(sessions, 100)
    broadcast_id = await start_broadcast(sessions)
    channel = RecordingChannel(Capabilities(max_sends_per_second=40))
    sender = OutboxSender(channel, sessions)
    sender.start()
    async with asyncio.timeout(10):
        while len(channel.sends) < 10:
            await asyncio.sleep(0.02)
    await sender.stop()
    done = await statuses(sessions, broadcast_id)
    assert "sending" not in done and done["sent"] == len(channel.sends)
    async with sessions() as session:  # the rest is due at once for any other sender, not after a lease
        leased = (await session.execute(select(func.count()).select_from(Message).where(
            Message.status == "pending", Message.next_attempt_at.is_not(None)))).scalar_one()
    assert leased == 0 and done["pending"] == 100 - len(channel.sends)
