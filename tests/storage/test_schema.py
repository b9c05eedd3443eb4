"""The migrations build exactly the schema the models describe (on SQLite and on PostgreSQL).

Several changes add migrations side by side; a column in a model without its migration (or the
other way round) fails here, not on an operator's upgrade.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

import bot.admin.models  # these three register their tables on the shared metadata
import bot.broadcast.models
import bot.offers.models  # noqa: F401
from bot.storage.engine import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return compare_metadata(context, Base.metadata)


async def test_migrations_at_head_match_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []
