"""What every command of ``engagebot`` shares: its one-line errors and warnings, settings, the database."""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings, load_settings
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade


def fail(message: str) -> int:
    print(f"engagebot: {message}", file=sys.stderr)
    return 2


def warn(source: object, lines: Sequence[str]) -> None:
    """Print what loaded but deserves the operator's eye (a missing language), one line each."""
    for line in lines:
        print(f"engagebot: warning: {source}: {line}", file=sys.stderr)


def settings_of(args: argparse.Namespace, **overrides: Any) -> Settings:
    """The settings of this command: ``--config`` FILE, the environment, then ``overrides`` (flags)."""
    return load_settings(getattr(args, "config", None), **overrides)


@asynccontextmanager
async def open_database(args: argparse.Namespace) -> AsyncIterator[tuple[Settings, async_sessionmaker[AsyncSession]]]:
    """Yield (settings, sessionmaker) on the configured database, brought up to date first."""
    settings = settings_of(args)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        await upgrade(engine)
        yield settings, make_sessionmaker(engine)
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_session(args: argparse.Namespace) -> AsyncIterator[AsyncSession]:
    """One session on the configured database (brought up to date first)."""
    async with open_database(args) as (_settings, sessions), sessions() as session:
        yield session
