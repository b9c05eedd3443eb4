"""Menus per language on WeChat, over real HTTP between the adapter and the platform simulator.

The example menu is pushed through the adapter's API client; the simulator keeps the default menu
and one per follower language, shows each follower theirs, and a tap sends what WeChat sends (CLICK,
scancode_waitmsg with ScanResult, location_select then the place, pic_* then the picture).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.channels.wechat import protocol
from bot.errors import PlatformAPIError
from bot.files import read_data_file
from bot.menus import parse_menu
from bot.rules import PromptRuleCache, parse_prompt_rules
from bot.storage.models import PlatformNotice
from bot.storage.prompts import replace_prompt_rules
from bot.stores import wgs84_to_gcj02
from tests.support.stores import PEOPLES_SQUARE
from tests.support.stores import load_stores as _load_stores

from .conftest import APP_ID, APP_SECRET

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MENU = parse_menu(read_data_file(EXAMPLES / "menu.yaml"))


async def test_the_default_menu_and_one_per_language_reach_the_platform(make_env: Any) -> None:
    async with make_env() as env:
        said = await env.channel.push_menu(MENU)

        assert said == "default menu (zh_Hans) and personalized menus for zh_TW, zh_HK, en"
        assert [b["name"] for b in env.sim.default_menu["button"]] == ["优惠", "门店", "更多"]
        assert [(m["matchrule"], m["button"][0]["name"]) for m in env.sim.conditional_menus] == [
            ({"language": "zh_TW"}, "優惠"), ({"language": "zh_HK"}, "優惠"), ({"language": "en"}, "Offers")]
        assert env.sim.default_menu["button"][1]["sub_button"][0] == {
            "type": "location_select", "name": "附近门店", "key": "stores-pick"}

        await env.channel.push_menu(MENU)  # a second push replaces them all, it does not add more
        assert len(env.sim.conditional_menus) == 3


@pytest.mark.parametrize(("language", "labels"), [
    ("en", ["Offers", "Stores", "More"]), ("zh_CN", ["优惠", "门店", "更多"]), ("zh_TW", ["優惠", "門店", "更多"]),
    (None, ["优惠", "门店", "更多"]),  # no language known: the default menu
])
async def test_a_follower_sees_the_menu_of_their_wechat_language(
        make_env: Any, language: str | None, labels: list[str]) -> None:
    async with make_env() as env:
        await env.channel.push_menu(MENU)
        openid = await env.following(language=language)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{env.sim_url}/simulator/wechat/api/timeline", params={"openid": openid}) as resp:
                shown = (await resp.json())["menu"]
        assert [b["name"] for b in shown] == labels


async def test_each_kind_of_button_sends_what_wechat_sends_and_the_bot_answers_it(make_env: Any) -> None:
    async with make_env() as env:
        await _load_stores(env.bot.sessions)
        async with env.bot.sessions() as session, session.begin():
            rules = parse_prompt_rules(read_data_file(EXAMPLES / "rules.yaml"))
            await replace_prompt_rules(session, [r.model_dump() for r in rules.rules])
        env.bot.dispatcher.services.prompt_rules = PromptRuleCache(env.bot.sessions, ttl=0)
        await env.channel.push_menu(MENU)
        openid = await env.following(language="en")

        helped = await env.sim.tap_menu(openid, [2, 4])  # More > Help: CLICK help
        assert helped.action == "CLICK" and helped.reply["content"].startswith("Here is what I can do")
        hours = await env.sim.tap_menu(openid, [1, 1])  # Stores > Opening hours: the key names a rule's keyword
        assert hours.reply["content"] == "We are open 10:00-22:00 every day."

        scanned = await env.sim.tap_menu(openid, [2, 0], scan_result="help")  # scan and wait: ScanResult
        assert scanned.action == "scancode_waitmsg" and scanned.reply["content"].startswith("Here is what I can do")

        lat, lng = wgs84_to_gcj02(*PEOPLES_SQUARE)
        picked = await env.sim.tap_menu(openid, [1, 0], latitude=lat, longitude=lng, label="People's Square")
        assert picked.action == "location"  # the event is silent; the place follows as a location message
        assert "Xintiandi · 1.3 km" in picked.reply["content"]

        photo = await env.sim.tap_menu(openid, [2, 1])  # the picture follows as an image message
        assert photo.action == "image" and photo.reply["content"].startswith("Thanks! I can only read text")

        opened = await env.sim.tap_menu(openid, [1, 2])
        assert opened.action == "VIEW" and opened.acknowledged and opened.reply is None

        events = [e["event"] for e in env.sim.timeline(openid) if e.get("type") == "event"]
        assert events[-6:] == ["CLICK", "CLICK", "scancode_waitmsg", "location_select", "pic_photo_or_album", "VIEW"]
        assert await env.count(PlatformNotice, PlatformNotice.event == "location_select") == 1
        assert await env.count(PlatformNotice, PlatformNotice.event == "pic_photo_or_album") == 1


async def test_a_tap_on_a_sub_menu_title_sends_nothing(make_env: Any) -> None:
    async with make_env() as env:
        await env.channel.push_menu(MENU)
        openid = await env.following(language="en")
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{env.sim_url}/simulator/wechat/api/action",
                                 json={"openid": openid, "action": "menu", "path": [1]}) as resp:
                assert resp.status == 409
                assert "opens a sub-menu" in (await resp.json())["error"]


async def test_an_account_refused_menus_by_language_keeps_its_default_menu(make_env: Any) -> None:
    async with make_env(sim_overrides={"menu_language_rules": False}) as env:
        said = await env.channel.push_menu(MENU)
        assert said.startswith("default menu (zh_Hans) only: WeChat refused the personalized menu for zh_TW (65320: ")
        assert said.endswith("; zh_TW, zh_HK, en see the default menu")
        assert env.sim.default_menu is not None and env.sim.conditional_menus == []


async def test_any_refused_personalized_menu_keeps_the_default_and_says_the_code(make_env: Any) -> None:
    async with make_env(sim_overrides={"max_conditional_menus": 1}) as env:
        said = await env.channel.push_menu(MENU)
        assert said.startswith("default menu (zh_Hans) and personalized menus for zh_TW: "
                               "WeChat refused the personalized menu for zh_HK (65305: ")
        assert [b["name"] for b in env.sim.default_menu["button"]] == ["优惠", "门店", "更多"]
        assert [m["matchrule"] for m in env.sim.conditional_menus] == [{"language": "zh_TW"}]


async def test_a_refused_default_menu_leaves_the_menus_the_account_had(make_env: Any) -> None:
    async with make_env() as env:
        await env.channel.push_menu(MENU)
        before = (env.sim.default_menu, list(env.sim.conditional_menus))
        default, conditional = protocol.menu_payloads(MENU)
        default["button"][0]["type"] = "tap"  # a button type WeChat refuses (40017), which our checks let by
        assert env.channel.api is not None

        with pytest.raises(PlatformAPIError) as refused:
            await env.channel.api.replace_menu(default, conditional)

        assert refused.value.errcode == 40017
        assert (env.sim.default_menu, env.sim.conditional_menus) == before


async def test_a_second_push_replaces_the_personalized_menus_by_id(make_env: Any) -> None:
    async with make_env(sim_overrides={"max_conditional_menus": 3}) as env:
        await env.channel.push_menu(MENU)
        first = {m["menuid"] for m in env.sim.conditional_menus}

        said = await env.channel.push_menu(MENU)  # room for 3 only: a pile-up would be refused (65305)

        assert said == "default menu (zh_Hans) and personalized menus for zh_TW, zh_HK, en"
        assert len(env.sim.conditional_menus) == 3 and not first & {m["menuid"] for m in env.sim.conditional_menus}


def _button(name: str = "帮助", **extra: Any) -> dict[str, Any]:
    return {"type": "click", "name": name, "key": "help", **extra}


@pytest.mark.parametrize(("path", "body", "errcode"), [
    ("create", {"button": [_button(), _button(), _button(), _button()]}, 40016),
    ("create", {"button": []}, 40016),
    ("create", {"button": [_button(type="tap")]}, 40017),
    ("create", {"button": [_button(name="一二三四五六")]}, 40018),  # 18 bytes
    ("create", {"button": [{"type": "scancode_push", "name": "扫码"}]}, 40019),
    ("create", {"button": [{"type": "view", "name": "官网"}]}, 40020),
    ("create", {"button": [{"name": "更多", "sub_button": [_button()] * 6}]}, 40023),
    ("create", {"button": [{"name": "更多", "sub_button": [_button(type="tap")]}]}, 40024),
    ("create", {"button": [{"name": "更多", "sub_button": [_button(name="x" * 61)]}]}, 40025),
    ("create", {"button": [{"name": "更多", "sub_button": [{"type": "pic_weixin", "name": "发图"}]}]}, 40026),
    ("addconditional", {"button": [_button()], "matchrule": {"language": "en"}}, 65303),
    ("delconditional", {"menuid": "208379533"}, 65301),
])
async def test_the_simulator_refuses_a_menu_the_platform_refuses(
        make_env: Any, path: str, body: dict[str, Any], errcode: int) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        async with http.get(f"{env.sim_url}/cgi-bin/token", params={
                "grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}) as resp:
            token = (await resp.json())["access_token"]
        async with http.post(f"{env.sim_url}/cgi-bin/menu/{path}", params={"access_token": token}, json=body) as resp:
            answer = await resp.json()
        assert answer["errcode"] == errcode, answer
        assert env.sim.default_menu is None


async def test_the_simulators_menus_survive_its_restart(make_env: Any) -> None:
    from bot.simulators.wechat import WeChatSimulator

    async with make_env() as env:
        await env.channel.push_menu(MENU)
        records = env.sim.take_changes(force_meta=True)

    restarted = WeChatSimulator(token="t", app_id=APP_ID, app_secret=APP_SECRET)
    restarted.restore(records)
    assert restarted.default_menu == env.sim.default_menu
    assert restarted.conditional_menus == env.sim.conditional_menus


async def test_the_simulator_refuses_a_language_it_does_not_know_as_an_invalid_parameter(make_env: Any) -> None:
    async with make_env() as env:
        await env.channel.push_menu(MENU)
        assert env.channel.api is not None
        with pytest.raises(PlatformAPIError) as refused:  # not 65318: that one means "must use utf-8 charset"
            await env.channel.api.call("POST", "/cgi-bin/menu/addconditional",
                                       json={"button": [_button()], "matchrule": {"language": "xx"}})
        assert refused.value.errcode == 40035
