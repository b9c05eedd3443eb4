"""Dedupe at the dispatcher: what a platform retry gets back, whichever way it is recognised.

A retry must be answered with the very exchange the first try stored (same rows, same passive
count) and flagged ``duplicate``: the adapters deliver the pending rows of an exchange only when it
is not a duplicate, so a retry never sends a reply twice. The router tests count handler runs and
rows; these check the exchange and the flag, and the in-flight map's cancellation and error paths.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import select

from bot import Context, Inbound, Kind, Reply, Router, TextReply
from bot.core.capabilities import Capabilities
from bot.core.dispatcher import Dispatched, PassiveSlot
from bot.storage.models import Follower, Message
from bot.testing import BotHarness

CAPS = Capabilities(max_passive_replies=1)
router = Router("dedupe")
started: list[str] = []
release: asyncio.Event  # a new one per test: an Event belongs to the loop it was first awaited on


@router.on(command="two")
async def two_replies(msg: Inbound, ctx: Context) -> list[Reply]:
    started.append(msg.message_id or "")
    return [TextReply("inline"), TextReply("through the API")]


@router.on(command="slow")
async def slow(msg: Inbound, ctx: Context) -> list[Reply]:
    started.append(msg.message_id or "")
    await release.wait()
    return [TextReply("at last")]


def inbound(message_id: str | None, text: str = "/two", external_id: str = "ann") -> Inbound:
    return Inbound(channel="mock", account="mock", external_id=external_id, kind=Kind.COMMAND, text=text,
                   message_id=message_id)


async def dispatch(bot: BotHarness, msg: Inbound) -> Dispatched:
    return await bot.dispatcher.dispatch(msg, capabilities=CAPS, passive=PassiveSlot())


async def stored_exchange(bot: BotHarness, message_id: str) -> tuple[int, list[int], list[str], int]:
    async with bot.sessions() as s:
        inbound_row = (await s.execute(select(Message).where(Message.dedupe_key == message_id))).scalar_one()
        rows = (await s.execute(select(Message).where(Message.in_reply_to == inbound_row.id)
                                .order_by(Message.id))).scalars().all()
        follower_id = (await s.execute(select(Follower.id).where(Follower.external_id == "ann"))).scalar_one()
    return inbound_row.id, [r.id for r in rows], [r.status for r in rows], follower_id


@pytest.fixture
async def bot(database_url: str) -> BotHarness:
    global release
    started.clear()
    release = asyncio.Event()
    async with BotHarness(routers=[router], database_url=database_url, capabilities=CAPS) as h:
        yield h


async def test_the_exchange_returned_is_the_one_stored(bot: BotHarness) -> None:
    first = await dispatch(bot, inbound("m-1"))
    inbound_id, ids, statuses, follower_id = await stored_exchange(bot, "m-1")
    assert not first.duplicate
    assert (first.exchange.inbound_id, first.exchange.outbound_ids, first.exchange.passive_count,
            first.exchange.follower_id) == (inbound_id, ids, 1, follower_id)
    assert statuses == ["passive", "pending"] and first.exchange.pending_ids == ids[1:]


async def test_a_retry_after_the_first_is_stored_gets_that_exchange_flagged_duplicate(bot: BotHarness) -> None:
    first = await dispatch(bot, inbound("m-2"))
    again = await dispatch(bot, inbound("m-2"))
    assert again.duplicate is True and again.exchange == first.exchange
    assert started == ["m-2"]


async def test_a_retry_while_the_first_runs_gets_its_exchange_flagged_duplicate(bot: BotHarness) -> None:
    first = asyncio.create_task(dispatch(bot, inbound("m-3", "/slow")))
    while not started:
        await asyncio.sleep(0.01)
    retry = asyncio.create_task(dispatch(bot, inbound("m-3", "/slow")))
    await asyncio.sleep(0.05)
    release.set()
    done, again = await first, await retry
    assert (done.duplicate, again.duplicate) == (False, True)
    assert again.exchange == done.exchange and started == ["m-3"]


async def test_a_retry_that_lost_the_race_to_another_instance_gets_its_exchange(database_url: str) -> None:
    global release
    started.clear()
    release = asyncio.Event()
    release.set()
    async with BotHarness(routers=[router], database_url=database_url, capabilities=CAPS) as one, \
            BotHarness(routers=[router], database_url=database_url, capabilities=CAPS) as two:
        results = await asyncio.gather(dispatch(one, inbound("m-4")), dispatch(two, inbound("m-4")))
    assert sorted(r.duplicate for r in results) == [False, True]
    assert results[0].exchange == results[1].exchange


async def test_a_message_without_a_platform_id_still_answers_inline(bot: BotHarness) -> None:
    result = await dispatch(bot, inbound(None))
    assert (result.duplicate, result.exchange.passive_count) == (False, 1)
    assert [r.text for r in result.exchange.passive_replies] == ["inline"]


async def test_a_retry_waiting_on_a_cancelled_first_try_handles_the_message_itself(bot: BotHarness) -> None:
    first = asyncio.create_task(dispatch(bot, inbound("m-5", "/slow")))
    while not started:
        await asyncio.sleep(0.01)
    retry = asyncio.create_task(dispatch(bot, inbound("m-5", "/slow")))
    await asyncio.sleep(0.05)
    first.cancel()  # the platform gave up on the first request
    await asyncio.sleep(0.05)
    release.set()
    result = await retry
    assert (result.duplicate, [r.text for r in result.replies]) == (False, ["at last"])
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_retries_waiting_on_a_cancelled_first_try_run_the_handler_once_between_them(bot: BotHarness) -> None:
    """The first try's request went away: the first of the retries waiting on it handles the message,
    the others wait for that one, and all get the same exchange."""
    first = asyncio.create_task(dispatch(bot, inbound("m-7", "/slow")))
    while not started:
        await asyncio.sleep(0.01)
    retries = [asyncio.create_task(dispatch(bot, inbound("m-7", "/slow"))) for _ in range(2)]
    await asyncio.sleep(0.05)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    while len(started) < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a second retry handling it too would have started by now
    release.set()
    results = await asyncio.gather(*retries)
    assert started == ["m-7", "m-7"]  # the cancelled first try, then one retry
    assert sorted(r.duplicate for r in results) == [False, True]
    assert results[0].exchange == results[1].exchange


async def test_a_cancelled_retry_stays_cancelled_even_when_the_first_try_is_cancelled_too(bot: BotHarness) -> None:
    first = asyncio.create_task(dispatch(bot, inbound("m-6", "/slow")))
    while not started:
        await asyncio.sleep(0.01)
    retry = asyncio.create_task(dispatch(bot, inbound("m-6", "/slow")))
    await asyncio.sleep(0.05)
    # The retry's request goes away just as the first try's cancellation reaches it: it must not
    # take the message over (WeChat will send it again), but stay cancelled.
    bot.dispatcher._in_flight[("mock", "mock", "m-6")].add_done_callback(lambda _f: retry.cancel())
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(retry, 5)
    assert started == ["m-6"]  # the retry did not start the handler again
    async with bot.sessions() as s:
        assert (await s.execute(select(Message.id))).all() == []


async def test_a_failure_of_the_first_try_reaches_the_retry_waiting_on_it(bot: BotHarness,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    async def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bot.store, "record_exchange", disk_full)
    first = asyncio.create_task(dispatch(bot, inbound("m-7", "/slow")))
    while not started:
        await asyncio.sleep(0.01)
    retry = asyncio.create_task(dispatch(bot, inbound("m-7", "/slow")))
    await asyncio.sleep(0.05)
    release.set()
    for task in (first, retry):
        with pytest.raises(OSError, match="disk full"):
            await asyncio.wait_for(task, 10)


async def test_without_a_passive_slot_every_reply_goes_to_the_outbox(bot: BotHarness) -> None:
    result = await bot.dispatcher.dispatch(inbound("m-8"), capabilities=CAPS)  # no HTTP answer is held open
    assert (result.exchange.passive_count, result.exchange.passive_replies) == (0, [])
    _inbound_id, ids, statuses, _follower = await stored_exchange(bot, "m-8")
    assert result.exchange.pending_ids == ids and statuses == ["pending", "pending"]


async def test_a_retry_is_logged_as_a_duplicate_with_the_hashed_follower(bot: BotHarness,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from bot.core.dispatcher import follower_hash, message_hash

    msg = inbound("m-9")
    with caplog.at_level(logging.INFO, logger="engagebot.dispatch"):
        await dispatch(bot, msg)
        await dispatch(bot, msg)
    handled, dropped = [r for r in caplog.records if r.name == "engagebot.dispatch"]
    assert (handled.getMessage(), dropped.getMessage()) == ("handled", "duplicate dropped")
    for record in (handled, dropped):
        assert (record.channel, record.follower, record.message_id, record.kind) == (
            "mock", follower_hash(msg), message_hash(msg), "command")
        assert "ann" not in str(record.__dict__.get("follower"))  # the platform id is never logged
        assert "m-9" not in str(record.__dict__.get("message_id"))  # nor the message's, which may hold it
    assert (handled.replies, handled.passive) == (2, 1)


writes = Router("writes")


@writes.on(command="touch")
async def touch(msg: Inbound, ctx: Context) -> list[Reply]:
    from sqlalchemy import update

    started.append(msg.message_id or "")
    # A write of its own: the exchange is stored in the handler's transaction, not by the group writer.
    await ctx.session.execute(update(Follower).where(Follower.id == ctx.follower.id).values(display_name="seen"))
    return [TextReply("touched")]


async def test_two_instances_racing_with_a_handler_that_writes_keep_one_exchange(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    started.clear()
    async with BotHarness(routers=[writes], database_url=database_url, capabilities=CAPS) as one, \
            BotHarness(routers=[writes], database_url=database_url, capabilities=CAPS) as two:
        with caplog.at_level(logging.INFO, logger="engagebot.dispatch"):
            results = await asyncio.gather(dispatch(one, inbound("m-10", "/touch")),
                                           dispatch(two, inbound("m-10", "/touch")))
    assert results[0].exchange == results[1].exchange
    if started == ["m-10", "m-10"]:  # both ran: the loser of the insert answered with the winner's exchange
        assert sorted(r.duplicate for r in results) == [False, True]
        assert [r.getMessage() for r in caplog.records].count("duplicate lost the race") == 1


@router.on(command="lang")
async def language_seen(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply(msg.language_hint or "none")]


@pytest.mark.parametrize("message_id", ["l-1", None])
async def test_the_language_the_platform_gives_reaches_the_handler(bot: BotHarness, message_id: str | None) -> None:
    """A message without a language, from a follower with none stored: the platform is asked, and the
    handler sees its answer (with and without a platform id, the two ways through ``dispatch``)."""
    asked: list[str] = []

    async def lookup(msg: Inbound) -> str | None:
        asked.append(msg.external_id)
        return "zh_CN" + "-x" * 20  # what a platform says is kept to 35 characters

    result = await bot.dispatcher.dispatch(inbound(message_id, "/lang", external_id="new"), capabilities=CAPS,
                                           passive=PassiveSlot(), language_lookup=lookup)
    assert (asked, [r.text for r in result.replies]) == (["new"], [("zh_CN" + "-x" * 20)[:35]])


async def test_a_notification_is_recorded_once_and_never_answered(bot: BotHarness) -> None:
    from sqlalchemy import func

    from bot.core.inbound import Notice
    from bot.storage.models import PlatformNotice

    notice = Inbound(channel="mock", account="mock", external_id="ann", kind=Kind.NOTIFICATION,
                     message_id="n-1", notice=Notice(event="pinned_message"))
    first, again = await dispatch(bot, notice), await dispatch(bot, notice)
    async with bot.sessions() as s:
        rows = (await s.execute(select(PlatformNotice.id, PlatformNotice.event, PlatformNotice.dedupe_key))).all()
        messages = await s.scalar(select(func.count()).select_from(Message))
    assert [tuple(r) for r in rows] == [(first.exchange.inbound_id, "pinned_message", "n-1")]
    assert (first.duplicate, first.replies, again.duplicate, again.replies) == (False, [], True, [])
    assert (messages, started) == (0, [])


seen: list[Context] = []


@router.on(command="ctx")
async def keep_context(msg: Inbound, ctx: Context) -> list[Reply]:
    seen.append(ctx)
    return [TextReply("seen")]


async def test_a_handler_gets_the_dispatchers_context_and_the_follower_window_opened(bot: BotHarness) -> None:
    """What ``_dispatch_once`` builds for the handler: the message, the channel's capabilities, the time
    of handling, the dispatcher's locales, zone and services, whether the follower followed before this
    message; and the reply window the message opens, stored with it."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.core.clock import utcnow

    seen.clear()
    dispatcher = bot.dispatcher  # none of them the Context's defaults
    dispatcher.tz = ZoneInfo("Asia/Shanghai")
    dispatcher.default_locale, dispatcher.international_locale = "en", "zh_Hant"
    before = utcnow()
    first = inbound("c-1", "/ctx", external_id="cyd")
    await dispatch(bot, first)
    await dispatch(bot, inbound("c-2", "/ctx", external_id="cyd"))
    after = datetime.now(UTC)
    ctx, again = seen
    assert (ctx.msg.message_id, ctx.msg.text, ctx.capabilities) == ("c-1", "/ctx", CAPS)
    assert before <= ctx.now <= after
    assert (ctx.default_locale, ctx.international_locale, ctx.locale) == ("en", "zh_Hant", "en")
    assert ctx.tz == ZoneInfo("Asia/Shanghai") and ctx.services is dispatcher.services
    assert (ctx.was_following, again.was_following) == (False, True)  # a first contact counts as following
    async with bot.sessions() as s:
        kind = (await s.execute(select(Follower.last_action_kind).where(Follower.external_id == "cyd"))).scalar_one()
    assert kind == "message"


async def test_a_follower_someone_else_answers_gets_no_handler_and_is_told_once(bot: BotHarness) -> None:
    """Paused for a person: the handler does not run; queued for one of our agents, the follower is
    told once that a person will answer; with the platform's own desk (a recent pause), nothing."""
    from sqlalchemy import update

    from bot.core.clock import utcnow
    from bot.core.follower import AGENT_QUEUE, PERSON_WILL_ANSWER, PLATFORM_DESK
    from bot.i18n import default_catalogs

    for name in ("ann", "bea"):
        await dispatch(bot, inbound(f"{name}-0", "/two", external_id=name))
    async with bot.sessions() as s:
        for name, by in (("ann", AGENT_QUEUE), ("bea", PLATFORM_DESK)):
            await s.execute(update(Follower).where(Follower.external_id == name).values(
                paused_by=by, paused_at=utcnow(), handoff_told_at=None))
        await s.commit()
    started.clear()
    told = await dispatch(bot, inbound("ann-1", external_id="ann"))
    quiet = await dispatch(bot, inbound("ann-2", external_id="ann"))
    desk = await dispatch(bot, inbound("bea-1", external_id="bea"))
    person = default_catalogs().gettext(bot.dispatcher.default_locale, PERSON_WILL_ANSWER)
    assert ([r.text for r in told.replies], quiet.replies, desk.replies, started) == ([person], [], [], [])
    async with bot.sessions() as s:
        stored = (await s.execute(select(Message.dedupe_key).where(
            Message.direction == "in", Message.dedupe_key.in_(["ann-1", "ann-2", "bea-1"])))).scalars()
        assert sorted(stored) == ["ann-1", "ann-2", "bea-1"]  # stored all the same


async def test_a_retry_that_lost_the_race_is_logged_with_the_hashed_follower(
        bot: BotHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The lookup missed the copy another instance stored (read before it committed): the handler runs,
    the write meets the stored row, the stored exchange is answered and the line says so."""
    import logging

    from bot.core.dispatcher import follower_hash, message_hash

    msg = inbound("m-11")
    first = await dispatch(bot, msg)
    real = bot.store.load

    async def missed_the_copy(msg):  # type: ignore[no-untyped-def]
        follower, _stored = await real(msg)
        return follower, None

    monkeypatch.setattr(bot.store, "load", missed_the_copy)
    with caplog.at_level(logging.INFO, logger="engagebot.dispatch"):
        again = await dispatch(bot, msg)
    assert (again.duplicate, again.exchange) == (True, first.exchange)
    [lost] = [r for r in caplog.records if r.getMessage() == "duplicate lost the race"]
    assert (lost.channel, lost.follower, lost.message_id, lost.kind) == (
        "mock", follower_hash(msg), message_hash(msg), "command")


async def test_retries_waiting_on_a_forged_first_try_run_the_handler_once_between_them(bot: BotHarness) -> None:
    """A forged body under a replayed signature carries the message's id and is refused; the genuine
    deliveries waiting on it go on: the first of them handles the message, the others wait for it."""
    from datetime import timedelta

    from bot.channels.replay import PendingCheck
    from bot.core.clock import utcnow
    from bot.errors import ReplayError
    from bot.storage.replay import Seen

    await dispatch(bot, inbound("known"))  # ann is known: the forged try's check is what it waits on
    started.clear()
    checked = asyncio.Event()

    class SlowLedger:  # the forged try's check, refused once the genuine deliveries are waiting
        async def admit(self, seen: Seen) -> bool:
            await checked.wait()
            return False

    check = PendingCheck(SlowLedger(), Seen("wechat", "key", "forged", utcnow() + timedelta(minutes=5)))  # type: ignore[arg-type]
    forged = dataclasses.replace(inbound("m-forged", "/slow"), replay_check=check)
    first = asyncio.create_task(dispatch(bot, forged))
    await asyncio.sleep(0.05)
    retries = [asyncio.create_task(dispatch(bot, inbound("m-forged", "/slow"))) for _ in range(2)]
    await asyncio.sleep(0.05)
    assert started == [] and not any(r.done() for r in retries)  # all three in flight, the genuine ones waiting
    checked.set()
    with pytest.raises(ReplayError):
        await first
    while not started:
        await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*retries)
    assert started == ["m-forged"]
    assert sorted(r.duplicate for r in results) == [False, True]
    assert results[0].exchange == results[1].exchange
