"""Telegram's side of the menu: commands per language and the menu button, over real HTTP to the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from bot.errors import PlatformAPIError
from bot.files import read_data_file
from bot.menus import parse_menu
from bot.storage.menus import save_menu

from .conftest import Rig, RigFactory

MENU = parse_menu(read_data_file(Path(__file__).resolve().parents[3] / "examples" / "menu.yaml"))


def _commands(rig: Rig, language_code: str) -> list[tuple[str, str]]:
    return [(c["command"], c["description"]) for c in rig.sim.get_commands(language_code)]


async def _page_chat(rig: Rig, user_id: int) -> dict[str, Any]:
    """What the simulator's page shows that user: the commands of their language, the menu button."""
    async with aiohttp.ClientSession() as http, http.get(f"{rig.base}/simulator/telegram/api/chat",
                                                         params={"user_id": str(user_id)}) as resp:
        return await resp.json()


async def test_pushing_the_menu_sets_commands_per_language_and_the_menu_button(make_rig: RigFactory) -> None:
    rig = await make_rig()
    assert _commands(rig, "")[0][0] == "start"  # before: the built-in commands

    said = await rig.channel.push_menu(MENU)

    assert said == "4 command(s) for default, zh; menu button: commands"
    assert _commands(rig, "") == [("offers", "Today's offers"), ("invite", "Invite friends"),
                                  ("lang", "Switch language: English or Chinese"), ("help", "What this bot can do")]
    assert _commands(rig, "zh") == [("offers", "今日优惠"), ("invite", "邀请好友"), ("lang", "切换语言：中文或英文"),
                                    ("help", "我能做什么")]
    assert rig.sim.menu_buttons[None] == {"type": "commands"}
    english, chinese = rig.user(language_code="en"), rig.user(language_code="zh-hans")
    zh_page, en_page = await _page_chat(rig, chinese), await _page_chat(rig, english)
    assert [c["description"] for c in zh_page["commands"]][:1] == ["今日优惠"]
    assert [c["description"] for c in en_page["commands"]][:1] == ["Today's offers"]
    assert en_page["menu_button"] == {"type": "commands"}


async def test_a_web_app_menu_button_carries_the_label_of_the_default_locale(make_rig: RigFactory) -> None:
    rig = await make_rig()
    menu = parse_menu({"buttons": [{"label": {"zh_Hans": "帮助"}, "key": "help"}], "telegram": {
        "menu_button": {"label": {"zh_Hans": "商城", "en": "Shop"}, "url": "https://shop.example.com/"}}})

    await rig.channel.push_menu(menu)

    assert rig.sim.menu_buttons[None] == {"type": "web_app", "text": "商城", "web_app": {"url": "https://shop.example.com/"}}
    assert _commands(rig, "")[0][0] == "start"  # no commands in the file: the built-in ones stay


async def test_a_restart_sets_the_stored_menus_commands_not_the_built_in_ones(make_rig: RigFactory) -> None:
    rig = await make_rig(start=False)
    async with rig.harness.sessions() as session, session.begin():
        await save_menu(session, MENU)

    await rig.start()  # connecting sets the commands

    assert _commands(rig, "zh")[0] == ("offers", "今日优惠")


async def test_a_language_telegram_refuses_leaves_the_others_set(make_rig: RigFactory) -> None:
    rig = await make_rig()
    rig.sim.inject_error(400, "Bad Request: simulated refusal", method="setMyCommands")  # the first language

    with pytest.raises(PlatformAPIError, match="(?i)simulated refusal"):
        await rig.channel.push_menu(MENU)

    assert _commands(rig, "")[0][0] == "start"  # refused: the built-in ones stay
    assert _commands(rig, "zh")[0] == ("offers", "今日优惠")  # the next language still set
    assert rig.sim.menu_buttons[None] == {"type": "commands"}


async def test_the_channel_starts_when_the_stored_menu_cannot_be_read(make_rig: RigFactory) -> None:
    rig = await make_rig(start=False)
    async with rig.harness.sessions() as session, session.begin():
        await save_menu(session, MENU)
        await session.execute(text("DROP TABLE menu_definition"))  # reading it now fails in the database

    await rig.start()

    assert rig.channel.ready.is_set()
    assert _commands(rig, "zh")[0][0] == "start"  # the built-in commands, in every language
    assert _commands(rig, "")[0][0] == "start"


async def test_the_channel_starts_when_telegram_refuses_a_language_at_connect(make_rig: RigFactory) -> None:
    rig = await make_rig(start=False)
    async with rig.harness.sessions() as session, session.begin():
        await save_menu(session, MENU)
    rig.sim.inject_error(400, "Bad Request: simulated refusal", method="setMyCommands")

    await rig.start()

    assert rig.channel.ready.is_set()
    assert _commands(rig, "zh")[0] == ("offers", "今日优惠")
