"""Campaigns through the admin API: the list, and each channel's QR code drawn as ``engagebot campaign qr`` draws it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.admin.plugin import admin_api_plugin
from bot.app import build_app
from bot.channels.plugin import Lifetime, PluginContext
from bot.offers.campaigns import qr_image, write_qr_files
from bot.testing import BotHarness
from handlers import default_router
from tests.admin.conftest import API, BOOTSTRAP, settings_for
from tests.offers.conftest import load_into


class LinkChannel:
    """What campaign links read of a channel: its name, its account, its link for a scene."""

    name = "wechat"
    account = "gh_test"

    async def scene_link(self, scene: str, *, permanent: bool = True) -> str:
        return f"https://weixin.qq.com/q/{scene}"


def link_channel_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    ctx.channels.append(LinkChannel())
    return None


@pytest.fixture
async def client(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with BotHarness(routers=[default_router()], database_url=database_url) as harness:
        await load_into(harness, tmp_path)
        app = build_app(settings_for(database_url), plugins=[link_channel_plugin, admin_api_plugin])
        async with TestClient(TestServer(app)) as test_client:
            yield test_client


AUTH = {"Authorization": f"Bearer {BOOTSTRAP}"}


async def test_campaigns_are_listed_with_their_promotion(client: TestClient) -> None:
    async with client.get(f"{API}/campaigns", headers=AUTH) as r:
        assert r.status == 200
        items = (await r.json())["items"]
    assert [(c["slug"], c["scene"], c["promotion"]) for c in items] == [
        ("mall-poster", "mall-poster-2026", "hotpot-50"), ("kol-lily", "kol-lily", None)]


async def test_a_qr_code_per_channel_is_the_one_the_cli_writes(client: TestClient, tmp_path: Path) -> None:
    async with client.get(f"{API}/campaigns", headers=AUTH) as r:
        poster = (await r.json())["items"][0]
    cli_files = await write_qr_files({"wechat": "https://weixin.qq.com/q/mall-poster-2026"}, "mall-poster", tmp_path)
    for fmt, media in (("png", "image/png"), ("svg", "image/svg+xml")):
        async with client.get(f"{API}/campaigns/{poster['id']}/qr?channel=wechat&format={fmt}", headers=AUTH) as r:
            assert (r.status, r.content_type) == (200, media)
            assert r.headers["Content-Disposition"] == f'attachment; filename="mall-poster-wechat.{fmt}"'
            body = await r.read()
        assert body == (tmp_path / f"mall-poster-wechat.{fmt}").read_bytes()
        assert body == await qr_image("https://weixin.qq.com/q/mall-poster-2026", fmt)
    assert len(cli_files) == 2


async def test_a_channel_without_a_link_or_a_missing_campaign_is_404_saying_why(client: TestClient) -> None:
    async with client.get(f"{API}/campaigns/1/qr?channel=telegram", headers=AUTH) as r:
        assert r.status == 404
        assert (await r.json())["reason"] == "no telegram link for campaign 'mall-poster' (channels with one: wechat)"
    async with client.get(f"{API}/campaigns/99/qr?channel=wechat", headers=AUTH) as r:
        assert (r.status, (await r.json())["reason"]) == (404, "no campaign 99")
    async with client.get(f"{API}/campaigns/1/qr?channel=wechat&format=gif", headers=AUTH) as r:
        assert (r.status, (await r.json())["field"]) == (422, "format")
