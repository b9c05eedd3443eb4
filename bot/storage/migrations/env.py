"""Alembic environment: migrations run on a connection handed over by ``bot.storage.migrate``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from bot.storage.models import Base

try:  # optional parts put their tables on the same Base; autogenerate must see them, or it drops them
    import bot.offers.models
except ImportError:
    pass
try:
    import bot.broadcast.models
except ImportError:
    pass
try:
    import bot.admin.models  # noqa: F401
except ImportError:
    pass

target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]  # Alembic's sync connection, untyped there
    # Batch mode lets one migration alter tables on SQLite and on PostgreSQL.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:  # plain `alembic upgrade` from a shell, with sqlalchemy.url set
        asyncio.run(_run_with_url(context.config.get_main_option("sqlalchemy.url")))
