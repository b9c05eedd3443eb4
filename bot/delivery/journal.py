"""What a sender writes about the rows it holds, committed in groups: in flight, outcomes, leases.

A row a sender claimed is *held* under a lease (``next_attempt_at``, whose exact value is the
sender's token). Before the row's send leaves it is marked ``sending`` and after the platform
answers its outcome is written; both writes are committed before the send goes on, so the rows a
crash can leave in doubt (marked, no outcome) are only the sends actually in flight. Writes of
concurrent sends share one transaction (:class:`bot.storage.batching.Batcher`): a commit costs the
same for one row as for fifty.

Lease renewals go through the same queue, so a mark always checks the token the row has now.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.logs import REQUEST_ID
from bot.storage.batching import Batcher
from bot.storage.models import Follower, Message
from bot.storage.status import FINAL, DeliveryStatus

log = logging.getLogger("engagebot.outbox")

SENDING = DeliveryStatus.SENDING

__all__ = ["FINAL", "SENDING", "OutboxJournal", "Outcome", "write_outcomes"]


@dataclass(slots=True)
class Outcome:
    status: DeliveryStatus  # sent | failed | undeliverable | held | pending (retry)
    reason: str | None = None
    retry_at: datetime | None = None
    follower_gone: int | None = None  # follower id to mark unfollowed


@dataclass(slots=True)
class _Mark:
    row: int


@dataclass(slots=True)
class _Record:
    row: int
    outcome: Outcome


@dataclass(slots=True)
class _Renew:
    pass


_Item = _Mark | _Record | _Renew


class OutboxJournal:
    """The rows one sender holds, and its grouped writes about them."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, lease: timedelta, name: str) -> None:
        self.sessions = sessions
        self.lease = lease
        self.held: dict[int, datetime] = {}  # row id -> the lease token this sender set
        self._batcher: Batcher[_Item, bool] = Batcher(self._write, max_batch=500, name=f"outbox-journal-{name}")
        self._keeper: asyncio.Task[None] | None = None
        self.renewals = 0

    # --- holding ------------------------------------------------------------------------

    def hold(self, rows: Iterable[int], token: datetime) -> None:
        """Remember rows just claimed with lease ``token``; keep their lease alive while held."""
        for row in rows:
            self.held[row] = token
        if self.held and (self._keeper is None or self._keeper.done()):
            self._keeper = asyncio.create_task(self._keep(), name="outbox-lease-keeper")

    def drop(self, rows: Iterable[int]) -> None:
        for row in rows:
            self.held.pop(row, None)

    def holds(self, row: int) -> bool:
        return row in self.held

    # --- writes -------------------------------------------------------------------------

    async def mark_sending(self, row: int) -> bool:
        """Record that the row's send starts (committed); False if it is no longer ours to send.

        Not ours: settled meanwhile (a cancelled broadcast), or its lease was lost to another
        sender. Either way it must not be sent from here.
        """
        if row not in self.held:
            return False
        marked = await self._batcher.submit(_Mark(row))
        if not marked:
            self.held.pop(row, None)
        return marked

    async def record(self, row: int, outcome: Outcome) -> None:
        """Write the platform's answer for a row (committed); the row is no longer held."""
        try:
            await self._batcher.submit(_Record(row, outcome))
        finally:
            self.held.pop(row, None)

    async def release(self, rows: Sequence[int]) -> None:
        """Give back held rows that were not sent (a stop): due again at once, for anyone."""
        mine = [(r, self.held[r]) for r in rows if r in self.held]
        self.drop(rows)
        if not mine:
            return
        by_token: dict[datetime, list[int]] = defaultdict(list)
        for row, token in mine:
            by_token[token].append(row)
        async with self.sessions() as session:
            for token, ids in by_token.items():
                for chunk in _chunks(ids, 500):
                    await session.execute(update(Message).where(
                        Message.id.in_(chunk), Message.status.concat("") == DeliveryStatus.PENDING,
                        Message.next_attempt_at == token,
                    ).values(next_attempt_at=None), execution_options={"synchronize_session": False})
            await session.commit()

    async def renew(self) -> None:
        """Push the lease of every held row one lease ahead (through the queue, in order with marks)."""
        if self.held:
            await self._batcher.submit(_Renew())

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        await self._batcher.close()

    async def _keep(self) -> None:
        """While rows are held, renew their lease every third of it (a long pause outlives a lease)."""
        REQUEST_ID.set(None)  # started by some request, it serves them all: its lines are no one request's
        every = self.lease.total_seconds() / 3
        while self.held:
            await asyncio.sleep(every)
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox lease renewal failed", exc_info=True)

    # --- the grouped transaction ------------------------------------------------------------

    async def _write(self, items: list[_Item]) -> list[bool]:
        results = [True] * len(items)
        now = utcnow()
        async with self.sessions() as session:
            if any(isinstance(i, _Renew) for i in items):
                await self._renew(session, now)
            marks = [(n, i.row) for n, i in enumerate(items) if isinstance(i, _Mark)]
            if marks:
                by_token: dict[datetime, list[int]] = defaultdict(list)
                for _n, row in marks:
                    if row in self.held:
                        by_token[self.held[row]].append(row)
                marked: set[int] = set()
                for token, ids in by_token.items():
                    result = await session.execute(update(Message).where(
                        Message.id.in_(ids), Message.status.concat("") == DeliveryStatus.PENDING,
                        Message.next_attempt_at == token,
                    ).values(status=SENDING).returning(Message.id), execution_options={"synchronize_session": False})
                    marked.update(result.scalars().all())
                for n, row in marks:
                    results[n] = row in marked
            records = {i.row: i.outcome for i in items if isinstance(i, _Record)}
            await write_outcomes(session, records, now=now)
            await session.commit()
        return results

    async def _renew(self, session: AsyncSession, now: datetime) -> None:
        new = now + self.lease
        by_token: dict[datetime, list[int]] = defaultdict(list)
        for row, token in self.held.items():
            by_token[token].append(row)
        kept: set[int] = set()
        for token, ids in by_token.items():
            for chunk in _chunks(ids, 500):
                result = await session.execute(update(Message).where(
                    Message.id.in_(chunk), Message.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)),
                    Message.next_attempt_at == token,
                ).values(next_attempt_at=new).returning(Message.id), execution_options={"synchronize_session": False})
                kept.update(result.scalars().all())
        lost = [row for row in self.held if row not in kept]
        for row in kept:
            if row in self.held:
                self.held[row] = new
        for row in lost:  # settled elsewhere, or taken by another sender: not ours to send any more
            self.held.pop(row, None)
        self.renewals += 1
        if lost:
            log.info("outbox rows no longer held", extra={"rows": len(lost)})


async def write_outcomes(session: AsyncSession, outcomes: dict[int, Outcome], *, now: datetime | None = None,
                         only_unsettled: bool = True) -> None:
    """Write outcomes in a few statements: one per distinct (status, reason, retry time).

    A final status already on a row (another sender finished it) is never overwritten.
    """
    if not outcomes:
        return
    now = now or utcnow()
    groups: dict[tuple[DeliveryStatus, str | None, datetime | None], list[int]] = defaultdict(list)
    gone: set[int] = set()
    for message_id, o in outcomes.items():
        groups[(o.status, o.reason, o.retry_at)].append(message_id)
        if o.follower_gone is not None:
            gone.add(o.follower_gone)
    for (status, reason, retry_at), ids in groups.items():
        values: dict[str, Any] = {"status": status, "reason": reason[:255] if reason else None,
                                  "next_attempt_at": retry_at}
        if status == DeliveryStatus.SENT:
            values["sent_at"] = now
        for chunk in _chunks(ids, 500):
            statement = update(Message).where(Message.id.in_(chunk))
            if only_unsettled:
                statement = statement.where(Message.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING)))
            await session.execute(statement.values(**values), execution_options={"synchronize_session": False})
        if status in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERABLE):
            log.warning("outbound not delivered", extra={"status": status, "reason": reason, "rows": len(ids)})
    if gone:
        await session.execute(update(Follower).where(Follower.id.in_(gone)).values(following=False, unfollowed_at=now),
                              execution_options={"synchronize_session": False})


def _chunks(items: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
