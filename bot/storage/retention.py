"""Retention: delete old messages and outbox rows (settled ones only) and expired replay-cache rows.

Kept whatever their age: rows still to be sent (``pending``, ``sending``, ``held``), followers,
claims, codes, campaign touches, referrals (none of them is in the tables pruned here).

Deletion goes in batches, each its own short transaction, with a pause between batches: the hot
tables are never locked for long, and on SQLite the one writer's gate is held for one batch at a
time, so messages keep being answered while a large backlog is pruned. A batch's size follows its
time (:class:`BatchSize`): as many rows as the last batches deleted within ``budget`` (5 ms), since
what a row costs to delete depends on the table's indexes, the disk and the load, not on a count.
On PostgreSQL a batch skips rows another transaction has locked (they are taken next time).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.clock import utcnow

from .dialect import affected_rows, skip_locked
from .engine import sqlite_gate
from .models import Message, PlatformNotice, SeenRequest
from .replay import delete_expired
from .status import FINAL, DeliveryStatus

log = logging.getLogger("engagebot.retention")

RETENTION_BATCH = 5000  # rows per transaction at most, however fast they go
FIRST_BATCH = 100  # rows in a pass's first transaction, before its time says more
BATCH_BUDGET = 0.005  # seconds a transaction may hold the table (SQLite: the writer) at a time
BATCH_PAUSE = 0.025  # seconds between batches, so the request path gets the database in between

# Rows whose story is over: an inbound message handled, a reply given inline or settled by a sender.
PRUNABLE = (DeliveryStatus.HANDLED, DeliveryStatus.PASSIVE, *FINAL)


@dataclass(slots=True)
class Pruned:
    """Rows deleted (or, in a dry run, that would be), and the transactions it took."""

    messages: int = 0
    seen_requests: int = 0
    notices: int = 0  # platform notifications (location reports, edits, send reports) past the retention
    batches: int = 0
    longest_hold: float = 0.0  # seconds: the longest a transaction held the database


class BatchSize:
    """Rows per transaction, following how long the last one held the database: ``budget`` seconds'
    worth at the rate it deleted, between 1 and ``most`` rows, at most doubling from one to the next
    (one quick batch, a cache warm by chance, does not make the next one huge)."""

    def __init__(self, *, most: int, budget: float | None, first: int = FIRST_BATCH) -> None:
        if most < 1:
            raise ValueError("a batch holds at least one row")
        self.most = most
        self.budget = budget
        self.rows = most if budget is None else min(first, most)

    def held(self, deleted: int, seconds: float) -> None:
        """A batch of ``self.rows`` deleted ``deleted`` rows holding the database ``seconds``."""
        if self.budget is None or deleted <= 0:
            return
        fitting = int(self.budget * deleted / seconds) if seconds > 0 else self.most
        self.rows = max(1, min(self.most, 2 * self.rows, fitting))


def _old_messages(cutoff: datetime) -> Any:
    return (Message.created_at < cutoff) & Message.status.in_(PRUNABLE)


async def count_prunable(engine: AsyncEngine, *, cutoff: datetime | None, now: datetime) -> Pruned:
    """What :func:`prune` would delete now (``cutoff`` None: messages are kept forever)."""
    async with engine.connect() as conn:
        messages = notices = 0
        if cutoff is not None:
            messages = (await conn.execute(select(func.count()).select_from(Message)
                                           .where(_old_messages(cutoff)))).scalar_one()
            notices = (await conn.execute(select(func.count()).select_from(PlatformNotice)
                                          .where(PlatformNotice.received_at < cutoff))).scalar_one()
        seen = (await conn.execute(select(func.count()).select_from(SeenRequest)
                                   .where(SeenRequest.expires_at < now))).scalar_one()
    return Pruned(messages=messages, seen_requests=seen, notices=notices)


async def prune(engine: AsyncEngine, *, cutoff: datetime | None, now: datetime, batch_size: int = RETENTION_BATCH,
                pause: float = BATCH_PAUSE, budget: float | None = BATCH_BUDGET) -> Pruned:
    """Delete messages created before ``cutoff`` in a final state, and replay rows expired by ``now``.

    A transaction deletes at most ``batch_size`` rows, and about as many as fit in ``budget`` seconds
    (None: always ``batch_size``). The replay cache's rows protect nothing once expired (a request
    that old is refused by its timestamp), whatever the retention; the request path prunes them too,
    but only while requests come.
    """
    done = Pruned()

    async def in_batches(statement: Callable[[int], Any], params: dict[str, Any] | None = None) -> int:
        size = BatchSize(most=batch_size, budget=budget)
        total = 0
        while True:
            rows = size.rows
            deleted, held = await _delete_batch(engine, statement(rows), params)
            total += deleted
            done.batches += 1
            done.longest_hold = max(done.longest_hold, held)
            if deleted < rows:
                return total
            size.held(deleted, held)
            await asyncio.sleep(pause)

    if cutoff is not None:
        done.messages = await in_batches(_by_id(engine, Message, _old_messages(cutoff)))
        done.notices = await in_batches(_by_id(engine, PlatformNotice, PlatformNotice.received_at < cutoff))
    done.seen_requests = await in_batches(lambda rows: delete_expired(engine, rows), {"now": now})
    return done


def _by_id(engine: AsyncEngine, model: type[Message] | type[PlatformNotice], condition: Any) -> Callable[[int], Any]:
    """A batch's DELETE: at most ``rows`` rows of ``model`` matching ``condition``, found first and deleted
    by primary key; on PostgreSQL rows another transaction holds are left to it (``SKIP LOCKED``)."""
    return lambda rows: delete(model).where(model.id.in_(
        skip_locked(engine, select(model.id).where(condition).limit(rows)).scalar_subquery()))


async def _delete_batch(engine: AsyncEngine, statement: Any, params: dict[str, Any] | None = None
                        ) -> tuple[int, float]:
    """One transaction: the rows it deleted, and how long it held the database (from SQLite's write
    gate taken, or from the transaction's start, to its commit)."""
    gate = sqlite_gate(engine)
    # Connection first, then SQLite's write gate (the order every writer follows), for one batch only.
    async with engine.connect() as conn, gate.lock if gate is not None else contextlib.nullcontext():
        started = time.perf_counter()
        async with conn.begin():
            result = await conn.execute(statement, params, execution_options={"synchronize_session": False})
        held = time.perf_counter() - started
    return affected_rows(result), held


PRUNE_INTERVAL = 3600.0  # seconds between passes of the duty (the first one a minute after start)
FIRST_PASS_AFTER = 60.0


def retention_cutoff(days: int, now: datetime) -> datetime | None:
    """Messages created before this are pruned; None when ``days`` is 0 (kept forever)."""
    return now - timedelta(days=days) if days > 0 else None


class RetentionDuty:
    """Prune every ``interval`` seconds while started: a self-contained start/stop duty.

    Running it in several processes at once is harmless (each batch deletes what is still there;
    PostgreSQL skips rows another instance is deleting), only wasteful: one holder is enough.
    """

    def __init__(self, engine: AsyncEngine, *, days: int, interval: float = PRUNE_INTERVAL,
                 first_pass_after: float = FIRST_PASS_AFTER, batch_size: int = RETENTION_BATCH) -> None:
        self.engine = engine
        self.days = days
        self.interval = interval
        self.first_pass_after = first_pass_after
        self.batch_size = batch_size
        self.passes = 0
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> Pruned:
        now = utcnow()
        pruned = await prune(self.engine, cutoff=retention_cutoff(self.days, now), now=now,
                             batch_size=self.batch_size)
        self.passes += 1
        if pruned.messages or pruned.seen_requests:
            log.info("retention pruned", extra={"messages": pruned.messages, "seen_requests": pruned.seen_requests,
                                                "batches": pruned.batches, "retention_days": self.days})
        return pruned

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        """Cancel the loop; a batch under way rolls back (its rows go in the next pass)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self.first_pass_after)
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("retention pass failed", exc_info=True)
            await asyncio.sleep(self.interval)
