"""Group commit: the exchanges of many concurrent messages written in one transaction.

Each message costs a follower update and two inserts; committed one by one, the commits and round
trips cap the rate (SQLite takes one writer at a time). The writer takes everything queued while
the previous batch was committing and writes it with one executemany per statement and one commit.
Nobody's reply goes out before its batch is committed, so durability is unchanged.

The replay cache's rows (``bot.storage.replay``) are written in the same batches: every process has
one group writer per engine (:func:`shared_group_writer`), the only writer on the message path besides
the first contacts' follower inserts, so the two no longer take turns at SQLite's single write lock.

A row the database refuses (a duplicate platform id stored by another instance, a value it cannot
take) must not fail the innocent messages committed with it: the batch is split in halves until the
failing message is alone (``Batcher``'s ``isolate``); the others commit and are answered.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, Update, bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.follower import HANDOFF_COLUMNS
from bot.core.store import DuplicateExchange
from bot.errors import ReplayError
from bot.metrics import COMMIT_SECONDS, histogram

from .batching import Batcher
from .driver_sql import insert_rows, update_rows
from .engine import is_row_error
from .models import Follower, Message
from .replay import REPLAYED, PruneSchedule, Seen, prune_seen, record_seen
from .runner import BatchRunner

log = logging.getLogger("engagebot.storage.writer")

MAX_BATCH = 256
WRITER_NAME = "group-writer"  # its batches' label in the metrics

_MESSAGES = cast(Table, Message.__table__)
_FOLLOWERS = cast(Table, Follower.__table__)


@dataclass(slots=True)
class ExchangeWrite:
    """One message's writes: the follower's changed columns, the inbound row, the reply rows."""

    follower_id: int
    follower_changes: dict[str, Any]
    inbound: dict[str, Any]
    outbound: list[dict[str, Any]]
    pause_was: str | None = None  # the follower's ``paused_by`` as read: its handoff columns need it unchanged
    seen: Seen | None = None  # the request's replay check: the exchange is written only if it is admitted


@dataclass(slots=True)
class Admission:
    """A signed request for the replay cache, written on its own (not with an exchange)."""

    seen: Seen


WriteItem = ExchangeWrite | Admission

_SHARED = "_engagebot_group_writer"


def shared_group_writer(engine: AsyncEngine) -> GroupWriter:
    """The engine's group writer, shared by the store and the replay ledgers of this process; each
    user calls :meth:`GroupWriter.close` once, and the last one closes it."""
    writers: dict[str, GroupWriter] = engine.sync_engine.__dict__
    writer = writers.get(_SHARED)
    if writer is None or writer.closed:
        writer = writers[_SHARED] = GroupWriter(engine)
    writer.users += 1
    return writer


class GroupWriter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.users = 0
        self.closed = False
        self._runner = BatchRunner(engine, name=WRITER_NAME, writes=True)
        self.pruning = PruneSchedule()  # the replay cache's expired rows, deleted a few at a time with the batches
        # Cut late: what arrives while a batch waits for the write gate, its thread and the other processes'
        # writers joins it (one commit for all, and the commits are what the file serializes).
        self._batcher: Batcher[WriteItem, object] = Batcher(
            self._commit, max_batch=max_batch, name=WRITER_NAME, isolate=is_row_error, run_late=self._commit_late)

    async def write(self, item: ExchangeWrite) -> tuple[int, list[int]]:
        """Queue the writes and wait until they are committed; return (inbound id, outbound ids)."""
        return cast(tuple[int, list[int]], await self._batcher.submit(item))

    async def admit(self, seen: Seen) -> bool:
        """Store a signed request in the replay cache with the next batch; False when its key is
        stored already with another body hash (a replay)."""
        return cast(bool, await self._batcher.submit(Admission(seen)))

    async def close(self) -> None:
        """Give this user's share back; the last user's close finishes what is queued and stops."""
        self.users -= 1
        if self.users > 0:
            return
        self.closed = True
        await self._batcher.close()
        await self._runner.close()

    async def _commit(self, batch: list[WriteItem]) -> list[object | BaseException]:
        return await self._commit_late(lambda: batch)

    async def _commit_late(self, take: Callable[[], list[WriteItem]]) -> list[object | BaseException]:
        """Write the batch ``take()`` cuts, in the runner's thread once this writer has its turn."""
        taken: list[WriteItem] = []

        def write(conn: Connection) -> list[object]:
            taken.extend(take())
            return _write(conn, taken, self.pruning)

        try:
            return list(await self._runner.run(write))
        except IntegrityError:
            if len(taken) != 1 or isinstance(taken[0], Admission):
                raise  # the batcher splits the batch to find whose row it is
            # A platform retry stored by another instance meanwhile: the caller reads what it stored.
            return [DuplicateExchange()]


def _write(conn: Connection, batch: list[WriteItem], pruning: PruneSchedule | None = None) -> list[object]:
    """The batch's statements in one transaction: one executemany per statement shape, one commit.

    The replay checks first (admissions on their own and those of exchanges); an exchange whose check
    finds a replay is left out, and its caller gets ``ReplayError``. A batch that writes replay rows
    deletes some expired ones too, when ``pruning`` says it is time.
    """
    seen = [item.seen for item in batch if isinstance(item, Admission)] + \
        [item.seen for item in batch if isinstance(item, ExchangeWrite) and item.seen is not None]
    prune_limit = pruning.due() if pruning is not None and seen else 0
    with conn.begin():
        pruned = prune_seen(conn, prune_limit) if prune_limit else 0
        verdicts = dict(zip(map(id, seen), record_seen(conn, seen))) if seen else {}
        exchanges = [item for item in batch if isinstance(item, ExchangeWrite)
                     and (item.seen is None or verdicts[id(item.seen)])]
        written = dict(zip(map(id, exchanges), _write_exchanges(conn, exchanges))) if exchanges else {}
        committing = time.perf_counter()
    histogram(COMMIT_SECONDS, WRITER_NAME).observe(time.perf_counter() - committing)
    if prune_limit:
        assert pruning is not None
        pruning.pruned(pruned)  # committed: the schedule learns whether rows were left
    results: list[object] = []
    for item in batch:
        if isinstance(item, Admission):
            results.append(verdicts[id(item.seen)])
        elif id(item) in written:
            results.append(written[id(item)])
        else:
            results.append(ReplayError(REPLAYED))
    return results


def _write_exchanges(conn: Connection, batch: list[ExchangeWrite]) -> list[tuple[int, list[int]]]:
    """Within the caller's transaction: follower updates, then the inbound rows, then the replies."""
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    by_handoff: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for item in batch:
        plain, handoff = split_handoff(item.follower_changes)
        if plain:
            by_columns[tuple(sorted(plain))].append({"_fid": item.follower_id, **plain})
        if handoff:
            by_handoff[tuple(sorted(handoff))].append({"_fid": item.follower_id, "_was": item.pause_was, **handoff})
    for params in by_columns.values():
        update_rows(conn, _FOLLOWERS, params, key="_fid")
    for columns, params in by_handoff.items():
        conn.execute(_handoff_update(columns), params)
    inbound_ids = insert_rows(conn, _MESSAGES, [item.inbound for item in batch], returning_ids=True)
    outbound_params = []
    for item, inbound_id in zip(batch, inbound_ids):
        for row in item.outbound:
            outbound_params.append({**row, "in_reply_to": inbound_id})
    outbound_ids = insert_rows(conn, _MESSAGES, outbound_params, returning_ids=True)
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
