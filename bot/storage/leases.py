"""Leases in the database: which process runs a duty that must run once in the whole deployment.

Several worker processes of one ``engagebot run``, and several instances on one PostgreSQL, each
try to take the same named lease; the one that holds it runs the duty (``bot.storage.duties``) and
renews it, the others retry until it expires. Each operation is one atomic statement, on SQLite and
PostgreSQL alike:

* :func:`acquire` takes a lease nobody holds, or one that expired, or one already ours;
* :func:`renew` pushes the expiry of a lease still ours at the same ``generation``;
* :func:`release` lets it go at once (an orderly stop), so a standby takes over without waiting.

``generation`` grows each time the lease changes hands (a fencing token): a holder paused past its
expiry finds out at its next renewal that it lost the lease, and stops. Times are the holder's clock
(aware UTC): instances on several machines need clocks closer than the lease's time to live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow

from .dialect import affected_rows, upsert
from .engine import mark_retrieved
from .models import Lease

T = TypeVar("T")

_LEFT_RUNNING: set[asyncio.Task[object]] = set()  # lease writes whose callers were cancelled (``_to_its_end``)

__all__ = ["acquire", "holder_of", "holders", "release", "renew", "take_from", "writes_left_running"]


async def _to_its_end(write: Callable[[], Awaitable[T]]) -> T:
    """Run a lease's write transaction to its end even when the caller is cancelled meanwhile (a stop).

    Cancelled between its statement and its commit, the session's connection is invalidated, and on
    SQLite such a connection was seen to keep the database's write lock: the stop's releases then waited
    SQLite's 10 s for it (``engagebot run --workers 2``, SIGTERM as the workers' duties took their leases).
    The caller's cancellation goes on at once (a database that stopped answering must not hold a stop or a
    check's deadline); the write ends by itself, and a stop waits for it (:func:`writes_left_running`)
    before it releases, so the release gives up what that write took.
    """
    task = asyncio.ensure_future(write())
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _LEFT_RUNNING.add(task)
        task.add_done_callback(_LEFT_RUNNING.discard)
        task.add_done_callback(mark_retrieved)
        raise


async def writes_left_running() -> None:
    """Wait for the lease writes whose callers were cancelled: a release after this gives up whatever
    they took (a take still running would otherwise commit after it). Bound it with a timeout."""
    if _LEFT_RUNNING:
        await asyncio.wait(set(_LEFT_RUNNING))


# Each write is one ``sessions.begin()`` block: its commit and the connection's return to the pool run
# to completion even when the duty is cancelled meanwhile (a stop). A bare ``await session.commit()``
# cancelled while handing the connection back left it closed inside the pool under load, and the
# next write (the release at stop) waited on it forever: the stop hung until its timeout.
async def acquire(sessions: async_sessionmaker[AsyncSession], name: str, holder: str, ttl: timedelta, *,
                  now: datetime | None = None) -> int | None:
    """Take lease ``name`` for ``holder`` until ``ttl`` from now; its generation, or None when another holds it.

    Taken when new, expired or already ``holder``'s; the generation grows when the holder changes.
    """
    now = now or utcnow()
    return await _to_its_end(lambda: _acquire(sessions, name, holder, ttl, now))


async def _acquire(sessions: async_sessionmaker[AsyncSession], name: str, holder: str, ttl: timedelta,
                   now: datetime) -> int | None:
    async with sessions.begin() as session:
        stmt = upsert(
            session, Lease, index_elements=[Lease.name],
            set_=lambda excluded: {
                "holder": excluded.holder, "expires_at": excluded.expires_at,
                "generation": case((Lease.holder == excluded.holder, Lease.generation), else_=Lease.generation + 1)},
            where=lambda excluded: or_(Lease.expires_at < now, Lease.holder == excluded.holder),
        ).values(name=name, holder=holder, expires_at=now + ttl, generation=1).returning(Lease.generation)
        generation = (await session.execute(stmt)).scalar_one_or_none()
    return generation


async def take_from(sessions: async_sessionmaker[AsyncSession], name: str, dead: str, holder: str, ttl: timedelta,
                    *, now: datetime | None = None) -> int | None:
    """Take lease ``name`` from ``dead``, a holder known to be gone, before it runs out; the new generation,
    or None when it is no longer ``dead``'s (another took it meanwhile)."""
    now = now or utcnow()

    async def take() -> int | None:
        async with sessions.begin() as session:
            return (await session.execute(update(Lease).where(Lease.name == name, Lease.holder == dead).values(
                holder=holder, expires_at=now + ttl, generation=Lease.generation + 1).returning(Lease.generation),
            )).scalar_one_or_none()

    return await _to_its_end(take)


async def holder_of(sessions: async_sessionmaker[AsyncSession], name: str) -> str | None:
    """Who holds (or last held) lease ``name``; None when nobody ever took it."""
    async with sessions() as session:
        return (await session.execute(select(Lease.holder).where(Lease.name == name))).scalar_one_or_none()


async def renew(sessions: async_sessionmaker[AsyncSession], name: str, holder: str, generation: int,
                ttl: timedelta, *, now: datetime | None = None) -> bool:
    """Keep lease ``name`` until ``ttl`` from now; False when it is no longer ``holder``'s at ``generation``."""
    now = now or utcnow()

    async def push() -> bool:
        async with sessions.begin() as session:
            result = await session.execute(update(Lease).where(
                Lease.name == name, Lease.holder == holder, Lease.generation == generation,
            ).values(expires_at=now + ttl))
        return affected_rows(result) == 1

    return await _to_its_end(push)


async def release(sessions: async_sessionmaker[AsyncSession], name: str, holder: str, generation: int | None) -> bool:
    """Give lease ``name`` up now, if still ours: whoever asks next takes it. False when it was not ours.

    ``generation`` None: at whatever generation (a take whose answer was lost to a cancellation).
    """
    ours = [Lease.name == name, Lease.holder == holder]
    if generation is not None:
        ours.append(Lease.generation == generation)

    async def give_up() -> bool:
        async with sessions.begin() as session:
            result = await session.execute(update(Lease).where(*ours).values(expires_at=utcnow() - timedelta(seconds=1)))
        return affected_rows(result) == 1

    return await _to_its_end(give_up)


async def holders(sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None) -> dict[str, str]:
    """Each lease held now: name -> holder (for ``/metrics`` and the operator)."""
    now = now or utcnow()
    async with sessions() as session:
        rows = await session.execute(select(Lease.name, Lease.holder).where(Lease.expires_at >= now)
                                     .order_by(Lease.name))
    return {name: holder for name, holder in rows.all()}
