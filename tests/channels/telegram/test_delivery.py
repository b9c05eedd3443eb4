"""Delivery through the outbox: rate limits, 429s, blocked users, slow answers, crash recovery."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot import Kind, Router, TextReply
from bot.core.clock import utcnow
from bot.core.inbound import Inbound
from bot.storage.models import Message

from .conftest import Rig, RigFactory, eventually

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def echo_router() -> Router:
    router = Router("echo")

    @router.on(Kind.TEXT, priority=500)
    async def echo(msg, ctx):
        return [TextReply(f"echo: {msg.text}")]

    return router


def sends_to(rig: Rig, chat_id: int) -> list:
    return [c for c in rig.sim.calls if c.method == "sendMessage" and c.params.get("chat_id") == chat_id]


@pytest.mark.timing
async def test_a_burst_to_50_chats_is_delivered_once_in_order_within_the_limits(make_rig: RigFactory):
    rig = await make_rig(routers=[echo_router()], enforce_limits=True)
    users = [rig.user(first_name=f"U{i}") for i in range(50)]
    x, y, z = users[0], users[1], users[2]
    rig.sim.inject_429(2, retry_after=1, chat_id=x)
    rig.sim.inject_429(1, retry_after=2, chat_id=y)
    rig.sim.inject_429(1, retry_after=1, chat_id=z)
    started = time.monotonic()
    for round_ in range(4):
        for i, user in enumerate(users):
            rig.sim.send_text(user, f"m{round_}-{i}")
    await rig.sim.wait_for(lambda: all(len(rig.sim.sent(u)) >= 4 for u in users), timeout=30)
    elapsed = time.monotonic() - started

    for i, user in enumerate(users):  # exactly once each, in the order the user wrote
        assert [m["text"] for m in rig.sim.sent(user)] == [f"echo: m{r}-{i}" for r in range(4)]
    assert rig.sim.limit_violations == []
    statuses = [e["status"] for e in rig.sim.errors]
    assert statuses == [429] * 4
    # retry_after honoured: no send to that chat before it elapsed
    for chat, waits in ((x, [1, 1]), (y, [2]), (z, [1])):
        calls = sends_to(rig, chat)
        for i, wait in enumerate(waits):
            assert calls[i + 1].at - calls[i].at >= wait, (chat, i)
    # rates seen by "Telegram": at most 30 in any second overall; per chat a short burst, then 1/s
    times = sorted(c.at for c in rig.sim.calls if c.method == "sendMessage")
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 30
    burst = 3  # Telegram tolerates a short burst in one chat (we send 1/s to one chat, evenly spaced)
    for user in users:
        at = [c.at for c in sends_to(rig, user)]
        for i in range(len(at)):
            for j in range(i + burst, len(at)):
                assert at[j] - at[i] >= (j - i + 1 - burst) - 0.05, (user, i, j)
    assert elapsed < 25

    async def all_sent() -> bool:
        async with rig.harness.sessions() as session:
            from sqlalchemy import select
            rows = (await session.execute(select(Message.status).where(Message.direction == "out"))).scalars().all()
        return len(rows) == 200 and set(rows) == {"sent"}
    await eventually(all_sent)


async def test_a_blocked_bot_marks_the_follower_unfollowed_and_stops_sending(make_rig: RigFactory):
    router = Router("chatty")

    @router.on(Kind.TEXT, priority=500)
    async def two(msg, ctx):
        return [TextReply("one"), TextReply("two")]

    rig = await make_rig(routers=[router])
    user = rig.user()
    rig.sim.send_text(user, "hello")
    rig.sim.users[user].blocked = True  # blocks while our answer is on its way: no update yet

    async def settled() -> list[Message] | None:
        rows = await rig.outbound(user)
        return rows if rows and all(r.status not in ("pending", "sending") for r in rows) else None
    rows = await eventually(settled)
    assert [r.status for r in rows] == ["undeliverable"] * 2
    assert rows[0].reason == "Forbidden: bot was blocked by the user"
    assert len(sends_to(rig, user)) == 1  # the first of two; the second not attempted
    follower = await rig.follower(user)
    assert follower.following is False and follower.unfollowed_at is not None


async def test_blocking_and_unblocking_are_unfollow_and_follow(rig: Rig):
    user = rig.user()
    rig.sim.start(user, "spring")
    await rig.replies(user, 1)
    rig.sim.block(user)
    await eventually(lambda: _following(rig, user, False))
    rig.sim.unblock(user)
    await rig.replies(user, 2)  # welcomed back
    assert await _following(rig, user, True)


async def _following(rig: Rig, user: int, value: bool) -> bool:
    follower = await rig.follower(user)
    return follower is not None and follower.following is value


async def test_a_slow_telegram_is_waited_for_not_resent(make_rig: RigFactory):
    rig = await make_rig(routers=[echo_router()])
    users = [rig.user(), rig.user()]
    rig.sim.response_delay(1.0, method="sendMessage")
    for user in users:
        rig.sim.send_text(user, f"slow {user}")
    for user in users:
        [sent] = await rig.replies(user, 1, timeout=15)
        assert sent["text"] == f"echo: slow {user}"
        await eventually(lambda: _all_status(rig, user, "sent"))  # noqa: B023  (awaited in this iteration)
        assert len(sends_to(rig, user)) == 1


async def test_server_errors_are_retried_without_duplicates(make_rig: RigFactory):
    rig = await make_rig(routers=[echo_router()])
    user = rig.user()
    rig.sim.inject_error(500, "Internal Server Error", count=1, chat_id=user)
    rig.sim.inject_error(502, "Bad Gateway", count=1, chat_id=user)
    rig.sim.send_text(user, "hi")
    [sent] = await rig.replies(user, 1, timeout=15)
    assert sent["text"] == "echo: hi"
    await eventually(lambda: _all_status(rig, user, "sent"))
    assert len(rig.sim.sent(user)) == 1 and len(sends_to(rig, user)) == 3


async def test_a_bad_request_is_recorded_as_failed_with_the_reason(make_rig: RigFactory):
    rig = await make_rig(routers=[echo_router()])
    user = rig.user()
    rig.sim.inject_error(400, "Bad Request: chat not found", count=1, chat_id=user)
    rig.sim.send_text(user, "hi")

    async def failed() -> Message | None:
        rows = await rig.outbound(user)
        return rows[0] if rows and rows[0].status == "failed" else None
    row = await eventually(failed)
    assert "Chat not found" in row.reason and "400" in row.reason


async def _all_status(rig: Rig, user: int, status: str) -> bool:
    rows = await rig.outbound(user)
    return bool(rows) and all(r.status == status for r in rows)


async def test_rows_left_pending_by_a_crash_go_out_after_restart(make_rig: RigFactory):
    rig = await make_rig(routers=[echo_router()], start=False)
    user = rig.user()
    # The previous process stored the exchange, then died before sending.
    result = await rig.harness.dispatcher.dispatch(
        Inbound(channel="telegram", account=rig.channel.account, external_id=str(user), kind=Kind.TEXT,
                text="before the crash", message_id=f"{user}:1"), capabilities=rig.channel.capabilities)
    [row_id] = result.exchange.pending_ids
    async with rig.harness.sessions() as session:  # its lease ran out
        await session.execute(update(Message).where(Message.id == row_id)
                              .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        await session.commit()
    await rig.start()
    [sent] = await rig.replies(user, 1)
    assert sent["text"] == "echo: before the crash"
    await eventually(lambda: _all_status(rig, user, "sent"))
