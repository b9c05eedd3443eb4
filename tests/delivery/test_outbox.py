"""The outbox's bookkeeping: what each platform answer leaves on the row, leases, sweeps, reply windows.

Against a recording channel (no network, no timing), so every outcome is checked exactly: status,
reason, retry time, attempts, the follower's window count. The platform-level tests (WeChat,
Telegram, broadcasts) check the same through real HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.base import Channel
from bot.core.capabilities import Capabilities, MassSendQuota, ReplyWindow
from bot.core.inbound import Inbound, Kind, utcnow
from bot.core.reply import Article, ArticlesReply, Reply
from bot.delivery import outbox as outbox_module
from bot.delivery import windows
from bot.delivery.journal import OutboxJournal, Outcome, _chunks, write_outcomes
from bot.delivery.outbox import (
    HELD_FOR_MASS,
    LEASE,
    MAX_ATTEMPTS,
    OUTSIDE_WINDOW,
    OutboxSender,
    RateLimiter,
    channel_key,
)
from bot.errors import FollowerGone, NotSent, OutsideReplyWindow, PlatformAPIError, QuotaExceeded
from bot.storage.models import Follower, Message
from bot.storage.status import DeliveryStatus
from bot.storage.store import apply_follower_action
from tests.delivery.test_pacing_and_retry import START, SteppedClock
from tests.support.broadcast import RecordingChannel, add_followers, ago

Sessions = async_sessionmaker[AsyncSession]
WINDOWS = Capabilities(window_after_message=ReplyWindow(timedelta(hours=48), 5),
                       window_after_event=ReplyWindow(timedelta(minutes=1), 3))


def aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


async def follower_id(sessions: Sessions, external_id: str = "f0") -> int:
    async with sessions() as session:
        return (await session.execute(select(Follower.id).where(Follower.external_id == external_id))).scalar_one()


async def pending(sessions: Sessions, texts: Sequence[str], *, external_id: str = "f0", channel: str = "fake",
                  account: str = "acct", direction: str = "out", leased: bool = False, **fields: Any) -> list[int]:
    """Outbox rows for one follower, as the dispatcher (leased) or a broadcast (not leased) writes them."""
    fid = await follower_id(sessions, external_id)
    now = utcnow()
    async with sessions() as session:
        base = dict(follower_id=fid, channel=channel, account=account, direction=direction, kind="text",
                    status="pending", attempts=0, created_at=now, next_attempt_at=now + LEASE if leased else None)
        rows = [Message(**{**base, "text": t, "body": {"type": "text", "text": t}, **fields}) for t in texts]
        session.add_all(rows)
        await session.commit()
        return [r.id for r in rows]


async def row(sessions: Sessions, message_id: int) -> Message:
    async with sessions() as session:
        return await session.get(Message, message_id)


async def follower(sessions: Sessions, external_id: str = "f0") -> Follower:
    async with sessions() as session:
        return (await session.execute(select(Follower).where(Follower.external_id == external_id))).scalar_one()


class Answering(RecordingChannel):
    """Answers each send with the next of ``answers`` (an exception to raise, or None: accepted)."""

    def __init__(self, *answers: BaseException | None, capabilities: Capabilities = Capabilities(),
                 mass: bool = False) -> None:
        super().__init__(capabilities)
        self.answers = list(answers)
        self.contexts: list[dict[str, Any]] = []
        if not mass:
            self.send_mass = None  # type: ignore[assignment]

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        self.contexts.append(dict(context or {}))
        answer = self.answers.pop(0) if self.answers else None
        if answer is not None:
            raise answer
        await super().send_reply(external_id, reply, context=context)


# --- what a platform answer leaves on the row --------------------------------------------------------


async def test_a_sent_row_is_marked_sent_with_its_time_and_nothing_else(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    before = utcnow()
    await OutboxSender(Answering(), sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, r.next_attempt_at, r.attempts) == ("sent", None, None, 1)
    assert before <= aware(r.sent_at) <= utcnow()


@pytest.mark.parametrize(("error", "status", "reason"), [
    (PlatformAPIError(40001, "invalid credential"), "failed", "platform error 40001: invalid credential"),
    (OutsideReplyWindow("WeChat 45015: outside the 48-hour reply window"), "undeliverable",
     "WeChat 45015: outside the 48-hour reply window"),
    (OutsideReplyWindow(), "undeliverable", OUTSIDE_WINDOW),
    (FollowerGone("blocked the bot"), "undeliverable", "blocked the bot"),
    (FollowerGone(), "undeliverable", "follower gone"),
])
async def test_each_platform_refusal_ends_the_row_with_its_reason(sessions: Sessions, error: Exception, status: str,
                                                                   reason: str) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    channel = Answering(error)
    await OutboxSender(channel, sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, r.sent_at, r.next_attempt_at) == (status, reason, None, None)
    assert channel.sends == []
    f = await follower(sessions)
    assert f.following is (not isinstance(error, FollowerGone))  # only a gone follower is marked unfollowed
    assert (f.unfollowed_at is not None) is isinstance(error, FollowerGone)


async def test_a_long_reason_is_cut_short_and_marked_so(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    await OutboxSender(Answering(PlatformAPIError(1, "x" * 400)), sessions).deliver([mid])
    r = await row(sessions, mid)
    assert r.status == "failed" and r.reason.startswith("platform error 1: xxx") and r.reason.endswith("…")
    assert len(r.reason) <= 255


async def test_one_rows_failure_leaves_the_others_of_its_batch_to_be_sent(sessions: Sessions) -> None:
    """A reply's later parts wait for its earlier ones; once one ends failed, the sweep sends the rest."""
    await add_followers(sessions, 1)
    ids = await pending(sessions, ["one", "two", "three"], leased=True)
    channel = Answering(None, PlatformAPIError(45002, "content size out of limit"), None)
    sender = OutboxSender(channel, sessions)
    await sender.deliver(ids)
    assert [(await row(sessions, i)).status for i in ids] == ["sent", "failed", "pending"]
    assert (await row(sessions, ids[2])).next_attempt_at is None  # given back: due at once
    await sender.sweep_once()
    assert [(await row(sessions, i)).status for i in ids] == ["sent", "failed", "sent"]
    assert [s[2] for s in channel.sends] == ["one", "three"]


async def test_a_quota_answer_waits_as_long_as_the_platform_says_and_pauses_every_send(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    sender = OutboxSender(Answering(QuotaExceeded("WeChat 45011: api minute-quota reach limit", retry_after=60)),
                          sessions)
    before = utcnow()
    await sender.deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, r.sent_at) == ("pending", "retry: WeChat 45011: api minute-quota reach limit", None)
    assert before + timedelta(seconds=59) <= aware(r.next_attempt_at) <= utcnow() + timedelta(seconds=60)
    loop = asyncio.get_running_loop()
    assert 59 < sender.limiter._paused_until - loop.time() <= 60


async def test_without_a_retry_time_the_wait_doubles_with_each_attempt(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True, attempts=3)  # the 4th attempt: 2**4 s
    before = utcnow()
    await OutboxSender(Answering(QuotaExceeded("busy")), sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, r.attempts) == ("pending", "retry: busy", 4)
    assert before + timedelta(seconds=15) <= aware(r.next_attempt_at) <= utcnow() + timedelta(seconds=16)


async def test_a_send_that_surely_did_not_go_is_repeated_in_place_twice_then_rescheduled(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    ids = await pending(sessions, ["one", "two"], leased=True)
    channel = Answering(NotSent("unreachable"), NotSent("5xx"), None)  # the third try goes
    sender = OutboxSender(channel, sessions)
    await sender.deliver(ids)
    assert [(await row(sessions, i)).status for i in ids] == ["sent", "sent"]
    assert (await row(sessions, ids[0])).attempts == 1  # repeated where it was: not claimed again
    assert [s[2] for s in channel.sends] == ["one", "two"]  # in order

    [mid] = await pending(sessions, ["three"], leased=True)
    channel = Answering(NotSent("a"), NotSent("b"), NotSent("c"))
    await OutboxSender(channel, sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, r.attempts) == ("pending", "retry: c", 1)  # then the backoff, as any other
    assert len(channel.contexts) == 3


async def test_a_chats_own_retry_after_is_waited_out_in_place_for_that_chat_only(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    channel = Answering(QuotaExceeded("429", retry_after=0.3, chat_only=True))
    sender = OutboxSender(channel, sessions)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sender.deliver([mid])
    assert loop.time() - started >= 0.3
    r = await row(sessions, mid)
    assert (r.status, r.attempts) == ("sent", 1)
    assert sender.limiter.paused_for() == 0  # nobody else waited
    assert [c["idempotency_key"] for c in channel.contexts] == [f"outbox:{mid}"] * 2


async def test_a_chats_retry_after_longer_than_a_minute_reschedules_the_row(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    channel = Answering(QuotaExceeded("429", retry_after=61, chat_only=True))
    sender = OutboxSender(channel, sessions)
    await sender.deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason) == ("pending", "retry: 429")
    assert len(channel.contexts) == 1
    assert 60 < sender.limiter.paused_for("f0") <= 61


async def test_after_the_last_attempt_a_quota_answer_fails_the_row(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True, attempts=MAX_ATTEMPTS - 1)
    await OutboxSender(Answering(QuotaExceeded("daily quota", retry_after=3600)), sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, r.next_attempt_at, r.attempts) == ("failed", "quota: daily quota", None, MAX_ATTEMPTS)


async def test_an_unexpected_error_is_retried_then_fails_after_the_last_attempt(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    first, last = await pending(sessions, ["one"], leased=True), await pending(
        sessions, ["two"], leased=True, attempts=MAX_ATTEMPTS - 1)
    before = utcnow()
    await OutboxSender(Answering(RuntimeError("bug")), sessions).deliver(first)
    await OutboxSender(Answering(RuntimeError("bug")), sessions).deliver(last)
    r1, r2 = await row(sessions, first[0]), await row(sessions, last[0])
    assert (r1.status, r1.reason, r1.attempts) == ("pending", "retry: RuntimeError('bug')", 1)
    assert before + timedelta(seconds=2) <= aware(r1.next_attempt_at) <= utcnow() + timedelta(seconds=2)
    assert (r2.status, r2.reason, r2.next_attempt_at) == ("failed", "error: RuntimeError('bug')", None)


async def test_an_unexpected_send_error_is_logged_with_its_traceback_channel_and_row(
        sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    """The row keeps only the error's repr: the log line is where the bug can be found."""
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["one"], leased=True)
    error = RuntimeError("bug")
    with caplog.at_level("ERROR", logger="engagebot.outbox"):
        await OutboxSender(Answering(error), sessions).deliver([mid])
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == "outbound send raised"
    assert record.exc_info is not None and record.exc_info[1] is error
    assert (record.channel, record.message_id) == ("fake", mid)  # type: ignore[attr-defined]


# --- what goes with each send ------------------------------------------------------------------------


async def test_each_part_of_a_degraded_reply_has_its_own_idempotency_key(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    fid = await follower_id(sessions)
    two = ArticlesReply((Article("A", "a", "https://a.example"), Article("B", "b", "https://b.example")))
    async with sessions() as session:
        message = Message(follower_id=fid, channel="fake", account="acct", direction="out", kind="articles", text="A",
                          body={"type": "articles", "articles": [
                              {"title": a.title, "description": a.description, "url": a.url, "picture_url": ""}
                              for a in two.articles]},
                          status="pending", attempts=0, created_at=utcnow(), broadcast_id=None)
        session.add(message)
        await session.commit()
        mid = message.id
    channel = Answering(capabilities=Capabilities(max_articles=1))
    await OutboxSender(channel, sessions).deliver([mid], context={"campaign": "spring"})
    assert [c["idempotency_key"] for c in channel.contexts] == [f"outbox:{mid}", f"outbox:{mid}.1"]
    assert all(c["message_id"] == mid and c["broadcast_id"] is None and c["campaign"] == "spring"
               for c in channel.contexts)
    assert (await row(sessions, mid)).status == "sent"


async def test_each_row_settled_is_counted_by_channel_and_outcome_and_nothing_stays_in_flight(
        sessions: Sessions) -> None:
    """``engagebot_deliveries_total``: what an operator graphs per channel; ``in_flight`` is back to 0 after each
    row, whatever became of it (a row whose body cannot be read fails before its mark and was never in flight)."""
    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("engagebot_deliveries_total", {"channel": "fake", "outcome": outcome}) or 0.0

    await add_followers(sessions, 1)
    sent, refused = await pending(sessions, ["a", "b"], leased=True)
    [unreadable] = await pending(sessions, ["c"], leased=True, body={"type": "no such type"})
    before = {o: count(o) for o in ("sent", "failed", "pending")}
    sender = OutboxSender(Answering(None, PlatformAPIError(40001, "invalid credential")), sessions)
    await sender.deliver([sent, refused])
    assert sender.in_flight == 0 and sender.most_in_flight == 1
    await sender.deliver([unreadable])
    assert sender.in_flight == 0
    assert (await row(sessions, unreadable)).status == "pending"  # an unexpected error: retried later
    assert {o: count(o) - n for o, n in before.items()} == {"sent": 1, "failed": 1, "pending": 1}


@pytest.mark.parametrize("lost", ["let go by a renewal", "settled elsewhere"])
async def test_a_replys_later_rows_wait_when_an_earlier_one_is_no_longer_ours(sessions: Sessions, lost: str) -> None:
    """Another sender has the earlier row now: sending the later one from here could overtake it. The later
    row is given back, due again at once, and nothing is sent from here."""
    await add_followers(sessions, 1)
    first, second = await pending(sessions, ["first", "second"], leased=True)
    channel = Answering()
    sender = OutboxSender(channel, sessions)
    real_acquire = sender.limiter.acquire

    async def acquire(chat: str) -> None:
        if sender.journal.holds(first):  # the first row's turn: it is lost just now
            if lost == "let go by a renewal":
                sender.journal.drop([first])
            else:
                async with sessions() as session:
                    await session.execute(update(Message).where(Message.id == first).values(status="sent"))
                    await session.commit()
        await real_acquire(chat)

    sender.limiter.acquire = acquire  # type: ignore[method-assign]
    await sender.deliver([first, second])
    assert channel.sends == []
    r2 = await row(sessions, second)
    assert (r2.status, r2.next_attempt_at, r2.attempts) == ("pending", None, 1)


async def test_deliver_of_nothing_does_nothing(sessions: Sessions) -> None:
    channel = Answering()
    await OutboxSender(channel, sessions).deliver([])
    assert channel.contexts == []


# --- leases: one sender per row -------------------------------------------------------------------------


async def test_a_row_already_settled_is_not_sent_again(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    channel = Answering()
    sender = OutboxSender(channel, sessions)
    await sender.deliver([mid])
    await sender.deliver([mid])  # a second call (a retried request) finds it sent
    assert len(channel.sends) == 1 and (await row(sessions, mid)).attempts == 1


async def test_concurrent_deliveries_share_one_claim_and_each_row_goes_once_in_order(sessions: Sessions) -> None:
    """Replies to many chats at once are claimed together (one commit); a row asked for by two calls
    at once (a retried request racing the first) is sent once, and each chat's rows keep their order."""
    await add_followers(sessions, 5)
    chats = [await pending(sessions, [f"{f}-a", f"{f}-b"], external_id=f"f{f}", leased=True) for f in range(5)]
    channel = Answering()
    sender = OutboxSender(channel, sessions)
    await asyncio.gather(*(sender.deliver(ids) for ids in chats), sender.deliver(chats[0]))
    assert sender._deliveries.batches < len(chats) + 1  # calls made together were claimed together
    sent = [s[2] for s in channel.sends]
    assert sorted(sent) == sorted(f"{f}-{x}" for f in range(5) for x in "ab")  # each once
    for f in range(5):
        assert sent.index(f"{f}-a") < sent.index(f"{f}-b")
    assert {(await row(sessions, i)).attempts for ids in chats for i in ids} == {1}


async def test_a_deliver_cancelled_while_its_claim_runs_gives_its_rows_back_for_the_sweep(sessions: Sessions) -> None:
    """The claim runs in a batch shared with other calls: a caller cancelled meanwhile (a request gone,
    a deadline) must not leave its rows held and unsent by anyone while the process runs."""
    await add_followers(sessions, 2)
    [kept] = await pending(sessions, ["kept"], external_id="f0", leased=True)
    [dropped] = await pending(sessions, ["dropped"], external_id="f1", leased=True)
    channel = Answering()
    sender = OutboxSender(channel, sessions)
    other = asyncio.create_task(sender.deliver([kept]))
    cancelled = asyncio.create_task(sender.deliver([dropped]))
    await asyncio.sleep(0)  # both submitted to the same batch
    cancelled.cancel()
    await asyncio.gather(other, cancelled, return_exceptions=True)
    for _ in range(100):  # the give-back is written once the batch has run
        if not sender.journal.holds(dropped) and aware((await row(sessions, dropped)).next_attempt_at) is not None:
            if aware((await row(sessions, dropped)).next_attempt_at) <= utcnow():
                break
        await asyncio.sleep(0.02)
    assert not sender.journal.holds(dropped)
    assert sender._releases == set()  # the give-back's task is let go once done
    assert await sender.sweep_once() == 1  # due at once, for anyone
    assert sorted(s[2] for s in channel.sends) == ["dropped", "kept"]
    await sender.stop()


async def test_a_cancelled_deliver_whose_claim_failed_gives_nothing_back_and_no_error_escapes(
        sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    """The caller left, then the claim it had asked for failed (the database, say): nothing was claimed,
    so nothing is given back, and the failure does not escape into the event loop's error log."""
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    sender = OutboxSender(Answering(), sessions)
    started = asyncio.Event()

    async def failing_claim(requests: list[list[int]]) -> list[list[Any]]:
        started.set()
        await asyncio.sleep(0.05)
        raise RuntimeError("database unreachable")

    sender._deliveries._run_batch = failing_claim
    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        delivering = asyncio.create_task(sender.deliver([mid]))
        await started.wait()
        delivering.cancel()
        await asyncio.gather(delivering, return_exceptions=True)
        await asyncio.sleep(0.2)  # the claim fails meanwhile and its done callback runs
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert sender._releases == set()
    r = await row(sessions, mid)
    assert (r.status, r.attempts) == ("pending", 0)  # as its writer left it, under the writer's lease
    await sender.stop()


async def test_two_senders_at_once_send_each_row_once(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    ids = await pending(sessions, [f"m{i}" for i in range(20)])
    first, second = Answering(), Answering()
    await asyncio.gather(OutboxSender(first, sessions).sweep_once(), OutboxSender(second, sessions).sweep_once())
    sent = [s[2] for s in first.sends + second.sends]
    assert sorted(sent) == sorted(f"m{i}" for i in range(20))
    assert {(await row(sessions, i)).attempts for i in ids} == {1}


async def test_a_sweep_takes_new_rows_then_rows_whose_time_came_never_leased_ones(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    leased = await pending(sessions, ["leased"], leased=True)  # its writer is sending it
    due = await pending(sessions, ["due"], next_attempt_at=utcnow() - timedelta(seconds=1))  # a retry whose time came
    new = await pending(sessions, ["new"])  # a broadcast row, never attempted
    channel = Answering()
    sender = OutboxSender(channel, sessions)
    assert await sender.sweep_once(limit=1) == 1
    assert [s[2] for s in channel.sends] == ["new"]  # never-attempted rows first
    assert await sender.sweep_once() == 1
    assert [s[2] for s in channel.sends] == ["new", "due"]
    assert [(await row(sessions, i)).status for i in (*leased, *due, *new)] == ["pending", "sent", "sent"]
    assert await sender.sweep_once() == 0


async def test_a_sweep_takes_only_its_own_channels_outbound_rows(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    mine = await pending(sessions, ["mine"])
    others = [*await pending(sessions, ["other account"], account="other"),
              *await pending(sessions, ["other channel"], channel="mock"),
              *await pending(sessions, ["inbound"], direction="in")]
    channel = Answering()
    assert await OutboxSender(channel, sessions).sweep_once() == 1
    assert [s[2] for s in channel.sends] == ["mine"]
    assert (await row(sessions, mine[0])).status == "sent"
    assert {(await row(sessions, i)).attempts for i in others} == {0}


async def test_a_sweep_takes_at_most_its_batch_oldest_first(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    ids = await pending(sessions, [f"m{i}" for i in range(5)])
    retry = await pending(sessions, ["retry"], next_attempt_at=utcnow() - timedelta(seconds=5))
    channel = Answering()
    sender = OutboxSender(channel, sessions, batch_size=3)
    assert await sender.sweep_once() == 3
    assert await sender.sweep_once(limit=1) == 1
    assert [s[2] for s in channel.sends] == ["m0", "m1", "m2", "m3"]
    assert await sender.sweep_once() == 2  # the last new row, then the retry
    assert [s[2] for s in channel.sends][-2:] == ["m4", "retry"]
    assert {(await row(sessions, i)).status for i in (*ids, *retry)} == {"sent"}


async def test_a_row_whose_time_is_this_very_instant_is_due(sessions: Sessions,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry set for T, and a lease that ends at T (its sender died mid-send), are due at T: a sweep at
    T takes both, once each."""
    await add_followers(sessions, 1)
    at = utcnow()
    retry = await pending(sessions, ["retry"], next_attempt_at=at)
    in_doubt = await pending(sessions, ["in doubt"], status="sending", next_attempt_at=at)
    monkeypatch.setattr(outbox_module, "utcnow", lambda: at)
    channel = Answering()
    assert await OutboxSender(channel, sessions).sweep_once() == 2
    assert sorted(s[2] for s in channel.sends) == ["in doubt", "retry"]
    assert [((r := await row(sessions, i)).status, r.attempts) for i in (*retry, *in_doubt)] == [
        ("sent", 1), ("sent", 1)]


async def leases(sessions: Sessions, ids: Sequence[int]) -> list[datetime | None]:
    return [(await row(sessions, i)).next_attempt_at for i in ids]


async def test_a_renewal_pushes_only_the_held_rows_and_lets_go_of_one_settled_elsewhere(sessions: Sessions) -> None:
    """Rows of the same claim not (yet) held keep their lease; a row settled meanwhile, or taken by another
    sender whose lease it now carries, is no longer held and keeps what is on it."""
    await add_followers(sessions, 1)
    a, b, settled, taken, unheld = await pending(sessions, ["a", "b", "c", "d", "e"], leased=True)
    [token] = set(await leases(sessions, [a]))
    other_token = token + timedelta(seconds=7)
    async with sessions() as session:
        await session.execute(update(Message).where(Message.id == settled).values(status="sent"))
        await session.execute(update(Message).where(Message.id == taken).values(next_attempt_at=other_token))
        await session.commit()
    journal = OutboxJournal(sessions, lease=LEASE, name="test")
    try:
        journal.hold([a, b, settled, taken], token)
        await journal.renew()
        new_a, new_b, old_settled, old_taken, old_unheld = await leases(sessions, [a, b, settled, taken, unheld])
        assert new_a == new_b and new_a is not None and new_a > token
        assert journal.held == {a: new_a, b: new_a}  # the others let go; these under the new token
        assert (old_settled, old_taken, old_unheld) == (token, other_token, token)  # none touched
        assert journal.renewals == 1
        await journal.renew()
        assert journal.renewals == 2 and journal.held.keys() == {a, b}
    finally:
        await journal.close()


async def test_a_release_gives_back_only_the_named_rows_still_pending_under_this_senders_lease(
        sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    given, in_flight, taken, unheld, kept = await pending(sessions, ["a", "b", "c", "d", "e"], leased=True)
    [token] = set(await leases(sessions, [given]))
    other_token = token + timedelta(seconds=7)
    async with sessions() as session:
        await session.execute(update(Message).where(Message.id == in_flight).values(status="sending"))
        await session.execute(update(Message).where(Message.id == taken).values(next_attempt_at=other_token))
        await session.commit()
    journal = OutboxJournal(sessions, lease=LEASE, name="test")
    try:
        journal.hold([given, in_flight, taken, kept], token)
        await journal.release([given, in_flight, taken, unheld])  # one of them never held: no error
        assert await leases(sessions, [given, in_flight, taken, unheld, kept]) == [
            None,  # due at once, for anyone
            token,  # marked sending: in doubt only once its lease is over, never at once
            other_token,  # another sender's now: not ours to give back
            token,  # not held by this sender
            token]  # held, not named
        assert [journal.holds(r) for r in (given, in_flight, taken, unheld, kept)] == [False, False, False, False, True]
    finally:
        await journal.close()


async def test_only_a_held_row_still_under_this_senders_lease_is_marked_sending_and_a_recorded_one_is_let_go(
        sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    ours, never_held, taken = await pending(sessions, ["a", "b", "c"], leased=True)
    [token] = set(await leases(sessions, [ours]))
    async with sessions() as session:
        await session.execute(update(Message).where(Message.id == taken).values(
            next_attempt_at=token + timedelta(seconds=7)))
        await session.commit()
    journal = OutboxJournal(sessions, lease=LEASE, name="test")
    try:
        journal.hold([ours, taken], token)
        assert await journal.mark_sending(never_held) is False  # not ours: must not be sent from here
        assert await journal.mark_sending(taken) is False  # another sender's lease now
        assert (journal.holds(taken), journal.held.keys()) == (False, {ours})
        assert await journal.mark_sending(ours) is True
        assert [(await row(sessions, i)).status for i in (ours, never_held, taken)] == ["sending", "pending", "pending"]
        await journal.record(ours, Outcome(DeliveryStatus.SENT))
        assert (await row(sessions, ours)).status == "sent" and not journal.holds(ours) and journal.held == {}
    finally:
        await journal.close()


async def test_a_held_row_settled_elsewhere_under_the_same_lease_is_not_marked_sending(sessions: Sessions) -> None:
    """A cancelled broadcast (or another path) settles a row this sender still holds, leaving its lease
    as it was: the lease alone must not make it sendable again."""
    await add_followers(sessions, 1)
    ours, cancelled, in_flight = await pending(sessions, ["a", "b", "c"], leased=True)
    [token] = set(await leases(sessions, [ours]))
    async with sessions() as session:
        await session.execute(update(Message).where(Message.id == cancelled).values(status="cancelled"))
        await session.execute(update(Message).where(Message.id == in_flight).values(status="sending"))
        await session.commit()
    journal = OutboxJournal(sessions, lease=LEASE, name="test")
    try:
        journal.hold([ours, cancelled, in_flight], token)
        assert await journal.mark_sending(cancelled) is False
        assert await journal.mark_sending(in_flight) is False  # its send started already: not twice
        assert await journal.mark_sending(ours) is True
        assert [(await row(sessions, i)).status for i in (ours, cancelled, in_flight)] == [
            "sending", "cancelled", "sending"]
        assert journal.held.keys() == {ours}  # the two refused are let go
    finally:
        await journal.close()


async def test_a_failed_lease_renewal_is_logged_with_its_cause_and_the_keeper_goes_on(
        sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    """An operator reading the log sees why a renewal failed (the traceback), and the next renewal is tried."""
    await add_followers(sessions, 1)
    [held] = await pending(sessions, ["a"], leased=True)
    [token] = set(await leases(sessions, [held]))
    journal = OutboxJournal(sessions, lease=timedelta(seconds=0.3), name="test")
    calls = 0
    real_renew = journal.renew

    async def flaky_renew() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("database unreachable")
        await real_renew()

    journal.renew = flaky_renew  # type: ignore[method-assign]
    try:
        with caplog.at_level(logging.WARNING, logger="engagebot"):
            journal.hold([held], token)
            for _ in range(250):
                if calls >= 2:
                    break
                await asyncio.sleep(0.02)
        assert calls >= 2  # the keeper went on after the failure
        [failed] = [r for r in caplog.records if r.levelno == logging.WARNING and "renewal" in r.getMessage()]
        assert failed.getMessage() == "outbox lease renewal failed"
        assert failed.exc_info is not None and isinstance(failed.exc_info[1], RuntimeError)
    finally:
        await journal.close()


async def test_an_outcome_never_overwrites_a_row_another_sender_finished(sessions: Sessions) -> None:
    """Two senders raced for a row (a lease ran out mid-send): the one that recorded first wins; a late
    failure must not turn a delivered message into a failed one."""
    await add_followers(sessions, 1)
    delivered, ours = await pending(sessions, ["a", "b"], leased=True)
    [token] = set(await leases(sessions, [delivered]))
    async with sessions() as session:
        await session.execute(update(Message).where(Message.id == delivered).values(status="sent"))
        await session.commit()
    journal = OutboxJournal(sessions, lease=LEASE, name="test")
    try:
        journal.hold([delivered, ours], token)
        await journal.record(delivered, Outcome(DeliveryStatus.FAILED, reason="timed out"))
        await journal.record(ours, Outcome(DeliveryStatus.FAILED, reason="timed out"))
        late, recorded = await row(sessions, delivered), await row(sessions, ours)
        assert (late.status, late.reason) == ("sent", None)
        assert (recorded.status, recorded.reason) == ("failed", "timed out")
    finally:
        await journal.close()


async def test_a_reason_no_one_cut_short_is_stored_as_its_first_255_characters(sessions: Sessions) -> None:
    """The column holds 255 characters (PostgreSQL refuses more); the journal's guard cuts whatever comes."""
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    reason = "".join(str(n % 10) for n in range(300))
    async with sessions() as session:
        await write_outcomes(session, {mid: Outcome(DeliveryStatus.FAILED, reason=reason)})
        await session.commit()
    assert (await row(sessions, mid)).reason == reason[:255]


async def test_rows_not_delivered_are_logged_once_per_status_and_reason_with_their_count(
        sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    """What an operator watching the log sees of sends going wrong: one line per kind of failure, not per row."""
    await add_followers(sessions, 1)
    a, b, c, d, e = await pending(sessions, ["a", "b", "c", "d", "e"], leased=True)
    refused = "platform error 40001: invalid credential"
    outcomes = {a: Outcome(DeliveryStatus.FAILED, refused), b: Outcome(DeliveryStatus.FAILED, refused),
                c: Outcome(DeliveryStatus.UNDELIVERABLE, "follower gone"), d: Outcome(DeliveryStatus.SENT),
                e: Outcome(DeliveryStatus.PENDING, "retry: busy", retry_at=utcnow() + timedelta(seconds=30))}
    with caplog.at_level(logging.DEBUG, logger="engagebot.outbox"):
        async with sessions() as session:
            await write_outcomes(session, outcomes)
            await session.commit()
    lines = sorted((r.levelname, r.getMessage(), r.status, r.reason, r.rows)  # type: ignore[attr-defined]
                   for r in caplog.records if r.name == "engagebot.outbox")
    assert lines == [("WARNING", "outbound not delivered", "failed", refused, 2),
                     ("WARNING", "outbound not delivered", "undeliverable", "follower gone", 1)]
    assert [(await row(sessions, m)).status for m in (a, b, c, d, e)] == [
        "failed", "failed", "undeliverable", "sent", "pending"]


async def test_outcomes_are_written_with_the_time_they_are_given(sessions: Sessions) -> None:
    """The journal passes its batch's time: the sent time and the follower's unfollow time are that one.

    Only the follower who is gone is marked so: another one stays as they were."""
    await add_followers(sessions, 2)
    sent, gone = await pending(sessions, ["a", "b"], leased=True)
    then = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    async with sessions() as session:
        await write_outcomes(session, {sent: Outcome(DeliveryStatus.SENT), gone: Outcome(
            DeliveryStatus.UNDELIVERABLE, "blocked", follower_gone=await follower_id(sessions))}, now=then)
        await session.commit()
    assert aware((await row(sessions, sent)).sent_at) == then
    f, other = await follower(sessions), await follower(sessions, "f1")
    assert (f.following, aware(f.unfollowed_at)) == (False, then)
    assert (other.following, other.unfollowed_at) == (True, None)


def test_ids_go_to_statements_in_chunks_each_id_once() -> None:
    """A statement's parameters are bounded (SQLite allows 32,766): ids are cut in consecutive chunks."""
    assert [list(c) for c in _chunks([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert [len(c) for c in _chunks(list(range(1001)), 500)] == [500, 500, 1]
    assert list(_chunks([], 500)) == []


# --- the sweeper -----------------------------------------------------------------------------------------


async def test_the_sweeper_delivers_what_is_due_and_says_when_it_is_idle(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    await pending(sessions, ["one", "two"])
    channel = Answering()
    sender = OutboxSender(channel, sessions, sweep_every=0.05, batch_size=1)
    sender.start()
    sender.start()  # starting twice runs one sweeper
    try:
        await asyncio.wait_for(sender.idle.wait(), 5)
        assert [s[2] for s in channel.sends] == ["one", "two"]
        sender.idle.clear()
        await pending(sessions, ["three"])
        for _ in range(100):
            if len(channel.sends) == 3:
                break
            await asyncio.sleep(0.02)
        assert [s[2] for s in channel.sends] == ["one", "two", "three"]
    finally:
        await sender.stop()
        await sender.stop()
    assert sender._sweeper is None


async def test_the_sweeper_keeps_going_after_a_failed_sweep(sessions: Sessions, monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    await add_followers(sessions, 1)
    await pending(sessions, ["hello"])
    channel = Answering()
    sender = OutboxSender(channel, sessions, sweep_every=0.05)
    real, calls = sender.sweep_once, []
    hiccup = RuntimeError("database hiccup")

    async def flaky(**kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise hiccup
        return await real(**kwargs)

    monkeypatch.setattr(sender, "sweep_once", flaky)
    sender.start()
    try:
        with caplog.at_level("ERROR", logger="engagebot.outbox"):
            for _ in range(100):
                if channel.sends:
                    break
                await asyncio.sleep(0.02)
    finally:
        await sender.stop()
    assert [s[2] for s in channel.sends] == ["hello"] and len(calls) >= 2
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]  # the failure is told, with its cause
    assert (record.getMessage(), record.channel) == ("outbox sweep failed", "fake")  # type: ignore[attr-defined]
    assert record.exc_info is not None and record.exc_info[1] is hiccup


async def test_a_stop_whose_give_back_fails_still_stops_and_says_so(sessions: Sessions, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    [token] = await leases(sessions, [mid])
    sender = OutboxSender(Answering(), sessions)
    sender.journal.hold([mid], token)
    down = ConnectionError("database down")
    given_back: list[list[int]] = []

    async def failing_release(rows: Sequence[int]) -> None:
        given_back.append(list(rows))
        raise down

    monkeypatch.setattr(sender.journal, "release", failing_release)
    with caplog.at_level("WARNING", logger="engagebot.outbox"):
        await sender.stop()
    assert given_back == [[mid]]  # what it held, all of it
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.getMessage() == "outbox rows not given back at stop"
    assert record.exc_info is not None and record.exc_info[1] is down
    assert sender.journal._keeper is None  # closed all the same: its lease keeper is gone


def test_channel_key_is_the_name_the_rows_carry() -> None:
    class Named(RecordingChannel):
        channel_name = "wechat-b"

    assert channel_key(RecordingChannel(account="a1")) == ("fake", "a1")
    assert channel_key(Named(account="a2")) == ("wechat-b", "a2")


# --- pacing -----------------------------------------------------------------------------------------------


class Paced(Answering):
    """One send a second per chat, on a clock that moves only when the limiter waits (each wait noted with
    the rows then in flight); each send noted with its chat and its time from the start."""

    def __init__(self, **capabilities: Any) -> None:
        super().__init__(capabilities=Capabilities(max_sends_per_chat_per_second=1.0, **capabilities))
        self.departures: list[tuple[str, float]] = []
        self.waits: list[tuple[float, int]] = []  # (seconds, rows in flight meanwhile)
        self.everyone_paused: list[float] = []  # at each wait: seconds left of a pause of every chat
        self.clock = SteppedClock()

    def pace(self, sender: OutboxSender) -> OutboxSender:
        channel = self

        class Watching(SteppedClock):
            async def sleep(self, seconds: float) -> None:
                channel.waits.append((seconds, sender.in_flight))
                channel.everyone_paused.append(sender.limiter.paused_for())
                await super().sleep(seconds)

        sender.limiter.clock = self.clock = Watching()
        return sender

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        self.departures.append((external_id, self.clock.now - START))
        await super().send_reply(external_id, reply, context=context)


async def test_each_chat_is_paced_on_its_own_and_a_row_waits_for_its_turn_before_it_is_in_flight(
        sessions: Sessions) -> None:
    """A chat's second row waits a second, another chat's row does not, and no row is marked sending (in
    doubt after a crash) while it waits for its turn."""
    await add_followers(sessions, 2)
    ids = [*await pending(sessions, ["a1", "a2"], external_id="f0", leased=True),
           *await pending(sessions, ["b1"], external_id="f1", leased=True)]
    channel = Paced()
    await channel.pace(OutboxSender(channel, sessions)).deliver(ids)
    assert channel.departures == [("f0", 0.0), ("f0", 1.0), ("f1", 1.0)]
    assert channel.waits == [(1.0, 0)]


async def test_the_parts_of_a_degraded_reply_keep_their_chats_pace_for_the_rows_after_them(
        sessions: Sessions) -> None:
    """A row sent in two parts waits for its second part in flight (the parts must stay together); the next
    row of the chat then waits its turn out of flight, one second after the second part."""
    await add_followers(sessions, 1)
    articles = [{"title": t, "description": t, "url": f"https://{t}.example", "picture_url": ""} for t in "ab"]
    [two_parts] = await pending(sessions, ["a"], leased=True, kind="articles",
                                body={"type": "articles", "articles": articles})
    [after] = await pending(sessions, ["after"], leased=True)
    channel = Paced(max_articles=1)
    await channel.pace(OutboxSender(channel, sessions)).deliver([two_parts, after])
    assert channel.departures == [("f0", 0.0), ("f0", 1.0), ("f0", 2.0)]
    assert channel.waits == [(1.0, 1), (1.0, 0)]


async def test_a_chats_own_retry_after_pauses_that_chat_only_and_the_repeat_is_logged(
        sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    refusal = QuotaExceeded("429: too many requests to this chat", retry_after=2.0, chat_only=True)
    channel = Paced()
    channel.answers = [refusal]
    with caplog.at_level(logging.INFO, logger="engagebot.outbox"):
        await channel.pace(OutboxSender(channel, sessions)).deliver([mid])
    assert channel.departures == [("f0", 0.0), ("f0", 2.0)]
    assert (channel.waits, channel.everyone_paused) == ([(2.0, 1)], [0.0])  # waited in place; no one else paused
    [line] = [r for r in caplog.records if r.name == "engagebot.outbox" and r.levelno == logging.INFO]
    assert (line.getMessage(), line.channel, line.message_id, line.in_s, line.error) == (  # type: ignore[attr-defined]
        "send not taken, repeating it", "fake", mid, 2.0, str(refusal))
    assert (await row(sessions, mid)).status == "sent"


async def test_the_limiter_spaces_sends_and_pauses_on_a_quota_answer() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(per_second=20)  # 50 ms apart
    times = []
    for _ in range(4):
        await limiter.acquire("c1")
        times.append(loop.time())
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.05 * 0.99
    limiter.pause(0.2)
    limiter.pause(0.05)  # a shorter pause does not shorten the longer one
    started = loop.time()
    await limiter.acquire("c2")
    assert loop.time() - started >= 0.2 * 0.99


async def test_the_limiter_spaces_one_chat_but_not_two() -> None:
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(per_chat=10)  # 100 ms apart per chat, no overall limit
    started = loop.time()
    await limiter.acquire("a")
    await limiter.acquire("b")
    assert loop.time() - started < 0.05  # another chat does not wait
    await limiter.acquire("a")
    assert loop.time() - started >= 0.1 * 0.99


async def test_the_limiter_forgets_chats_whose_gap_has_passed() -> None:
    limiter = RateLimiter(per_chat=1000)  # 1 ms per chat
    for n in range(10_001):
        await limiter.acquire(f"chat{n}")
    await asyncio.sleep(0.01)
    await limiter.acquire("one more")
    assert len(limiter._chat_next) < 5_000  # bounded: the entries of chats whose gap passed were dropped


# --- reply windows ------------------------------------------------------------------------------------------


async def test_a_window_allows_its_sends_and_reports_the_rest_with_the_reason(sessions: Sessions) -> None:
    await add_followers(sessions, 1, last_action_kind="message", last_action_at=ago(hours=1), window_sends=3)
    ids = await pending(sessions, ["a", "b", "c"], leased=True)  # 2 sends left of 5
    channel = Answering(capabilities=WINDOWS)
    await OutboxSender(channel, sessions).deliver(ids)
    rows = [await row(sessions, i) for i in ids]
    assert [(r.status, r.reason) for r in rows] == [
        ("sent", None), ("sent", None), ("undeliverable", f"{OUTSIDE_WINDOW}: its 5 sends are used up")]
    assert [s[2] for s in channel.sends] == ["a", "b"]
    assert (await follower(sessions)).window_sends == 5


@pytest.mark.parametrize(("kind", "age", "sends", "sent", "reason"), [
    ("message", timedelta(hours=47), 4, True, None),
    ("message", timedelta(hours=49), 0, False, OUTSIDE_WINDOW),
    ("message", timedelta(hours=1), 5, False, f"{OUTSIDE_WINDOW}: its 5 sends are used up"),
    ("event", timedelta(seconds=30), 2, True, None),
    ("event", timedelta(seconds=61), 0, False, OUTSIDE_WINDOW),
    ("event", timedelta(seconds=5), 3, False, f"{OUTSIDE_WINDOW}: its 3 sends are used up"),
    (None, None, 0, False, f"{OUTSIDE_WINDOW}: the follower never opened one"),
    ("message", None, 0, False, f"{OUTSIDE_WINDOW}: the follower never opened one"),
])
async def test_the_window_is_the_one_the_followers_last_action_opened(
        sessions: Sessions, kind: str | None, age: timedelta | None, sends: int, sent: bool, reason: str | None) -> None:
    at = None if age is None else utcnow() - age
    await add_followers(sessions, 1, last_action_kind=kind, last_action_at=at, window_sends=sends)
    [mid] = await pending(sessions, ["hello"], leased=True)
    channel = Answering(capabilities=WINDOWS)
    await OutboxSender(channel, sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason) == (("sent", None) if sent else ("undeliverable", reason))
    assert len(channel.sends) == int(sent)
    assert (await follower(sessions)).window_sends == sends + int(sent)


async def test_a_window_of_unlimited_sends_only_counts_time(sessions: Sessions) -> None:
    caps = Capabilities(window_after_message=ReplyWindow(timedelta(hours=24)))
    await add_followers(sessions, 1, last_action_kind="message", last_action_at=ago(hours=23), window_sends=500)
    ids = await pending(sessions, ["a", "b"], leased=True)
    await OutboxSender(Answering(capabilities=caps), sessions).deliver(ids)
    assert [(await row(sessions, i)).status for i in ids] == ["sent", "sent"]


async def test_a_follower_who_unfollowed_gets_no_reply_even_inside_the_window(sessions: Sessions) -> None:
    await add_followers(sessions, 1, last_action_kind="message", last_action_at=ago(minutes=1), following=False)
    [mid] = await pending(sessions, ["still there?"], leased=True)
    channel = Answering(capabilities=WINDOWS)
    await OutboxSender(channel, sessions).deliver([mid])
    r = await row(sessions, mid)
    assert (r.status, r.reason, channel.sends) == ("undeliverable", "follower unfollowed", [])
    assert (await follower(sessions)).window_sends == 0


async def test_without_windows_a_reply_to_an_unfollowed_follower_is_still_attempted(sessions: Sessions) -> None:
    """Telegram has no window: a goodbye may still go out; a broadcast never does."""
    await add_followers(sessions, 1, following=False)
    [reply] = await pending(sessions, ["goodbye"], leased=True)
    [broadcast] = await pending(sessions, ["news"], leased=True, broadcast_id=None)
    async with sessions() as session:
        from bot.broadcast.models import Broadcast

        b = Broadcast(name="b", texts={"en": "news"}, audience={}, default_locale="en", status="sending",
                      created_at=utcnow())
        session.add(b)
        await session.flush()
        await session.execute(update(Message).where(Message.id == broadcast).values(broadcast_id=b.id))
        await session.commit()
    channel = Answering()
    await OutboxSender(channel, sessions).deliver([reply, broadcast])
    assert [s[2] for s in channel.sends] == ["goodbye"]
    r = await row(sessions, broadcast)
    assert (r.status, r.reason) == ("undeliverable", "follower unfollowed")


async def test_every_row_of_a_batch_is_checked_after_a_refused_one_and_refusals_are_counted(sessions: Sessions) -> None:
    """In id order: a broadcast to a follower who left (refused as such), a reply outside its follower's
    window, a reply inside one. A refusal does not end the window check of the rows after it, and each
    refusal is counted in ``engagebot_deliveries_total`` under its channel and outcome."""
    from bot.broadcast.models import Broadcast

    def undeliverable() -> float:
        return REGISTRY.get_sample_value("engagebot_deliveries_total",
                                         {"channel": "fake", "outcome": "undeliverable"}) or 0.0

    await add_followers(sessions, 3, last_action_kind="message", last_action_at=ago(hours=1))
    async with sessions() as session:
        await session.execute(update(Follower).where(Follower.external_id == "f0").values(following=False))
        await session.execute(update(Follower).where(Follower.external_id == "f1").values(last_action_at=ago(days=3)))
        b = Broadcast(name="b", texts={"en": "news"}, audience={}, default_locale="en", status="sending",
                      created_at=utcnow())
        session.add(b)
        await session.commit()
        broadcast_id = b.id
    [gone] = await pending(sessions, ["news"], external_id="f0", leased=True, broadcast_id=broadcast_id)
    [late] = await pending(sessions, ["too late"], external_id="f1", leased=True)
    [in_time] = await pending(sessions, ["in time"], external_id="f2", leased=True)
    counted = undeliverable()
    channel = Answering(capabilities=WINDOWS)
    await OutboxSender(channel, sessions).deliver([gone, late, in_time])
    assert [((await row(sessions, i)).status, (await row(sessions, i)).reason) for i in (gone, late, in_time)] == [
        ("undeliverable", "follower unfollowed"), ("undeliverable", OUTSIDE_WINDOW), ("sent", None)]
    assert [s[2] for s in channel.sends] == ["in time"]
    assert undeliverable() - counted == 2


async def test_a_broadcast_row_outside_the_window_waits_for_a_mass_send_when_the_channel_has_one(
        sessions: Sessions) -> None:
    caps = Capabilities(window_after_message=ReplyWindow(timedelta(hours=48), 5),
                        mass_send=MassSendQuota(per_period=4, period=timedelta(days=30)))
    await add_followers(sessions, 2, last_action_kind="message", last_action_at=ago(days=3))
    from bot.broadcast.models import Broadcast

    async with sessions() as session:
        b = Broadcast(name="b", texts={"en": "news"}, audience={}, default_locale="en", status="sending",
                      created_at=utcnow())
        session.add(b)
        await session.commit()
        broadcast_id = b.id
    [held] = await pending(sessions, ["news"], leased=True, broadcast_id=broadcast_id)
    [reply] = await pending(sessions, ["a reply"], external_id="f1", leased=True)
    channel = Answering(capabilities=caps, mass=True)
    await OutboxSender(channel, sessions).deliver([held, reply])
    assert channel.sends == []
    assert ((await row(sessions, held)).status, (await row(sessions, held)).reason) == ("held", HELD_FOR_MASS)
    assert ((await row(sessions, reply)).status, (await row(sessions, reply)).reason) == ("undeliverable",
                                                                                         OUTSIDE_WINDOW)
    # The platform says so itself (its window closed meanwhile): held as well, for a broadcast.
    [late] = await pending(sessions, ["news 2"], external_id="f1", leased=True, broadcast_id=broadcast_id)
    async with sessions() as session:
        await session.execute(update(Follower).values(last_action_at=utcnow()))
        await session.commit()
    await OutboxSender(Answering(OutsideReplyWindow("closed"), capabilities=caps, mass=True), sessions).deliver([late])
    assert ((await row(sessions, late)).status, (await row(sessions, late)).reason) == ("held", HELD_FOR_MASS)
    # A reply the platform refuses is not a broadcast's: a mass send never carries it, it ends undeliverable.
    [late_reply] = await pending(sessions, ["a late reply"], external_id="f1", leased=True)
    await OutboxSender(Answering(OutsideReplyWindow("closed"), capabilities=caps, mass=True),
                       sessions).deliver([late_reply])
    assert ((await row(sessions, late_reply)).status, (await row(sessions, late_reply)).reason) == ("undeliverable",
                                                                                                   "closed")


async def test_a_channel_with_only_an_event_window_sends_within_it(sessions: Sessions) -> None:
    """No message window declared: the event window alone still opens (it is not skipped with the other)."""
    caps = Capabilities(window_after_event=ReplyWindow(timedelta(minutes=1), 2))
    await add_followers(sessions, 1, last_action_kind="event", last_action_at=ago(seconds=10), window_sends=1)
    ids = await pending(sessions, ["a", "b"], leased=True)
    channel = Answering(capabilities=caps)
    await OutboxSender(channel, sessions).deliver(ids)
    assert [((await row(sessions, i)).status, (await row(sessions, i)).reason) for i in ids] == [
        ("sent", None), ("undeliverable", f"{OUTSIDE_WINDOW}: its 2 sends are used up")]
    assert [s[2] for s in channel.sends] == ["a"]
    assert (await follower(sessions)).window_sends == 2


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("at", "sends", "reason"), [
    (NOW - timedelta(hours=48), 5, OUTSIDE_WINDOW),  # exactly the window's length ago: closed (as the SQL says)
    (NOW - timedelta(hours=48) + timedelta(microseconds=1), 5, f"{OUTSIDE_WINDOW}: its 5 sends are used up"),
    (NOW - timedelta(hours=1), 4, OUTSIDE_WINDOW),  # room left: the reason does not blame the count
    (NOW.replace(tzinfo=None) - timedelta(hours=49), 0, OUTSIDE_WINDOW),  # a naive stored time is UTC
    (NOW.replace(tzinfo=None) - timedelta(hours=1), 5, f"{OUTSIDE_WINDOW}: its 5 sends are used up"),
])
def test_the_refusal_reason_tells_a_closed_window_from_used_up_sends(at: datetime, sends: int, reason: str) -> None:
    assert windows.refusal_reason(WINDOWS, following=True, kind="message", at=at, sends=sends, now=NOW) == reason


def test_the_refusal_reason_of_a_window_without_a_send_limit_is_only_its_time() -> None:
    caps = Capabilities(window_after_message=ReplyWindow(timedelta(hours=24)))
    for sends in (0, 10_000):
        assert windows.refusal_reason(caps, following=True, kind="message", at=NOW - timedelta(hours=1),
                                      sends=sends, now=NOW) == OUTSIDE_WINDOW
    assert windows.refusal_reason(caps, following=False, kind="message", at=NOW, sends=0, now=NOW) == (
        "follower unfollowed")


async def test_window_slots_go_to_the_earliest_rows_across_many_followers(sessions: Sessions) -> None:
    await add_followers(sessions, 520, last_action_kind="event", last_action_at=ago(seconds=10), window_sends=2)
    ids = await pending(sessions, ["one"], external_id="f0", leased=True)
    ids += await pending(sessions, ["two"], external_id="f0", leased=True)
    for n in range(1, 520):  # more followers than one statement takes (500)
        ids += await pending(sessions, ["hi"], external_id=f"f{n}") if n in (1, 519) else []
    async with sessions() as session:
        rest = [Message(follower_id=fid, channel="fake", account="acct", direction="out", kind="text", text="hi",
                        body={"type": "text", "text": "hi"}, status="pending", attempts=0, created_at=utcnow())
                for fid in (await session.execute(select(Follower.id).where(
                    Follower.external_id.not_in(["f0", "f1", "f519"])))).scalars()]
        session.add_all(rest)
        await session.commit()
    channel = Answering(capabilities=WINDOWS)
    sender = OutboxSender(channel, sessions, batch_size=600)
    await sender.deliver(ids[:2])  # f0 has one send left of 3: its first row gets it
    assert [(await row(sessions, i)).status for i in ids[:2]] == ["sent", "undeliverable"]
    assert await sender.sweep_once() == 519
    assert len(channel.sends) == 520
    async with sessions() as session:
        counts = set((await session.execute(select(Follower.window_sends))).scalars())
    assert counts == {3}


async def test_each_follower_is_counted_once_per_send_across_statements(sessions: Sessions) -> None:
    """502 followers with room for several sends, one row each: every window counts exactly one send."""
    await add_followers(sessions, 502, last_action_kind="message", last_action_at=ago(hours=1), window_sends=0)
    async with sessions() as session:
        session.add_all([Message(follower_id=fid, channel="fake", account="acct", direction="out", kind="text",
                                 text="hi", body={"type": "text", "text": "hi"}, status="pending", attempts=0,
                                 created_at=utcnow())
                         for fid in (await session.execute(select(Follower.id))).scalars()])
        await session.commit()
    channel = Answering(capabilities=WINDOWS)
    assert await OutboxSender(channel, sessions, batch_size=600).sweep_once() == 502
    assert len(channel.sends) == 502
    async with sessions() as session:
        counts = list((await session.execute(select(Follower.window_sends))).scalars())
    assert counts == [1] * 502


async def test_without_windows_every_slot_asked_for_is_granted(sessions: Sessions) -> None:
    async with sessions() as session:
        assert await windows.take_window_slots(session, Capabilities(), {7: 1, 8: 3}, utcnow()) == {7: 1, 8: 3}


async def test_window_slots_are_counted_up_to_the_windows_exact_end_and_no_further_than_asked(
        sessions: Sessions) -> None:
    """``take_window_slots`` directly: a window opened exactly its length ago is closed (as ``refusal_reason``
    says); a follower asking for two slots with five left gets two, and two are counted."""
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    await add_followers(sessions, 1, last_action_kind="message", last_action_at=now - timedelta(hours=48))
    await add_followers(sessions, 1, start=1, last_action_kind="message",
                        last_action_at=now - timedelta(hours=48) + timedelta(microseconds=1))
    await add_followers(sessions, 1, start=2, last_action_kind="message", last_action_at=now - timedelta(hours=1))
    closed, just_open, two = [await follower_id(sessions, f"f{n}") for n in range(3)]
    async with sessions() as session:
        granted = await windows.take_window_slots(session, WINDOWS, {closed: 1, just_open: 1, two: 2}, now)
        await session.commit()
    assert granted == {just_open: 1, two: 2}
    assert [(await follower(sessions, f"f{n}")).window_sends for n in range(3)] == [0, 1, 2]


async def test_what_a_followers_action_does_to_their_window(sessions: Sessions) -> None:
    await add_followers(sessions, 1, following=False, window_sends=0)
    from bot.core.follower import FollowerRecord

    async with sessions() as session:
        f = FollowerRecord((await session.execute(select(*Follower.__table__.columns))).one()._mapping)
    now = utcnow()

    def act(kind: Kind, window: str | None, payload: str | None = None) -> None:
        msg = Inbound(channel="fake", account="acct", external_id="f0", kind=kind, text="", payload=payload)
        apply_follower_action(f, msg, now, window)

    f.window_sends = 4
    act(Kind.TEXT, "message")  # a first contact: following, a fresh message window
    assert (f.following, f.followed_at, f.last_action_kind, f.last_action_at, f.window_sends) == (
        True, now, "message", now, 0)
    act(Kind.SCAN, "event", payload="poster-1")
    assert (f.last_action_kind, f.first_source, f.first_touch_at) == ("event", "poster-1", now)
    act(Kind.FOLLOW, "event", payload="poster-2")
    assert f.first_source == "poster-1"  # the first touch is kept
    f.window_sends = 2
    act(Kind.UNFOLLOW, None)
    assert (f.following, f.unfollowed_at, f.window_sends, f.last_action_kind) == (False, now, 2, "event")
    act(Kind.TEXT, "message")  # after an unfollow, only a new follow counts as following
    assert f.following is False and f.window_sends == 0
    act(Kind.FOLLOW, "event", payload="x" * 300)
    assert f.following is True and f.first_source == "poster-1"


async def test_a_first_source_is_cut_to_the_column(sessions: Sessions) -> None:
    await add_followers(sessions, 1, following=False)
    from bot.core.follower import FollowerRecord

    async with sessions() as session:
        f = FollowerRecord((await session.execute(select(*Follower.__table__.columns))).one()._mapping)
    msg = Inbound(channel="fake", account="acct", external_id="f0", kind=Kind.FOLLOW, text="", payload="s" * 300)
    apply_follower_action(f, msg, utcnow(), "event")
    assert f.first_source == "s" * 128


async def test_a_failing_sweep_is_retried_after_the_pause_not_in_a_hot_loop(sessions: Sessions,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sender = OutboxSender(Answering(), sessions, sweep_every=0.2)
    calls: list[float] = []

    async def broken(**kwargs: Any) -> int:
        calls.append(asyncio.get_running_loop().time())
        raise RuntimeError("database is down")

    monkeypatch.setattr(sender, "sweep_once", broken)
    sender.start()
    try:
        await asyncio.sleep(0.5)
        assert sender.idle.is_set()  # nothing is being delivered: idle, waiting for the next try
    finally:
        await sender.stop()
    assert 2 <= len(calls) <= 4  # every 0.2 s, not as fast as the loop can spin


def test_a_channel_without_a_mass_send_method_cannot_mass_send() -> None:
    class Declares(Channel):
        name = "declares"
        capabilities = Capabilities(mass_send=MassSendQuota(per_period=1, period=timedelta(days=1)))

        async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
            return None

    async def never(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("no dispatch here")

    assert outbox_module.can_mass_send(Declares(dispatch=never, account="a")) is False
    assert outbox_module.can_mass_send(RecordingChannel(Capabilities(mass_send=MassSendQuota(
        per_period=1, period=timedelta(days=1))))) is True
    assert outbox_module.can_mass_send(RecordingChannel()) is False


async def test_rows_due_again_go_earliest_first_and_at_most_a_batch(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    now = utcnow()
    late = await pending(sessions, ["due last"], next_attempt_at=now - timedelta(seconds=1))
    early = await pending(sessions, ["due first"], next_attempt_at=now - timedelta(seconds=30))
    middle = await pending(sessions, ["due second"], next_attempt_at=now - timedelta(seconds=10))
    channel = Answering()
    sender = OutboxSender(channel, sessions, batch_size=2)
    assert await sender.sweep_once() == 2
    assert sorted(s[2] for s in channel.sends) == ["due first", "due second"]
    assert (await row(sessions, late[0])).status == "pending"
    assert {(await row(sessions, i)).status for i in (*early, *middle)} == {"sent"}


async def test_a_sweeps_batch_counts_new_rows_and_rows_due_again_together_retries_before_rows_in_doubt(
        sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    now = utcnow()
    [in_doubt] = await pending(sessions, ["in doubt"], status="sending", attempts=1,
                               next_attempt_at=now - timedelta(seconds=60))  # its sender died mid-send
    [first] = await pending(sessions, ["retry first"], attempts=1, next_attempt_at=now - timedelta(seconds=30))
    [second] = await pending(sessions, ["retry second"], attempts=1, next_attempt_at=now - timedelta(seconds=10))
    await pending(sessions, ["new"])
    channel = Answering()
    sender = OutboxSender(channel, sessions, batch_size=2)
    assert await sender.sweep_once() == 2  # the new row and one retry make the batch
    assert sorted(s[2] for s in channel.sends) == ["new", "retry first"]  # a chat's rows go in id order
    assert [(await row(sessions, i)).status for i in (in_doubt, second)] == ["sending", "pending"]
    assert await sender.sweep_once() == 2
    assert sorted(s[2] for s in channel.sends[2:]) == ["in doubt", "retry second"]


async def test_a_sweep_leaves_other_channels_rows_due_again_alone(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    due = utcnow() - timedelta(seconds=5)
    others = [*await pending(sessions, ["other account"], account="other", next_attempt_at=due),
              *await pending(sessions, ["other channel"], channel="mock", next_attempt_at=due),
              *await pending(sessions, ["inbound"], direction="in", next_attempt_at=due)]
    mine = await pending(sessions, ["mine"], next_attempt_at=due)
    channel = Answering()
    assert await OutboxSender(channel, sessions).sweep_once() == 1
    assert [s[2] for s in channel.sends] == ["mine"] and (await row(sessions, mine[0])).status == "sent"
    assert {(await row(sessions, i)).attempts for i in others} == {0}


# --- stopping, and the sweep as a duty -------------------------------------------------------------------


async def test_a_stopped_sender_sends_and_claims_nothing_and_leaves_a_reply_to_its_writers_lease(
        sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"], leased=True)
    [lease] = await leases(sessions, [mid])
    channel = Answering()
    sender = OutboxSender(channel, sessions)
    await sender.stop()
    await sender.deliver([mid])
    assert await sender.sweep_once() == 0
    r = await row(sessions, mid)
    assert (r.status, r.attempts, r.next_attempt_at, channel.contexts) == ("pending", 0, lease, [])


async def test_a_sweep_held_by_lease_runs_only_while_its_duty_is_held(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    await pending(sessions, ["one"])
    channel = Answering()
    sender = OutboxSender(channel, sessions, sweep_every=0.05)
    sender.sweeps_by_lease = True
    sender.start()
    try:
        await asyncio.sleep(0.2)
        assert (channel.sends, sender._sweeper) == ([], None)  # not this process's to sweep yet
        for text in ("one", "two"):  # the duty held, lost, then held again
            if text == "two":
                await pending(sessions, ["two"])
                await asyncio.sleep(0.2)
                assert len(channel.sends) == 1  # not swept while the duty is someone else's
            sender.idle.clear()
            duty = asyncio.create_task(sender.sweep_while_held())
            await asyncio.wait_for(sender.idle.wait(), 5)
            assert channel.sends[-1][2] == text
            duty.cancel()  # the lease lost: the sweep stops at once, not after the stop's timeout
            await asyncio.wait_for(asyncio.gather(duty, return_exceptions=True), 2)
            assert sender._sweeper is None
    finally:
        await sender.stop()


@pytest.mark.parametrize("stop", ["stop", "stop_sweeping"])
async def test_a_stop_cuts_a_stuck_send_short_after_its_timeout(sessions: Sessions, stop: str) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"])
    started = asyncio.Event()

    class Stuck(Answering):
        async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
            started.set()
            await asyncio.Event().wait()  # the platform never answers

    sender = OutboxSender(Stuck(), sessions, sweep_every=0.05)
    sender.start()
    await asyncio.wait_for(started.wait(), 5)
    sweeper = sender._sweeper
    await asyncio.wait_for(getattr(sender, stop)(timeout=0.2), 3)  # returns, and raises nothing
    assert sweeper is not None and sweeper.done() and sender._sweeper is None  # nothing of the sweep runs on
    await sender.stop()
    assert (await row(sessions, mid)).status == "sending"  # cut short mid-send: in doubt, sent again after its lease


async def test_a_stop_lets_the_send_in_flight_finish_and_starts_no_other(sessions: Sessions) -> None:
    """A row waiting for a free slot when the stop comes is given back, not sent: due again at once, for anyone."""
    await add_followers(sessions, 2)
    [first] = await pending(sessions, ["first"], external_id="f0")
    [second] = await pending(sessions, ["second"], external_id="f1")
    started, answer = asyncio.Event(), asyncio.Event()

    class Slow(Answering):
        async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
            started.set()
            await answer.wait()
            await super().send_reply(external_id, reply, context=context)

    channel = Slow()
    sender = OutboxSender(channel, sessions, concurrency=1, sweep_every=0.05)
    sender.start()
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(sender.stop())
    await asyncio.sleep(0.05)  # the stop waits for the sweep's send in flight; the other row waits for its slot
    answer.set()
    await asyncio.wait_for(stopping, 5)
    assert [s[2] for s in channel.sends] == ["first"]
    r1, r2 = await row(sessions, first), await row(sessions, second)
    assert (r1.status, r2.status, r2.next_attempt_at) == ("sent", "pending", None)


# --- what a claim leaves on the row ---------------------------------------------------------------------


async def test_while_a_row_is_sent_it_is_marked_sending_under_this_senders_lease(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [mid] = await pending(sessions, ["hello"])
    seen: list[Message] = []

    class Watching(Answering):
        async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
            seen.append(await row(sessions, mid))
            await super().send_reply(external_id, reply, context=context)

    before = utcnow()
    assert await OutboxSender(Watching(), sessions).sweep_once() == 1
    [during] = seen
    assert (during.status, during.attempts) == ("sending", 1)
    assert before + LEASE <= aware(during.next_attempt_at) <= utcnow() + LEASE  # nobody else's for a lease


async def test_a_row_another_sender_leased_since_it_was_read_is_not_claimed_again(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    [taken] = await pending(sessions, ["taken"], leased=True)
    [free] = await pending(sessions, ["free"])
    [lease] = await leases(sessions, [taken])
    sender = OutboxSender(Answering(), sessions)
    async with sessions() as session:
        claimed = await sender._claim(session, [taken, free], utcnow())
        await session.commit()
    assert list(claimed) == [free]
    assert (await leases(sessions, [taken]), (await row(sessions, taken)).attempts) == ([lease], 0)


async def test_rows_a_dead_sender_left_sending_are_sent_again_flagged_and_the_operator_told(
        sessions: Sessions, caplog: pytest.LogCaptureFixture) -> None:
    await add_followers(sessions, 1)
    in_doubt = await pending(sessions, ["a", "b"], status="sending", next_attempt_at=utcnow() - timedelta(seconds=1))
    [fresh] = await pending(sessions, ["c"])
    channel = Answering()
    with caplog.at_level("WARNING", logger="engagebot.outbox"):
        assert await OutboxSender(channel, sessions).sweep_once() == 3
    assert sorted(s[2] for s in channel.sends) == ["a", "b", "c"]
    rows = [await row(sessions, i) for i in (*in_doubt, fresh)]
    assert [(r.status, r.resent_in_doubt, r.attempts) for r in rows] == [
        ("sent", True, 1), ("sent", True, 1), ("sent", False, 1)]
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]  # once, for the rows in doubt only
    assert (record.getMessage(), record.channel, record.rows) == (  # type: ignore[attr-defined]
        "outbox rows in doubt sent again", "fake", 2)


# --- a sender as built, and as configured -----------------------------------------------------------


@pytest.mark.parametrize(("rate", "batch"), [(None, 500), (25.0, 50), (0.5, 1), (0.2, 1), (1000.0, 500)])
async def test_a_senders_batch_is_about_two_seconds_of_its_channels_rate(sessions: Sessions, rate: float | None,
                                                                         batch: int) -> None:
    """Without a declared rate, 500 rows; with one, what it sends in about two seconds, at least one row
    and at most 500; a batch size given when built, or configured, wins."""
    channel = Answering(capabilities=Capabilities(max_sends_per_second=rate))
    assert OutboxSender(channel, sessions).batch_size == batch
    assert OutboxSender(channel, sessions, batch_size=7).batch_size == 7


async def test_a_sender_is_built_with_its_channels_pace_and_the_defaults_and_configure_changes_them(
        sessions: Sessions) -> None:
    from bot.delivery.retry import RetryPolicy

    channel = Answering(capabilities=Capabilities(max_sends_per_second=20.0, max_sends_per_chat_per_second=0.5))
    sender = OutboxSender(channel, sessions)
    assert (sender.channel, sender.sessions, sender.retry, sender.sweep_every) == (channel, sessions, RetryPolicy(), 5.0)
    assert (sender.limiter.interval, sender.limiter.chat_interval) == (0.05, 2.0)
    shared = sender.limiter.shared  # the account's pace across processes (taken on PostgreSQL only)
    assert shared is not None and (shared.sessions, shared.name, shared.interval) == (sessions, "fake:acct", 0.05)
    assert (sender.lease, sender.journal.lease, sender.concurrency, sender._slots._value) == (LEASE, LEASE, 10, 10)
    assert (sender.in_flight, sender.most_in_flight, sender.sweeps_by_lease, sender._sweeper) == (0, 0, False, None)
    assert not (sender._stopping.is_set() or sender._sweep_stop.is_set() or sender.idle.is_set())
    assert sender._releases == set()
    unpaced = OutboxSender(Answering(), sessions, retry=RetryPolicy(max_attempts=2), sweep_every=0.5)
    assert unpaced.limiter.shared is None and (unpaced.limiter.interval, unpaced.limiter.chat_interval) == (0.0, 0.0)
    assert (unpaced.retry.max_attempts, unpaced.sweep_every) == (2, 0.5)

    sender.configure()  # nothing given: nothing changes
    assert (sender.batch_size, sender.lease, sender.journal.lease, sender.concurrency) == (40, LEASE, LEASE, 10)
    sender.configure(batch_size=3, lease=timedelta(seconds=90), concurrency=2)
    assert (sender.batch_size, sender.lease, sender.journal.lease, sender.concurrency, sender._slots._value) == (
        3, timedelta(seconds=90), timedelta(seconds=90), 2, 2)


@pytest.mark.parametrize("concurrency", [None, 2])
async def test_no_more_sends_are_in_flight_than_the_senders_concurrency(sessions: Sessions,
                                                                        concurrency: int | None) -> None:
    """10 by default, or as configured; a sender that sent nothing has had none in flight."""
    await add_followers(sessions, 12)
    for i in range(12):
        await pending(sessions, [f"to f{i}"], external_id=f"f{i}")
    sender = OutboxSender(RecordingChannel(latency=0.05), sessions)
    assert sender.most_in_flight == 0
    sender.configure(concurrency=concurrency)
    assert await sender.sweep_once() == 12
    assert (sender.most_in_flight, sender.in_flight) == (concurrency or 10, 0)


async def test_a_senders_batches_are_measured_under_its_channels_name(sessions: Sessions) -> None:
    """``engagebot_batch_requests`` by batcher: the claims of ``deliver()`` and the journal's writes of each
    channel apart, as an operator graphs them."""
    def served(batcher: str) -> float:
        return REGISTRY.get_sample_value("engagebot_batch_requests_sum", {"batcher": batcher}) or 0.0

    await add_followers(sessions, 1)
    ids = await pending(sessions, ["a", "b"], leased=True)
    before = {b: served(b) for b in ("outbox-deliver-fake", "outbox-journal-fake")}
    await OutboxSender(Answering(), sessions).deliver(ids)
    assert served("outbox-deliver-fake") == before["outbox-deliver-fake"] + 1  # one deliver(): one claim
    assert served("outbox-journal-fake") > before["outbox-journal-fake"]
