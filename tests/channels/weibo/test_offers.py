"""Offers and campaigns on Weibo: a claim by DM in both languages, scan_follow granting the campaign's offer,
and the campaign's Weibo QR files."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from sqlalchemy import select

from bot.offers import CampaignTouch, Claim, campaign_links, write_qr_files
from tests.offers.conftest import load_into

from .conftest import WeiboEnv, created_at, message, passive, weibo_env


async def _dms(env: WeiboEnv, fan: str, count: int) -> list[str]:
    for _ in range(100):
        texts = [d["data"]["text"] for d in env.fake.dms() if d["to"] == fan]
        if len(texts) >= count:
            return texts
        await asyncio.sleep(0.05)
    return texts


async def test_claim_by_dm_in_both_languages(database_url: str, tmp_path: Path) -> None:
    async with weibo_env(database_url) as env:
        await load_into(env.bot, tmp_path)
        _s, zh = await env.text("6100000001", "火锅")
        _s, en = await env.text("6100000002", "hotpot")
        assert re.search("「火锅立减50元」优惠码：\n[A-Z2-9]{8}", passive(zh)["data"]["text"])
        assert re.search("“Hotpot ¥50 off”.*\n[A-Z2-9]{8}", passive(en)["data"]["text"])
        async with env.bot.sessions() as s:
            assert len((await s.execute(select(Claim))).scalars().all()) == 2


async def test_scan_follow_records_the_touch_and_grants_the_campaign_offer(database_url: str, tmp_path: Path) -> None:
    async with weibo_env(database_url) as env:
        await load_into(env.bot, tmp_path)
        fan = "6100000003"
        status, body = await env.push(message(fan, "event", data={"subtype": "scan_follow", "key": "mall-poster-2026"},
                                              at=created_at()))
        assert status == 200 and passive(body)["data"]["text"].startswith("欢迎")
        code = (await _dms(env, fan, 1))[0]  # the second reply (the code) through the active API
        assert re.match("这是您的「火锅立减50元」优惠码：\n[A-Z2-9]{8}", code)
        async with env.bot.sessions() as s:
            touch = (await s.execute(select(CampaignTouch))).scalar_one()
            claim = (await s.execute(select(Claim))).scalar_one()
        assert (touch.kind, touch.new_follower, claim.via) == ("follow", True, "campaign")


async def test_the_campaign_gets_weibo_qr_files(database_url: str, tmp_path: Path) -> None:
    async with weibo_env(database_url) as env:
        links = await campaign_links(type("Core", (), {"channels": [env.channel]})(), "mall-poster-2026")
        assert list(links) == ["weibo"] and "mall-poster-2026" in links["weibo"]
        written = [p.name for p in await write_qr_files(links, "mall-poster", tmp_path)]
        assert sorted(written) == ["mall-poster-weibo.png", "mall-poster-weibo.svg"]
