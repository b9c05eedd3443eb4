from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Point the ``engagebot`` command at the test database."""
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    return {"ENGAGEBOT_DATABASE_URL": database_url}
