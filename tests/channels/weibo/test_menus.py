"""Weibo's menu: pushed through the adapter's API client to the simulator (one embedded `engagebot run`
app, real HTTP), shown to fans, and a tap answered by the bot."""

from __future__ import annotations

from pathlib import Path

from bot.app import CORE, create_app
from bot.files import read_data_file
from bot.menus import parse_menu
from bot.settings import Settings
from bot.simulation import SIMULATORS
from tests.support.servers import free_port, serve

MENU = parse_menu(read_data_file(Path(__file__).resolve().parents[3] / "examples" / "menu.yaml"))


async def test_the_menu_reaches_weibo_in_the_default_locale_and_a_tap_is_answered(database_url: str) -> None:
    settings = Settings(database_url=database_url, port=free_port())
    app = await create_app(settings)
    async with serve(app, port=settings.port):
        sim = app[SIMULATORS]["weibo"]
        [weibo] = [c for c in app[CORE].channels if c.name == "weibo"]

        said = await weibo.push_menu(MENU)

        assert said == "menu in zh_Hans; 3 scan/picture/location button(s) left out (Weibo has none)"
        assert [b["name"] for b in sim.fan_menu["button"]] == ["优惠", "门店", "更多"]
        assert sim.fan_menu["button"][1]["sub_button"] == [
            {"type": "click", "name": "营业时间", "key": "hours"},
            {"type": "view", "name": "官网", "url": "https://example.com/"}]
        fan = sim.add_fan()
        await sim.follow(fan)
        help_key = next(m["key"] for m in sim.menu if m["name"] == "帮助")  # what the fan's page shows

        tapped = await sim.click(fan, help_key)

        assert tapped.reply["text"].startswith("我可以为您做这些")
