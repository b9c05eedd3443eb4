"""``engagebot chat --channel weibo``'s console against the simulator and a fake bot, over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.cli.console.common import chat_loop
from bot.cli.console.weibo import WeiboConsole, find_or_create_fan
from bot.simulators.weibo import WeiboSimulator

from .conftest import FakeBot, call


async def test_a_console_fan_follows_talks_scans_and_comments(api: TestClient, sim: WeiboSimulator, bot: FakeBot,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    base = str(api.make_url("")).rstrip("/")
    lines = iter(["hello", ":scan spring", ":mention any offer?", ":thread", ":bogus", ":quit"])

    async def read_line(prompt: str) -> str | None:
        return next(lines, None)

    written: list[str] = []
    async with aiohttp.ClientSession() as http:
        fan = await find_or_create_fan(http, base, "Ada", "en")
        assert (await find_or_create_fan(http, base, "Ada", "en"))["uid"] == fan["uid"]  # one name, one fan
        post = next(iter(sim.posts))
        await chat_loop(WeiboConsole(http, base, fan), read_line=read_line, write=written.append, interactive=False)
    out = capsys.readouterr().out
    assert "bot> echo: 关注" in out and "bot> echo: hello" in out and "bot> echo: 扫码" in out
    assert "@Ada: @engagebot_brand any offer?" in out
    assert any("unknown action :bogus" in w for w in written)
    assert [r["body"]["data"].get("subtype", r["body"]["type"]) for r in bot.requests] == [
        "follow", "text", "scan", "mention"]
    status, _ = await call(api, "POST", "/2/comments/create.json", id=post, comment="DM us")
    assert status == 200
