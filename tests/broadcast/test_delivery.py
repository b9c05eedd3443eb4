"""Workers drain a broadcast within what the channel declares: rates, reply windows, mass sends, cancel."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import BroadcastWorker, cancel_broadcast
from bot.broadcast.mass import QUOTA_USED_UP
from bot.broadcast.models import CANCELLED, DONE, Broadcast, MassSend
from bot.core.capabilities import Capabilities, MassSendQuota, ReplyWindow
from bot.core.clock import utcnow
from bot.delivery.outbox import OutboxSender
from bot.errors import FollowerGone, PlatformAPIError
from bot.storage.models import Follower, Message
from tests.support.broadcast import RecordingChannel, add_followers, ago, rows_by_external_id, start_broadcast, statuses

Sessions = async_sessionmaker[AsyncSession]
WECHAT_LIKE = Capabilities(window_after_message=ReplyWindow(timedelta(hours=48), 5),
                           window_after_event=ReplyWindow(timedelta(minutes=1), 3))


async def run_worker(sessions: Sessions, channel: RecordingChannel, *, timeout: float = 30) -> None:
    await BroadcastWorker(sessions, [channel], poll_every=0.05).run_until_idle(timeout=timeout)


async def test_every_follower_gets_exactly_one_message_and_its_row_is_marked_sent(sessions: Sessions) -> None:
    await add_followers(sessions, 450)
    broadcast_id = await start_broadcast(sessions)
    channel = RecordingChannel()
    await run_worker(sessions, channel)
    assert sorted(channel.recipients()) == sorted(f"f{i}" for i in range(450))
    assert await statuses(sessions, broadcast_id) == {"sent": 450}
    async with sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
    assert broadcast is not None and (broadcast.status, broadcast.counts) == (DONE, {"sent": 450})


async def test_each_send_carries_its_outbox_row_as_idempotency_key(sessions: Sessions) -> None:
    await add_followers(sessions, 3)
    await start_broadcast(sessions)
    channel = RecordingChannel()
    await run_worker(sessions, channel)
    keys = [s[3] for s in channel.sends]
    assert all(k and k.startswith("outbox:") for k in keys) and len(set(keys)) == 3


@pytest.mark.timing
async def test_overall_rate_declared_by_the_channel_is_honoured(sessions: Sessions) -> None:
    await add_followers(sessions, 150)
    await start_broadcast(sessions)
    channel = RecordingChannel(Capabilities(max_sends_per_second=50), latency=0.01)
    await run_worker(sessions, channel)
    times = sorted(s[0] for s in channel.sends)
    assert len(times) == 150
    achieved = (len(times) - 1) / (times[-1] - times[0])
    busiest_second = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert 40 <= achieved <= 50 * 1.03, achieved
    assert busiest_second <= 51, busiest_second


@pytest.mark.timing
async def test_per_chat_rate_spaces_messages_to_one_follower(sessions: Sessions) -> None:
    await add_followers(sessions, 2)
    for _ in range(3):  # three broadcasts to the same two chats
        await start_broadcast(sessions)
    channel = RecordingChannel(Capabilities(max_sends_per_chat_per_second=5))
    await run_worker(sessions, channel)
    for chat in ("f0", "f1"):
        times = sorted(t for t, who, _text, _key in channel.sends if who == chat)
        assert len(times) == 3
        assert min(b - a for a, b in zip(times, times[1:])) >= 0.2 * 0.95


async def test_followers_outside_the_reply_window_are_reported_with_the_reason(sessions: Sessions) -> None:
    await add_followers(sessions, 1, last_action_kind="message", last_action_at=ago(hours=1))  # f0: open
    await add_followers(sessions, 1, start=1, last_action_kind="message", last_action_at=ago(days=3))  # f1: closed
    await add_followers(sessions, 1, start=2)  # f2: never wrote
    await add_followers(sessions, 1, start=3, last_action_kind="message", last_action_at=ago(hours=1),
                        window_sends=5)  # f3: used up
    await add_followers(sessions, 1, start=4, last_action_kind="event", last_action_at=ago(minutes=5))  # f4
    broadcast_id = await start_broadcast(sessions)
    channel = RecordingChannel(WECHAT_LIKE)
    await run_worker(sessions, channel)
    assert channel.recipients() == ["f0"]
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        "f0": ("sent", None),
        "f1": ("undeliverable", "outside the reply window"),
        "f2": ("undeliverable", "outside the reply window: the follower never opened one"),
        "f3": ("undeliverable", "outside the reply window: its 5 sends are used up"),
        "f4": ("undeliverable", "outside the reply window"),
    }


async def test_a_send_counts_against_the_followers_window(sessions: Sessions) -> None:
    await add_followers(sessions, 1, last_action_kind="event", last_action_at=ago(seconds=5), window_sends=2)
    first, second = await start_broadcast(sessions), await start_broadcast(sessions)
    channel = RecordingChannel(WECHAT_LIKE)
    await run_worker(sessions, channel)
    assert len(channel.sends) == 1  # 3 sends allowed after an event; 2 were used already
    assert sorted([*(await statuses(sessions, first)), *(await statuses(sessions, second))]) == ["sent", "undeliverable"]


async def test_outside_the_window_a_declared_mass_send_reaches_them_in_batches_per_language(sessions: Sessions) -> None:
    await add_followers(sessions, 1, last_action_kind="message", last_action_at=ago(hours=1), locale="en")  # direct
    await add_followers(sessions, 4, start=1, locale="en")
    await add_followers(sessions, 2, start=5, locale="zh_Hans")
    caps = Capabilities(window_after_message=ReplyWindow(timedelta(hours=48), 5),
                        mass_send=MassSendQuota(per_period=4, period=timedelta(days=30), max_recipients=3))
    broadcast_id = await start_broadcast(sessions)
    channel = RecordingChannel(caps)
    await run_worker(sessions, channel)
    assert channel.recipients() == ["f0"]
    assert sorted((sorted(ids), text) for ids, text, _key in channel.mass_sends) == [
        (["f1", "f2", "f3"], "Hi"), (["f4"], "Hi"), (["f5", "f6"], "嗨")]
    assert await statuses(sessions, broadcast_id) == {"sent": 7}
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert rows["f5"].reason.startswith("mass send ")


async def test_when_the_mass_send_quota_is_used_up_they_are_reported_undeliverable(sessions: Sessions) -> None:
    await add_followers(sessions, 3)
    caps = Capabilities(window_after_message=ReplyWindow(timedelta(hours=48), 5),
                        mass_send=MassSendQuota(per_period=1, period=timedelta(days=1)))
    channel = RecordingChannel(caps)
    first = await start_broadcast(sessions)
    await run_worker(sessions, channel)
    second = await start_broadcast(sessions)
    await run_worker(sessions, channel)
    assert len(channel.mass_sends) == 1
    assert await statuses(sessions, first) == {"sent": 3}
    assert {(r.status, r.reason) for r in (await rows_by_external_id(sessions, second)).values()} == {
        ("undeliverable", QUOTA_USED_UP)}
    async with sessions() as session:
        assert len((await session.execute(select(MassSend))).scalars().all()) == 1


async def test_a_follower_the_platform_says_is_gone_is_reported_and_unfollowed(sessions: Sessions) -> None:
    await add_followers(sessions, 2)

    class Blocking(RecordingChannel):
        async def send_reply(self, external_id, reply, *, context=None):  # type: ignore[no-untyped-def]
            if external_id == "f1":
                raise FollowerGone("blocked the bot")
            await super().send_reply(external_id, reply, context=context)

    broadcast_id = await start_broadcast(sessions)
    await run_worker(sessions, Blocking())
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert (rows["f1"].status, rows["f1"].reason) == ("undeliverable", "blocked the bot")
    assert rows["f0"].status == "sent"


async def test_a_platform_error_ends_failed_with_its_reason_and_is_not_retried(sessions: Sessions) -> None:
    await add_followers(sessions, 3)
    tried: list[str] = []

    class Refusing(RecordingChannel):
        async def send_reply(self, external_id, reply, *, context=None):  # type: ignore[no-untyped-def]
            tried.append(external_id)
            if external_id == "f1":
                raise PlatformAPIError(45002, "content size out of limit")
            await super().send_reply(external_id, reply, context=context)

    broadcast_id = await start_broadcast(sessions)
    channel = Refusing()
    await run_worker(sessions, channel)
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert {k: (r.status, r.reason) for k, r in rows.items()} == {
        "f0": ("sent", None),
        "f1": ("failed", "platform error 45002: content size out of limit"),
        "f2": ("sent", None),
    }
    assert sorted(channel.recipients()) == ["f0", "f2"] and sorted(tried) == ["f0", "f1", "f2"]  # tried once
    async with sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
    assert broadcast is not None and (broadcast.status, broadcast.counts) == (DONE, {"sent": 2, "failed": 1})


async def test_an_unexpected_send_error_is_retried_later_not_recorded_sent(sessions: Sessions) -> None:
    """A bug or a dropped connection is not the platform's answer: the row waits for another try."""
    await add_followers(sessions, 2)

    class Flaky(RecordingChannel):
        async def send_reply(self, external_id, reply, *, context=None):  # type: ignore[no-untyped-def]
            if external_id == "f1":
                raise ConnectionResetError("peer went away")
            await super().send_reply(external_id, reply, context=context)

    broadcast_id = await start_broadcast(sessions)
    before = utcnow()
    await OutboxSender(Flaky(), sessions).sweep_once()
    rows = await rows_by_external_id(sessions, broadcast_id)
    assert (rows["f0"].status, rows["f0"].reason) == ("sent", None)
    assert (rows["f1"].status, rows["f1"].reason) == ("pending", "retry: ConnectionResetError('peer went away')")
    async with sessions() as session:
        retry = (await session.execute(select(Message.next_attempt_at, Message.attempts).join(
            Follower, Follower.id == Message.follower_id).where(Follower.external_id == "f1"))).one()
    retry_at = retry.next_attempt_at.replace(tzinfo=UTC) if retry.next_attempt_at.tzinfo is None \
        else retry.next_attempt_at
    assert retry.attempts == 1 and before + timedelta(seconds=1) < retry_at <= utcnow() + timedelta(seconds=2)


async def test_cancel_stops_sending(sessions: Sessions) -> None:
    await add_followers(sessions, 200)
    broadcast_id = await start_broadcast(sessions)
    channel = RecordingChannel(Capabilities(max_sends_per_second=20))
    worker = BroadcastWorker(sessions, [channel], poll_every=0.05)
    await worker.start()
    try:
        while len(channel.sends) < 10:
            await asyncio.sleep(0.02)
        async with sessions() as session:
            cancelled = await cancel_broadcast(session, broadcast_id)
        at_cancel = len(channel.sends)
        await asyncio.sleep(1.5)
        after = len(channel.sends)
        await asyncio.sleep(0.5)
    finally:
        await worker.stop()
    assert after - at_cancel <= 0.25 * 20 + 2  # what was waiting for its pacing slot when the cancel landed
    assert len(channel.sends) == after  # and then nothing more
    by_status = await statuses(sessions, broadcast_id)
    assert by_status == {"sent": after, "cancelled": 200 - after}
    assert cancelled is not None and cancelled >= 200 - after
    async with sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        assert broadcast is not None and broadcast.status == CANCELLED
        assert await cancel_broadcast(session, broadcast_id) is None  # already over


async def test_replies_of_one_message_still_go_out_in_order_through_deliver(sessions: Sessions) -> None:
    """The adapters' path: rows answering one message, delivered at once and in sequence."""
    await add_followers(sessions, 1)
    async with sessions() as session:
        follower_id = (await session.execute(select(Follower.id))).scalar_one()
        rows = [Message(follower_id=follower_id, channel="fake", account="acct", direction="out", kind="text",
                        text=t, body={"type": "text", "text": t}, status="pending", attempts=0, created_at=utcnow(),
                        next_attempt_at=utcnow() + timedelta(seconds=60)) for t in ("one", "two", "three")]
        session.add_all(rows)
        await session.commit()
        ids = [r.id for r in rows]
    channel = RecordingChannel(Capabilities(max_sends_per_chat_per_second=50))
    await OutboxSender(channel, sessions).deliver(ids)
    assert [s[2] for s in channel.sends] == ["one", "two", "three"]
    async with sessions() as session:
        assert (await session.execute(select(Message.status).where(Message.id.in_(ids)))).scalars().all() == ["sent"] * 3
