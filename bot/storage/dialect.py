"""What SQLite and PostgreSQL spell differently, in one place: insert-ignore, upsert, skip-locked, locks.

Every caller passes what it holds (an ``AsyncSession``, an ``AsyncConnection``, an engine or a sync
connection) and gets the statement right for that database; nothing else in the tree asks which
database it is on. SQLite and PostgreSQL both know ``INSERT ... ON CONFLICT``; only PostgreSQL
knows ``FOR UPDATE SKIP LOCKED`` and advisory locks, which SQLite does not need: it has one writer
at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, Select, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

POSTGRESQL = "postgresql"
SQLITE = "sqlite"

Insert = postgresql.Insert | sqlite.Insert


def dialect_name(bind: Any) -> str:
    """``"postgresql"`` or ``"sqlite"`` for a session (its engine), connection or engine; SQLite if unbound."""
    target = getattr(bind, "bind", None) or bind  # a session: the engine it is bound to
    dialect = getattr(target, "dialect", None)
    return dialect.name if dialect is not None else SQLITE


def is_postgresql(bind: Any) -> bool:
    return dialect_name(bind) == POSTGRESQL


def insert(bind: Any, table: Any) -> Insert:
    """The database's ``INSERT`` for ``table`` (a Table or mapped class), which knows ``ON CONFLICT``."""
    return postgresql.insert(table) if is_postgresql(bind) else sqlite.insert(table)


def insert_ignore(bind: Any, table: Any, *, index_elements: Sequence[Any] | None = None) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: rows that would break a unique constraint are skipped.

    ``index_elements`` names the constraint's columns (any unique constraint when left out).
    """
    return insert(bind, table).on_conflict_do_nothing(index_elements=index_elements)


def upsert(bind: Any, table: Any, *, index_elements: Sequence[Any],
           set_: Mapping[str, Any] | Callable[[Any], Mapping[str, Any]],
           where: Callable[[Any], Any] | None = None) -> Insert:
    """``INSERT ... ON CONFLICT (index_elements) DO UPDATE SET set_ [WHERE where]``.

    ``set_`` may be a function of the statement's ``excluded`` row (the values that were refused),
    e.g. ``lambda excluded: {"data": excluded.data}``; ``where`` is one (the existing row is updated
    only when it holds, else left as it is).
    """
    stmt = insert(bind, table)
    values = set_(stmt.excluded) if callable(set_) else set_
    return stmt.on_conflict_do_update(index_elements=index_elements, set_=dict(values),
                                      where=where(stmt.excluded) if where is not None else None)


def skip_locked(bind: Any, query: Select[Any]) -> Select[Any]:
    """``FOR UPDATE SKIP LOCKED`` on PostgreSQL (concurrent workers take different rows); as is on SQLite."""
    return query.with_for_update(skip_locked=True) if is_postgresql(bind) else query


async def lock_for_transaction(session: AsyncSession, key: int) -> None:
    """Serialize transactions taking the same ``key`` until they end (PostgreSQL's advisory lock).

    Nothing on SQLite: it runs one writing transaction at a time already.
    """
    if is_postgresql(session):
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def seconds_between(bind: Any, later: Any, earlier: Any) -> ColumnElement[float]:
    """``later - earlier`` in seconds, for two timestamp expressions (SQLite keeps them as text: julianday)."""
    if is_postgresql(bind):
        return cast(ColumnElement[float], func.extract("epoch", later - earlier))
    return (func.julianday(later) - func.julianday(earlier)) * 86_400.0


__all__ = ["POSTGRESQL", "SQLITE", "affected_rows", "dialect_name", "insert", "insert_ignore",
           "is_postgresql", "lock_for_transaction",
           "seconds_between", "skip_locked", "upsert"]


def affected_rows(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (``session.execute`` types its answer as a plain ``Result``)."""
    return cast(CursorResult[Any], result).rowcount or 0
