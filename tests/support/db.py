"""Fresh databases for tests: a temporary SQLite file, or a PostgreSQL database of a per-process pool.

Set ENGAGEBOT_TEST_DATABASE_URL to a PostgreSQL server URL (any database on it, e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) to run the storage tests there too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

POSTGRES_ENV = "ENGAGEBOT_TEST_DATABASE_URL"


def backend() -> str:
    return "postgresql" if os.environ.get(POSTGRES_ENV) else "sqlite"


@asynccontextmanager
async def scratch_postgres_database(server_url: str, *, prefix: str = "engagebot_test") -> AsyncIterator[str]:
    """Create a new database on the server of ``server_url``, yield its URL, drop it afterwards."""
    import asyncpg

    url = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@asynccontextmanager
async def fresh_database_url(tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own for one test, its schema at the head and every table empty.

    SQLite: a copy of a file migrated once per process. PostgreSQL: a database from this process's
    pool (``_PostgresPool``): creating, migrating and dropping one per test cost about 3 s each.
    """
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        path = tmp_path / "engagebot.db"
        shutil.copyfile(await _migrated_sqlite_template(), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    async with _pool(server).database() as url:
        yield url


_sqlite_template: Path | None = None


async def _migrated_sqlite_template() -> Path:
    """A SQLite file at the head of the migrations, made once per process and copied for each test."""
    global _sqlite_template
    if _sqlite_template is None:
        from bot.storage.engine import create_engine
        from bot.storage.migrate import upgrade

        path = Path(tempfile.mkdtemp(prefix="engagebot-template-")) / "template.db"
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()  # the last connection's close checkpoints the WAL into the file
        for leftover in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            assert not leftover.exists() or leftover.stat().st_size == 0, f"{leftover} was not checkpointed"
        _sqlite_template = path
    return _sqlite_template


# What a database's schema is: tables and columns, constraints, indexes, sequences, types and the revision.
# A test that left any of it changed (a dropped constraint, a revision taken back) has its database dropped
# rather than handed to the next test.
_SCHEMA_FINGERPRINT = """
SELECT md5(coalesce(string_agg(item, E'\n' ORDER BY item), '')) FROM (
  SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable, column_default) AS item
    FROM information_schema.columns WHERE table_schema = 'public'
  UNION ALL
  SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL
  SELECT format('sequence %s', sequencename) FROM pg_sequences WHERE schemaname = 'public'
  UNION ALL
  SELECT format('type %s %s', t.typname, e.enumlabel) FROM pg_type t LEFT JOIN pg_enum e ON e.enumtypid = t.oid
    WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
  UNION ALL
  SELECT format('trigger %s', tgname) FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL
  SELECT 'revision ' || version_num FROM alembic_version
) AS schema
"""


class _PostgresPool:
    """Migrated databases on the test server, reused by this process's tests one at a time each.

    After a test the database's other connections are ended; if its schema is still exactly the
    migrated one, every table but ``alembic_version`` is emptied and every sequence restarted (what a
    new database would hold), and it goes back to the pool; otherwise it is dropped.
    """

    def __init__(self, server_url: str) -> None:
        url = make_url(server_url)
        self.server = url
        self.admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.free: list[str] = []
        self.expected_fingerprint: str | None = None

    def url_of(self, name: str) -> str:
        return self.server.set(database=name).render_as_string(hide_password=False)

    def dsn_of(self, name: str) -> str:
        return self.server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)

    @asynccontextmanager
    async def database(self) -> AsyncIterator[str]:
        name = self.free.pop() if self.free else await self._new()
        try:
            yield self.url_of(name)
        finally:
            if await self._reset(name):
                self.free.append(name)
            else:
                await self._drop(name)

    async def _new(self) -> str:
        import asyncpg

        from bot.storage.engine import create_engine
        from bot.storage.migrate import upgrade

        name = f"engagebot_pool_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        engine = create_engine(self.url_of(name))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        if self.expected_fingerprint is None:
            conn = await asyncpg.connect(self.dsn_of(name))
            try:
                self.expected_fingerprint = await conn.fetchval(_SCHEMA_FINGERPRINT)
            finally:
                await conn.close()
        return name

    async def _reset(self, name: str) -> bool:
        import asyncpg

        try:
            admin = await asyncpg.connect(self.admin_dsn)
            try:
                await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
            finally:
                await admin.close()
            conn = await asyncpg.connect(self.dsn_of(name))
            try:
                if await conn.fetchval(_SCHEMA_FINGERPRINT) != self.expected_fingerprint:
                    return False
                tables = [r["t"] for r in await conn.fetch(
                    "SELECT quote_ident(tablename) AS t FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
                await _empty_tables(conn, tables)
                # setval is what RESTART does to a sequence, without the new file RESTART writes and syncs
                # at commit; a sequence no one has drawn from (last_value NULL) is left as it is.
                await conn.execute("SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, "
                                   "false) FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL")
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            return False
        return True

    async def _drop(self, name: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def drop_all(self) -> None:
        while self.free:
            await self._drop(self.free.pop())


async def _empty_tables(conn: Any, tables: list[str]) -> None:
    """Delete every row of ``tables``, foreign keys notwithstanding.

    A DELETE per table with the foreign-key triggers off (``session_replication_role = replica``, for
    this transaction only): a test leaves a few rows, and a TRUNCATE of the 27 tables gives each a new
    file that the commit syncs, about 0.3 s a test, a third of the PostgreSQL pass. The schema has no
    triggers of its own (the fingerprint would show them), so nothing else would have fired. A role
    that may not set it (not a superuser) gets the TRUNCATE.
    """
    import asyncpg

    if not tables:
        return
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            for table in tables:
                await conn.execute(f"DELETE FROM {table}")
    except asyncpg.InsufficientPrivilegeError:
        await conn.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


_pools: dict[str, _PostgresPool] = {}


def _pool(server_url: str) -> _PostgresPool:
    if server_url not in _pools:
        _pools[server_url] = _PostgresPool(server_url)
    return _pools[server_url]


async def drop_pooled_databases() -> None:
    """Drop this process's pooled PostgreSQL databases (at the end of the test session)."""
    for pool in _pools.values():
        await pool.drop_all()


async def stored_simulator_credentials(database_url: str) -> dict[str, dict[str, str]]:
    """The embedded simulators' credentials ``engagebot run`` created in that database, per platform."""
    from bot.storage.engine import create_engine, make_sessionmaker
    from bot.storage.simulators import load_records

    engine = create_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        return {name: next(data for kind, _key, data in await load_records(sessions, name) if kind == "credentials")
                for name in ("wechat", "telegram", "weibo")}
    finally:
        await engine.dispose()
