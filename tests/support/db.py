"""Fresh databases for tests: a temporary SQLite file, or a new PostgreSQL database per test.

Set ENGAGEBOT_TEST_DATABASE_URL to a PostgreSQL server URL (any database on it, e.g.
postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) to run the storage tests there too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

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
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        yield f"sqlite+aiosqlite:///{tmp_path / 'engagebot.db'}"
        return
    async with scratch_postgres_database(server) as url:
        yield url


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
