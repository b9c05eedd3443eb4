"""Weibo passes the conformance kit against a fake of its API (tests/channels/weibo/conftest.py: recorded answers).

Weibo's pushes carry no language: followers pick theirs with /lang, so its capabilities declare the locale
point not met.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from itertools import count
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.channels.weibo.adapter import WeiboChannel
from bot.core.router import Router
from bot.settings import WeiboSettings
from bot.testing import BotHarness
from bot.testing.conformance import ChannelConformance, ChannelDriver, serve_loopback, wait_for_texts
from bot.web import error_middleware
from tests.channels.weibo.conftest import BRAND, SECRET, TOKEN, FakeWeibo, created_at, passive, sign

_fans = count(3_000_000_001)
_nonces = count(1)


def data_text(data: dict[str, Any], msg_type: str = "text") -> str:
    if msg_type == "image":
        return "[image]"
    if "articles" in data:
        return "\n".join(a.get("display_name") or a.get("summary") or "" for a in data["articles"])
    return str(data.get("text", ""))


class WeiboDriver(ChannelDriver):
    """Each push is dated a second after the last: Weibo's dedupe key is (fan, created_at, type), to the second."""

    channel: WeiboChannel

    def __init__(self) -> None:
        self.inline: dict[str, list[str]] = defaultdict(list)
        self._seconds = count(0)

    def message(self, fan: str, msg_type: str, *, text: str = "", data: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"type": msg_type, "receiver_id": int(BRAND), "sender_id": int(fan),
                "created_at": created_at(next(self._seconds)), "text": text, "data": data or {}}

    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None:
        self.harness = BotHarness(routers=routers, database_url=database_url)
        await self.harness.__aenter__()
        self.sessions = self.harness.sessions
        self.fake = FakeWeibo()
        api_url, self._api_runner = await serve_loopback(self.fake.make_app())
        config = WeiboSettings(app_key="123456", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN),
                               brand_uid=BRAND, api_base=api_url, passive_deadline_seconds=0.5)
        self.channel = WeiboChannel(dispatch=self.harness.dispatcher.dispatch, account="default", config=config,
                                    sessions=self.sessions)
        app = web.Application(middlewares=[error_middleware])
        app.router.add_routes(self.channel.routes())
        self.bot_url, self._bot_runner = await serve_loopback(app)
        await self.channel.start()

    async def stop(self) -> None:
        await self.channel.stop()
        await self._bot_runner.cleanup()
        await self._api_runner.cleanup()
        await self.harness.__aexit__(None, None, None)

    async def _push(self, fan: str, doc: dict[str, Any], *, secret: str = SECRET) -> int:
        ts, nonce = str(int(time.time() * 1000)), f"n{next(_nonces)}"
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.bot_url}/weibo", params={"timestamp": ts, "nonce": nonce, "signature": sign(ts, nonce, secret)},
                data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}) as resp:
            body = await resp.read()
        if resp.status == 200 and body:
            self.inline[fan].append(data_text(passive(body)["data"]))
        return resp.status

    async def follower(self, *, language: str | None = None) -> str:
        fan = str(next(_fans))
        assert await self._push(fan, self.message(fan, "event", data={"subtype": "follow"})) == 200
        return fan

    async def send_text(self, follower: str, text: str) -> int:
        return await self._push(follower, self.message(follower, "text", text=text))

    async def send_badly_signed(self, follower: str, text: str) -> int:
        return await self._push(follower, self.message(follower, "text", text=text), secret="not-" + SECRET)

    async def send_retry(self, follower: str, text: str) -> None:
        doc = self.message(follower, "text", text=text)
        await self._push(follower, doc)
        self.inline[follower].clear()  # that answer was lost: Weibo pushes the same message again
        await self._push(follower, doc)

    async def send_notification(self, follower: str) -> int:
        return await self._push(follower, self.message(follower, "event", data={"subtype": "read_receipt"}))

    async def send_unreadable(self, follower: str) -> int:
        return await self._push(follower, self.message(follower, "video", data={"vid": "1034:abc"}))

    async def received(self, follower: str, count: int, *, timeout: float = 10) -> list[str]:
        return await wait_for_texts(lambda: [*self.inline[follower], *(data_text(d["data"], d["type"]) for d in self.fake.dms()
                                                                       if str(d["to"]) == follower)],
                                    count, timeout=timeout)


class TestWeiboConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return WeiboDriver()
