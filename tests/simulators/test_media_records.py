"""Images uploaded to the WeChat and Weibo simulators survive a restart (they leave as records)."""

from __future__ import annotations

import aiohttp

from bot.simulators.records import MAX_MEDIA
from bot.simulators.wechat import WeChatSimulator
from bot.simulators.weibo import WeiboSimulator
from tests.support.images import png_bytes
from tests.support.servers import serve


async def test_a_wechat_upload_is_restored_after_a_restart() -> None:
    sim = WeChatSimulator(token="t", app_id="wxapp", app_secret="secret")
    async with serve(sim.make_app()) as url, aiohttp.ClientSession() as http:
        async with http.get(f"{url}/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": "wxapp", "secret": "secret"}) as resp:
            token = (await resp.json())["access_token"]
        form = aiohttp.FormData()
        form.add_field("media", png_bytes(), filename="a.png", content_type="image/png")
        async with http.post(f"{url}/cgi-bin/media/upload", params={"access_token": token, "type": "image"},
                             data=form) as resp:
            media_id = (await resp.json())["media_id"]
        form = aiohttp.FormData()
        form.add_field("media", b"GIF89a but not really", filename="a.txt", content_type="text/plain")
        async with http.post(f"{url}/cgi-bin/media/upload", params={"access_token": token, "type": "image"},
                             data=form) as resp:
            assert (await resp.json())["errcode"] == 40005  # the extension is not an image's
        async with http.post(f"{url}/cgi-bin/media/upload", params={"access_token": token, "type": "file"},
                             data=b"x") as resp:
            assert (await resp.json())["errcode"] == 40004
    again = WeChatSimulator(token="t", app_id="wxapp", app_secret="secret")
    again.restore(sim.take_changes(force_meta=True))
    assert again.media_bytes(media_id) == png_bytes()


def test_weibo_keeps_the_newest_images_and_restores_them() -> None:
    sim = WeiboSimulator(app_key="k", app_secret="s", access_token="t")
    for n in range(MAX_MEDIA + 1):
        sim._keep_media(sim.media, str(n), {"data": png_bytes(str(n)), "mime": "image/png"})
    again = WeiboSimulator(app_key="k", app_secret="s", access_token="t")
    again.restore(sim.take_changes(force_meta=True))
    assert "0" not in again.media and again.media_bytes(str(MAX_MEDIA)) == png_bytes(str(MAX_MEDIA))
