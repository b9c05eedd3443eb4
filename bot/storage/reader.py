"""Batched reads: the followers (and stored platform messages) of many concurrent messages in one query.

Under load, most of a message's database cost is fixed per query (a connection from the pool, a
thread hop per cursor call, the ORM's setup), not per row. Messages arriving together are looked up
together: one query for their followers, one for which of their platform ids are stored already.
First contacts are created together too, in a batch of their own: the caller creates one only once
its request's replay check is settled (a replayed request must not leave a follower behind).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.follower import FOLLOWER_FIELDS, FollowerRecord
from bot.core.inbound import Inbound

from .batching import Batcher
from .driver_sql import insert_new_rows, select_in
from .engine import is_row_error
from .models import Follower, Message
from .runner import BatchRunner

MAX_BATCH = 256

_FOLLOWER_COLUMNS = tuple(Follower.__table__.columns)
# Core's FollowerRecord names the columns itself (core imports no storage): they must be the table's.
if {c.key for c in _FOLLOWER_COLUMNS} != set(FOLLOWER_FIELDS):
    raise RuntimeError(f"FollowerRecord fields differ from the follower table's columns: "
                       f"{sorted({c.key for c in _FOLLOWER_COLUMNS} ^ set(FOLLOWER_FIELDS))}")
_FOLLOWER_KEYS = tuple(c.key for c in _FOLLOWER_COLUMNS)
_FOLLOWERS = cast(Table, Follower.__table__)
_MESSAGES = cast(Table, Message.__table__)


@dataclass(slots=True)
class Lookup:
    """What the reader found for one message: the follower and a stored copy's ids."""

    follower: FollowerRecord | None = None
    stored_inbound_id: int | None = None
    stored_follower_id: int | None = None


class FollowerReader:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, max_batch: int = MAX_BATCH) -> None:
        self.sessions = sessions
        engine = sessions.kw["bind"]
        self._reads = BatchRunner(engine, name="follower-reader", writes=False)
        self._creates = BatchRunner(engine, name="follower-creator", writes=True)
        self._batcher: Batcher[Inbound, Lookup] = Batcher(
            self._read, max_batch=max_batch, name="follower-reader", isolate=is_row_error)
        self._creator: Batcher[Inbound, FollowerRecord] = Batcher(
            self._create, max_batch=max_batch, name="follower-creator", isolate=is_row_error)

    async def lookup(self, msg: Inbound) -> Lookup:
        """The follower of ``msg`` (None on a first contact: see :meth:`create`) and a stored copy's ids."""
        return await self._batcher.submit(msg)

    async def create(self, msg: Inbound) -> FollowerRecord:
        """Create the follower of ``msg`` (kept as it is if someone created it meanwhile) and return it."""
        return await self._creator.submit(msg)

    async def close(self) -> None:
        await self._batcher.close()
        await self._creator.close()
        await self._reads.close()
        await self._creates.close()

    async def _create(self, msgs: Sequence[Inbound]) -> list[FollowerRecord]:
        # First contacts arriving together created together (a poster scanned at an event brings many
        # at once), in their own short transaction; a follower exists from then on.
        new = list({(m.channel, m.account, m.external_id): m for m in msgs}.values())
        created = await self._creates.run(lambda conn: _create(conn, new))
        return [FollowerRecord(created[(m.channel, m.account, m.external_id)]) for m in msgs]

    async def _read(self, msgs: Sequence[Inbound]) -> list[Lookup]:
        keys = {(m.channel, m.account, m.external_id) for m in msgs}
        ids = {(m.channel, m.account, m.message_id) for m in msgs if m.message_id is not None}
        followers, stored = await self._reads.run(lambda conn: _find(conn, keys, ids))
        results = []
        for m in msgs:
            found = followers.get((m.channel, m.account, m.external_id))
            row = stored.get((m.channel, m.account, m.message_id)) if m.message_id is not None else None
            results.append(Lookup(FollowerRecord(found) if found is not None else None,
                                  row["id"] if row else None, row["follower_id"] if row else None))
        return results


FollowerKey = tuple[str, str, str]  # (channel, account, external id), or a message's dedupe key in third place


def _find(conn: Connection, keys: Iterable[FollowerKey], ids: Iterable[FollowerKey]) -> tuple[
        dict[FollowerKey, dict[str, Any]], dict[FollowerKey, dict[str, Any]]]:
    return _followers(conn, keys), _stored(conn, ids)


def _create(conn: Connection, new: list[Inbound]) -> dict[FollowerKey, dict[str, Any]]:
    with conn.begin():
        insert_new_rows(conn, _FOLLOWERS, [_new_follower(m) for m in new])
    return _followers(conn, [(m.channel, m.account, m.external_id) for m in new])


# Both lookups name the channel and account with "=" and the ids with IN, so each is a search of the
# table's unique index on both databases. A row-value IN, ``(channel, account, id) IN (...)``, reads the
# same but SQLite scans the whole table for it, and an IN on the id alone skips the index's leading
# columns: each batch then cost a scan of every follower or every stored message.
def _followers(conn: Connection, keys: Iterable[FollowerKey]) -> dict[FollowerKey, dict[str, Any]]:
    return {(r["channel"], r["account"], r["external_id"]): r
            for (channel, account), group in _by_account(keys).items()
            for r in select_in(conn, _FOLLOWERS, _FOLLOWER_KEYS, where={"channel": channel, "account": account},
                               column="external_id", values=group)}


def _stored(conn: Connection, ids: Iterable[FollowerKey]) -> dict[FollowerKey, dict[str, Any]]:
    """The inbound messages stored already under these platform ids (a retry's first copy)."""
    return {(channel, account, r["dedupe_key"]): r
            for (channel, account), group in _by_account(ids).items()
            for r in select_in(conn, _MESSAGES, ("id", "follower_id", "dedupe_key", "direction"),
                               where={"channel": channel, "account": account}, column="dedupe_key", values=group)
            if r["direction"] == "in"}


def _by_account(keys: Iterable[FollowerKey]) -> dict[tuple[str, str], list[str]]:
    """``keys``' ids by (channel, account): one query for each (a batch mostly has one)."""
    groups: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for channel, account, id_ in keys:
        groups[(channel, account)].append(id_)
    return groups


def _new_follower(msg: Inbound) -> dict[str, Any]:
    return {"channel": msg.channel, "account": msg.account, "external_id": msg.external_id,
            "display_name": msg.display_name, "following": False, "tags": [], "state_data": {},
            "window_sends": 0, "created_at": utcnow()}
