"""The batch threads' statements on SQLite, built once per shape, each batch's rows in one statement.

Core runs each row of a batch through its execution context: a parameter dict per row, the compiled
cache's lookup, every column's bind processor called through the context. For the group writer's and
the follower reader's few fixed shapes that was about 40% of their CPU (``bench/wechat.py`` under
``py-spy``), all of it holding the GIL (which the event loop needs) and, for the writer, the SQLite
write turn that the worker processes share. Here each shape is built once per (table, columns): its
SQL text and its columns' bind and result processors, which are SQLAlchemy's own (so what is stored
and what is read back are exactly what Core stores and reads), and a batch's rows go through
``Connection.exec_driver_sql``, so SQLAlchemy's transaction and its statement events still see them.

A batch's rows go in one statement (a multi-row ``INSERT``, an ``UPDATE ... FROM (VALUES ...)``), not
one ``executemany`` step per row: the stdlib driver gives the GIL back around every step and must take
it again from the event loop after each, and with 30 rows that wait (up to the 5 ms switch interval
each time) made a batch's 30 replay-cache inserts take 14 ms of wall time for 1 ms of work, measured
in the group writer under ``bench/wechat.py``; one statement takes 1 ms.

On PostgreSQL the same functions run Core statements (asyncpg batches rows itself, and its
parameter style differs): one call for both databases.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, CursorResult, Table, and_, bindparam, select, update
from sqlalchemy import insert as core_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import CompileError, DBAPIError
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from .dialect import POSTGRESQL, dialect_name, insert_ignore

Processor = Callable[[Any], Any] | None

# Rows per statement, at most: the statement text stays small, and its variables stay under SQLite's bound.
ROWS_PER_INSERT = 500
_SQLITE_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
_SQLITE_UPDATE_FROM = sqlite3.sqlite_version_info >= (3, 33)  # UPDATE ... FROM: else one UPDATE per row


@dataclass(frozen=True, slots=True)
class _Columns:
    """Some columns of a table, as the driver takes and gives them: their SQL names and processors;
    then the columns a row leaves out whose value Core would compute (``defaults``), named last."""

    keys: tuple[str, ...]
    names: tuple[str, ...]  # quoted for the dialect, the defaults' columns included
    bind: tuple[Processor, ...]
    bound_none: tuple[Any, ...]  # what each bind processor makes of None (JSON: 'null'; most: None)
    result: tuple[Processor, ...]
    read_none: tuple[Any, ...]  # what each result processor makes of NULL
    defaults: tuple[Callable[[], Any], ...] = ()
    # A processor refused None (a column type of the developer's; none of ours): known once per shape,
    # so the rows of every other shape are not searched for the marker.
    none_refused: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "none_refused", _NONE_REFUSED in (*self.bound_none, *self.read_none))

    def bound(self, row: Mapping[str, Any]) -> list[Any]:
        """``row``'s values for these columns, as the driver takes them (SQLAlchemy's bind processing)."""
        values = [row[key] for key in self.keys]
        values.extend(default() for default in self.defaults)
        bound = [none if value is None else value if process is None else process(value)
                 for process, none, value in zip(self.bind, self.bound_none, values)]
        return _none_processed(bound, self.bind) if self.none_refused else bound

    def read(self, values: Sequence[Any]) -> dict[str, Any]:
        """A row from the driver, by column key, as Core reads it (SQLAlchemy's result processing)."""
        read = [none if value is None else value if process is None else process(value)
                for process, none, value in zip(self.result, self.read_none, values)]
        return dict(zip(self.keys, _none_processed(read, self.result) if self.none_refused else read))


@functools.lru_cache(maxsize=64)
def _columns(dialect: Dialect, table: Table, keys: tuple[str, ...]) -> _Columns:
    quote = dialect.identifier_preparer.format_column
    if unknown := [key for key in keys if key not in table.c]:
        raise CompileError(f"Unconsumed column names: {', '.join(unknown)}")  # as Core says it
    columns: list[Column[Any]] = [table.c[key] for key in keys]
    types = [column.type.dialect_impl(dialect) for column in columns]
    bind = tuple(t.bind_processor(dialect) for t in types)
    result = tuple(t.result_processor(dialect, None) for t in types)
    # None is processed once here, not per row; as in Core, it may not stay None (JSON stores it as 'null').
    return _Columns(keys, tuple(quote(column) for column in columns), bind, _of_none(bind), result, _of_none(result))


class _NoneRefused:
    """Stands for None where a column's processor refuses it: processed again in a row that has it, to
    fail there as in Core (a shape is still built, and rows without None still go in)."""


_NONE_REFUSED = _NoneRefused()


def _of_none(processors: tuple[Processor, ...]) -> tuple[Any, ...]:
    return tuple(None if process is None else _processed_none(process) for process in processors)


def _processed_none(process: Callable[[Any], Any]) -> Any:
    try:
        return process(None)
    except Exception:
        return _NONE_REFUSED


def _none_processed(values: list[Any], processors: tuple[Processor, ...]) -> list[Any]:
    """``values``, where a None its processor refuses is processed again: it raises as Core would."""
    for process, value in zip(processors, values):
        if value is _NONE_REFUSED and process is not None:
            process(None)
    return values


def _table_name(dialect: Dialect, table: Table) -> str:
    return dialect.identifier_preparer.format_table(table)


def _computed(table: Table, keys: Sequence[str], *, updating: bool) -> list[tuple[str, Callable[[], Any]]]:
    """The columns left out of ``keys`` whose value Core computes in Python (a ``default`` when
    inserting, an ``onupdate`` when updating), each with what computes it as Core would."""
    given = set(keys)
    computed: list[tuple[str, Callable[[], Any]]] = []
    for column in table.columns:
        default = column.onupdate if updating else column.default
        if column.key in given or column.primary_key or default is None:
            continue
        if isinstance(default, ScalarElementColumnDefault):
            computed.append((column.key, functools.partial(_constant, default.arg)))
        elif isinstance(default, CallableColumnDefault):
            # Core wraps a callable of no arguments (``default=list``: ours all are) as one of the
            # execution context, which it ignores; there is no context here.
            computed.append((column.key, functools.partial(default.arg, None)))  # type: ignore[arg-type]
        else:  # a SQL expression or a sequence: Core puts it in the statement itself
            raise ValueError(f"{table.name}.{column.key}: its default is SQL; name the column in every row")
    return computed


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                returning_ids: bool = False) -> list[int]:
    """Insert ``rows`` (every one with the same keys) in as few statements as the database allows.

    ``returning_ids``: their new ids, in ``rows``' order.
    """
    if not rows:
        return []
    keys = tuple(rows[0])
    _same_keys(rows, keys)
    if dialect_name(conn) == POSTGRESQL:
        return _core_insert(conn, table, rows, returning_ids=returning_ids)
    ids: list[int] = []
    newest = _newest_id(conn.dialect, table) if returning_ids else ""
    for chunk, result in _insert_chunks(conn, table, rows, keys, tail=""):
        if returning_ids:
            # Not RETURNING: the driver gives the GIL back around each row it returns (see above).
            ids.extend(consecutive_ids(result.lastrowid, len(chunk), conn.exec_driver_sql(newest).scalar()))
    return ids


def insert_new_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> int | None:
    """Insert ``rows`` (every one with the same keys), skipping each that would break a unique
    constraint (``ON CONFLICT DO NOTHING``); how many went in, or None where the driver cannot tell
    (PostgreSQL's batched executions)."""
    if not rows:
        return 0
    keys = tuple(rows[0])
    _same_keys(rows, keys)
    if dialect_name(conn) == POSTGRESQL:
        conn.execute(insert_ignore(conn, table), list(rows))
        return None
    return sum(result.rowcount for _, result in _insert_chunks(conn, table, rows, keys, tail=" ON CONFLICT DO NOTHING"))


def _insert_chunks(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...], *,
                   tail: str) -> Iterator[tuple[Sequence[Mapping[str, Any]], CursorResult[Any]]]:
    """Each chunk of ``rows`` inserted in one statement (SQLite), with its result."""
    dialect = conn.dialect
    columns = _shape(dialect, table, keys, updating=False)
    head = f"INSERT INTO {_table_name(dialect, table)} ({', '.join(columns.names)}) VALUES "
    for chunk in _chunks(rows, len(columns.names)):
        sql = head + _values(len(chunk), len(columns.names)) + tail
        yield chunk, conn.exec_driver_sql(sql, _flat(_bound(conn, sql, chunk, columns)))


@functools.lru_cache(maxsize=64)
def _newest_id(dialect: Dialect, table: Table) -> str:
    (key,) = table.primary_key.columns
    return f"SELECT max({dialect.identifier_preparer.format_column(key)}) FROM {_table_name(dialect, table)}"


def update_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str) -> None:
    """``UPDATE table SET <the other keys> WHERE id = row[key]`` for each of ``rows`` (the same keys in
    each). A row named twice gets its last values, as one UPDATE per row in order would leave it."""
    if not rows:
        return
    keys = tuple(k for k in rows[0] if k != key)
    _same_keys(rows, (*keys, key))
    (primary,) = table.primary_key.columns
    if dialect_name(conn) == POSTGRESQL:
        conn.execute(_core_update(table, keys, key), list(rows))
        return
    dialect = conn.dialect
    columns = _shape(dialect, table, keys, updating=True)
    name = _table_name(dialect, table)
    quote = dialect.identifier_preparer.format_column
    # Once per target row: in one statement, a target row matched by two source rows gets either.
    last = list({row[key]: row for row in rows}.values())
    if not _SQLITE_UPDATE_FROM:
        sql = f"UPDATE {name} SET {', '.join(f'{c} = ?' for c in columns.names)} WHERE {quote(primary)} = ?"
        conn.exec_driver_sql(sql, _bound(conn, sql, last, columns, key=key))
        return
    # The VALUES' columns are column1, column2, ...: the row's key is the last.
    assignments = ", ".join(f"{column} = v.column{i}" for i, column in enumerate(columns.names, start=1))
    head = f"UPDATE {name} SET {assignments} FROM (VALUES "
    tail = f") AS v WHERE {name}.{quote(primary)} = v.column{len(columns.names) + 1}"
    for chunk in _chunks(last, len(columns.names) + 1):
        sql = head + _values(len(chunk), len(columns.names) + 1) + tail
        conn.exec_driver_sql(sql, _flat(_bound(conn, sql, chunk, columns, key=key)))


def select_in(conn: Connection, table: Table, keys: Sequence[str], *, where: Mapping[str, Any],
              column: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """``keys`` of the rows of ``table`` where each column of ``where`` equals its value and ``column`` is
    one of ``values``, by column key (as Core would read them). Name a unique index's columns: the
    equalities first, ``column`` last."""
    if not values:
        return []
    keys = tuple(keys)
    if dialect_name(conn) == POSTGRESQL:
        rows = conn.execute(_core_select(table, keys, tuple(where), column), {**where, "_in": list(values)})
        return [dict(row._mapping) for row in rows]
    dialect = conn.dialect
    wanted = _columns(dialect, table, keys)
    conditions = _columns(dialect, table, tuple(where))
    tested = _columns(dialect, table, (column,))
    tests = [*(f"{name} = ?" for name in conditions.names), f"{tested.names[0]} IN ({', '.join('?' * len(values))})"]
    sql = f"SELECT {', '.join(wanted.names)} FROM {_table_name(dialect, table)} WHERE {' AND '.join(tests)}"
    try:
        params = (*conditions.bound(where), *(tested.bound({column: v})[0] for v in values))
    except Exception as exc:
        raise _statement_error(conn, sql, [{**where, column: list(values)}], exc) from exc
    return [wanted.read(row) for row in conn.exec_driver_sql(sql, params).fetchall()]


def _constant(value: Any) -> Any:
    return value


def _chunks(rows: Sequence[Mapping[str, Any]], width: int) -> list[Sequence[Mapping[str, Any]]]:
    size = max(1, min(ROWS_PER_INSERT, _SQLITE_MAX_VARIABLES // width))
    return [rows[start: start + size] for start in range(0, len(rows), size)]


def _values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)``: ``rows`` rows of ``width`` parameters."""
    return ", ".join([f"({', '.join('?' * width)})"] * rows)


def _flat(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(value for row in rows for value in row)


def _bound(conn: Connection, sql: str, rows: Sequence[Mapping[str, Any]], columns: _Columns, *,
           key: str | None = None) -> list[tuple[Any, ...]]:
    """The rows' parameters for ``sql`` (``key``'s value last, if named); a value its column's processor
    refuses fails as it does in Core: a ``StatementError`` (its parameters hidden as the engine says)."""
    try:
        if key is None:
            return [tuple(columns.bound(row)) for row in rows]
        return [(*columns.bound(row), row[key]) for row in rows]
    except Exception as exc:
        raise _statement_error(conn, sql, list(rows), exc) from exc


def _statement_error(conn: Connection, sql: str, rows: list[Any], exc: Exception) -> Exception:
    return DBAPIError.instance(sql, rows, exc, conn.dialect.loaded_dbapi.Error,
                               hide_parameters=conn.engine.hide_parameters, dialect=conn.dialect, ismulti=True)


def consecutive_ids(last: int | None, count: int, newest: int | None) -> list[int]:
    """The ids of one INSERT's ``count`` rows, in the VALUES' order, from the driver's last inserted id
    and the table's largest id read after the INSERT (in its transaction). SQLite gives each inserted
    row of a rowid table the largest rowid so far plus one, in the VALUES' order, while the largest is
    below 2**63 - 1: the rows' ids are then the ``count`` up to ``last``, which is the largest. Past
    that bound SQLite picks ids at random, and ``last`` is not the largest: refused, rather than
    matching rows to the wrong ids."""
    if last is None or newest != last:
        raise RuntimeError(f"SQLite did not give one INSERT's {count} rows the ids after the largest "
                           f"(last inserted {last}, largest {newest}); their ids cannot be told")
    return list(range(last - count + 1, last + 1))


@functools.lru_cache(maxsize=64)
def _shape(dialect: Dialect, table: Table, keys: tuple[str, ...], *, updating: bool) -> _Columns:
    """``keys``' columns for an INSERT or UPDATE, then the columns Core would fill in for them."""
    computed = _computed(table, keys, updating=updating)
    columns = _columns(dialect, table, (*keys, *(key for key, _ in computed)))
    return _Columns(keys, columns.names, columns.bind, columns.bound_none, columns.result, columns.read_none,
                    tuple(make for _, make in computed))


def _same_keys(rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...]) -> None:
    """Refuse a row whose keys differ from the first one's: its values would land in other columns."""
    wanted = set(keys)
    for row in rows:
        if len(row) != len(wanted) or not wanted.issuperset(row):
            raise ValueError(f"rows of one statement must have the same keys: {sorted(wanted)} and {sorted(row)}")


def _core_insert(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                 returning_ids: bool) -> list[int]:
    if not returning_ids:
        conn.execute(core_insert(table), list(rows))
        return []
    (key,) = table.primary_key.columns
    # Batched with the rows' order kept (SQLAlchemy's "insertmanyvalues" with an implicit sentinel).
    statement = core_insert(table).returning(key, sort_by_parameter_order=True)
    return list(conn.execute(statement, list(rows)).scalars().all())


@functools.lru_cache(maxsize=64)
def _core_update(table: Table, keys: tuple[str, ...], key: str) -> Any:
    (primary,) = table.primary_key.columns
    return update(table).where(primary == bindparam(key)).values({k: bindparam(k) for k in keys})


@functools.lru_cache(maxsize=16)
def _core_select(table: Table, keys: tuple[str, ...], where: tuple[str, ...], column: str) -> Any:
    return select(*(table.c[k] for k in keys)).where(and_(
        *(table.c[k] == bindparam(k) for k in where), table.c[column].in_(bindparam("_in", expanding=True))))
