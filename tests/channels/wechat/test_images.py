"""Images on WeChat: uploaded as temporary media, sent as image messages, shown on the simulated phone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import Context, ImageReply, Inbound, Kind, Reply, Router, TextReply
from bot.channels.images import _qr_png
from bot.offers.referrals import REFERRAL_SCENE_PREFIX
from tests.support.images import outbound_outcomes, png_bytes, png_file


def image_router(source: Path | str, caption: str = "Our winter poster") -> Router:
    router = Router("pictures")

    @router.on(Kind.TEXT, keywords={"en": ["poster"]}, priority=500)
    async def poster(msg: Inbound, ctx: Context) -> list[Reply]:
        return [ImageReply(str(source), caption=caption)]

    @router.on(Kind.TEXT, keywords={"en": ["both"]}, priority=500)
    async def both(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply("Here it is"), ImageReply(str(source))]

    return router


async def test_an_image_reply_reaches_the_follower_as_an_uploaded_image_then_its_caption(
        make_env: Any, tmp_path: Path) -> None:
    poster = png_file(tmp_path)
    async with make_env(routers=[image_router(poster)]) as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "poster")
        assert result.acknowledged  # the passive answer cannot carry an image: the API sends it
        image, caption = await env.sim.wait_for_reply(openid, count=2)
        assert (image["source"], image["type"]) == ("custom", "image")
        assert env.sim.media_bytes(image["media_id"]) == poster.read_bytes()
        assert (caption["type"], caption["content"]) == ("text", "Our winter poster")
        # The phone page shows it: the simulator serves the bytes the follower sees.
        async with aiohttp.ClientSession() as http, http.get(
                f"{env.sim_url}/simulator/wechat/media/{image['media_id']}") as resp:
            assert (resp.status, resp.content_type, await resp.read()) == (200, "image/png", poster.read_bytes())


async def test_text_goes_in_the_passive_answer_and_the_image_follows_through_the_api(
        make_env: Any, tmp_path: Path) -> None:
    async with make_env(routers=[image_router(png_file(tmp_path))]) as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "both")
        assert result.reply == {"type": "text", "content": "Here it is"}
        (image,) = await env.sim.wait_for_reply(openid, count=1)
        assert image["type"] == "image"


async def test_an_image_is_uploaded_once_for_many_sends(make_env: Any, tmp_path: Path) -> None:
    async with make_env(routers=[image_router(png_file(tmp_path))]) as env:
        first, second = await env.following(language="en"), await env.following(language="en")
        for openid in (first, second, first):
            await env.sim.send_text(openid, "poster")
            await env.sim.wait_for_reply(openid, count=2)
        assert env.sim.media_uploads == 1
        ids = {r["media_id"] for o in (first, second) for r in env.sim.replies(o) if r["type"] == "image"}
        assert len(ids) == 1


async def test_a_forgotten_media_id_is_uploaded_again(make_env: Any, tmp_path: Path) -> None:
    async with make_env(routers=[image_router(png_file(tmp_path))]) as env:
        openid = await env.following(language="en")
        await env.sim.send_text(openid, "poster")
        await env.sim.wait_for_reply(openid, count=2)
        env.sim.media.clear()  # the platform lost it (a simulator restart): 40007 on the next send
        await env.sim.send_text(openid, "poster")
        image, _caption = await env.sim.wait_for_reply(openid, count=2)
        assert env.sim.media_uploads == 2 and env.sim.media_bytes(image["media_id"])


@pytest.mark.parametrize("size", ["small", "over 1 MB"])
async def test_an_image_from_a_url_is_fetched_whole_and_sent(make_env: Any, size: str) -> None:
    from aiohttp import web

    from tests.support.images import noise_png_bytes
    from tests.support.servers import serve

    # Over 1 MB, the body comes in many chunks: all of them must be read, not the first.
    data = png_bytes("from a url") if size == "small" else noise_png_bytes()
    app = web.Application()
    app.router.add_get("/poster.png", lambda request: web.Response(body=data, content_type="image/png"))
    async with serve(app) as files, make_env(routers=[image_router(f"{files}/poster.png", caption="")]) as env:
        openid = await env.following(language="en")
        await env.sim.send_text(openid, "poster")
        (image,) = await env.sim.wait_for_reply(openid, count=1)
        assert env.sim.media_bytes(image["media_id"]) == data


async def test_the_platform_refusing_the_upload_ends_failed_with_its_reason(make_env: Any, tmp_path: Path) -> None:
    async with make_env(routers=[image_router(png_file(tmp_path))], sim_overrides={"max_image_bytes": 64}) as env:
        openid = await env.following(language="en")
        await env.sim.send_text(openid, "poster")
        rows = await outbound_outcomes(env.bot.sessions, "image")
        assert rows == [("failed", "platform error 40006: invalid media size: an image is at most 64 bytes")]
        # One reply, one outcome: its caption (the row's second part) is not sent without the image.
        assert [r for r in env.sim.replies(openid) if r["source"] == "custom"] == []


async def test_a_missing_or_unsupported_image_ends_failed_and_nothing_crashes(make_env: Any, tmp_path: Path) -> None:
    text_file = tmp_path / "notes.png"
    text_file.write_text("not an image")
    async with make_env(routers=[image_router(text_file, caption="")]) as env:
        openid = await env.following(language="en")
        await env.sim.send_text(openid, "poster")
        rows = await outbound_outcomes(env.bot.sessions, "image")
        assert rows == [("failed", f"image not sent: {text_file}: not a PNG, JPEG, GIF or BMP image")]
        assert env.sim.media_uploads == 0


async def test_an_invite_qr_is_sent_as_an_image_of_the_scene_qr(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "invite")
        assert result.acknowledged
        image, caption = await env.sim.wait_for_reply(openid, count=2)
        assert image["type"] == "image" and caption["content"].startswith("Here is your personal invite.")
        (ticket,) = [t for t in env.sim.tickets.values() if t.scene.startswith(REFERRAL_SCENE_PREFIX)]
        assert env.sim.media_bytes(image["media_id"]) == _qr_png(ticket.url)
        # Asked again: the same QR, not uploaded twice.
        await env.sim.send_text(openid, "invite")
        again, _ = await env.sim.wait_for_reply(openid, count=2)
        assert again["media_id"] == image["media_id"] and env.sim.media_uploads == 1


async def test_passive_image_replies_are_checked_by_the_simulator(make_env: Any, tmp_path: Path) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        follower = env.sim.followers[openid]
        env.sim.media["m1"] = {"data": png_bytes(), "mime": "image/png", "created_at": env.sim.clock()}
        passive = (f"<xml><ToUserName><![CDATA[{openid}]]></ToUserName><FromUserName><![CDATA[{env.sim.account_id}]]>"
                   "</FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[image]]></MsgType>"
                   "<Image><MediaId><![CDATA[m1]]></MediaId></Image></xml>")
        ok = env.sim._parse_reply(follower, passive.encode())
        assert ok == {"type": "image", "media_id": "m1"}


async def test_an_offer_with_a_poster_sends_the_code_then_the_poster(make_env: Any, tmp_path: Path) -> None:
    from tests.offers.conftest import PROMOS, load_into

    poster = png_file(tmp_path, "hotpot.png", text="hotpot poster")
    line = "    value: {amount: 50, currency: CNY, kind: discount}\n"
    async with make_env() as env:
        await load_into(env.bot, tmp_path, PROMOS.replace(line, line + "    poster: hotpot.png\n", 1))
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "hotpot")
        assert result.reply["type"] == "text" and result.reply["content"].startswith("Here is your code for")
        (image,) = await env.sim.wait_for_reply(openid, count=1)
        assert env.sim.media_bytes(image["media_id"]) == poster.read_bytes()


async def test_a_repeated_send_reuses_the_upload(make_env: Any, tmp_path: Path) -> None:
    from bot.errors import NotSent

    async with make_env(routers=[image_router(png_file(tmp_path), caption="")]) as env:
        api = env.channel.api
        send_custom, refused = api.send_custom, []

        async def busy_once(payload: dict[str, Any]) -> None:
            if payload["msgtype"] == "image" and not refused:
                refused.append(payload)
                raise NotSent("WeChat -1: system busy")  # as send_custom maps errcode -1: the outbox repeats it
            await send_custom(payload)

        api.send_custom = busy_once
        openid = await env.following(language="en")
        await env.sim.send_text(openid, "poster")
        (image,) = await env.sim.wait_for_reply(openid, count=1)
        assert refused and refused[0]["image"]["media_id"] == image["media_id"]
        assert env.sim.media_uploads == 1
        assert await outbound_outcomes(env.bot.sessions, "image") == [("sent", None)]


async def test_concurrent_sends_of_one_image_fetch_and_upload_it_once(make_env: Any) -> None:
    from aiohttp import web

    from tests.support.servers import serve

    data, fetches = png_bytes("one poster for all"), []

    async def poster(request: web.Request) -> web.Response:
        fetches.append(request.path)
        return web.Response(body=data, content_type="image/png")

    app = web.Application()
    app.router.add_get("/poster.png", poster)
    async with serve(app) as files, make_env() as env:
        openids = [await env.following(language="en") for _ in range(10)]
        reply = ImageReply(f"{files}/poster.png")
        await asyncio.gather(*(env.channel.send_reply(openid, reply) for openid in openids))
        assert (len(fetches), env.sim.media_uploads) == (1, 1)
        ids = {r["media_id"] for o in openids for r in env.sim.replies(o) if r["type"] == "image"}
        assert len(ids) == 1 and env.sim.media_bytes(ids.pop()) == data


async def test_a_poster_on_an_account_without_images_shows_its_caption_not_its_path(
        make_env: Any, tmp_path: Path) -> None:
    poster = png_file(tmp_path)
    async with make_env(routers=[image_router(poster)], config_overrides={"app_id": None, "app_secret": None}) as env:
        assert not env.channel.capabilities.images
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "poster")
        assert result.reply == {"type": "text", "content": "Our winter poster"}


async def test_a_mass_sent_image_is_its_caption_and_a_link_never_a_file_path(make_env: Any, tmp_path: Path) -> None:
    from bot import QrReply

    poster = png_file(tmp_path)
    async with make_env(config_overrides={"mass_sends_per_period": 4, "mass_send_period_days": 30},
                        sim_overrides={"mass_send_quota": 4}) as env:
        openids = [await env.following(language="en") for _ in range(2)]
        for reply in (ImageReply(str(poster), caption="Our winter poster"),
                      ImageReply(poster.as_uri(), caption="Our winter poster"),
                      ImageReply("https://cdn.example/poster.png", caption="Our winter poster"),
                      QrReply("spring-2026", caption="Scan to join")):
            await env.channel.send_mass(openids, reply, context={})
        texts = [job["message"]["content"] for job in env.sim.mass_jobs]
        (ticket,) = [t for t in env.sim.tickets.values() if t.scene == "spring-2026"]
        assert texts == ["Our winter poster", "Our winter poster", "Our winter poster\nhttps://cdn.example/poster.png",
                         f"Scan to join\n{ticket.url}"]
