"""Images on Weibo against the Weibo simulator over real HTTP: uploaded once, sent as image DMs, shown on the fan page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from bot import Context, ImageReply, Inbound, Kind, Reply, Router
from bot.channels.images import _qr_png
from bot.channels.weibo.adapter import WeiboChannel
from bot.settings import WeiboSettings
from bot.simulators.weibo import WeiboSimulator
from bot.testing import BotHarness
from handlers import default_router
from tests.support.images import outbound_outcomes, png_file
from tests.support.servers import serve, serve_channel

SECRET, TOKEN = "weibo-app-secret", "weibo-access-token"


@asynccontextmanager
async def sim_env(database_url: str, routers: list[Router], **sim_options: Any
                  ) -> AsyncIterator[tuple[WeiboSimulator, WeiboChannel, str]]:
    sim = WeiboSimulator(app_key="123456", app_secret=SECRET, access_token=TOKEN, **sim_options)
    async with serve(sim.make_app()) as api_url, BotHarness(
            routers=[*routers, default_router()], database_url=database_url) as bot:
        config = WeiboSettings(app_key="123456", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN),
                               brand_uid=str(sim.brand_uid), api_base=api_url)
        channel = WeiboChannel(dispatch=bot.dispatcher.dispatch, account="default", config=config,
                               sessions=bot.sessions)
        async with serve_channel(channel) as bot_url:
            sim.callback_url = f"{bot_url}/weibo"
            yield sim, channel, api_url


def poster_router(path: Path) -> Router:
    router = Router("pictures")

    @router.on(Kind.TEXT, keywords={"en": ["poster"]}, priority=500)
    async def poster(msg: Inbound, ctx: Context) -> list[Reply]:
        return [ImageReply(str(path), caption="Our winter poster")]

    return router


async def test_an_image_reply_reaches_the_fan_as_an_uploaded_image_then_its_caption(
        database_url: str, tmp_path: Path) -> None:
    poster = png_file(tmp_path)
    async with sim_env(database_url, [poster_router(poster)]) as (sim, _channel, api_url):
        fans = [sim.add_fan(language="en") for _ in range(2)]
        for fan in fans:
            await sim.follow(fan)
            await sim.send_text(fan, "poster")
            image, caption = await sim.wait_for_reply(fan, count=2)
            assert (image["type"], caption["type"], caption["text"]) == ("image", "text", "Our winter poster")
            assert sim.media_bytes(image["tovfid"]) == poster.read_bytes()
        assert sim.media_uploads == 1  # one upload for both fans
        # The fan page shows it: the simulator serves the bytes the fan received.
        async with aiohttp.ClientSession() as http, http.get(f"{api_url}/simulator/weibo/media/{image['tovfid']}") as resp:
            assert (resp.status, await resp.read()) == (200, poster.read_bytes())


async def test_an_invite_qr_is_sent_as_an_image_of_the_scene_link(database_url: str) -> None:
    async with sim_env(database_url, []) as (sim, channel, _api_url):
        fan = sim.add_fan(language="en")
        await sim.follow(fan)
        await sim.send_text(fan, "invite")
        image, caption = await sim.wait_for_reply(fan, count=2)
        link = caption["text"].rsplit("\n", 1)[1]
        assert caption["text"].startswith("Here is your personal invite.") and link.startswith(channel.config.api_base)
        assert image["type"] == "image" and sim.media_bytes(image["tovfid"]) == _qr_png(link)


async def test_the_platform_refusing_the_upload_ends_failed_with_its_reason(database_url: str, tmp_path: Path) -> None:
    async with sim_env(database_url, [poster_router(png_file(tmp_path))], max_image_bytes=64) as (sim, channel, _):
        fan = sim.add_fan(language="en")
        await sim.follow(fan)
        await sim.send_text(fan, "poster")
        rows = await outbound_outcomes(channel.outbox.sessions, "image")
        assert rows == [("failed", "platform error 10008: param error: an image is at most 64 bytes")]
        assert sim.media_uploads == 0


async def test_a_mass_sent_image_is_its_caption_and_a_link_never_a_file_path(database_url: str, tmp_path: Path) -> None:
    from bot import QrReply

    poster = png_file(tmp_path)
    async with sim_env(database_url, []) as (sim, channel, _api_url):
        fans = [str(sim.add_fan(language="en")) for _ in range(2)]
        for fan in fans:
            await sim.follow(fan)
        for reply in (ImageReply(str(poster), caption="Our winter poster"),
                      ImageReply("qr:https://example.com/join", caption="Our winter poster"),
                      ImageReply("https://cdn.example/poster.png", caption="Our winter poster"),
                      QrReply("spring-2026", caption="Scan to join")):
            await channel.send_mass(fans, reply, context={})
        assert [job["message"]["text"] for job in sim.broadcasts] == [
            "Our winter poster", "Our winter poster", "Our winter poster\nhttps://cdn.example/poster.png",
            f"Scan to join\n{channel.qr_url('spring-2026')}"]
