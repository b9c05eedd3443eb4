"""Issue 13: /readyz answers 200 only when the database answers and its schema is at the head."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.app import CORE, build_app
from bot.health import Readiness, readyz_handler
from bot.settings import Settings
from bot.storage.engine import create_engine
from bot.storage.migrate import head_revisions
from tests.support.db import backend
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
    probe = Readiness(engine)
    app.router.add_get("/readyz", readyz_handler(probe))
    try:
        async with serve(app) as url, aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as resp:
            body = await resp.text()
            assert resp.status == 503, body
    finally:
        await probe.close()
        await engine.dispose()
    assert "database unreachable" in body
    assert "hunter2" not in body and "bot:" not in body


class _StallingProxy:
    """A TCP proxy to the database that can stop passing bytes: on the connections open now (each one
    half-open, as after a server's restart behind a NAT, or a firewall that forgot it), or on every one."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.new_stall = False
        self._flowing: list[asyncio.Event] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def stall_open_connections(self) -> None:
        for flowing in self._flowing:
            flowing.clear()

    def release(self) -> None:
        self.new_stall = False
        for flowing in self._flowing:
            flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        flowing = asyncio.Event()
        if not self.new_stall:
            flowing.set()
        self._flowing.append(flowing)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, upstream_writer]
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, flowing))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
        try:
            while data := await source.read(65536):
                await flowing.wait()
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    async def close(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _timed_get(url: str) -> tuple[float, int, dict[str, object]]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as http, http.get(url, timeout=aiohttp.ClientTimeout(total=30)) as resp:
        return time.monotonic() - started, resp.status, await resp.json()


@pytest.mark.skipif(backend() != "postgresql", reason="a network database: set ENGAGEBOT_TEST_DATABASE_URL")
async def test_a_probe_answers_within_its_bound_and_is_never_stuck_behind_a_dead_connection(database_url: str) -> None:
    """A pooled connection left half-open (PostgreSQL restarted behind a NAT, a firewall that forgot it)
    made the first probe wait 5 s (the timeout, then the dead connection's close) and the next ones were
    handed the same connection: a load balancer's probe (often 2 s) gave up without a reason. A probe
    answers within ENGAGEBOT_READY_TIMEOUT, from a connection of its own: ready while the server answers
    new connections, a 503 naming the wait when it answers none, ready again once it does."""
    url = make_url(database_url)
    proxy = _StallingProxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=await proxy.start()).render_as_string(hide_password=False)
    bound = 1.0
    settings = Settings(database_url=proxied, simulators=False, port=free_port(), ready_timeout=bound)
    app = build_app(settings, plugins=[])
    slack = 0.8  # the test's own HTTP round trip on a loaded machine
    try:
        async with serve(app, port=settings.port) as base:
            took, status, _body = await _timed_get(f"{base}/readyz")
            assert status == 200
            async with app[CORE].engine.connect() as conn:  # the app's pool holds a connection (as after any query)
                await conn.execute(text("SELECT 1"))
            proxy.stall_open_connections()
            for _ in range(2):  # the server answers new connections: ready, at once, each time
                took, status, body = await _timed_get(f"{base}/readyz")
                assert (status, took < bound + slack) == (200, True), (took, body)
            proxy.new_stall = True  # nothing answers any more: not ready, said within the bound, each time
            for _ in range(2):
                took, status, body = await _timed_get(f"{base}/readyz")
                assert status == 503 and body["reason"] == f"database did not answer within {bound:g} s", body
                assert took < bound + slack, took
            proxy.release()  # the server is back: the next probe says so
            took, status, body = await _timed_get(f"{base}/readyz")
            assert (status, took < bound + slack) == (200, True), (took, body)
    finally:
        proxy.release()
        await proxy.close()
