"""The web chat channel's conformance driver: the channel and its fake platform, each on a loopback port.

Use it with engagebot's kit (docs/adapters.md)::

    class TestWebChat(ChannelConformance):
        @pytest.fixture
        def conformance_driver(self):
            return WebChatDriver()
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from bot.core.router import Router
from bot.testing import BotHarness
from bot.testing.conformance import ChannelDriver, serve_loopback, wait_for_texts
from bot.web import error_middleware

from .adapter import WebChatChannel
from .simulator import PREFIX, WebChatPlatform

SECRET = "conformance-secret-0123456789"


def shown(item: dict[str, Any]) -> str:
    """What the widget shows: the text, then each button's label on a line of its own."""
    return "\n".join([item.get("text", ""), *(b["label"] for b in item.get("buttons", []))])


class WebChatDriver(ChannelDriver):
    channel: WebChatChannel

    def __init__(self) -> None:
        self._visitors = 0
        self._locales: dict[str, str | None] = {}

    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None:
        self.harness = BotHarness(routers=routers, database_url=database_url)
        await self.harness.__aenter__()
        self.sessions = self.harness.sessions
        self.platform = WebChatPlatform(secret=SECRET, callback_url="")
        platform_app = web.Application()
        platform_app.router.add_routes(self.platform.routes())
        platform_url, self._platform_runner = await serve_loopback(platform_app)
        # A short passive deadline: the kit's slow handler outlasts it by a second, not by three.
        self.channel = WebChatChannel(dispatch=self.harness.dispatcher.dispatch, sessions=self.sessions, secret=SECRET,
                                      api_base=f"{platform_url}{PREFIX}", passive_deadline=0.5)
        bot_app = web.Application(middlewares=[error_middleware])
        bot_app.router.add_routes(self.channel.routes())
        bot_url, self._bot_runner = await serve_loopback(bot_app)
        self.platform.callback_url = f"{bot_url}/webchat"
        await self.channel.start()

    async def stop(self) -> None:
        await self.channel.stop()
        await self.platform.close()
        await self._bot_runner.cleanup()
        await self._platform_runner.cleanup()
        await self.harness.__aexit__(None, None, None)

    async def follower(self, *, language: str | None = None) -> str:
        self._visitors += 1
        visitor = f"visitor-{self._visitors}"
        self._locales[visitor] = language.replace("_", "-") if language else None  # the widget sends a BCP 47 tag
        await self._post(visitor, "join")
        return visitor

    async def _post(self, visitor: str, type: str, *, secret: str | None = None, **fields: Any) -> int:
        locale = self._locales.get(visitor)
        event = self.platform.event(visitor, type, **fields, **({"locale": locale} if locale else {}))
        return (await self.platform.post(event, secret=secret)).status

    async def send_text(self, follower: str, text: str) -> int:
        return await self._post(follower, "message", text=text)

    async def send_badly_signed(self, follower: str, text: str) -> int:
        return await self._post(follower, "message", text=text, secret="not-" + SECRET)

    async def send_retry(self, follower: str, text: str) -> None:
        event = self.platform.event(follower, "message", text=text, locale=self._locales.get(follower) or "en")
        await self.platform.post(event)
        self.platform.inline[follower].clear()  # that answer was lost: the platform retries the same event
        await self.platform.post(event)

    async def send_notification(self, follower: str) -> int:
        return await self._post(follower, "receipt")

    async def send_unreadable(self, follower: str) -> int:
        return await self._post(follower, "sticker", payload="cat-waving")

    async def received(self, follower: str, count: int, *, timeout: float = 10) -> list[str]:
        return await wait_for_texts(lambda: [shown(i) for i in self.platform.received(follower)], count,
                                    timeout=timeout)
