"""Run Alembic migrations from code, on an async engine, inside or outside a running loop."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.errors import EngagebotError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


class SchemaNewerError(EngagebotError):
    """The database was migrated by a newer release: this code cannot upgrade it, nor work on it."""


def _upgrade(connection: Connection, revision: str) -> None:
    # Alembic cannot upgrade from a revision it does not know (a traceback "Can't locate revision"):
    # say what happened and what to do instead.
    if (newer := schema_newer(frozenset(_current_heads(connection)))) is not None:
        raise SchemaNewerError(newer)
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


class DatabaseUnreachableError(EngagebotError):
    """The database server did not let us connect (refused, no route, timed out)."""


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (all migrations by default).

    The first thing every command does with the database: a server that cannot be reached is said to
    be the database, and where (the driver's words alone, "Connection refused", name neither).
    """
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, revision)
    except OSError as exc:  # TimeoutError included; never the password, nor the user
        url = engine.url
        where = url.database if url.host is None else \
            f"{url.host}{'' if url.port is None else f':{url.port}'}/{url.database or ''}"
        raise DatabaseUnreachableError(f"database at {where} unreachable: {exc.strerror or exc}") from None


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection).get_current_heads()


async def current_heads(engine: AsyncEngine) -> frozenset[str]:
    """The revisions the database is at (one, once the migrations are chained; none when empty)."""
    async with engine.connect() as conn:
        return frozenset(await conn.run_sync(_current_heads))


@cache
def head_revisions() -> frozenset[str]:
    """The revisions this code's migrations end at (read from the files once per process)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


@cache
def known_revisions() -> frozenset[str]:
    """Every revision of this code's migrations."""
    return frozenset(script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions())


def schema_newer(current: frozenset[str]) -> str | None:
    """Why this code cannot work on a database at ``current`` migrated past it (by a newer release), or None.

    ``engagebot db upgrade`` cannot help there: only the release that migrated it knows its schema.
    """
    unknown = current - known_revisions()
    if not unknown:
        return None
    return (f"database schema at {', '.join(sorted(current))}, newer than this release's "
            f"{', '.join(sorted(head_revisions()))} (migrated by a newer engagebot: run that release, or "
            "restore the database's backup from before the migration)")
