"""The simulator shares no code with the bot: it may not import the adapter, the core or storage."""

from __future__ import annotations

import ast
from pathlib import Path

from aiohttp import web

import bot.simulators.wechat as package
from bot.simulators.wechat import WeChatSimulator

FORBIDDEN = ("bot.channels", "bot.core", "bot.storage")


def test_simulator_imports_nothing_of_the_bot() -> None:
    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"


def test_routes_stay_under_cgi_bin_and_simulator_prefix() -> None:
    app = web.Application()
    WeChatSimulator(token="t", app_id="wx", app_secret="s").add_routes(app)
    paths = {r.resource.canonical for r in app.router.routes()}
    assert paths and all(p.startswith(("/cgi-bin/", "/simulator/wechat")) for p in paths)
