"""The example channel (examples/webchat_channel) passes the conformance kit, as its own tests do."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.core.reply import TextReply
from bot.errors import FollowerGone, NotSent, PlatformAPIError, QuotaExceeded
from bot.testing.conformance import ChannelConformance, ChannelDriver, serve_loopback

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "webchat_channel"))
from webchat_channel.adapter import WebChatChannel
from webchat_channel.testing import WebChatDriver


class TestWebChatConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return WebChatDriver()


@pytest.mark.parametrize(("status", "body", "raised", "said"), [
    (503, b"<html>Bad gateway</html>", NotSent, "platform error 503"),  # not JSON: the status decides
    (429, b"[1, 2]", QuotaExceeded, "quota exceeded"),  # JSON, but no object
    (410, b'{"error": "visitor left\\u2028forged"}', FollowerGone, "visitor left forged"),
    (400, b'"nope"', PlatformAPIError, "platform error 400: "),
])
async def test_the_example_maps_every_answer_of_its_send_api_to_the_outbox_s_errors(
        status: int, body: bytes, raised: type[Exception], said: str) -> None:
    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="text/html")

    app = web.Application()
    app.router.add_post("/v1/send", answer)
    url, runner = await serve_loopback(app)
    channel = WebChatChannel(dispatch=None, sessions=None, secret="s" * 16, api_base=url)  # type: ignore[arg-type]
    await channel.start()
    try:
        with pytest.raises(raised) as caught:
            await channel.send_reply("amy", TextReply("hi"))
        assert type(caught.value) is raised and str(caught.value) == said
    finally:
        await channel.stop()
        await runner.cleanup()


async def test_the_example_s_send_left_in_doubt_by_a_timeout_is_retried_later_not_taken_as_never_sent() -> None:
    release = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/send", stuck)
    url, runner = await serve_loopback(app)
    channel = WebChatChannel(dispatch=None, sessions=None, secret="s" * 16, api_base=url)  # type: ignore[arg-type]
    await channel.start()
    await channel._http.close()  # type: ignore[union-attr]
    channel._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2))
    try:
        with pytest.raises(QuotaExceeded) as caught:
            await channel.send_reply("amy", TextReply("hi"))
        assert type(caught.value) is QuotaExceeded and caught.value.retry_after == 5.0  # not NotSent: it may be there
        await runner.cleanup()  # nobody listens any more: refused before it left
        with pytest.raises(NotSent, match="platform unreachable"):
            await channel.send_reply("amy", TextReply("hi"))
    finally:
        release.set()
        await channel.stop()
        await runner.cleanup()
