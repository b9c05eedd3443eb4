"""Engine and session setup: SQLite (WAL) by default, PostgreSQL through asyncpg."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./engagebot.db"
SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}


class DatabaseURLError(ValueError):
    """The database URL names no supported async driver, or does not parse."""


def check_database_url(url: str) -> str:
    """Return the URL if it names a supported async driver; raise DatabaseURLError otherwise."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise DatabaseURLError(f"not a database URL: {exc}") from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise DatabaseURLError(
            f"driver {parsed.drivername!r} is not supported; use one of {sorted(SUPPORTED_DRIVERS)}"
        )
    if parsed.drivername.startswith("postgresql") and not parsed.database:
        raise DatabaseURLError("a PostgreSQL URL must name a database")
    return url


def is_sqlite(engine_or_url: AsyncEngine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, AsyncEngine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def create_engine(url: str = DEFAULT_DATABASE_URL, *, sqlite_synchronous: str = "FULL", **kwargs: Any) -> AsyncEngine:
    """Create the async engine; on SQLite turn on WAL, foreign keys and a busy timeout."""
    check_database_url(url)
    try:
        if is_sqlite(url):
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


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
