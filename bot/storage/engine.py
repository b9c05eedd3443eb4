"""Engine and session setup: SQLite (WAL) by default, PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from bot.core.replay_check import ReplayCheck

# The URL checks live with the settings (which must not import storage); re-exported for storage's callers.
from bot.settings import (  # noqa: F401
    DEFAULT_DATABASE_URL,
    SUPPORTED_DRIVERS,
    DatabaseURLError,
    check_database_url,
)

log = logging.getLogger("engagebot.storage")


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def create_engine(url: str = DEFAULT_DATABASE_URL, *, sqlite_synchronous: str = "FULL", **kwargs: Any) -> AsyncEngine:
    """Create the async engine; on SQLite turn on WAL, foreign keys and a busy timeout.

    SQL parameters (openids, message text) are left out of error messages unless the caller asks
    for them (``hide_parameters=False``, which the app does only at log level DEBUG).
    """
    check_database_url(url)
    kwargs.setdefault("hide_parameters", True)
    try:
        if is_sqlite(url):
            if make_url(url).database not in (None, "", ":memory:"):
                # A fixed pool: each aiosqlite connection is a thread, and opening one per overflow
                # checkout (then closing it) costs more than the queries it serves. (An in-memory
                # database gets SQLAlchemy's single shared connection instead.)
                kwargs.setdefault("pool_size", 16)
                kwargs.setdefault("max_overflow", 0)
                kwargs.setdefault("pool_timeout", 60)
            engine = create_async_engine(url, **kwargs)
            pragmas = _sqlite_pragmas(sqlite_synchronous)
            event.listen(engine.sync_engine, "connect", pragmas)
            engine.sync_engine.__dict__[_PRAGMAS] = pragmas
            return engine
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise DatabaseURLError(str(exc)) from None


_PRAGMAS = "_engagebot_sqlite_pragmas"


def _sqlite_pragmas(sqlite_synchronous: str) -> Callable[[Any, Any], None]:
    def set_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a reply goes out only after its row is on disk, even across power loss.
        cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return set_pragmas


def sqlite_file_twin(engine: AsyncEngine) -> Engine | None:
    """A synchronous engine (the stdlib driver) on the same SQLite file, with the same pragmas.

    None for PostgreSQL and for an in-memory database (another connection would see another database).
    """
    url = engine.url
    pragmas = engine.sync_engine.__dict__.get(_PRAGMAS)
    if not is_sqlite(engine) or url.database in (None, "", ":memory:") or pragmas is None:
        return None
    twin = create_sync_engine(url.set(drivername="sqlite+pysqlite"), hide_parameters=True, poolclass=NullPool)
    event.listen(twin, "connect", pragmas)
    return twin


def is_row_error(exc: BaseException) -> bool:
    """Tell whether ``exc`` may come from one row's values rather than from the database being gone.

    A value too long, a NUL byte on PostgreSQL, a number out of range, a duplicate key: splitting
    the batch finds the row. A lost connection or an unreachable server fails every half alike.
    """
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError)):
        return False
    if isinstance(exc, DBAPIError):
        return not exc.connection_invalidated
    return isinstance(exc, (StatementError, ValueError, TypeError, ArithmeticError))


class SQLiteWriteGate:
    """One writer at a time per process, queued in asyncio rather than in SQLite's busy handler.

    SQLite allows a single writer; a second one gets SQLITE_BUSY and its busy handler sleeps in
    growing steps (1, 2, 5 ... 100 ms), which under concurrency costs far more than the writes.
    Whoever writes takes this gate first and gives it back when its transaction ends: the group
    writer and bulk writers with ``async with gate.lock``; a session with :func:`hold_write_gate`
    (and, for a handler writing through ``ctx.session``, at its first write: see ``_write_begins``).
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()


def sqlite_gate(engine: AsyncEngine) -> SQLiteWriteGate | None:
    """The engine's write gate (one per engine, so every session and the group writer share it)."""
    if not is_sqlite(engine):
        return None
    return _gate_of(engine.sync_engine, create=True)


def _gate_of(bind: Any, *, create: bool = False) -> SQLiteWriteGate | None:
    engine = getattr(bind, "engine", bind)  # a Connection's engine, or the Engine itself
    gates: dict[str, SQLiteWriteGate] = engine.__dict__
    if create:
        return gates.setdefault("_engagebot_write_gate", SQLiteWriteGate())
    return gates.get("_engagebot_write_gate")


class WriteTrackedSession(Session):
    """The sync session under every ``AsyncSession`` of :func:`make_sessionmaker`.

    It overrides nothing: it is the target of the write hooks below, so that only our sessions
    carry them. What a session wrote is kept in ``info``.
    """


_WROTE = "engagebot.wrote"
_HOLDS_GATE = "engagebot.holds_gate"
_REPLAY_CHECK = "engagebot.replay_check"


def check_first(session: AsyncSession, replay_check: ReplayCheck | None) -> AsyncSession:
    """Make the first statement (or flush) of ``session`` wait until ``replay_check`` is settled; a
    replay fails it with ``ReplayError``, so what a handler writes is never written for a replayed
    request. Before its first statement, not its first write: the session holds no connection yet.
    Waiting with one (a handler that read, then writes) could take the pool's last connections from
    the group writer that writes the check (PostgreSQL: its batches use the same pool)."""
    if replay_check is not None:
        session.sync_session.info[_REPLAY_CHECK] = replay_check
    return session


def _settle_replay_check(sync: Session) -> None:
    """:func:`check_first`'s wait, from inside the session's own work (SQLAlchemy's greenlet)."""
    replay_check = sync.info.get(_REPLAY_CHECK)
    if replay_check is not None:
        await_only(replay_check.wait())
        del sync.info[_REPLAY_CHECK]


def session_wrote(session: AsyncSession) -> bool:
    """Whether ``session`` wrote in its transaction (statements run, objects flushed) or holds
    changes not flushed yet. A session not made by :func:`make_sessionmaker` counts as written."""
    sync = session.sync_session
    if not isinstance(sync, WriteTrackedSession):
        return True
    return bool(sync.info.get(_WROTE) or sync.new or sync.dirty or sync.deleted)


async def hold_write_gate(session: AsyncSession) -> None:
    """Mark ``session`` as writing and, on SQLite, hold the write gate until its transaction ends.

    Connection first, then the gate: whoever holds the gate already has its connection, so nobody
    waits for the pool while holding the gate (no deadlock). Nothing to take on PostgreSQL.
    """
    sync = session.sync_session
    replay_check = sync.info.get(_REPLAY_CHECK)
    if replay_check is not None:  # before the connection and the gate, which the check's writer needs
        await replay_check.wait()
        del sync.info[_REPLAY_CHECK]
    sync.info[_WROTE] = True
    gate = _gate_of(sync.get_bind())
    if gate is not None and not sync.info.get(_HOLDS_GATE):
        await session.connection()
        await gate.lock.acquire()
        sync.info[_HOLDS_GATE] = True


def _write_begins(sync: Session) -> None:
    """:func:`hold_write_gate` from inside a session's own work (a flush, a DML statement), which
    runs in SQLAlchemy's greenlet: a handler writing through ``ctx.session`` queues for the gate
    at its first write without having to say so."""
    sync.info[_WROTE] = True
    gate = _gate_of(sync.get_bind())
    if gate is not None and not sync.info.get(_HOLDS_GATE):
        sync.connection()
        await_only(gate.lock.acquire())
        sync.info[_HOLDS_GATE] = True


@event.listens_for(WriteTrackedSession, "before_flush")
def _before_flush(sync: Session, _flush_context: Any, _instances: Any) -> None:
    _settle_replay_check(sync)
    _write_begins(sync)


@event.listens_for(WriteTrackedSession, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    _settle_replay_check(state.session)
    if state.is_insert or state.is_update or state.is_delete:
        _write_begins(state.session)


@event.listens_for(WriteTrackedSession, "after_transaction_end")
def _release_gate(sync: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        _give_gate_back(sync)


def _give_gate_back(sync: Session) -> None:
    if sync.info.pop(_HOLDS_GATE, False):
        gate = _gate_of(sync.get_bind())
        assert gate is not None
        gate.lock.release()


class GateSafeSession(AsyncSession):
    """Gives the write gate back when the session closes, whatever became of its transaction.

    The gate goes back when the transaction ends (``_release_gate``), but a commit cancelled while it
    hands its connection back to the pool ends without that event: the gate stayed taken and every
    later writer of the process waited for it (seen as a stop that hung under load). ``close`` runs
    to completion even when its caller is cancelled (the session's ``async with``).
    """

    async def close(self) -> None:
        if not self.sync_session.info.get(_HOLDS_GATE):
            await super().close()
            return
        # A writer's close (its rollback, its connection's return to the pool) runs to its end even if
        # the caller is cancelled, again and again (a stop cancels in waves): a connection handed back
        # mid-transaction keeps SQLite's write lock, and the next writer let through the gate would wait
        # in SQLite's busy handler (10 s) instead. Bounded: a driver that never answers must not make
        # the task uncancellable (past the bound the gate goes back as it did before).
        closing = asyncio.ensure_future(super().close())
        try:
            await asyncio.shield(closing)
        except asyncio.CancelledError:
            await _outlast_cancels(closing, CLOSE_AFTER_CANCEL)
            raise
        finally:
            _give_gate_back(self.sync_session)


# How long a cancelled writer's close may still take: past SQLite's busy timeout (10 s), a statement
# waiting for the lock has given up and the rollback has run.
CLOSE_AFTER_CANCEL = 15.0


async def _outlast_cancels(work: asyncio.Future[None], bound: float) -> None:
    """Wait up to ``bound`` seconds for ``work``, whatever cancels arrive meanwhile; never raises."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not work.done() and (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait({work}, timeout=left)
        except asyncio.CancelledError:
            continue
    if work.done():
        mark_retrieved(work)
    else:
        log.error("a SQLite writer's close did not finish after its cancel; its connection is left to the pool",
                  extra={"waited_s": bound})
        work.add_done_callback(mark_retrieved)


def mark_retrieved(work: asyncio.Future[Any]) -> None:
    """Mark the outcome of work its caller left seen: its failure is nobody's to hear, and asyncio must not
    report it as "never retrieved" (a close that failed after its caller left, a lease write, a probe)."""
    if not work.cancelled():
        work.exception()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that never expire loaded rows on commit; on SQLite they queue for the write gate."""
    sqlite_gate(engine)  # created now, so every session of this engine finds the same one
    return async_sessionmaker(engine, class_=GateSafeSession, expire_on_commit=False,
                              sync_session_class=WriteTrackedSession)
