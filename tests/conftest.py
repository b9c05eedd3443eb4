from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.testing import BotHarness
from handlers import default_router
from tests.support.db import fresh_database_url

# Tests never read an operator's settings from the environment by accident.
for _name in [n for n in os.environ if n.startswith("ENGAGEBOT_") and n != "ENGAGEBOT_TEST_DATABASE_URL"]:
    del os.environ[_name]
# The servers the tests start run in one process (as before --workers existed), unless a test asks for more:
# on a shared 2-core machine, a second process per server doubles the start time and the noise.
os.environ["ENGAGEBOT_WORKERS"] = "1"


@pytest.fixture
async def database_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url(tmp_path) as url:
        yield url


@pytest.fixture
async def harness(database_url: str) -> AsyncIterator[BotHarness]:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        yield h
