"""The plugin: nothing without Weibo settings; with them, /weibo is served and the megaphone polls the API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from pydantic import SecretStr

from bot.app import CORE, create_app
from bot.channels.weibo.adapter import WeiboChannel
from bot.channels.weibo.plugin import weibo_plugin
from bot.settings import Settings, WeiboSettings
from tests.support.servers import free_port, serve

from .conftest import BRAND, SECRET, TOKEN, FakeWeibo, sign


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[web.Application, str]]:
    port = free_port()
    app = await create_app(settings.model_copy(update={"port": port}), plugins=[weibo_plugin])
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_without_weibo_settings_the_plugin_does_nothing(database_url: str) -> None:
    async with served(Settings(database_url=database_url, simulators=False)) as (app, base):
        assert app[CORE].channels == []
        async with aiohttp.ClientSession() as http, http.get(f"{base}/weibo") as resp:
            assert resp.status == 404


async def test_with_weibo_settings_the_callback_is_served_and_the_megaphone_polls(database_url: str) -> None:
    fake = FakeWeibo()
    async with serve(fake.make_app()) as api:
        weibo = WeiboSettings(app_key="123456", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN),
                              brand_uid=BRAND, api_base=api, poll_interval=1)
        async with served(Settings(database_url=database_url, weibo=weibo)) as (app, base):
            assert [type(c) for c in app[CORE].channels] == [WeiboChannel]
            ts = str(int(time.time() * 1000))
            async with aiohttp.ClientSession() as http, http.get(f"{base}/weibo", params={
                    "signature": sign(ts, "n"), "timestamp": ts, "nonce": "n", "echostr": "ok42"}) as resp:
                assert (resp.status, await resp.text()) == (200, "ok42")
            for _ in range(100):
                if fake.sent("/2/statuses/mentions.json"):
                    break
                await asyncio.sleep(0.05)
            assert fake.sent("/2/comments/to_me.json")[0]["since_id"] == "0"
            assert fake.sent("/2/statuses/mentions.json")


async def test_weibo_settings_count_as_a_real_platform(database_url: str) -> None:
    from bot.simulation import real_platforms, simulators_to_mount, startup_lines

    weibo = WeiboSettings(app_key="123456", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN),
                          brand_uid=BRAND)
    settings = Settings(database_url=database_url, weibo=weibo)
    assert real_platforms(settings) == ["weibo"] and simulators_to_mount(settings) == []
    forced = Settings(database_url=database_url, weibo=weibo, simulators=True)
    assert "Weibo" in "\n".join(startup_lines(forced, simulators_to_mount(forced), "http://127.0.0.1:8080"))
