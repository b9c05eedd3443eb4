"""The embedded simulators' records (load at start, save what changed, credentials created once),
and what the terminal consoles ask about a follower's replies.

A record is ``(simulator, kind, key) -> data`` (JSON). The simulators themselves know nothing of
this module: the composition root (``bot/simulation.py``) moves their exported records in and out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow

from .dialect import insert_ignore, upsert
from .models import Follower, Message, SimulatorRecord
from .status import DeliveryStatus

# (kind, key, data); data None deletes the record.
Change = tuple[str, str, dict[str, Any] | None]


async def load_records(sessions: async_sessionmaker[AsyncSession], simulator: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every record of ``simulator`` as (kind, key, data)."""
    async with sessions() as session:
        rows = await session.execute(
            select(SimulatorRecord.kind, SimulatorRecord.key, SimulatorRecord.data)
            .where(SimulatorRecord.simulator == simulator))
        return [(kind, key, data) for kind, key, data in rows]


async def save_records(sessions: async_sessionmaker[AsyncSession], simulator: str, changes: Sequence[Change]) -> None:
    """Write the changed records and delete the dropped ones, in one transaction."""
    now = utcnow()
    upserts = [{"simulator": simulator, "kind": kind, "key": key, "data": data, "updated_at": now}
               for kind, key, data in changes if data is not None]
    gone = [(kind, key) for kind, key, data in changes if data is None]
    async with sessions() as session, session.begin():
        if upserts:
            stmt = upsert(session, SimulatorRecord, index_elements=["simulator", "kind", "key"],
                          set_=lambda excluded: {"data": excluded.data, "updated_at": excluded.updated_at})
            await session.execute(stmt, upserts)
        if gone:
            await session.execute(delete(SimulatorRecord).where(
                SimulatorRecord.simulator == simulator,
                or_(*(and_(SimulatorRecord.kind == kind, SimulatorRecord.key == key) for kind, key in gone))))


async def get_or_create_record(sessions: async_sessionmaker[AsyncSession], simulator: str, kind: str, key: str,
                               make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Return the stored record; the first caller stores ``make()`` (concurrent callers agree on one)."""
    async with sessions() as session:
        found: dict[str, Any] | None = await session.scalar(select(SimulatorRecord.data).where(
            SimulatorRecord.simulator == simulator, SimulatorRecord.kind == kind, SimulatorRecord.key == key))
        if found is not None:
            return found
    async with sessions() as session, session.begin():
        await session.execute(insert_ignore(session, SimulatorRecord).values(
            simulator=simulator, kind=kind, key=key, data=make(), updated_at=utcnow()))
    async with sessions() as session:
        stored: dict[str, Any] | None = await session.scalar(select(SimulatorRecord.data).where(
            SimulatorRecord.simulator == simulator, SimulatorRecord.kind == kind, SimulatorRecord.key == key))
    assert stored is not None
    return stored


async def reply_progress(sessions: async_sessionmaker[AsyncSession], *, channel: str, account: str,
                         external_id: str, inbound_key: str | None = None) -> tuple[bool, int]:
    """(was the inbound message ``inbound_key`` handled, how many replies to the follower still wait).

    The terminal consoles ask this to print a reply right after what caused it. Handled means
    stored: the dispatcher stores a message together with its replies. Without ``inbound_key``
    only the follower's waiting replies are counted. A reply waits until it is sent: pending, or
    in flight to the platform (``sending``) while a slow platform takes its time.
    """
    async with sessions() as session:
        handled = True
        if inbound_key is not None:
            handled = await session.scalar(select(Message.id).where(
                Message.channel == channel, Message.account == account, Message.direction == "in",
                Message.dedupe_key == inbound_key)) is not None
        pending = await session.scalar(
            select(func.count()).select_from(Message).join(Follower, Follower.id == Message.follower_id).where(
                Follower.channel == channel, Follower.account == account, Follower.external_id == external_id,
                Message.direction == "out", Message.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING))))
    return handled, int(pending or 0)
