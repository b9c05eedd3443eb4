from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade
from bot.testing import BotHarness
from handlers import default_router
from tests.support.db import backend, drop_pooled_databases, fresh_database_url

# Tests never read an operator's settings from the environment by accident.
for _name in [n for n in os.environ if n.startswith("ENGAGEBOT_") and not n.startswith("ENGAGEBOT_TEST_")]:
    del os.environ[_name]
# The servers the tests start run in one process (as before --workers existed), unless a test asks for more:
# on a shared 2-core machine, a second process per server doubles the start time and the noise.
os.environ["ENGAGEBOT_WORKERS"] = "1"


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url(tmp_path) as url:
        yield url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test's database, its schema at the head."""
    engine = create_engine(database_url)
    await upgrade(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[BotHarness]:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        yield h


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, keep the tests whose answer may depend on the database engine.

    Those are the tests that use the database under test (the ``database_url`` fixture), less the ones
    marked ``engine_neutral``: a terminal console's wording, an operator file's validation, a rule
    pattern refused at load, which simulators a configuration serves, what nginx cuts off. Their SQL is
    the same on both engines and the SQLite pass gave their answer already; a second pass would only
    repeat them (about a third of the PostgreSQL pass's time). ``ENGAGEBOT_TEST_EVERYTHING=1`` runs
    every test anyway.
    """
    if backend() != "postgresql" or os.environ.get("ENGAGEBOT_TEST_EVERYTHING") == "1":
        return
    kept = [item for item in items if "database_url" in getattr(item, "fixturenames", ())
            and item.get_closest_marker("engine_neutral") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the PostgreSQL databases this process pooled for its tests."""
    asyncio.run(drop_pooled_databases())
