"""Issue 13: /readyz answers 200 only when the database answers and its schema is at the head."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy import text

from bot.app import CORE, build_app
from bot.health import readyz_handler
from bot.settings import Settings
from bot.storage.engine import create_engine
from bot.storage.migrate import head_revisions
from tests.support.servers import free_port, serve


async def _get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def test_ready_when_the_schema_is_at_the_head_and_not_once_it_falls_behind(database_url: str) -> None:
    settings = Settings(database_url=database_url, simulators=False, port=free_port())
    app = build_app(settings, plugins=[])
    async with serve(app, port=settings.port) as url:
        assert await _get(f"{url}/readyz") == (200, {"status": "ready", "revision": sorted(head_revisions())})
        # The database is taken back a revision (another release's rollback): this code is not at home there.
        async with app[CORE].engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
        status, body = await _get(f"{url}/readyz")
        assert status == 503 and body["status"] == "unavailable"
        assert "schema at 0007" in str(body["reason"]) and "engagebot db upgrade" in str(body["reason"])
        assert (await _get(f"{url}/healthz"))[0] == 200  # alive, only not ready


async def test_a_database_migrated_by_a_newer_release_is_not_ready_and_says_so(database_url: str) -> None:
    """An old replica left running (or a code rollback) after a newer release migrated the database:
    not ready, and the reason does not send the operator to `engagebot db upgrade`, which cannot help."""
    settings = Settings(database_url=database_url, simulators=False, port=free_port())
    app = build_app(settings, plugins=[])
    async with serve(app, port=settings.port) as url:
        async with app[CORE].engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9001'"))
        status, body = await _get(f"{url}/readyz")
    assert status == 503 and body["status"] == "unavailable"
    reason = str(body["reason"])
    assert "schema at 9001, newer than this release's" in reason and "db upgrade" not in reason


async def test_not_ready_when_the_database_is_unreachable_and_the_reason_holds_no_secret() -> None:
    engine = create_engine(f"postgresql+asyncpg://bot:hunter2-secret@127.0.0.1:{free_port()}/engagebot")
    app = web.Application()
    app.router.add_get("/readyz", readyz_handler(engine))
    try:
        async with serve(app) as url, aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as resp:
            body = await resp.text()
            assert resp.status == 503, body
    finally:
        await engine.dispose()
    assert "database unreachable" in body
    assert "hunter2" not in body and "bot:" not in body
