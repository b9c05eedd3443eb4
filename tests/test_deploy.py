"""The deployment's nginx (deploy/nginx.conf) in front of a real engagebot: valid, and its limits bite.

Runs only where nginx is installed (``.ci/run`` installs it). The file is used as shipped; only what
ties it to Docker changes for loopback: the upstream address, the port, and the worker user.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from bot.testing.nginx import loopback_config, nginx_binary
from tests.support.cli import running
from tests.support.servers import free_port

NGINX = nginx_binary()
pytestmark = [pytest.mark.skipif(NGINX is None, reason="nginx is not installed (.ci/run installs it)"),
              pytest.mark.engine_neutral]

WECHAT_TOKEN = "nginxtesttoken"


def render(tmp_path: Path, *, bot_port: int, port: int) -> Path:
    path = tmp_path / "nginx.conf"
    path.write_text(loopback_config([f"127.0.0.1:{bot_port}"], port=port), "utf-8")
    return path


def nginx(tmp_path: Path, config: Path, *args: str) -> list[str]:
    return [str(NGINX), "-p", str(tmp_path), "-c", str(config),
            "-g", f"pid {tmp_path / 'nginx.pid'};", *args]


def test_the_shipped_nginx_config_is_valid(tmp_path: Path) -> None:
    done = subprocess.run(nginx(tmp_path, render(tmp_path, bot_port=free_port(), port=free_port()), "-t"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


@pytest.fixture
def proxied(tmp_path: Path, database_url: str) -> Iterator[str]:
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_SIMULATORS": "false",
           "ENGAGEBOT_ADMIN_TOKEN": "admin-token-for-tests", "ENGAGEBOT_ADMIN_FAILURE_LIMIT": "1000/minute",
           "ENGAGEBOT_HTTP__TRUSTED_PROXIES": "127.0.0.1", "ENGAGEBOT_WECHAT__TOKEN": WECHAT_TOKEN,
           "ENGAGEBOT_WECHAT__APP_ID": "wxnginxtest000001", "ENGAGEBOT_WECHAT__APP_SECRET": "nginx-test-secret",
           "ENGAGEBOT_WECHAT__API_BASE": "http://127.0.0.1:9"}
    with running(tmp_path, env) as (bot_url, _proc):
        port = free_port()
        config = render(tmp_path, bot_port=int(bot_url.rsplit(":", 1)[1]), port=port)
        proc = subprocess.Popen(nginx(tmp_path, config, "-g", "daemon off;"), stdout=subprocess.DEVNULL,
                                stderr=(tmp_path / "nginx.log").open("w"))
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "nginx.log").read_text()
                    time.sleep(0.1)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def test_behind_nginx_a_client_trickling_headers_is_cut_off_and_healthz_answers(proxied: str) -> None:
    host, port = "127.0.0.1", int(proxied.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed_after = None
    while time.monotonic() - started < 15:
        try:
            writer.write(b"X-Slow: a\r\n")
            await writer.drain()
            if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                closed_after = time.monotonic() - started
                break
        except TimeoutError:
            continue
        except OSError:
            closed_after = time.monotonic() - started
            break
    writer.close()
    assert closed_after is not None and 9.5 <= closed_after < 13, closed_after  # client_header_timeout 10s
    async with aiohttp.ClientSession() as http, http.get(f"{proxied}/healthz") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_behind_nginx_the_admin_api_is_rate_limited_per_client(proxied: str) -> None:
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(20):
            async with http.post(f"{proxied}/admin/redeem", json={"code": "WRONG234"},
                                 headers={"Authorization": "Bearer wrong"}) as resp:
                statuses.append(resp.status)
    # nginx lets a burst of 10 (plus the first) through to engagebot, which answers 401; then 429.
    assert statuses == [401] * 11 + [429] * 9, statuses


async def test_behind_nginx_each_request_has_an_id_the_clients_when_sane(proxied: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{proxied}/healthz") as resp:
            made = resp.headers["X-Request-Id"]
        async with http.get(f"{proxied}/readyz", headers={"X-Request-Id": "trace-from-client-1"}) as resp:
            assert resp.status == 200 and resp.headers["X-Request-Id"] == "trace-from-client-1"
    assert len(made) == 32 and int(made, 16) >= 0  # nginx's $request_id, kept by engagebot


async def test_behind_nginx_a_platforms_burst_from_one_address_is_not_limited(proxied: str) -> None:
    """WeChat's callbacks all come from its few servers: a campaign's burst, past the per-client limit
    that still holds for the other paths, reaches engagebot whole (which checks each signature)."""
    now = str(int(time.time()))

    def signed(i: int) -> dict[str, str]:
        nonce = f"n{i}"
        signature = hashlib.sha1("".join(sorted([WECHAT_TOKEN, now, nonce])).encode()).hexdigest()
        return {"signature": signature, "timestamp": now, "nonce": nonce, "echostr": f"e{i}"}

    async def burst(http: aiohttp.ClientSession, path: str, queries: list[dict[str, str]]) -> list[int]:
        async def one(query: dict[str, str]) -> int:
            async with http.get(f"{proxied}{path}", params=query) as resp:
                await resp.read()
                return resp.status
        statuses: list[int] = []
        for start in range(0, len(queries), 20):  # 20 at a time: under the per-client connection limit
            statuses += await asyncio.gather(*(one(q) for q in queries[start:start + 20]))
        return statuses

    async with aiohttp.ClientSession() as http:
        webhook = await burst(http, "/wechat", [signed(i) for i in range(320)])
        other = await burst(http, "/healthz", [{} for _ in range(320)])
    assert webhook == [200] * 320
    assert 429 in other and other.count(200) >= 200  # burst 200 at 50 r/s per address, then 429
