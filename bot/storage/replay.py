"""Signed requests seen recently, shared by every instance through the database (the replay cache).

A row per accepted (timestamp, nonce, signature) of a channel (its accounts share the scope: they
may share a token), with a hash of the body it came with, kept until its timestamp leaves the
accepted window, then pruned. Lookups of requests arriving together are batched: one insert
(conflicts ignored), one select, committed with the group writer's batch.

Expired rows are deleted by the group writer as it writes new ones, a bounded number per batch
(:class:`PruneSchedule`), and by the retention duty (``bot.storage.retention``) in its hourly pass.
One unbounded DELETE in a batch would hold every message of that batch, and the SQLite file's one
writer, for as long as the backlog takes: 0.6 to 1 s for 60,000 expired rows (half a minute of
requests at 2,000/s) on the machine of docs/benchmarks.md.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Delete, Table, bindparam, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.clock import utcnow

from .dialect import affected_rows, skip_locked
from .driver_sql import insert_new_rows, select_in
from .models import SeenRequest

PRUNE_EVERY = 30.0  # seconds between a process's prunes while the last one left no expired row behind
# Most expired rows one batch deletes (4 to 6 ms of SQLite's time on the machine of docs/benchmarks.md: each
# row is found in three indexes); when a prune deletes that many, more are left and the next batch prunes
# again, so deletion keeps pace with any rate of requests while no batch carries more than this.
PRUNE_ROWS = 200

_SEEN = cast(Table, SeenRequest.__table__)


REPLAYED = "signature already used with another body"


@dataclass(frozen=True, slots=True)
class Seen:
    """One signed request: where it came (``scope``), its signature's key, its body's hash, until when."""

    scope: str
    key: str
    body_hash: str
    expires_at: datetime


class ReplayLedger:
    """Record signed requests; tell whether one was seen before with another body.

    The rows are written by the engine's group writer (:func:`bot.storage.writer.shared_group_writer`),
    in the same transactions as the exchanges of the messages before them: one write transaction, one
    commit and one hop per batch for both, where two writers taking turns at SQLite's single write lock
    made each wait for the other's commit (under bench/wechat.py each batch spent about half its time
    waiting for the other's).
    """

    def __init__(self, engine: AsyncEngine, *, prune_every: float | None = None) -> None:
        from .writer import shared_group_writer  # the writer builds on this module's statements

        self.engine = engine
        self._writer = shared_group_writer(engine)
        if prune_every is not None:  # the writer is shared: the most eager of its ledgers sets the pace
            self._writer.pruning.every = min(self._writer.pruning.every, prune_every)

    async def admit(self, seen: Seen) -> bool:
        """Record ``seen``; False when its key is already stored with another body hash."""
        return await self._writer.admit(seen)

    async def close(self) -> None:
        await self._writer.close()


class PruneSchedule:
    """When a group writer's batch deletes expired rows, and how many at most (``rows``).

    Due at the first batch, then ``every`` seconds after a prune that left none behind, and at the
    very next batch after one that deleted ``rows`` (more are waiting). Kept by the writer's batches
    only, which run one at a time.
    """

    def __init__(self, *, every: float = PRUNE_EVERY, rows: int = PRUNE_ROWS, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.rows = rows
        self.clock = clock
        self._next = 0.0

    def due(self) -> int:
        """How many expired rows this batch should delete at most: ``rows``, or 0 when it is not time."""
        return self.rows if self.clock() >= self._next else 0

    def pruned(self, deleted: int) -> None:
        """A committed prune (of at most ``rows``) deleted ``deleted`` rows."""
        self._next = self.clock() if deleted >= self.rows else self.clock() + self.every


def delete_expired(bind: Any, limit: int) -> Delete:
    """At most ``limit`` rows expired by the bound ``now``: found with the expiry index and deleted by
    primary key; on PostgreSQL rows another transaction is deleting are left to it (``SKIP LOCKED``)."""
    expiring: Any = (select(SeenRequest.scope, SeenRequest.key)
                     .where(SeenRequest.expires_at < bindparam("now")).limit(limit))
    return delete(SeenRequest).where(tuple_(SeenRequest.scope, SeenRequest.key).in_(skip_locked(bind, expiring)))


def prune_seen(conn: Connection, limit: int) -> int:
    """Within the caller's transaction: delete at most ``limit`` expired rows; how many went."""
    return affected_rows(conn.execute(delete_expired(conn, limit), {"now": utcnow()}))


def record_seen(conn: Connection, batch: Sequence[Seen]) -> list[bool]:
    """Within the caller's transaction: store each request's key (a key stored already is kept as it
    is); for each, whether its key is stored with its own body hash."""
    inserted = insert_new_rows(conn, _SEEN, [{"scope": s.scope, "key": s.key, "body_hash": s.body_hash,
                                              "expires_at": s.expires_at} for s in batch])
    if inserted == len(batch):
        return [True] * len(batch)  # every key new, stored with its own body: no need to read them back
    keys_by_scope: defaultdict[str, set[str]] = defaultdict(set)
    for s in batch:
        keys_by_scope[s.scope].add(s.key)
    # "scope = ? AND key IN (...)": a search of the primary key (a row-value IN makes SQLite scan the table).
    stored = {(scope, r["key"]): r["body_hash"] for scope, keys in keys_by_scope.items()
              for r in select_in(conn, _SEEN, ("key", "body_hash"), where={"scope": scope}, column="key",
                                 values=list(keys))}
    return [stored.get((s.scope, s.key)) == s.body_hash for s in batch]
