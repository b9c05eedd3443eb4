"""Sockets that never finish their headers (slowloris) cannot take the server down.

The attack from issue 8: thousands of sockets trickling header bytes exhausted the file descriptors,
``/healthz`` timed out and asyncio logged "accept out of system resource" hundreds of thousands of
times. Here the real ``engagebot run`` gets a file limit of 300 and a cap of 100 connections; 400
loopback sockets trickle headers (and reconnect when dropped, as the attack tools do) while
``/healthz`` is polled on fresh connections. Bounded: 400 sockets for about 8 seconds, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.cli import running

pytestmark = pytest.mark.engine_neutral  # the PostgreSQL pass leaves these to the SQLite pass (tests/conftest.py)

ATTACKERS = 400
CAP = 100
FILE_LIMIT = 300  # the cap, asyncio's accept burst (100) and the rest fit; the attackers alone do not


def _small_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))


class Slowloris:
    """Open sockets that send a request line and then one header line every ``pace`` seconds."""

    def __init__(self, host: str, port: int, *, pace: float = 0.5, reconnect_after: float = 0.5) -> None:
        self.host, self.port, self.pace, self.reconnect_after = host, port, pace, reconnect_after
        self.connects = 0
        self.dropped = 0
        self.longest_held = 0.0
        self._stop = asyncio.Event()

    async def one(self, n: int) -> None:
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await self._pause()
                continue
            self.connects += 1
            opened = time.monotonic()
            try:
                writer.write(f"POST /wechat?n={n} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
                while not self._stop.is_set():
                    await writer.drain()
                    try:  # the server closing the socket shows as EOF here
                        if await asyncio.wait_for(reader.read(1), self.pace) == b"":
                            break
                    except TimeoutError:
                        pass
                    writer.write(b"X-Slow: a\r\n")
            except OSError:
                pass
            finally:
                if not self._stop.is_set():
                    self.dropped += 1
                    self.longest_held = max(self.longest_held, time.monotonic() - opened)
                writer.close()
            await self._pause()

    async def _pause(self) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), self.reconnect_after)
        except TimeoutError:
            pass

    def stop(self) -> None:
        self._stop.set()


async def _healthz_times(url: str, *, seconds: float) -> list[float]:
    times = []
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(force_close=True)  # a new connection each time, like a probe
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            async with http.get(f"{url}/healthz") as resp:
                assert resp.status == 200
                assert await resp.json() == {"status": "ok"}
            times.append(time.monotonic() - started)
            await asyncio.sleep(0.25)
    return times


@pytest.fixture
def server(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_HTTP__MAX_CONNECTIONS": str(CAP),
           "ENGAGEBOT_HTTP__HEADER_TIMEOUT": "2", "ENGAGEBOT_SIMULATORS": "false"}
    with running(tmp_path, env, preexec_fn=_small_file_limit) as (url, proc):
        yield url, proc, tmp_path / "stderr.log"


@pytest.mark.timing
async def test_trickling_header_sockets_do_not_stall_healthz_and_logs_stay_small(server) -> None:  # type: ignore[no-untyped-def]
    url, proc, stderr = server
    before = stderr.stat().st_size
    attack = Slowloris("127.0.0.1", int(url.rsplit(":", 1)[1]))
    tasks = [asyncio.create_task(attack.one(n)) for n in range(ATTACKERS)]
    try:
        await asyncio.sleep(1.0)  # the sockets are open and trickling
        times = await _healthz_times(url, seconds=6.0)
    finally:
        attack.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert proc.poll() is None
    assert len(times) >= 10 and max(times) < 2.0, (times, stderr.read_text("utf-8")[-3000:])
    # The server dropped the slow sockets (the oldest idle first, past the cap) before their headers ended:
    # within the header timeout (2 s) plus the lag of one event loop driving 400 sockets on a shared
    # 2-core machine (the slowest of ~3,000 drops was seen at 3.55 s), far from the body timeout (30 s).
    assert attack.dropped >= ATTACKERS - CAP and attack.longest_held < 2.0 + 2.5, (attack.dropped, attack.longest_held)
    logged = stderr.read_text("utf-8")[before:]
    assert len(logged) < 4096, logged[:2000]
    assert "out of system resource" not in logged and "Traceback" not in logged
    assert '"event": "connections closed by the guard"' in logged


async def test_a_connection_that_never_finishes_its_headers_is_closed_after_the_header_timeout(
        server) -> None:  # type: ignore[no-untyped-def]
    url, _proc, stderr = server
    attack = Slowloris("127.0.0.1", int(url.rsplit(":", 1)[1]), pace=0.2, reconnect_after=60)
    tasks = [asyncio.create_task(attack.one(n)) for n in range(5)]  # under the cap: only the timeout applies
    try:
        for _ in range(50):
            await asyncio.sleep(0.1)
            if attack.dropped == 5:
                break
    finally:
        attack.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert attack.dropped == 5 and 1.9 <= attack.longest_held < 3.5, (attack.dropped, attack.longest_held)
    assert '"header_timeouts": 1' in stderr.read_text("utf-8")  # the first at once, then counts once a minute


async def test_a_body_sent_too_slowly_gets_408(tmp_path: Path, database_url: str) -> None:
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_HTTP__BODY_TIMEOUT": "1",
           "ENGAGEBOT_ADMIN_TOKEN": "admin-token-for-tests", "ENGAGEBOT_SIMULATORS": "false"}
    with running(tmp_path, env) as (url, _proc):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"POST /admin/redeem HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer admin-token-for-tests\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"code\": ")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        took = time.monotonic() - started
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 408 "), status_line
        assert 0.9 <= took < 3.0, took
        async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as resp:
            assert resp.status == 200


async def test_at_stop_a_request_still_sending_its_body_gets_503_and_the_stop_does_not_wait_for_it(
        tmp_path: Path, database_url: str) -> None:
    import signal

    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_HTTP__BODY_TIMEOUT": "60",
           "ENGAGEBOT_SHUTDOWN_TIMEOUT": "30",
           "ENGAGEBOT_ADMIN_TOKEN": "admin-token-for-tests", "ENGAGEBOT_SIMULATORS": "false"}
    with running(tmp_path, env) as (url, proc):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /admin/redeem HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer admin-token-for-tests\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"code\": ")
        await writer.drain()
        await asyncio.sleep(0.5)  # the request is in the handler, waiting for the rest of its body
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        status_line = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 503 "), status_line
        code = await asyncio.to_thread(proc.wait, 20)
        took = time.monotonic() - stopping
    assert code == 0, (tmp_path / "stderr.log").read_text()
    # Without the cut, the stop waited half its budget (15 s) for that request, then went on.
    assert took < 10, took


async def test_accept_errors_are_logged_as_counts_not_once_per_try(caplog: pytest.LogCaptureFixture) -> None:
    from bot.connections import quiet_accept_errors

    loop = asyncio.get_running_loop()
    others: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: others.append(context))
    try:
        errors = quiet_accept_errors(loop)
        with caplog.at_level(logging.WARNING, logger="engagebot.connections"):
            for _ in range(10_000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(24, "Too many open files")})
            loop.call_exception_handler({"message": "something else"})
            errors.close()
    finally:
        loop.set_exception_handler(None)
    counts = [getattr(r, "accept_errors", None) for r in caplog.records]
    assert counts == [1, 9_999]  # the first at once, the rest as one count
    assert others == [{"message": "something else"}]  # other errors reach the previous handler


def test_a_cap_beyond_the_file_limit_is_lowered_with_a_startup_warning(tmp_path: Path, database_url: str) -> None:
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_SIMULATORS": "false"}  # the default cap: 1000
    with running(tmp_path, env, preexec_fn=_small_file_limit) as (_url, _proc):
        logged = (tmp_path / "stderr.log").read_text("utf-8")
    assert ("warning: the open-file limit (300) leaves room for 119 connections, not 1000; the cap is now 119 "
            "(raise ulimit -n)") in logged
