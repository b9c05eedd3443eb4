"""Deliver outbox rows through a channel's send API: paced, within the reply window, once, with retries.

An outbound row is written (status ``pending``) before any send: by the dispatcher in the same commit
as the message it answers (leased to its writer, which calls :meth:`OutboxSender.deliver`), or by a
broadcast expansion (``next_attempt_at`` NULL: due now, nobody's yet). Each attempt goes:

1. claim: one conditional UPDATE leases the rows (``next_attempt_at = now + lease``, ``attempts + 1``)
   and commits, so of several workers exactly one holds a row;
2. check: the reply window is counted in the database by a conditional UPDATE (several instances never
   together exceed what the platform allows); refusals are written with their reason;
3. send, paced by what the channel declares (``max_sends_per_second``, ``max_sends_per_chat_per_second``),
   each send carrying the row id as ``context["idempotency_key"]``;
4. mark ``sent`` / ``failed`` / ``undeliverable`` (or back to ``pending`` with a retry time), one commit
   per batch.

A crash between 3 and 4 leaves the batch leased; after the lease the sweeper sends it again with the
same idempotency keys. A platform that honours the key delivers once; one that does not may deliver the
rows of that one in-flight batch twice (see ``bot/broadcast/README.md``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.inbound import utcnow
from bot.core.serialize import reply_from_dict
from bot.errors import FollowerGone, OutsideReplyWindow, PlatformAPIError, QuotaExceeded
from bot.storage.models import Follower, Message

from .base import Channel

log = logging.getLogger("engagebot.outbox")

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)
BATCH_SIZE = 500  # rows claimed at once when the channel declares no rate: also the in-doubt window
BATCH_SECONDS = 2.0  # with a declared rate, a batch is about this long (Telegram's 30/s: 60 rows)
CONCURRENCY = 16  # sends in flight at once per channel (a platform API answers in ~100 ms)
OUTSIDE_WINDOW = "outside the reply window"
HELD_FOR_MASS = "outside the reply window: waiting for a mass send"
SETTLED_CHECK_EVERY = 0.25  # seconds: how soon a paced batch notices rows cancelled under it


def channel_key(channel: Channel) -> tuple[str, str]:
    """The (channel, account) its outbox rows carry: the name a channel writes into ``Inbound.channel``."""
    return getattr(channel, "channel_name", None) or channel.name, channel.account


def can_mass_send(channel: Channel) -> bool:
    return channel.capabilities.mass_send is not None and callable(getattr(channel, "send_mass", None))


def window_for(caps: Capabilities, kind: str | None) -> ReplyWindow | None:
    if kind == "event":
        return caps.window_after_event
    if kind == "message":
        return caps.window_after_message
    return None


def _has_windows(caps: Capabilities) -> bool:
    return caps.window_after_message is not None or caps.window_after_event is not None


def _window_conditions(caps: Capabilities, now: datetime, sends: int) -> list[Any]:
    """SQL: the follower's window is open and has room for ``sends`` more."""
    conditions = []
    for kind, window in (("message", caps.window_after_message), ("event", caps.window_after_event)):
        if window is None:
            continue
        cond = and_(Follower.last_action_kind == kind, Follower.last_action_at > now - window.duration)
        if window.max_sends is not None:
            cond = and_(cond, Follower.window_sends + sends <= window.max_sends)
        conditions.append(cond)
    return conditions


def refusal_reason(caps: Capabilities, *, following: bool, kind: str | None, at: datetime | None,
                   sends: int, now: datetime) -> str:
    """Say why the platform would refuse a send to this follower (for the row's ``reason``)."""
    if not following:
        return "follower unfollowed"
    window = window_for(caps, kind)
    if window is None or at is None:
        return f"{OUTSIDE_WINDOW}: the follower never opened one"
    if at.tzinfo is None:  # SQLite returns naive datetimes; they are stored as UTC
        from datetime import timezone

        at = at.replace(tzinfo=timezone.utc)
    if at <= now - window.duration:
        return OUTSIDE_WINDOW
    if window.max_sends is not None and sends >= window.max_sends:
        return f"{OUTSIDE_WINDOW}: its {window.max_sends} sends are used up"
    return OUTSIDE_WINDOW


async def _take_window_slots(session: AsyncSession, caps: Capabilities, needs: dict[int, int],
                             now: datetime) -> dict[int, int]:
    """Count sends against several followers' windows at once; return how many each was granted.

    Followers needing one send (a broadcast) share one statement; the rare follower with several
    rows in a batch takes its slots one by one, so it gets what is left rather than all or nothing.
    """
    if not _has_windows(caps):
        return dict(needs)
    granted: dict[int, int] = {}

    async def take(ids: list[int]) -> list[int]:
        result = await session.execute(
            update(Follower).where(Follower.id.in_(ids), Follower.following.is_(True),
                                   or_(*_window_conditions(caps, now, 1)))
            .values(window_sends=Follower.window_sends + 1).returning(Follower.id),
            execution_options={"synchronize_session": False})
        return list(result.scalars().all())

    singles = [f for f, n in needs.items() if n == 1]
    for start in range(0, len(singles), 500):
        for follower_id in await take(singles[start:start + 500]):
            granted[follower_id] = 1
    for follower_id, n in needs.items():
        if n > 1:
            got = 0
            while got < n and await take([follower_id]):
                got += 1
            granted[follower_id] = got
    return granted


class RateLimiter:
    """Pace sends: at most ``per_second`` overall and ``per_chat`` to one chat, evenly spaced.

    In-process: several processes sending for one account each get the full rate (run one worker
    per account, or declare a proportionally lower rate).
    """

    def __init__(self, per_second: float | None = None, per_chat: float | None = None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self.chat_interval = 1.0 / per_chat if per_chat else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._chat_next: dict[str, float] = {}
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Stop everyone for a while (the platform said 429 / retry after)."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)

    async def acquire(self, chat: str) -> None:
        """Wait for this chat's and the overall turn; spacing counts from when a send really went.

        Slots are handed out one at a time under a lock, measured from the actual wake-up time, so a
        late wake-up (a busy loop) never lets several sends catch up in a burst.
        """
        loop = asyncio.get_running_loop()
        if self.chat_interval:
            while (wait := self._chat_next.get(chat, 0.0) - loop.time()) > 0:
                await asyncio.sleep(wait)
        async with self._lock:
            while (wait := max(self._paused_until, self._next) - loop.time()) > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            self._next = now + self.interval
        if self.chat_interval:
            self._chat_next[chat] = now + self.chat_interval
            if len(self._chat_next) > 10_000:  # forget chats whose gap has passed: memory stays flat
                self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}


@dataclass(slots=True)
class _Outcome:
    status: str  # sent | failed | undeliverable | held | pending (retry)
    reason: str | None = None
    retry_at: datetime | None = None
    follower_gone: int | None = None  # follower id to mark unfollowed


_ROW_COLUMNS = (Message.id, Message.follower_id, Message.body, Message.broadcast_id, Message.attempts,
                Follower.external_id, Follower.following, Follower.last_action_kind, Follower.last_action_at,
                Follower.window_sends)


class OutboxSender:
    """Sends one channel's outbox rows, paced by its capabilities; also sweeps rows left by a crash."""

    def __init__(self, channel: Channel, sessions: async_sessionmaker[AsyncSession], *, sweep_every: float = 5.0,
                 batch_size: int | None = None, lease: timedelta = LEASE, concurrency: int = CONCURRENCY) -> None:
        self.channel = channel
        self.sessions = sessions
        self.sweep_every = sweep_every
        caps = channel.capabilities
        if batch_size is None:
            rate = caps.max_sends_per_second
            batch_size = max(1, min(BATCH_SIZE, round(rate * BATCH_SECONDS))) if rate else BATCH_SIZE
        self.batch_size = batch_size
        self.limiter = RateLimiter(caps.max_sends_per_second, caps.max_sends_per_chat_per_second)
        if caps.max_sends_per_second:  # a lease must outlast the batch it covers, or another worker resends it
            lease = max(lease, timedelta(seconds=3 * batch_size / caps.max_sends_per_second + 5))
        self.lease = lease
        self.concurrency = concurrency
        self._sweeper: asyncio.Task[None] | None = None
        self.idle = asyncio.Event()  # set while a sweep found nothing due

    # --- entry points -------------------------------------------------------------------

    async def deliver(self, message_ids: Sequence[int], *, context: dict[str, Any] | None = None) -> None:
        """Send these rows now, in order (they answer one message and must arrive in sequence)."""
        if not message_ids:
            return
        now = utcnow()
        async with self.sessions() as session:
            claimed = await self._lease(session, list(message_ids), now)
            rows = await self._prepare(session, claimed, now)
        await self._send_and_record(rows, context=context, ordered=True)

    async def sweep_once(self, *, limit: int | None = None) -> int:
        """Claim and deliver one batch of rows that are due (new, or whose lease or retry time passed).

        Returns how many rows were claimed.
        """
        now = utcnow()
        limit = limit or self.batch_size
        name, account = channel_key(self.channel)
        base = (Message.status == "pending", Message.channel == name, Message.account == account,
                Message.direction == "out")
        async with self.sessions() as session:
            # Never-attempted rows (NULL) first, in id order; then leases and retries that ran out.
            fresh = select(Message.id).where(*base, Message.next_attempt_at.is_(None)).order_by(Message.id)
            claimed = await self._lease(session, _skip_locked(session, fresh.limit(limit)), now, due_only=True)
            if len(claimed) < limit:
                due = (select(Message.id).where(*base, Message.next_attempt_at <= now)
                       .order_by(Message.next_attempt_at, Message.id).limit(limit - len(claimed)))
                claimed += await self._lease(session, _skip_locked(session, due), now, due_only=True)
            rows = await self._prepare(session, claimed, now)
        if rows:
            await self._send_and_record(rows, context=None, ordered=False)
        return len(claimed)

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"outbox-{self.channel.name}")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                claimed = await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep sweeping: one bad row or a DB hiccup must not stop delivery
                log.exception("outbox sweep failed", extra={"channel": self.channel.name})
                claimed = 0
            if claimed:
                self.idle.clear()
                continue  # a broadcast: drain it batch after batch
            self.idle.set()
            await asyncio.sleep(self.sweep_every)

    # --- claim and check ----------------------------------------------------------------

    async def _lease(self, session: AsyncSession, ids: Any, now: datetime, *, due_only: bool = False) -> list[int]:
        """Lease these rows (a list, or a query of ids) if still pending; commit; return those taken.

        ``due_only`` (a sweep): only if still due, too. Without SKIP LOCKED (SQLite), another sweeper
        may have read the same ids and leased them since; its lease must stand, or both would send.
        """
        if not isinstance(ids, list):
            ids = list((await session.execute(ids)).scalars().all())
        if not ids:
            return []
        conditions = [Message.id.in_(ids), Message.status.concat("") == "pending"]
        if due_only:
            conditions.append(or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
        # ``status || ''``: the re-check must not drive the plan. SQLite would otherwise walk the status
        # index over every pending row (all of a broadcast) instead of looking up these ids.
        result = await session.execute(
            update(Message).where(*conditions)
            .values(next_attempt_at=now + self.lease, attempts=Message.attempts + 1)
            .returning(Message.id), execution_options={"synchronize_session": False})
        return sorted(result.scalars().all())  # committed by _prepare, with the window slots: before any send

    async def _prepare(self, session: AsyncSession, ids: list[int], now: datetime) -> list[Row[Any]]:
        """Load the claimed rows, take their reply-window slots, record refusals; return what to send."""
        if not ids:
            await session.commit()
            return []
        rows = (await session.execute(select(*_ROW_COLUMNS).join(Follower, Follower.id == Message.follower_id)
                                      .where(Message.id.in_(ids)).order_by(Message.id))).all()
        caps = self.channel.capabilities
        refused: dict[int, _Outcome] = {}
        for r in rows:  # a broadcast goes to followers only; a reply may still say goodbye
            if r.broadcast_id is not None and not r.following:
                refused[r.id] = _Outcome("undeliverable", "follower unfollowed")
        if _has_windows(caps):
            needs = Counter(r.follower_id for r in rows if r.id not in refused)
            granted = await _take_window_slots(session, caps, dict(needs), now)
            mass = can_mass_send(self.channel)
            used: Counter[int] = Counter()
            for r in rows:  # in id order: earlier rows get the slots
                if r.id in refused:
                    continue
                if used[r.follower_id] < granted.get(r.follower_id, 0):
                    used[r.follower_id] += 1
                    continue
                reason = refusal_reason(caps, following=r.following, kind=r.last_action_kind, at=r.last_action_at,
                                        sends=r.window_sends + used[r.follower_id], now=now)
                if mass and r.broadcast_id is not None and r.following:
                    refused[r.id] = _Outcome("held", HELD_FOR_MASS)
                else:
                    refused[r.id] = _Outcome("undeliverable", reason)
        await _record(session, refused)
        await session.commit()
        return [r for r in rows if r.id not in refused]

    # --- send ---------------------------------------------------------------------------

    async def _send_and_record(self, rows: list[Row[Any]], *, context: dict[str, Any] | None, ordered: bool) -> None:
        outcomes: dict[int, _Outcome] = {}
        skip: set[int] = set()
        if ordered:
            groups = [rows]
        else:  # one task per chat: its rows stay in order, chats go in parallel
            by_chat: dict[str, list[Row[Any]]] = defaultdict(list)
            for r in rows:
                by_chat[r.external_id].append(r)
            groups = list(by_chat.values())
        gate = asyncio.Semaphore(self.concurrency)

        async def run(group: list[Row[Any]]) -> None:
            async with gate:
                for r in group:
                    if r.id in skip:
                        continue
                    outcome = await self._send_one(r, context, skip)
                    if outcome is not None:
                        outcomes[r.id] = outcome

        watcher = asyncio.create_task(self._watch_cancelled(rows, outcomes, skip))
        try:
            await asyncio.gather(*(run(g) for g in groups))
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            # Record what happened even when cancelled midway: what was sent must not be sent again.
            async with self.sessions() as session:
                await _record(session, outcomes)
                await session.commit()

    async def _watch_cancelled(self, rows: list[Row[Any]], outcomes: dict[int, _Outcome], skip: set[int]) -> None:
        """During a long (paced) batch, skip rows someone else settled meanwhile (a cancelled broadcast)."""
        while True:
            await asyncio.sleep(SETTLED_CHECK_EVERY)
            waiting = [r.id for r in rows if r.id not in outcomes and r.id not in skip]
            if not waiting:
                return
            async with self.sessions() as session:
                settled = (await session.execute(select(Message.id).where(
                    Message.id.in_(waiting), Message.status != "pending"))).scalars().all()
            skip.update(settled)

    async def _send_one(self, r: Row[Any], context: dict[str, Any] | None, skip: set[int]) -> _Outcome | None:
        """Send one row; None when it was settled elsewhere (cancelled) while it waited for its turn."""
        try:
            parts = self.channel.degrade([reply_from_dict(r.body or {})])
            for i, reply in enumerate(parts):
                await self.limiter.acquire(r.external_id)
                if i == 0 and r.id in skip:
                    return None
                key = f"outbox:{r.id}" if i == 0 else f"outbox:{r.id}.{i}"
                await self.channel.send_reply(r.external_id, reply, context={
                    **(context or {}), "idempotency_key": key, "message_id": r.id, "broadcast_id": r.broadcast_id})
        except QuotaExceeded as exc:
            if exc.retry_after:
                self.limiter.pause(exc.retry_after)
            if r.attempts >= MAX_ATTEMPTS:
                return _Outcome("failed", f"quota: {exc}")
            delay = exc.retry_after or min(2 ** r.attempts, 300)
            return _Outcome("pending", f"retry: {exc}", retry_at=utcnow() + timedelta(seconds=delay))
        except OutsideReplyWindow as exc:
            if r.broadcast_id is not None and can_mass_send(self.channel):
                return _Outcome("held", HELD_FOR_MASS)
            return _Outcome("undeliverable", str(exc) or OUTSIDE_WINDOW)
        except FollowerGone as exc:
            return _Outcome("undeliverable", str(exc) or "follower gone", follower_gone=r.follower_id)
        except PlatformAPIError as exc:
            return _Outcome("failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - one row's bug must not lose the batch's outcomes
            log.exception("outbound send raised", extra={"channel": self.channel.name, "message_id": r.id})
            if r.attempts >= MAX_ATTEMPTS:
                return _Outcome("failed", f"error: {exc!r}")
            return _Outcome("pending", f"retry: {exc!r}",
                            retry_at=utcnow() + timedelta(seconds=min(2 ** r.attempts, 300)))
        return _Outcome("sent")


def _skip_locked(session: AsyncSession, query: Any) -> Any:
    """On PostgreSQL, let concurrent workers pass over rows another is claiming."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


async def _record(session: AsyncSession, outcomes: dict[int, _Outcome]) -> None:
    """Write outcomes in a few statements: one per distinct (status, reason, retry time)."""
    if not outcomes:
        return
    now = utcnow()
    groups: dict[tuple[str, str | None, datetime | None], list[int]] = defaultdict(list)
    gone: set[int] = set()
    for message_id, o in outcomes.items():
        groups[(o.status, o.reason, o.retry_at)].append(message_id)
        if o.follower_gone is not None:
            gone.add(o.follower_gone)
    for (status, reason, retry_at), ids in groups.items():
        values: dict[str, Any] = {"status": status, "reason": reason[:255] if reason else None,
                                  "next_attempt_at": retry_at}
        if status == "sent":
            values["sent_at"] = now
        for chunk in _chunks(ids, 500):
            await session.execute(update(Message).where(Message.id.in_(chunk)).values(**values),
                                  execution_options={"synchronize_session": False})
        if status in ("failed", "undeliverable"):
            log.warning("outbound not delivered", extra={"status": status, "reason": reason, "rows": len(ids)})
    if gone:
        await session.execute(update(Follower).where(Follower.id.in_(gone)).values(following=False, unfollowed_at=now),
                              execution_options={"synchronize_session": False})


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
