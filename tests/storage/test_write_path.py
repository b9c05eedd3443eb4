"""The write path under concurrency: batched reads and group commit keep every message, once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from bot import Kind
from bot.storage.models import Follower, Message, SeenRequest
from bot.testing import BotHarness
from handlers import default_router


async def test_a_burst_of_first_contacts_creates_each_follower_once(database_url: str) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
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
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await bot.channel.receive("busy", Kind.TEXT, "hello", message_id="first")
        results = await asyncio.gather(*(bot.channel.receive("busy", Kind.TEXT, f"question {i}", message_id=f"q{i}")
                                         for i in range(40)))
        assert all(len(r) == 1 for r in results)
        async with bot.sessions() as s:
            inbound = await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))
            outbound = await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))
        assert (inbound, outbound) == (41, 41)


async def test_writes_through_scalar_and_get_commit_with_the_reply(database_url: str) -> None:
    from sqlalchemy import insert

    from bot import Context, Inbound, Reply, Router, TextReply
    from bot.core.clock import utcnow
    from bot.storage.models import SharedToken

    router = Router("writes")

    @router.on(command="scalar")
    async def via_scalar(msg: Inbound, ctx: Context) -> list[Reply]:
        await ctx.session.scalar(insert(SharedToken).values(
            name="a", value="1", expires_at=utcnow(), updated_at=utcnow()).returning(SharedToken.name))
        return [TextReply("saved")]

    @router.on(command="get")
    async def via_get(msg: Inbound, ctx: Context) -> list[Reply]:
        ctx.session.add(SharedToken(name="b", value="2", expires_at=utcnow(), updated_at=utcnow()))
        await ctx.session.get(SharedToken, "b")  # autoflushes the new row
        return [TextReply("saved")]

    async with BotHarness(routers=[router], database_url=database_url) as bot:
        f = bot.follower("writer", language="en")
        await f.say("/scalar")
        await f.say("/get")
        async with bot.sessions() as s:
            assert sorted((await s.execute(select(SharedToken.name))).scalars()) == ["a", "b"]


async def test_closing_a_batcher_finishes_the_batch_in_flight() -> None:
    from bot.storage.batching import Batcher

    async def slow(items: list[int]) -> list[int]:
        await asyncio.sleep(0.2)
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(slow, name="test")
    pending = asyncio.create_task(batcher.submit(4))
    await asyncio.sleep(0.05)  # the batch is running, the queue is empty
    await batcher.close()
    assert await asyncio.wait_for(pending, 2) == 40


async def test_a_retry_survives_the_first_try_being_cancelled(database_url: str) -> None:
    from bot import Context, Inbound, Reply, Router, TextReply
    from bot.channels.mock import MOCK_CAPABILITIES

    runs: list[str] = []
    router = Router("slow")

    @router.fallback()
    async def slow(msg: Inbound, ctx: Context) -> list[Reply]:
        runs.append(msg.text)
        await asyncio.sleep(0.3)
        return [TextReply("answered")]

    async with BotHarness(routers=[router], database_url=database_url) as bot:
        msg = Inbound(channel="mock", account="mock", external_id="u", kind=Kind.TEXT, text="x", message_id="m1")
        first = asyncio.create_task(bot.dispatcher.dispatch(msg, capabilities=MOCK_CAPABILITIES))
        await asyncio.sleep(0.05)
        retry = asyncio.create_task(bot.dispatcher.dispatch(msg, capabilities=MOCK_CAPABILITIES))
        await asyncio.sleep(0.05)
        first.cancel()  # the first request went away
        result = await retry
        assert result.replies == [TextReply("answered")]
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Message).where(Message.dedupe_key == "m1")) == 1


async def test_the_route_follows_what_the_handler_did_and_a_write_holds_the_sqlite_gate(database_url: str) -> None:
    from sqlalchemy import insert

    from bot.core.clock import utcnow
    from bot.storage.engine import sqlite_gate
    from bot.storage.models import SharedToken
    from bot.storage.store import WriteRoute

    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        gate = sqlite_gate(bot.engine)
        assert bot.store.route(None) is WriteRoute.GROUP_WRITER  # no handler opened a session
        async with bot.store.session() as session:
            await session.execute(select(func.count()).select_from(Follower))  # reading is not writing
            assert bot.store.route(session) is WriteRoute.GROUP_WRITER
            assert gate is None or not gate.lock.locked()
            await session.execute(insert(SharedToken).values(name="t", value="1", expires_at=utcnow(),
                                                             updated_at=utcnow()))
            assert bot.store.route(session) is WriteRoute.HANDLER_TRANSACTION
            assert gate is None or gate.lock.locked()  # taken at the first write, before SQLite's lock
            await session.commit()
            assert gate is None or not gate.lock.locked()  # given back with the transaction
        async with bot.store.session() as session:
            session.add(SharedToken(name="u", value="2", expires_at=utcnow(), updated_at=utcnow()))
            assert bot.store.route(session) is WriteRoute.HANDLER_TRANSACTION  # a change not flushed yet
            await session.flush()
            assert gate is None or gate.lock.locked()
        assert gate is None or not gate.lock.locked()  # closing the session ends its transaction


async def test_a_session_is_opened_only_for_a_handler_that_uses_one(database_url: str, monkeypatch) -> None:
    """Messages answered from memory (rules, the offer index's cache) open no session; a handler that
    uses ``ctx.session`` gets one, and it is closed after the message."""
    from bot import Context, Inbound, Reply, Router, TextReply

    router = Router("reads")

    @router.on(command="count")
    async def count_followers(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply(str(await ctx.session.scalar(select(func.count()).select_from(Follower))))]

    async with BotHarness(routers=[router, default_router()], database_url=database_url) as bot:
        await bot.channel.receive("warm", Kind.TEXT, "hello", message_id="w1")  # the offer index is read once
        opened: list[object] = []
        store_session = bot.store.session

        def counting_session():  # type: ignore[no-untyped-def]
            session = store_session()
            opened.append(session)
            return session

        monkeypatch.setattr(bot.store, "session", counting_session)
        replies = await asyncio.gather(*(bot.channel.receive(f"fan-{i}", Kind.TEXT, "hello", message_id=f"h{i}")
                                         for i in range(5)))
        assert all(replies) and opened == []
        assert await bot.channel.receive("fan-0", Kind.COMMAND, "/count", message_id="c1") == [TextReply("6")]
        assert len(opened) == 1
        assert not opened[0].in_transaction()  # type: ignore[attr-defined]
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 7


async def test_replay_admissions_and_exchanges_share_the_group_writer_and_its_batches(database_url: str) -> None:
    """One group writer per engine and process: the replay cache's rows and the exchanges of messages
    queued together commit in one transaction; each user closes it once and the last one stops it."""
    from datetime import timedelta

    from bot import Inbound, TextReply
    from bot.core.clock import utcnow
    from bot.storage.models import SeenRequest
    from bot.storage.replay import ReplayLedger, Seen

    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        writer = bot.store.writer
        assert writer is not None
        first, second = ReplayLedger(bot.engine), ReplayLedger(bot.engine)
        msg = Inbound(channel="mock", account="mock", external_id="fan", kind=Kind.TEXT, text="hi", message_id="x1")
        follower, _ = await bot.store.load(msg)
        batches = writer._batcher.batches
        expires = utcnow() + timedelta(minutes=5)
        admitted, replayed, exchange = await asyncio.gather(
            first.admit(Seen("wechat", "sig-1", "body-a", expires)),
            second.admit(Seen("wechat", "sig-1", "body-b", expires)),  # the same signature, another body
            bot.store.record_exchange(None, msg, follower, [TextReply("hello")], passive_count=0))
        assert (admitted, replayed) == (True, False)
        assert writer._batcher.batches == batches + 1  # all three in one batch, one commit
        assert exchange.inbound_id and len(exchange.outbound_ids) == 1
        await first.close()
        await second.close()  # the store still uses the writer: it keeps running
        assert not writer.closed
        assert await bot.channel.receive("fan", Kind.TEXT, "again", message_id="x2")
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(SeenRequest)) == 1
            assert await s.scalar(select(func.count()).select_from(Message).where(Message.direction == "in")) == 2
    assert writer.closed  # the store was its last user


@pytest.mark.parametrize("steps_between_cancels", [1, 3, 4, 5, 8])
async def test_a_handler_session_closes_to_the_end_under_a_second_cancel(
        database_url: str, steps_between_cancels: int, caplog: pytest.LogCaptureFixture) -> None:
    """A stop cancels in waves: the second cancel may land while the message's session is being
    closed; the close still runs to its end (its connection reset, not invalidated mid-rollback)."""
    from bot import Context, Inbound, Reply, Router, TextReply

    router = Router("slow")
    entered = asyncio.Event()

    @router.on(command="slow")
    async def slow(msg: Inbound, ctx: Context) -> list[Reply]:
        await ctx.session.scalar(select(func.count()).select_from(Follower))  # holds a connection now
        entered.set()
        await asyncio.sleep(30)
        return [TextReply("late")]

    async with BotHarness(routers=[router, default_router()], database_url=database_url) as bot:
        await bot.channel.receive("amy", Kind.TEXT, "hello", message_id="w1")
        message = asyncio.create_task(bot.channel.receive("amy", Kind.COMMAND, "/slow", message_id="s1"))
        await entered.wait()
        with caplog.at_level("ERROR", logger="sqlalchemy.pool"):
            message.cancel()
            for _ in range(steps_between_cancels):
                await asyncio.sleep(0)
            message.cancel()
            with pytest.raises(asyncio.CancelledError):
                await message
            await asyncio.sleep(0.2)
        assert "Exception during reset" not in caplog.text
        assert bot.engine.pool.checkedout() == 0


async def test_a_message_stored_meanwhile_fails_alone_in_a_group_commit_of_two(database_url: str) -> None:
    """Two messages in one group-writer batch, one of them a platform retry another instance stored
    meanwhile: the batch is split, the other message commits, the retry alone hears it is a duplicate."""
    from bot.core.clock import utcnow
    from bot.core.inbound import Inbound
    from bot.core.store import DuplicateExchange
    from bot.storage.status import DeliveryStatus
    from bot.storage.store import _message_row
    from bot.storage.writer import ExchangeWrite, GroupWriter

    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await bot.channel.receive("ann", Kind.TEXT, "hello", message_id="m-1")  # what the other instance stored
        async with bot.sessions() as s:
            stored = (await s.execute(select(Message).where(Message.dedupe_key == "m-1"))).scalar_one()

        def write(message_id: str) -> ExchangeWrite:
            msg = Inbound(channel=stored.channel, account=stored.account, external_id="ann", kind=Kind.TEXT,
                          text="hello", message_id=message_id)
            row = _message_row(stored.follower_id, msg, direction="in", kind="text", text="hello", payload=None,
                               body=None, dedupe_key=message_id, status=DeliveryStatus.HANDLED, created_at=utcnow())
            return ExchangeWrite(stored.follower_id, {}, row, [])

        writer = GroupWriter(bot.engine)
        try:  # submitted together: one batch of two
            retry, other = await asyncio.wait_for(asyncio.gather(
                writer.write(write("m-1")), writer.write(write("m-2")), return_exceptions=True), 30)
        finally:
            await writer.close()
        async with bot.sessions() as s:
            rows = {m.dedupe_key: m.id for m in (await s.execute(select(Message).where(
                Message.dedupe_key.in_(["m-1", "m-2"])))).scalars()}
    assert isinstance(retry, DuplicateExchange)
    assert other == (rows["m-2"], [])
    assert rows["m-1"] == stored.id


async def test_concurrent_messages_whose_handlers_wrote_nothing_commit_together(database_url: str) -> None:
    """The group writer: 40 messages at once, none of whose handlers wrote, take a few transactions
    between them, not one commit (one sync to disk on SQLite) each."""
    from sqlalchemy import Engine, event

    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await asyncio.gather(*(bot.channel.receive(f"fan-{i}", Kind.TEXT, "hello", message_id=f"first-{i}")
                               for i in range(40)))  # the followers exist: only the exchanges are written below
        commits: list[int] = []
        listener = lambda _conn: commits.append(1)  # noqa: E731
        event.listen(Engine, "commit", listener)  # every engine: the group writer's runs on a twin of its own
        try:
            replies = await asyncio.gather(*(bot.channel.receive(f"fan-{i}", Kind.TEXT, "hello", message_id=f"m-{i}")
                                             for i in range(40)))
        finally:
            event.remove(Engine, "commit", listener)
        assert all(replies)
        async with bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(Message).where(
                Message.direction == "in", Message.dedupe_key.like("m-%"))) == 40
    assert 1 <= len(commits) <= 10, len(commits)


def _row(follower_id: int, direction: str, text: str, dedupe_key: str | None = None) -> dict[str, Any]:
    from bot.core.clock import utcnow

    return {"follower_id": follower_id, "channel": "mock", "account": "brand", "direction": direction, "kind": "text",
            "text": text, "payload": None, "body": None, "dedupe_key": dedupe_key, "in_reply_to": None,
            "broadcast_id": None, "status": "handled" if direction == "in" else "pending", "reason": None,
            "attempts": 0, "next_attempt_at": None, "created_at": utcnow(), "sent_at": None}


async def _engine_and_follower(database_url: str) -> tuple[Any, int]:
    from sqlalchemy import insert

    from bot.core.clock import utcnow
    from bot.storage.engine import create_engine
    from bot.storage.migrate import upgrade

    engine = create_engine(database_url)
    await upgrade(engine)
    async with engine.begin() as conn:
        follower_id = (await conn.execute(insert(Follower).values(
            channel="mock", account="brand", external_id="fan", following=True, tags=[], state_data={},
            window_sends=0, created_at=utcnow()).returning(Follower.id))).scalar_one()
    return engine, follower_id


async def test_each_exchange_of_a_group_commit_gets_the_ids_of_its_own_rows(database_url: str) -> None:
    """Messages with 0, 2, 1 and 3 replies in one batch: every message its inbound id and its replies' ids,
    in order, each reply stored in answer to its own message."""
    from bot.storage.writer import ExchangeWrite, _write

    engine, fid = await _engine_and_follower(database_url)
    try:
        replies = {"a": 0, "b": 2, "c": 1, "d": 3}
        batch: list[Any] = [ExchangeWrite(fid, {}, _row(fid, "in", name, dedupe_key=name),
                                          [_row(fid, "out", f"{name} {i}") for i in range(count)])
                            for name, count in replies.items()]
        async with engine.connect() as conn:
            results = await conn.run_sync(lambda sync: _write(sync, batch))
        async with engine.connect() as conn:
            rows = {r.id: r for r in await conn.execute(select(Message.id, Message.text, Message.in_reply_to))}
        for (name, count), (inbound_id, outbound_ids) in zip(replies.items(), results, strict=True):
            assert rows[inbound_id].text == name
            assert [rows[i].text for i in outbound_ids] == [f"{name} {i}" for i in range(count)]
            assert {rows[i].in_reply_to for i in outbound_ids} <= {inbound_id}
        assert len(rows) == 4 + 6
    finally:
        await engine.dispose()


async def test_an_exchange_whose_replay_check_fails_is_not_written_and_its_caller_is_told(database_url: str) -> None:
    """In one batch: a request admitted alone, an exchange admitted with its check, an exchange whose
    signature was used with another body (left out: ``ReplayError``), an exchange without a check; a
    batch asking to prune deletes the expired rows, one that does not ask keeps them."""
    from datetime import timedelta

    from bot.core.clock import utcnow
    from bot.errors import ReplayError
    from bot.storage.models import SeenRequest
    from bot.storage.replay import REPLAYED, PruneSchedule, Seen
    from bot.storage.writer import Admission, ExchangeWrite, _write

    engine, fid = await _engine_and_follower(database_url)
    try:
        later, past = utcnow() + timedelta(minutes=5), utcnow() - timedelta(minutes=1)

        def exchange(name: str, seen: Seen | None) -> ExchangeWrite:
            return ExchangeWrite(fid, {}, _row(fid, "in", name, dedupe_key=name), [_row(fid, "out", f"to {name}")],
                                 seen=seen)

        async def write(batch: list[Any], pruning: PruneSchedule | None = None) -> list[Any]:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda sync: _write(sync, batch, pruning))

        assert await write([Admission(Seen("wechat", "old", "h", past)),
                            Admission(Seen("wechat", "used", "body 1", later))]) == [True, True]
        kept = await write([exchange("kept", Seen("wechat", "k1", "h", later)), exchange("plain", None)])
        assert [type(r) for r in kept] == [tuple, tuple]
        async with engine.connect() as conn:
            assert sorted((await conn.execute(select(SeenRequest.key))).scalars()) == ["k1", "old", "used"]
        admitted, real, replayed, plain = await write([
            Admission(Seen("wechat", "a1", "h", later)),
            exchange("real", Seen("wechat", "r1", "h", later)),
            exchange("forged", Seen("wechat", "used", "body 2", later)),
            exchange("plain 2", None)], PruneSchedule())
        assert admitted is True
        assert isinstance(replayed, ReplayError) and str(replayed) == REPLAYED
        assert isinstance(real, tuple) and isinstance(plain, tuple)
        async with engine.connect() as conn:
            texts = sorted((await conn.execute(select(Message.text).where(Message.direction == "in"))).scalars())
            keys = sorted((await conn.execute(select(SeenRequest.key))).scalars())
        assert texts == ["kept", "plain", "plain 2", "real"]
        assert keys == ["a1", "k1", "r1", "used"]  # "old" pruned by the last batch only
    finally:
        await engine.dispose()


async def test_whoever_waits_on_a_replay_check_written_with_the_exchange_learns_its_verdict(database_url: str) -> None:
    """The store takes a request's check into the exchange's write and says what the write found: a
    signature used with another body refused (``ReplayError``, nothing stored), a new one admitted; a
    later ``wait()`` on the check answers from that, without writing the check again."""
    from datetime import timedelta

    from bot import Inbound, TextReply
    from bot.channels.replay import PendingCheck
    from bot.core.clock import utcnow
    from bot.errors import ReplayError
    from bot.storage.models import SeenRequest
    from bot.storage.replay import ReplayLedger, Seen

    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await bot.channel.receive("fan", Kind.TEXT, "hello", message_id="before")  # known: load() creates nothing
        ledger = ReplayLedger(bot.engine)
        later = utcnow() + timedelta(minutes=5)
        try:
            assert await ledger.admit(Seen("wechat", "used", "body 1", later))

            def message(message_id: str, seen: Seen) -> Inbound:
                return Inbound(channel="mock", account="mock", external_id="fan", kind=Kind.TEXT, text="hi",
                               message_id=message_id, replay_check=PendingCheck(ledger, seen))

            forged = message("forged", Seen("wechat", "used", "body 2", later))
            follower, _ = await bot.store.load(forged)
            with pytest.raises(ReplayError):
                await bot.store.record_exchange(None, forged, follower, [TextReply("no")], passive_count=0)
            assert forged.replay_check is not None
            with pytest.raises(ReplayError):
                await asyncio.wait_for(forged.replay_check.wait(), 5)
            genuine = message("genuine", Seen("wechat", "new", "body 3", later))
            follower, _ = await bot.store.load(genuine)
            await bot.store.record_exchange(None, genuine, follower, [TextReply("yes")], passive_count=0)
            assert genuine.replay_check is not None
            await asyncio.wait_for(genuine.replay_check.wait(), 5)
        finally:
            await ledger.close()
        async with bot.sessions() as s:
            keys = sorted((await s.execute(select(SeenRequest.key, SeenRequest.body_hash))).all())
            stored = set((await s.execute(select(Message.dedupe_key).where(Message.direction == "in"))).scalars())
    assert [tuple(k) for k in keys] == [("new", "body 3"), ("used", "body 1")]
    assert stored == {"before", "genuine"}


async def test_a_known_followers_messages_take_no_turn_of_the_follower_creator(database_url: str) -> None:
    """A follower found by the reader is used as found: only a first contact goes through the creator
    (a write transaction of its own), once."""
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        creator = bot.store.reader._creator
        await bot.channel.receive("fan", Kind.TEXT, "hello", message_id="first")
        assert creator.batches == 1
        await asyncio.gather(*(bot.channel.receive("fan", Kind.TEXT, f"again {i}", message_id=f"m{i}")
                               for i in range(5)))
        await bot.channel.receive("fan", Kind.TEXT, "no id")
        assert creator.batches == 1


async def test_record_seen_answers_each_request_of_a_batch_by_its_own_body(database_url: str) -> None:
    """The replay cache's verdicts, whether the batch's keys were all new (SQLite then reads nothing
    back) or some were stored already or came twice in the batch."""
    from datetime import timedelta

    from bot.core.clock import utcnow
    from bot.storage.engine import create_engine
    from bot.storage.migrate import upgrade
    from bot.storage.replay import Seen, record_seen

    engine = create_engine(database_url)
    await upgrade(engine)
    expires = utcnow() + timedelta(minutes=5)

    def seen(key: str, body: str) -> Seen:
        return Seen("wechat", key, body, expires)

    async def record(batch: list[Seen]) -> list[bool]:
        async with engine.begin() as conn:
            return await conn.run_sync(lambda sync: record_seen(sync, batch))

    try:
        assert await record([seen("new-1", "a"), seen("new-2", "b")]) == [True, True]
        # Stored already: its own body admitted (a platform's retry), another refused.
        assert await record([seen("new-1", "a"), seen("new-2", "x"), seen("new-3", "c")]) == [True, False, True]
        # Twice in one batch: the first body stored wins; the same body again is a retry.
        assert await record([seen("twice", "a"), seen("twice", "b"), seen("twice", "a")]) == [True, False, True]
        async with engine.connect() as conn:
            stored = dict((await conn.execute(select(SeenRequest.key, SeenRequest.body_hash))).all())
        assert stored == {"new-1": "a", "new-2": "b", "new-3": "c", "twice": "a"}
    finally:
        await engine.dispose()


def test_the_replay_prune_schedule_comes_back_at_once_while_rows_are_left_and_waits_when_none_are() -> None:
    from bot.storage.replay import PruneSchedule

    now = [100.0]
    schedule = PruneSchedule(every=30, rows=500, clock=lambda: now[0])
    assert schedule.due() == 500  # the first batch prunes
    schedule.pruned(500)  # as many as allowed: more are waiting
    assert schedule.due() == 500
    schedule.pruned(120)  # the backlog is gone
    assert schedule.due() == 0
    now[0] += 29.9
    assert schedule.due() == 0
    now[0] += 0.1
    assert schedule.due() == 500


async def test_the_group_writer_prunes_expired_replay_rows_a_bounded_share_per_batch(database_url: str) -> None:
    """A backlog of expired replay rows (a quiet spell, then traffic; or the hourly retention not yet come)
    is deleted by the message batches a share at a time: none of them carries the whole backlog, the
    next batches take the rest, rows still in their window stay, and once the backlog is gone the
    batches stop pruning until the period is over. Messages whose check rides with their exchange
    prune too, not only requests admitted on their own."""
    from datetime import timedelta

    from sqlalchemy import func, insert

    from bot.core.clock import utcnow
    from bot.storage.models import SeenRequest
    from bot.storage.replay import PruneSchedule, Seen
    from bot.storage.writer import ExchangeWrite, GroupWriter

    engine, fid = await _engine_and_follower(database_url)
    writer = GroupWriter(engine)
    clock = [0.0]
    writer.pruning = PruneSchedule(every=3600, rows=500, clock=lambda: clock[0])
    past, later = utcnow() - timedelta(minutes=1), utcnow() + timedelta(minutes=5)

    async def expired_and_live() -> tuple[int, int]:
        async with engine.connect() as conn:
            expired = (await conn.execute(select(func.count()).select_from(SeenRequest)
                                          .where(SeenRequest.expires_at < utcnow()))).scalar_one()
            live = (await conn.execute(select(func.count()).select_from(SeenRequest)
                                       .where(SeenRequest.expires_at >= utcnow()))).scalar_one()
        return expired, live

    async def add(count: int, prefix: str, expires: Any) -> None:
        async with engine.begin() as conn:
            await conn.execute(insert(SeenRequest), [
                {"scope": "wechat", "key": f"{prefix}{i}", "body_hash": "h", "expires_at": expires} for i in range(count)])

    async def message(number: int) -> None:
        name = f"m{number}"
        await writer.write(ExchangeWrite(fid, {}, _row(fid, "in", name, dedupe_key=name), [_row(fid, "out", name)],
                                         seen=Seen("wechat", f"new{number}", "h", later)))

    try:
        await add(1_200, "old", past)
        await add(50, "live", later)
        left = []
        for number in range(4):
            await message(number)
            left.append(await expired_and_live())
        assert left == [(700, 51), (200, 52), (0, 53), (0, 54)]
        await add(10, "older", past)  # expired since: the period after the last (partial) prune is not over
        await message(4)
        assert await expired_and_live() == (10, 55)
        clock[0] += 3600  # the period over
        await message(5)
        assert await expired_and_live() == (0, 56)
    finally:
        await writer.close()
        await engine.dispose()
