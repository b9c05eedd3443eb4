"""Engine and session setup: SQLite (WAL) by default, PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
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

# The URL checks live with the settings (which must not import storage); re-exported for storage's callers.
from bot.settings import (  # noqa: F401
    DEFAULT_DATABASE_URL,
    SUPPORTED_DRIVERS,
    DatabaseURLError,
    check_database_url,
)

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

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                # FULL: a reply goes out only after its row is on disk, even across power loss.
                cursor.execute(f"PRAGMA synchronous={sqlite_synchronous}")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()

            return engine
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise DatabaseURLError(str(exc)) from None


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


def insert_ignoring_conflicts(bind: Any, table: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect of ``bind`` (a session, connection or engine)."""
    dialect = getattr(getattr(bind, "bind", None) or bind, "dialect", None)
    if dialect is not None and dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


class SQLiteWriteGate:
    """One writer at a time per process, queued in asyncio rather than in SQLite's busy handler.

    SQLite allows a single writer; a second one gets SQLITE_BUSY and its busy handler sleeps in
    growing steps (1, 2, 5 ... 100 ms), which under concurrency costs far more than the writes.
    Sessions take this gate before their first write and give it back at commit or rollback.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()


class TrackedSession(AsyncSession):
    """An AsyncSession that knows whether it wrote, and (on SQLite) takes the write gate first."""

    gate: SQLiteWriteGate | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._holds_gate = False
        self.wrote = False
        # Whatever path a write takes (a method not overridden here), the session knows it wrote.
        event.listen(self.sync_session, "after_flush", self._note_write)
        event.listen(self.sync_session, "do_orm_execute", self._note_dml)

    def _note_write(self, *_args: Any) -> None:
        self.wrote = True

    def _note_dml(self, state: Any) -> None:
        if state.is_insert or state.is_update or state.is_delete:
            self.wrote = True

    async def _writing(self) -> None:
        self.wrote = True
        if self.gate is not None and not self._holds_gate:
            # Connection first, then the gate: whoever holds the gate already has its connection,
            # so nobody waits for the pool while holding the gate (no deadlock).
            await self.connection()
            await self.gate.lock.acquire()
            self._holds_gate = True

    def _give_gate(self) -> None:
        if self._holds_gate:
            self._holds_gate = False
            assert self.gate is not None
            self.gate.lock.release()

    def has_changes(self) -> bool:
        return bool(self.new or self.dirty or self.deleted)

    async def _before(self, statement: Any = None) -> None:
        # A query autoflushes pending changes first: that is a write too.
        if getattr(statement, "is_dml", False) or getattr(statement, "is_ddl", False) or (
                self.autoflush and self.has_changes()):
            await self._writing()

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._before(statement)
        return await super().execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._before(statement)
        return await super().scalar(statement, *args, **kwargs)

    async def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._before(statement)
        return await super().scalars(statement, *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        await self._before()
        return await super().get(*args, **kwargs)

    async def stream(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._before(statement)
        return await super().stream(statement, *args, **kwargs)

    async def flush(self, objects: Any = None) -> None:
        if self.has_changes():
            await self._writing()
        await super().flush(objects)

    async def commit(self) -> None:
        if self.has_changes():
            await self._writing()
        try:
            await super().commit()
        finally:
            self._give_gate()

    async def rollback(self) -> None:
        try:
            await super().rollback()
        finally:
            self._give_gate()

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._give_gate()


def sqlite_gate(engine: AsyncEngine) -> SQLiteWriteGate | None:
    """The engine's write gate (one per engine, so every session and the group writer share it)."""
    if not is_sqlite(engine):
        return None
    return engine.sync_engine.__dict__.setdefault("_engagebot_write_gate", SQLiteWriteGate())


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that never expire loaded rows on commit; on SQLite they queue for the write gate."""
    session_class = type("EngagebotSession", (TrackedSession,), {"gate": sqlite_gate(engine)})
    return async_sessionmaker(engine, expire_on_commit=False, class_=session_class)
