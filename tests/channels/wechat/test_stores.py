"""A WeChat follower shares a location and gets the nearest stores in their language (real HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.stores import wgs84_to_gcj02
from tests.support.stores import PEOPLES_SQUARE
from tests.support.stores import load_stores as _load


@pytest.mark.parametrize(("language", "expected"), [
    ("zh_CN", ["您附近的门店：", "新天地店 · 1.3公里", "营业中", "马当路245号", "三里屯店"]),
    ("en", ["Stores near you:", "Xintiandi · 1.3 km", "Open", "245 Madang Road", "Sanlitun"]),
])
async def test_a_wechat_location_gets_the_nearest_stores_in_the_followers_language(
        make_env: Any, language: str, expected: list[str]) -> None:
    async with make_env() as env:
        await _load(env.bot.sessions)
        openid = await env.following(language=language)
        lat, lng = wgs84_to_gcj02(*PEOPLES_SQUARE)  # what the phone sends

        result = await env.sim.send_location(openid, latitude=lat, longitude=lng, label="人民广场")

        text = result.reply["content"]
        assert all(part in text for part in expected), text
        assert text.index(expected[1]) < text.index(expected[-1])  # the nearer first


async def test_on_wechat_store_near_me_answers_from_the_location_just_reported(make_env: Any) -> None:
    async with make_env() as env:
        await _load(env.bot.sessions)
        openid = await env.following(language="zh_CN")
        asked_before = await env.sim.send_text(openid, "附近门店")
        assert "位置" in asked_before.reply["content"] and "+" in asked_before.reply["content"]

        await env.sim.report_location(openid, latitude=wgs84_to_gcj02(*PEOPLES_SQUARE)[0],
                                      longitude=wgs84_to_gcj02(*PEOPLES_SQUARE)[1])
        answered = await env.sim.send_text(openid, "附近门店")
        assert "新天地店 · 1.3公里" in answered.reply["content"]
