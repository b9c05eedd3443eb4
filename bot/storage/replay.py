"""Signed requests seen recently, shared by every instance through the database (the replay cache).

A row per accepted (timestamp, nonce, signature) of a channel (its accounts share the scope: they
may share a token), with a hash of the body it came with, kept until its timestamp leaves the
accepted window, then pruned. Lookups of requests arriving together are batched: one insert
(conflicts ignored), one select, committed with the group writer's batch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, bindparam, delete
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.clock import utcnow

from .driver_sql import insert_new_rows, select_in
from .models import SeenRequest

PRUNE_EVERY = 30.0  # seconds between deletions of expired rows (per process)

_SEEN = cast(Table, SeenRequest.__table__)
_PRUNE = delete(SeenRequest).where(SeenRequest.expires_at < bindparam("now"))


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

    def __init__(self, engine: AsyncEngine, *, prune_every: float = PRUNE_EVERY) -> None:
        from .writer import shared_group_writer  # the writer builds on this module's statements

        self.engine = engine
        self.prune_every = prune_every
        self._next_prune = 0.0
        self._writer = shared_group_writer(engine)

    async def admit(self, seen: Seen) -> bool:
        """Record ``seen``; False when its key is already stored with another body hash."""
        prune = time.monotonic() >= self._next_prune
        if prune:
            self._next_prune = time.monotonic() + self.prune_every
        return await self._writer.admit(seen, prune=prune)

    async def close(self) -> None:
        await self._writer.close()


def record_seen(conn: Connection, batch: Sequence[Seen], *, prune: bool) -> list[bool]:
    """Within the caller's transaction: store each request's key (a key stored already is kept as it
    is), prune expired rows when asked; for each, whether its key is stored with its own body hash."""
    if prune:
        conn.execute(_PRUNE, {"now": utcnow()})
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
