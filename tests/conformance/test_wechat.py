"""WeChat passes the conformance kit against its platform simulator (plaintext mode, a short passive deadline)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.channels.wechat.adapter import WeChatChannel
from bot.core.router import Router
from bot.settings import WeChatAccount
from bot.simulators.wechat import WeChatSimulator
from bot.testing import BotHarness
from bot.testing.conformance import ChannelConformance, ChannelDriver, serve_loopback, wait_for_texts
from bot.web import error_middleware
from tests.support.wechat import signed_query, text_xml

TOKEN, APP_ID, APP_SECRET = "conformancetoken42", "wx00000000conform", "conformance-app-secret"
LANGUAGES = {"en": "en", "zh_Hans": "zh_CN"}  # what WeChat's user info says


def entry_text(entry: dict[str, Any]) -> str:
    if entry.get("type") == "image":
        return "[image]"
    if entry.get("articles"):
        return "\n".join(a.get("title", "") for a in entry["articles"])
    return str(entry.get("content", ""))


class WeChatDriver(ChannelDriver):
    channel: WeChatChannel

    def __init__(self) -> None:
        self._msg_ids = int(time.time()) * 1000
        self.extra: dict[str, list[str]] = defaultdict(list)  # answers to callbacks posted by hand

    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None:
        self.harness = BotHarness(routers=routers, database_url=database_url)
        await self.harness.__aenter__()
        self.sessions = self.harness.sessions
        self.sim = WeChatSimulator(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, callback_timeout=5.0)
        sim_url, self._sim_runner = await serve_loopback(self.sim.make_app())
        config = WeChatAccount(token=SecretStr(TOKEN), app_id=APP_ID, app_secret=SecretStr(APP_SECRET),
                               api_base=sim_url, passive_deadline_seconds=0.5)
        self.channel = WeChatChannel(dispatch=self.harness.dispatcher.dispatch, account="default", config=config,
                                     sessions=self.sessions)
        app = web.Application(middlewares=[error_middleware])
        app.router.add_routes(self.channel.routes())
        bot_url, self._bot_runner = await serve_loopback(app)
        self.sim.callback_url = f"{bot_url}/wechat"
        await self.channel.start()

    async def stop(self) -> None:
        await self.channel.stop()
        await self._bot_runner.cleanup()
        await self.sim.close()
        await self._sim_runner.cleanup()
        await self.harness.__aexit__(None, None, None)

    async def follower(self, *, language: str | None = None) -> str:
        openid = self.sim.add_follower(language=LANGUAGES.get(language or "", language))
        assert (await self.sim.follow(openid)).ok
        return openid

    async def _raw(self, openid: str, body: bytes, *, token: str = TOKEN) -> int:
        answer = await self.sim.send_raw(body, query=signed_query(token))
        if answer.status == 200 and answer.body not in (b"", b"success"):
            content = ET.fromstring(answer.body).findtext("Content")
            self.extra[openid].append(content or "")
        return answer.status or 0

    async def send_text(self, follower: str, text: str) -> int:
        return (await self.sim.send_text(follower, text)).status or 0

    async def send_badly_signed(self, follower: str, text: str) -> int:
        self._msg_ids += 1
        return await self._raw(follower, text_xml(follower, text, msg_id=self._msg_ids), token="not" + TOKEN)

    async def send_retry(self, follower: str, text: str) -> None:
        self._msg_ids += 1
        body = text_xml(follower, text, msg_id=self._msg_ids)
        await self.sim.send_raw(body)  # its answer is lost: WeChat tries again with the same MsgId
        await self._raw(follower, body)

    async def send_notification(self, follower: str) -> int:
        return (await self.sim.report_location(follower, latitude=31.2304, longitude=121.4737)).status or 0

    async def send_unreadable(self, follower: str) -> int:
        self._msg_ids += 1
        body = (f"<xml><ToUserName><![CDATA[gh_simulated]]></ToUserName><FromUserName><![CDATA[{follower}]]>"
                f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[miniprogrampage]]>"
                f"</MsgType><Title><![CDATA[A mini program]]></Title><MsgId>{self._msg_ids}</MsgId></xml>").encode()
        return await self._raw(follower, body)

    async def received(self, follower: str, count: int, *, timeout: float = 10) -> list[str]:
        def read() -> list[str]:
            timeline = self.sim.followers[follower].timeline
            return [*self.extra[follower], *(entry_text(e) for e in timeline if e["direction"] == "out")]

        return await wait_for_texts(read, count, timeout=timeout)


class TestWeChatConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return WeChatDriver()
