"""Deliver outbox rows through a channel's send API: paced, within the reply window, once, with retries.

An outbound row is written (status ``pending``) before any send: by the dispatcher in the same commit
as the message it answers (leased to its writer, which calls :meth:`OutboxSender.deliver`), or by a
broadcast expansion (``next_attempt_at`` NULL: due now, nobody's yet). Each row goes:

1. claim: one conditional UPDATE leases a batch of rows (``next_attempt_at = now + lease``,
   ``attempts + 1``) and commits, so of several workers exactly one holds a row; the lease is
   renewed while the row is held (a long rate-limit pause outlives it);
2. check: the reply window is counted in the database by a conditional UPDATE (several instances never
   together exceed what the platform allows); refusals are written with their reason;
3. mark the row ``sending`` (committed), then send it, paced by what the channel declares
   (``max_sends_per_second``, ``max_sends_per_chat_per_second``), carrying the row id as
   ``context["idempotency_key"]``;
4. write ``sent`` / ``failed`` / ``undeliverable`` (or back to ``pending`` with a retry time) as soon as
   the platform answers (committed before the send's slot is free). What is retried, in place or
   later, and when it gives up is :class:`~bot.delivery.retry.RetryPolicy`'s call, for every channel.

Marks and outcomes of concurrent sends share commits (``journal.py``). At most ``concurrency``
rows (10) are between 3 and 4 at any time: that is all a crash can leave in doubt. After their lease
the sweeper sends them again with the same idempotency keys; on a platform that cannot drop the repeat
(``Capabilities.idempotent_sends`` false) they are flagged ``resent_in_doubt`` ("possibly sent twice").
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.reply import Reply
from bot.core.serialize import reply_from_dict
from bot.errors import FollowerGone, OutsideReplyWindow, PlatformAPIError, QuotaExceeded
from bot.metrics import DELIVERIES, counter
from bot.storage.batching import Batcher
from bot.storage.dialect import skip_locked
from bot.storage.duties import run_while
from bot.storage.models import Follower, Message
from bot.storage.status import DeliveryStatus

from .journal import SENDING, OutboxJournal, Outcome, write_outcomes
from .ratelimit import RateLimiter, SharedPace
from .retry import MAX_ATTEMPTS, RetryPolicy
from .sender import Sender, can_mass_send, channel_key
from .windows import HELD_FOR_MASS, OUTSIDE_WINDOW, has_windows, refusal_reason, take_window_slots

log = logging.getLogger("engagebot.outbox")

LEASE = timedelta(seconds=60)
BATCH_SIZE = 500  # rows claimed at once when the channel declares no rate
BATCH_SECONDS = 2.0  # with a declared rate, a batch is about this long (Telegram's 25/s: 50 rows)
CONCURRENCY = 10  # sends in flight at once per channel: the most a crash can leave in doubt
STOP_TIMEOUT = 10.0  # seconds an orderly stop waits for the sends in flight

__all__ = ["BATCH_SIZE", "CONCURRENCY", "HELD_FOR_MASS", "LEASE", "MAX_ATTEMPTS", "OUTSIDE_WINDOW", "OutboxSender",
           "RateLimiter", "RetryPolicy", "SENDING", "can_mass_send", "channel_key"]


_ROW_COLUMNS = (Message.id, Message.follower_id, Message.body, Message.broadcast_id, Message.attempts,
                Follower.external_id, Follower.following, Follower.last_action_kind, Follower.last_action_at,
                Follower.window_sends)


class OutboxSender:
    """Sends one channel's outbox rows, paced by its capabilities; also sweeps rows left by a crash."""

    def __init__(self, channel: Sender, sessions: async_sessionmaker[AsyncSession], *, sweep_every: float = 5.0,
                 batch_size: int | None = None, lease: timedelta = LEASE, concurrency: int = CONCURRENCY,
                 retry: RetryPolicy | None = None) -> None:
        self.channel = channel
        self.retry = retry or RetryPolicy()
        self.sessions = sessions
        self.sweep_every = sweep_every
        caps = channel.capabilities
        rate = caps.max_sends_per_second
        shared = SharedPace(sessions, "{}:{}".format(*channel_key(channel)), rate) if rate else None
        self.limiter = RateLimiter(rate, caps.max_sends_per_chat_per_second, shared=shared)
        self.batch_size = max(1, min(BATCH_SIZE, round(rate * BATCH_SECONDS))) if rate else BATCH_SIZE
        self.lease = lease
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self.journal = OutboxJournal(sessions, lease=lease, name=channel.name)
        # Concurrent deliver() calls (replies to many chats at once) share one claim transaction:
        # under load a commit (an fsync on SQLite) costs the same for one reply as for fifty.
        self._deliveries: Batcher[list[int], list[Row[Any]]] = Batcher(
            self._claim_for_delivery, max_batch=BATCH_SIZE, name=f"outbox-deliver-{channel.name}")
        self._releases: set[asyncio.Future[None]] = set()  # rows given back for deliver() calls cancelled meanwhile
        self.configure(batch_size=batch_size)
        self.in_flight = 0  # rows marked "sending" whose outcome is not yet written
        self.most_in_flight = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_stop = asyncio.Event()  # this sweeper's own stop (its lease lost), beside the process's
        # True: this process sweeps only while it holds the account's lease (``engagebot run``'s duties).
        self.sweeps_by_lease = False
        self._stopping = asyncio.Event()
        self.idle = asyncio.Event()  # set while a sweep found nothing due

    def configure(self, *, batch_size: int | None = None, lease: timedelta | None = None,
                  concurrency: int | None = None) -> None:
        """Apply the operator's settings (before the sender starts): batch size, lease, sends in flight."""
        if batch_size:
            self.batch_size = batch_size
        if lease:
            self.lease = self.journal.lease = lease
        if concurrency:
            self.concurrency = concurrency
            self._slots = asyncio.Semaphore(concurrency)

    # --- entry points -------------------------------------------------------------------

    async def deliver(self, message_ids: Sequence[int], *, context: dict[str, Any] | None = None) -> None:
        """Send these rows now, in order (they answer one message and must arrive in sequence)."""
        if not message_ids or self._stopping.is_set():
            return  # stopping: the rows stay leased to their writer and a sweeper sends them later
        claiming = asyncio.ensure_future(self._deliveries.submit(list(message_ids)))
        try:
            rows = await asyncio.shield(claiming)
        except asyncio.CancelledError:
            # The claim runs on in the batcher's task: rows it hands to a caller who left go back at once.
            claiming.add_done_callback(self._give_back)
            raise
        await self._send_all(rows, context=context, ordered=True)

    def _give_back(self, claiming: asyncio.Future[list[Row[Any]]]) -> None:
        if claiming.cancelled() or claiming.exception() is not None or not claiming.result():
            return
        task = asyncio.ensure_future(self.journal.release([r.id for r in claiming.result()]))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _claim_for_delivery(self, requests: list[list[int]]) -> list[list[Row[Any]]]:
        """Claim and check the rows of several deliver() calls in one transaction; each gets its own rows.

        A row asked for twice (two calls racing) goes to the first call only: it is sent once.
        """
        now = utcnow()
        async with self.sessions() as session:
            claimed = await self._claim(session, sorted({i for ids in requests for i in ids}), now, expired_only=False)
            rows = await self._prepare(session, claimed, now)
        by_id = {r.id: r for r in rows}
        handed: list[list[Row[Any]]] = []
        for ids in requests:
            handed.append([by_id.pop(i) for i in sorted(set(ids)) if i in by_id])
        return handed

    async def sweep_once(self, *, limit: int | None = None) -> int:
        """Claim and deliver one batch of rows that are due: new, retries, leases run out, in doubt.

        Returns how many rows were claimed.
        """
        if self._stopping.is_set():
            return 0
        now = utcnow()
        limit = limit or self.batch_size
        name, account = channel_key(self.channel)
        mine = (Message.channel == name, Message.account == account, Message.direction == "out")
        pending, sending = Message.status == DeliveryStatus.PENDING, Message.status == DeliveryStatus.SENDING
        async with self.sessions() as session:
            # Never-attempted rows (NULL) first, in id order; then retries and leases that ran out.
            fresh = select(Message.id).where(pending, *mine, Message.next_attempt_at.is_(None)).order_by(Message.id)
            claimed = await self._claim(session, skip_locked(session, fresh.limit(limit)), now)
            for status in (pending, sending):  # "sending" past its lease: its sender died mid-send
                if len(claimed) >= limit:
                    break
                due = (select(Message.id).where(status, *mine, Message.next_attempt_at <= now)
                       .order_by(Message.next_attempt_at, Message.id).limit(limit - len(claimed)))
                claimed |= await self._claim(session, skip_locked(session, due), now, in_doubt=status is sending)
            rows = await self._prepare(session, claimed, now)
        if rows:
            await self._send_all(rows, context=None, ordered=False)
        return len(claimed)

    def start(self) -> None:
        """Start sending, and sweeping here unless the sweep is a duty held by lease (:meth:`sweep_while_held`)."""
        self._stopping.clear()
        if not self.sweeps_by_lease:
            self.start_sweeping()

    def start_sweeping(self) -> None:
        if self._sweeper is None:
            self._sweep_stop = asyncio.Event()
            self._sweeper = asyncio.create_task(self._sweep_forever(self._sweep_stop),
                                                name=f"outbox-{self.channel.name}")

    async def stop_sweeping(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop claiming after the batch being sent (cut short after ``timeout``); replies still go out."""
        if self._sweeper is not None:
            self._sweep_stop.set()
            _done, pending = await asyncio.wait({self._sweeper}, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None

    async def sweep_while_held(self) -> None:
        """The sweep as a duty (``bot.storage.duties``): in one process of the deployment per channel account,
        which paces a broadcast's sends at the account's rate alone. Set ``sweeps_by_lease`` before :meth:`start`."""
        await run_while(self.start_sweeping, self.stop_sweeping)

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop claiming; let the sends in flight finish and record them; give back what was not sent."""
        self._stopping.set()
        await self.stop_sweeping(timeout)
        await self._deliveries.close(timeout=timeout)  # claims under way finish before the rest is given back
        if self._releases:
            await asyncio.wait(self._releases, timeout=timeout)
        if self.journal.held:
            try:
                await self.journal.release(list(self.journal.held))
            except Exception:
                log.warning("outbox rows not given back at stop", exc_info=True)
        await self.journal.close()

    async def _sweep_forever(self, stop: asyncio.Event) -> None:
        while not (self._stopping.is_set() or stop.is_set()):
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
            try:
                await asyncio.wait_for(stop.wait(), self.sweep_every)
            except TimeoutError:
                pass

    # --- claim and check ----------------------------------------------------------------

    async def _claim(self, session: AsyncSession, ids: Any, now: datetime, *, expired_only: bool = True,
                     in_doubt: bool = False) -> dict[int, datetime]:
        """Lease these rows (a list, or a query of ids) if still due; return those taken, with their lease.

        ``in_doubt``: rows left ``sending`` by a sender that died mid-send. They go back to
        ``pending`` to be sent again, flagged ``resent_in_doubt`` unless the platform drops repeats.
        """
        if not isinstance(ids, list):
            ids = list((await session.execute(ids)).scalars().all())
        if not ids:
            return {}
        token = now + self.lease
        values: dict[str, Any] = {"next_attempt_at": token, "attempts": Message.attempts + 1}
        # ``status || ''``: the re-check must not drive the plan. SQLite would otherwise walk the status
        # index over every pending row (all of a broadcast) instead of looking up these ids.
        was = DeliveryStatus.SENDING if in_doubt else DeliveryStatus.PENDING
        conditions = [Message.id.in_(ids), Message.status.concat("") == was]
        if expired_only:  # another worker may have claimed them since they were read
            conditions.append((Message.next_attempt_at.is_(None)) | (Message.next_attempt_at <= now))
        if in_doubt:
            values["status"] = DeliveryStatus.PENDING
            if not self.channel.capabilities.idempotent_sends:
                values["resent_in_doubt"] = True
        result = await session.execute(update(Message).where(*conditions).values(**values).returning(Message.id),
                                       execution_options={"synchronize_session": False})
        claimed = sorted(result.scalars().all())  # committed by _prepare, with the window slots: before any send
        if in_doubt and claimed:
            log.warning("outbox rows in doubt sent again", extra={"channel": self.channel.name, "rows": len(claimed)})
        return dict.fromkeys(claimed, token)

    async def _prepare(self, session: AsyncSession, claimed: dict[int, datetime], now: datetime) -> list[Row[Any]]:
        """Load the claimed rows, take their reply-window slots, record refusals, commit; return what to send."""
        ids = sorted(claimed)
        if not ids:
            await session.commit()
            return []
        rows = (await session.execute(select(*_ROW_COLUMNS).join(Follower, Follower.id == Message.follower_id)
                                      .where(Message.id.in_(ids)).order_by(Message.id))).all()
        caps = self.channel.capabilities
        refused: dict[int, Outcome] = {}
        for r in rows:  # a broadcast goes to followers only; a reply may still say goodbye
            if r.broadcast_id is not None and not r.following:
                refused[r.id] = Outcome(DeliveryStatus.UNDELIVERABLE, "follower unfollowed")
        if has_windows(caps):
            needs = Counter(r.follower_id for r in rows if r.id not in refused)
            granted = await take_window_slots(session, caps, dict(needs), now)
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
                    refused[r.id] = Outcome(DeliveryStatus.HELD, HELD_FOR_MASS)
                else:
                    refused[r.id] = Outcome(DeliveryStatus.UNDELIVERABLE, reason)
        await write_outcomes(session, refused, now=now)
        await session.commit()
        for outcome in refused.values():
            counter(DELIVERIES, self.channel.name, outcome.status).inc()
        to_send = [r for r in rows if r.id not in refused]
        for r in to_send:  # held from now on: their lease is renewed until each is settled
            self.journal.hold((r.id,), claimed[r.id])
        return to_send

    # --- send ---------------------------------------------------------------------------

    async def _send_all(self, rows: list[Row[Any]], *, context: dict[str, Any] | None, ordered: bool) -> None:
        if ordered:
            groups = [rows]
        else:  # one task per chat: its rows stay in order, chats go in parallel
            by_chat: dict[str, list[Row[Any]]] = defaultdict(list)
            for r in rows:
                by_chat[r.external_id].append(r)
            groups = list(by_chat.values())

        async def run(group: list[Row[Any]]) -> None:
            for r in group:
                if self._stopping.is_set():
                    return
                if not await self._send_row(r, context) and ordered:
                    return  # a reply's later parts wait for its earlier ones

        try:
            await asyncio.gather(*(run(g) for g in groups))
        finally:
            # Rows claimed here but never started (a stop, a cancel): due again at once, for anyone.
            unsent = [r.id for r in rows if self.journal.holds(r.id)]
            if unsent:
                await asyncio.shield(self.journal.release(unsent))

    async def _send_row(self, r: Row[Any], context: dict[str, Any] | None) -> bool:
        """Mark, send and record one row, holding one in-flight slot throughout; True if it was sent.

        The row waits for its turn (the pace, a 429 pause) before it takes a slot: waiting rows are
        neither in flight nor in doubt, and never keep another chat's send from going.
        """
        await self.limiter.acquire(r.external_id)
        async with self._slots:
            if not self.journal.holds(r.id) or self._stopping.is_set():
                return False
            marked = False
            try:
                parts = self.channel.degrade([reply_from_dict(r.body or {})])
                for i, reply in enumerate(parts):
                    if i:
                        await self.limiter.acquire(r.external_id)
                    if i == 0:
                        if not await self.journal.mark_sending(r.id):
                            return False  # cancelled meanwhile, or no longer ours
                        marked = True
                        self.in_flight += 1
                        self.most_in_flight = max(self.most_in_flight, self.in_flight)
                    key = f"outbox:{r.id}" if i == 0 else f"outbox:{r.id}.{i}"
                    await self._send_part(r.external_id, reply, context={
                        **(context or {}), "idempotency_key": key, "message_id": r.id, "broadcast_id": r.broadcast_id})
                outcome = Outcome(DeliveryStatus.SENT)
            except asyncio.CancelledError:
                raise  # left "sending" if it was marked: in doubt, sent again after its lease
            except Exception as exc:
                outcome = self._failure(r, exc)
            try:
                await asyncio.shield(self.journal.record(r.id, outcome))
                counter(DELIVERIES, self.channel.name, outcome.status).inc()
            finally:
                if marked:
                    self.in_flight -= 1
            return outcome.status == DeliveryStatus.SENT

    async def _send_part(self, chat: str, reply: Reply, *, context: dict[str, Any]) -> None:
        """Send one part when its departure comes; repeat it in place where the retry policy says so.

        In place (a chat's own "retry after", a request that surely never went): the row stays
        marked ``sending`` and held, its lease renewed, so the chat's order is kept and no other
        sender takes it meanwhile. Any other failure is raised, for :meth:`_failure` to record.
        """
        tries: Counter[str] = Counter()
        while True:
            await self.limiter.depart(chat)
            try:
                await self.channel.send_reply(chat, reply, context=context)
                return
            except QuotaExceeded as exc:
                if exc.chat_only and exc.retry_after:
                    self.limiter.pause(exc.retry_after, chat=chat)
                wait = self.retry.wait_in_place(exc, tries)
                if wait is None:
                    raise
                log.info("send not taken, repeating it", extra={
                    "channel": self.channel.name, "message_id": context.get("message_id"), "in_s": wait,
                    "error": str(exc)})
                if not exc.chat_only:
                    await asyncio.sleep(wait)  # a chat's own wait is the limiter's pause
            await self.limiter.acquire(chat)

    def _failure(self, r: Row[Any], exc: Exception) -> Outcome:
        match exc:
            case QuotaExceeded():
                if exc.retry_after:
                    self.limiter.pause(exc.retry_after)
                if self.retry.gives_up(r.attempts):
                    return Outcome(DeliveryStatus.FAILED, f"quota: {exc}")
                delay = exc.retry_after or self.retry.backoff(r.attempts)
                return Outcome(DeliveryStatus.PENDING, f"retry: {exc}", retry_at=utcnow() + timedelta(seconds=delay))
            case OutsideReplyWindow():
                if r.broadcast_id is not None and can_mass_send(self.channel):
                    return Outcome(DeliveryStatus.HELD, HELD_FOR_MASS)
                return Outcome(DeliveryStatus.UNDELIVERABLE, str(exc) or OUTSIDE_WINDOW)
            case FollowerGone():
                return Outcome(DeliveryStatus.UNDELIVERABLE, str(exc) or "follower gone", follower_gone=r.follower_id)
            case PlatformAPIError():
                return Outcome(DeliveryStatus.FAILED, str(exc))
        log.error("outbound send raised", exc_info=exc, extra={"channel": self.channel.name, "message_id": r.id})
        if self.retry.gives_up(r.attempts):
            return Outcome(DeliveryStatus.FAILED, f"error: {exc!r}")
        return Outcome(DeliveryStatus.PENDING, f"retry: {exc!r}",
                       retry_at=utcnow() + timedelta(seconds=self.retry.backoff(r.attempts)))

