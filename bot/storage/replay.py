"""Signed requests seen recently, shared by every instance through the database (the replay cache).

A row per accepted (timestamp, nonce, signature) of a channel (its accounts share the scope: they
may share a token), with a hash of the body it came with, kept until its timestamp leaves the
accepted window, then pruned. Lookups of requests arriving together are batched: one insert
(conflicts ignored), one select, one commit.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.clock import utcnow

from .batching import Batcher
from .dialect import insert_ignore
from .engine import is_row_error
from .models import SeenRequest
from .runner import BatchRunner

PRUNE_EVERY = 30.0  # seconds between deletions of expired rows (per process)

# "scope = ? AND key IN (...)": a search of the primary key (a row-value IN makes SQLite scan the table).
_STORED = select(SeenRequest.scope, SeenRequest.key, SeenRequest.body_hash).where(
    SeenRequest.scope == bindparam("scope"), SeenRequest.key.in_(bindparam("keys", expanding=True)))
_PRUNE = delete(SeenRequest).where(SeenRequest.expires_at < bindparam("now"))


@dataclass(frozen=True, slots=True)
class Seen:
    """One signed request: where it came (``scope``), its signature's key, its body's hash, until when."""

    scope: str
    key: str
    body_hash: str
    expires_at: datetime


class ReplayLedger:
    """Record signed requests; tell whether one was seen before with another body."""

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256, prune_every: float = PRUNE_EVERY) -> None:
        self.engine = engine
        self.prune_every = prune_every
        self._next_prune = 0.0
        # On a SQLite file its commits do not sync the WAL (synchronous=NORMAL on its own connection):
        # a request admitted here is followed by the commit of its own message (synchronous=FULL by
        # default), which syncs the whole WAL, these rows included. At worst a power cut (not a crash
        # of the process) loses the last rows, which only reopens those signatures to a replay for the
        # rest of their window. Skipping this fsync halves the commits that wait for the disk (the
        # cache's cost fell from about 21% of the throughput to about 6% in paired runs of
        # bench/wechat.py on a busy 2-core machine); setting it once per connection, not per batch,
        # spares each batch four statements.
        self._runner = BatchRunner(engine, name="replay-ledger", writes=True, sqlite_synchronous="NORMAL")
        self._batcher: Batcher[Seen, bool] = Batcher(self._run, max_batch=max_batch, name="replay-ledger",
                                                     isolate=is_row_error)

    async def admit(self, seen: Seen) -> bool:
        """Record ``seen``; False when its key is already stored with another body hash."""
        return await self._batcher.submit(seen)

    async def close(self) -> None:
        await self._batcher.close()
        await self._runner.close()

    async def _run(self, batch: Sequence[Seen]) -> list[bool]:
        prune = time.monotonic() >= self._next_prune
        if prune:
            self._next_prune = time.monotonic() + self.prune_every
        return await self._runner.run(lambda conn: _record(conn, batch, prune=prune))


def _record(conn: Connection, batch: Sequence[Seen], *, prune: bool) -> list[bool]:
    with conn.begin():
        if prune:
            conn.execute(_PRUNE, {"now": utcnow()})
        conn.execute(insert_ignore(conn, SeenRequest), [
            {"scope": s.scope, "key": s.key, "body_hash": s.body_hash, "expires_at": s.expires_at}
            for s in batch])
        keys_by_scope: defaultdict[str, set[str]] = defaultdict(set)
        for s in batch:
            keys_by_scope[s.scope].add(s.key)
        stored = {(r.scope, r.key): r.body_hash for scope, keys in keys_by_scope.items()
                  for r in conn.execute(_STORED, {"scope": scope, "keys": list(keys)})}
    return [stored.get((s.scope, s.key)) == s.body_hash for s in batch]


