"""``engagebot menu load`` against ``engagebot run`` and its simulators, over real HTTP, as an operator does it.

The example menu reaches WeChat (a default menu and one per follower language), Telegram (commands per
language) and Weibo; a follower whose WeChat is in English sees English buttons, and tapping one
gets the bot's answer. A bad file is refused in one line and nothing is pushed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support.process import engagebot, http_json, running
from tests.support.servers import free_port

pytestmark = pytest.mark.engine_neutral  # the PostgreSQL pass leaves these to the SQLite pass (tests/conftest.py)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "menu.yaml"
WECHAT = "/simulator/wechat/api"
TELEGRAM = "/simulator/telegram/api"


def _wechat_follower(url: str, language: str) -> str:
    openid = http_json("POST", f"{url}{WECHAT}/followers", {"language": language})["openid"]
    http_json("POST", f"{url}{WECHAT}/action", {"openid": openid, "action": "follow"})
    return openid


def _top_labels(menu: list[dict[str, Any]]) -> list[str]:
    return [button["name"] for button in menu]


async def test_menu_load_pushes_the_menu_per_language_to_every_simulated_platform(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url}
    with running("run", "--port", str(port), env=env, cwd=tmp_path, port=port, ready="/simulator/telegram") as server:
        url = server.url
        done = await asyncio.to_thread(engagebot, "menu", "load", str(EXAMPLE), "--port", str(port),
                                       env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "wechat: default menu (zh_Hans) and personalized menus for zh_TW, zh_HK, en" in done.stdout
        assert "telegram: 4 command(s) for default, zh; menu button: commands" in done.stdout
        assert "weibo: menu in zh_Hans; 3 scan/picture/location button(s) left out" in done.stdout

        english, chinese, hong_kong = (_wechat_follower(url, lang) for lang in ("en", "zh_CN", "zh_TW"))
        timeline = http_json("GET", f"{url}{WECHAT}/timeline?openid={english}")
        assert _top_labels(timeline["menu"]) == ["Offers", "Stores", "More"]
        assert [b["name"] for b in timeline["menu"][2]["sub_button"]] == [
            "Scan a code", "Share a photo", "Invite friends", "语言 Language", "Help"]
        assert _top_labels(http_json("GET", f"{url}{WECHAT}/timeline?openid={chinese}")["menu"]) == ["优惠", "门店", "更多"]
        assert _top_labels(http_json("GET", f"{url}{WECHAT}/timeline?openid={hong_kong}")["menu"]) == ["優惠", "門店", "更多"]

        tapped = http_json("POST", f"{url}{WECHAT}/action", {"openid": english, "action": "menu", "path": [2, 4]})
        assert tapped["action"] == "CLICK" and "Here is what I can do" in tapped["reply"]["content"]

        en_user = http_json("POST", f"{url}{TELEGRAM}/users", {"first_name": "Amy", "language_code": "en"})["user"]
        zh_user = http_json("POST", f"{url}{TELEGRAM}/users", {"first_name": "Bo", "language_code": "zh-hans"})["user"]
        en_chat = http_json("GET", f"{url}{TELEGRAM}/chat?user_id={en_user['id']}")
        zh_chat = http_json("GET", f"{url}{TELEGRAM}/chat?user_id={zh_user['id']}")
        assert [(c["command"], c["description"]) for c in en_chat["commands"]][:2] == [
            ("offers", "Today's offers"), ("invite", "Invite friends")]
        assert [(c["command"], c["description"]) for c in zh_chat["commands"]][:2] == [
            ("offers", "今日优惠"), ("invite", "邀请好友")]
        assert en_chat["menu_button"] == {"type": "commands"}

        weibo = http_json("GET", f"{url}/simulator/weibo/api/state")
        assert [m["name"] for m in weibo["menu"]] == ["优惠", "营业时间", "官网", "邀请好友", "语言 Language", "帮助"]

        bad = tmp_path / "bad.yaml"
        bad.write_text(EXAMPLE.read_text("utf-8").replace("{zh_Hans: 优惠, en: Offers,",
                                                          "{zh_Hans: 优惠, en: Offers of the day,"), "utf-8")
        refused = await asyncio.to_thread(engagebot, "menu", "load", str(bad), "--port", str(port), env=env, cwd=tmp_path)
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1] == (
            f"engagebot: {bad}: buttons[0]: label 'Offers of the day' (en) is 17 bytes in UTF-8; "
            "a top-level label fits 16 (WeChat)")
        assert refused.stdout == ""
        assert _top_labels(http_json("GET", f"{url}{WECHAT}/timeline?openid={english}")["menu"])[0] == "Offers"

        shown = await asyncio.to_thread(engagebot, "menu", "show", env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "1. Offers / 优惠 / 優惠  [click offers]" in shown.stdout
    assert "   2.1. Stores near me / 附近门店 / 附近門店  [location_select stores-pick]" in shown.stdout
    assert "pushed to wechat: ok: default menu (zh_Hans)" in shown.stdout


async def test_no_push_stores_the_menu_and_push_without_a_menu_says_how_to_load_one(
        tmp_path: Path, database_url: str) -> None:
    env = {"ENGAGEBOT_DATABASE_URL": database_url}
    nothing = await asyncio.to_thread(engagebot, "menu", "push", env=env, cwd=tmp_path)
    assert nothing.returncode == 2
    assert nothing.stderr.strip() == "engagebot: no menu yet; load one with: engagebot menu load menu.yaml"

    stored = await asyncio.to_thread(engagebot, "menu", "load", str(EXAMPLE), "--no-push", env=env, cwd=tmp_path)
    assert stored.returncode == 0, stored.stderr
    shown = await asyncio.to_thread(engagebot, "menu", "show", env=env, cwd=tmp_path)
    assert "telegram /offers: Today's offers / 今日优惠 / 今日優惠" in shown.stdout
    assert shown.stdout.rstrip().endswith("not pushed yet: engagebot menu push")
