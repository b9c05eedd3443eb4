"""Group commit: the exchanges of many concurrent messages written in one transaction.

Each message costs a follower update and two inserts; committed one by one, the commits and round
trips cap the rate (SQLite takes one writer at a time). The writer takes everything queued while
the previous batch was committing and writes it with one executemany per statement and one commit.
Nobody's reply goes out before its batch is committed, so durability is unchanged.

A row the database refuses (a duplicate platform id stored by another instance, a value it cannot
take) must not fail the innocent messages committed with it: the batch is split in halves until the
failing message is alone (``Batcher``'s ``isolate``); the others commit and are answered.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Update, bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.follower import HANDOFF_COLUMNS
from bot.core.store import DuplicateExchange

from .batching import Batcher
from .engine import is_row_error
from .models import Follower, Message
from .runner import BatchRunner

log = logging.getLogger("engagebot.storage.writer")

MAX_BATCH = 256

_INSERT_MESSAGES = insert(Message).returning(Message.id, sort_by_parameter_order=True)


@dataclass(slots=True)
class ExchangeWrite:
    """One message's writes: the follower's changed columns, the inbound row, the reply rows."""

    follower_id: int
    follower_changes: dict[str, Any]
    inbound: dict[str, Any]
    outbound: list[dict[str, Any]]
    pause_was: str | None = None  # the follower's ``paused_by`` as read: its handoff columns need it unchanged


class GroupWriter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self._runner = BatchRunner(engine, name="group-writer", writes=True)
        self._batcher: Batcher[ExchangeWrite, tuple[int, list[int]]] = Batcher(
            self._commit, max_batch=max_batch, name="group-writer", isolate=is_row_error)

    async def write(self, item: ExchangeWrite) -> tuple[int, list[int]]:
        """Queue the writes and wait until they are committed; return (inbound id, outbound ids)."""
        return await self._batcher.submit(item)

    async def close(self) -> None:
        await self._batcher.close()
        await self._runner.close()

    async def _commit(self, batch: list[ExchangeWrite]) -> list[tuple[int, list[int]] | BaseException]:
        try:
            return list(await self._runner.run(lambda conn: _write(conn, batch)))
        except IntegrityError:
            if len(batch) > 1:
                raise  # the batcher splits the batch to find whose row it is
            # A platform retry stored by another instance meanwhile: the caller reads what it stored.
            return [DuplicateExchange()]


def _write(conn: Connection, batch: list[ExchangeWrite]) -> list[tuple[int, list[int]]]:
    """The batch's statements in one transaction: one executemany per statement shape, one commit."""
    with conn.begin():
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        by_handoff: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for item in batch:
            plain, handoff = split_handoff(item.follower_changes)
            if plain:
                by_columns[tuple(sorted(plain))].append({"_fid": item.follower_id, **plain})
            if handoff:
                by_handoff[tuple(sorted(handoff))].append({"_fid": item.follower_id, "_was": item.pause_was, **handoff})
        for columns, params in by_columns.items():
            conn.execute(_follower_update(columns), params)
        for columns, params in by_handoff.items():
            conn.execute(_handoff_update(columns), params)
        inbound_ids = conn.execute(_INSERT_MESSAGES, [item.inbound for item in batch]).scalars().all()
        outbound_params = []
        for item, inbound_id in zip(batch, inbound_ids):
            for row in item.outbound:
                outbound_params.append({**row, "in_reply_to": inbound_id})
        outbound_ids = list(conn.execute(_INSERT_MESSAGES, outbound_params).scalars().all()) \
            if outbound_params else []
    results = []
    cursor = 0
    for item, inbound_id in zip(batch, inbound_ids):
        results.append((inbound_id, outbound_ids[cursor: cursor + len(item.outbound)]))
        cursor += len(item.outbound)
    return results


def split_handoff(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A follower's changed columns: (the others, the handoff ones written only if ``paused_by`` is as read)."""
    if not HANDOFF_COLUMNS.intersection(changes):
        return changes, {}
    return ({k: v for k, v in changes.items() if k not in HANDOFF_COLUMNS},
            {k: v for k, v in changes.items() if k in HANDOFF_COLUMNS})


@functools.lru_cache(maxsize=16)
def _handoff_update(columns: tuple[str, ...]) -> Update:
    return (update(Follower).where(Follower.id == bindparam("_fid"),
                                   Follower.paused_by.is_not_distinct_from(bindparam("_was")))
            .values({c: bindparam(c) for c in columns}))


@functools.lru_cache(maxsize=64)
def _follower_update(columns: tuple[str, ...]) -> Update:
    """The follower update setting ``columns``, built once per shape (a handful of shapes occur)."""
    return update(Follower).where(Follower.id == bindparam("_fid")).values({c: bindparam(c) for c in columns})
