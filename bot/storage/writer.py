"""Group commit: the exchanges of many concurrent messages written in one transaction.

Each message costs a follower update and two inserts; committed one by one, the commits and round
trips cap the rate (SQLite takes one writer at a time). The writer takes everything queued while
the previous batch was committing and writes it with one executemany per statement and one commit.
Nobody's reply goes out before its batch is committed, so durability is unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.core.store import DuplicateExchange

from .engine import sqlite_gate
from .models import Follower, Message

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
    future: asyncio.Future[tuple[int, list[int]]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class GroupWriter:
    def __init__(self, engine: AsyncEngine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: list[ExchangeWrite] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.written = 0

    async def write(self, item: ExchangeWrite) -> tuple[int, list[int]]:
        """Queue the writes and wait until they are committed; return (inbound id, outbound ids)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-writer")
        self._queue.append(item)
        self._wake.set()
        return await item.future

    async def close(self) -> None:
        if self._task is not None:
            while self._queue:
                await asyncio.sleep(0.01)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
                await self._commit(batch)

    async def _commit(self, batch: list[ExchangeWrite]) -> None:
        gate = sqlite_gate(self.engine)
        try:
            # Connection first, then the gate: whoever holds the gate already has its connection,
            # so nobody waits for a connection while holding the gate (no deadlock on the pool).
            async with self.engine.connect() as conn, gate.lock if gate is not None else contextlib.nullcontext():
                try:
                    async with conn.begin():
                        results = await self._write(conn, batch)
                except IntegrityError:
                    # A platform retry stored by another instance meanwhile: sort out who, one by one.
                    results = [await self._commit_alone(conn, item) for item in batch]
        except Exception as exc:  # noqa: BLE001 - every waiter must hear of it, then the loop goes on
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        self.batches += 1
        self.written += len(batch)
        for item, result in zip(batch, results):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    async def _commit_alone(self, conn: AsyncConnection, item: ExchangeWrite) -> tuple[int, list[int]] | BaseException:
        try:
            async with conn.begin():
                return (await self._write(conn, [item]))[0]
        except IntegrityError:
            return DuplicateExchange()

    async def _write(self, conn: AsyncConnection, batch: list[ExchangeWrite]) -> list[tuple[int, list[int]]]:
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for item in batch:
            if item.follower_changes:
                columns = tuple(sorted(item.follower_changes))
                by_columns[columns].append({"_fid": item.follower_id, **item.follower_changes})
        for columns, params in by_columns.items():
            stmt = update(Follower).where(Follower.id == bindparam("_fid")).values(
                {c: bindparam(c) for c in columns})
            await conn.execute(stmt, params)
        inbound_ids = (await conn.execute(_INSERT_MESSAGES, [item.inbound for item in batch])).scalars().all()
        outbound_params = []
        for item, inbound_id in zip(batch, inbound_ids):
            for row in item.outbound:
                outbound_params.append({**row, "in_reply_to": inbound_id})
        outbound_ids = list((await conn.execute(_INSERT_MESSAGES, outbound_params)).scalars().all()) \
            if outbound_params else []
        results = []
        cursor = 0
        for item, inbound_id in zip(batch, inbound_ids):
            results.append((inbound_id, outbound_ids[cursor: cursor + len(item.outbound)]))
            cursor += len(item.outbound)
        return results
