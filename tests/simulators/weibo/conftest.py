"""Fixtures: the Weibo simulator behind a real loopback server, and a tiny fake bot that checks what it gets.

The fake bot has its own signature and data code (written here, not imported from the simulator), so
the tests check the simulator against an independent reading of the protocol.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.simulators.weibo import ManualClock, WeiboSimulator

APP_KEY = "1234567890"
APP_SECRET = "weibo-app-secret-0123456789abcdef"
TOKEN = "2.00simulatedtoken"
BRAND = 5_000_000_001


def sha1_sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def text_reply(fan: int, text: str) -> dict[str, Any]:
    data = urllib.parse.quote(json.dumps({"text": text}, ensure_ascii=False), safe="")
    return {"result": True, "sender_id": BRAND, "receiver_id": fan, "type": "text", "data": data}


@dataclass
class FakeBot:
    """Checks the signature, records each push and answers with ``answer(body, try_no)``."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[dict[str, Any], int], Any] = lambda b, n: text_reply(b["sender_id"], "echo: " + b["text"])
    delays: list[float] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        ts = q.get("timestamp", "")
        if not hmac.compare_digest(sha1_sign(APP_SECRET, ts, q.get("nonce", "")), q.get("signature", "")):
            return web.Response(status=403, text="bad signature")
        if request.method == "GET":
            return web.Response(text=q["echostr"])
        body = json.loads(await request.read())
        n = len(self.requests)
        self.requests.append({"query": dict(q), "body": body})
        if n < len(self.delays) and self.delays[n]:
            await asyncio.sleep(self.delays[n])
        answer = self.answer(body, n)
        if isinstance(answer, web.StreamResponse):
            return answer
        if isinstance(answer, dict):
            return web.json_response(answer)
        return web.Response(body=answer or b"")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


def make_sim(clock: ManualClock, **options: Any) -> WeiboSimulator:
    return WeiboSimulator(app_key=APP_KEY, app_secret=APP_SECRET, access_token=TOKEN, brand_uid=BRAND,
                          clock=clock, **options)


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[WeiboSimulator]:
    s = make_sim(clock, callback_timeout=1.0)
    yield s
    await s.close()


@pytest.fixture
async def api(sim: WeiboSimulator) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(sim.make_app()))
    await client.start_server()
    yield client
    await client.close()


@pytest.fixture
async def bot(sim: WeiboSimulator) -> AsyncIterator[FakeBot]:
    fake = FakeBot()
    app = web.Application()
    app.router.add_route("*", "/weibo", fake.handle)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("/weibo"))
    sim.callback_url = fake.url
    yield fake
    await server.close()


def data(value: dict[str, Any]) -> str:
    return urllib.parse.quote(json.dumps(value, ensure_ascii=False), safe="")


async def call(api: TestClient, method: str, path: str, **params: Any) -> tuple[int, dict[str, Any]]:
    params = {"access_token": TOKEN, **{k: str(v) for k, v in params.items()}}
    if method == "GET":
        resp = await api.get(path, params=params)
    else:
        resp = await api.post(path, data=params)
    return resp.status, await resp.json()
