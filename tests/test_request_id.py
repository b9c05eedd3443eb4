"""Issue 13: a request id per incoming request, on every log line written while handling it (in the
handler, in the tasks it starts, in the late delivery) and in the answer's X-Request-Id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot import Context, Inbound, Kind, Reply, Router, TextReply
from bot.app import build_app
from bot.channels.weibo.adapter import WeiboChannel
from bot.logs import accept_request_id, setup_logging
from bot.settings import Settings, WeiboSettings
from bot.testing import BotHarness
from bot.web import error_middleware, request_id_middleware
from handlers import default_router
from tests.channels.weibo.conftest import BRAND, SECRET, TOKEN, FakeWeibo, WeiboEnv, created_at, message
from tests.support.servers import free_port, serve, serve_channel

chatty = Router("chatty")


@chatty.on(Kind.TEXT, keywords={"en": ["log me"]}, priority=500)
async def log_me(msg: Inbound, ctx: Context) -> list[Reply]:
    logging.getLogger("engagebot.test-handler").info("handler at work")
    await asyncio.sleep(0.05)
    return [TextReply("logged")]


@chatty.on(Kind.TEXT, keywords={"en": ["slowly"]}, priority=500)
async def slowly(msg: Inbound, ctx: Context) -> list[Reply]:
    logging.getLogger("engagebot.test-handler").info("slow handler at work")
    await asyncio.sleep(0.6)
    return [TextReply("late but here")]


@contextmanager
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("INFO", fmt="json", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize("incoming", ["abcdef12", "req-2026.11.30:0001", "0123456789abcdef0123456789abcdef"])
def test_a_sane_incoming_id_is_kept(incoming: str) -> None:
    assert accept_request_id(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "short", "x" * 65, "has space-1234", "line\nbreak-1234",
                                      "<script>alert(1)</script>", "id-with-ünïcode", "a/b/c/d/e/f/g"])
def test_anything_else_gets_a_fresh_id(incoming: str | None) -> None:
    fresh = accept_request_id(incoming)
    assert fresh != incoming and len(fresh) == 32 and int(fresh, 16) >= 0
    assert accept_request_id(incoming) != fresh


async def test_every_line_of_a_request_carries_its_id_and_the_answer_returns_it(tmp_path: Path,
                                                                                database_url: str) -> None:
    settings = Settings(database_url=database_url, simulators=False, port=free_port(),
                        mock_sink=f"sqlite+aiosqlite:///{tmp_path / 'sink.db'}")
    app = build_app(settings, routers=[chatty])
    async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
        with json_logs() as stream:

            async def post(sender: str, request_id: str | None) -> tuple[int, str]:
                headers = {"X-Request-Id": request_id} if request_id else {}
                async with http.post(f"{url}/mock", json={"from": sender, "text": "log me", "language": "en"},
                                     headers=headers) as resp:
                    return resp.status, resp.headers["X-Request-Id"]

            # Two requests at once: each line goes with its own request.
            (status_a, id_a), (status_b, id_b) = await asyncio.gather(post("openid-AAA1", "trace-one-0001"),
                                                                      post("openid-BBB2", "bad id!"))
            async with http.post(f"{url}/mock", data=b"not json", headers={"X-Request-Id": "trace-bad-0002"}) as resp:
                refused = resp.status, resp.headers["X-Request-Id"]
    assert (status_a, status_b) == (200, 200)
    assert id_a == "trace-one-0001" and id_b != "bad id!" and len(id_b) == 32
    assert refused == (400, "trace-bad-0002")
    lines = events(stream)
    for request_id in (id_a, id_b):
        mine = [e for e in lines if e.get("request_id") == request_id]
        assert {e["event"] for e in mine} >= {"handler at work", "handled"}, lines
    assert any(e["event"] == "request refused" and e.get("request_id") == "trace-bad-0002" for e in lines)
    assert not any("openid-" in json.dumps(e) for e in lines)  # followers are hashed


async def test_a_request_that_fails_unexpectedly_is_logged_and_answered_under_its_id() -> None:
    """The database gone mid-request, a bug: not an EngagebotError. aiohttp logged its traceback
    ("Error handling request") after the request's id was reset, and its 500 had no X-Request-Id:
    the one line an operator most needs to find had no id."""

    async def broken(request: aiohttp.web.Request) -> aiohttp.web.Response:
        raise ConnectionRefusedError(111, "Connection refused")

    app = aiohttp.web.Application(middlewares=[request_id_middleware, error_middleware])
    app.router.add_post("/wechat", broken)
    async with serve(app) as url, aiohttp.ClientSession() as http:
        with json_logs() as stream:
            async with http.post(f"{url}/wechat", data=b"<xml/>", headers={"X-Request-Id": "trace-fail-0003"}) as resp:
                answered = resp.status, resp.headers.get("X-Request-Id")
    assert answered == (500, "trace-fail-0003")
    failures = [e for e in events(stream) if e["level"] == "ERROR"]
    assert len(failures) == 1, failures
    assert failures[0].get("request_id") == "trace-fail-0003" and "ConnectionRefusedError" in failures[0]["traceback"]


async def test_a_late_reply_is_logged_under_the_request_that_brought_it(database_url: str) -> None:
    fake = FakeWeibo()
    async with serve(fake.make_app()) as api_url, BotHarness(routers=[chatty, default_router()],
                                                             database_url=database_url) as bot:
        config = WeiboSettings(app_key="123456", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN),
                               brand_uid=BRAND, api_base=api_url, passive_deadline_seconds=0.2)
        channel = WeiboChannel(dispatch=bot.dispatcher.dispatch, account="default", config=config,
                               sessions=bot.sessions)
        async with serve_channel(channel, middlewares=[request_id_middleware, error_middleware]) as bot_url:
            env = WeiboEnv(fake, channel, bot, bot_url, api_url)
            with json_logs() as stream:
                assert (await env.text("6000000003", "slowly"))[0] == 200
                for _ in range(100):
                    if fake.dms():
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.1)
                # Dated a second later: Weibo tells one fan's pushes apart by their second, so a second
                # push within the same second would be dropped as a retry of the first.
                assert (await env.push(message("6000000003", "text", text="log me", at=created_at(1))))[0] == 200
    lines = events(stream)
    by_event = {e["event"]: e.get("request_id") for e in lines}
    late = by_event["passive deadline passed; replying through the API"]
    assert late is not None
    assert by_event["slow handler at work"] == late
    assert by_event["late replies handed to the send API"] == late
    assert by_event["handler at work"] not in (None, late)


def test_request_ids_do_not_follow_the_shared_random_generator() -> None:
    """Seeding ``random`` (a test, a library) must not make ids repeat, nor ids tell what it draws."""
    import random

    from bot.logs import new_request_id

    random.seed(7)
    first = new_request_id()
    random.seed(7)
    assert new_request_id() != first
    random.seed(7)
    drawn = f"{random.getrandbits(128):032x}"
    assert drawn not in {first, new_request_id()}
