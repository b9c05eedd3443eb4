"""The plugin: without a token the app mounts the Telegram simulator and the adapter talks to it over HTTP."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.app import CORE, STARTUP_NOTES, build_app, create_app, default_plugins
from bot.channels.telegram import TelegramChannel
from bot.channels.telegram.plugin import TELEGRAM_CHANNEL, telegram_plugin
from bot.cli.console.telegram import run_telegram_console
from bot.i18n import current_locale, default_catalogs
from bot.settings import Settings
from bot.simulation import TELEGRAM_SIMULATOR
from handlers.help import help_text

from .conftest import free_port

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


@pytest.fixture
async def served(database_url: str) -> AsyncIterator[tuple[web.Application, str]]:
    port = free_port()
    app = await create_app(Settings(database_url=database_url, port=port), plugins=[telegram_plugin])
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()  # runs the plugin's lifetime: the adapter starts connecting in the background
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_without_a_token_the_simulator_is_served_and_the_bot_answers(served):
    app, base = served
    channel = app[TELEGRAM_CHANNEL]
    assert app[CORE].channels == [channel] and isinstance(channel, TelegramChannel)
    notes = "\n".join(app[STARTUP_NOTES])
    assert "simulators mounted: Telegram (no real platform configured" in notes
    assert f"Telegram: open {base}/simulator/telegram  or run: engagebot chat --channel telegram --port " in notes
    await channel.wait_ready(10)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/simulator/telegram") as resp:
            assert resp.status == 200 and "engagebot_demo_bot" in await resp.text()
    sim = app[TELEGRAM_SIMULATOR]
    user = sim.add_user(first_name="Ada", language_code="en", started=True)
    sim.send_text(user, "anything new?")
    [reply] = await sim.wait_for_messages(user, 1, timeout=10)
    assert reply["text"] == "Sorry, I did not understand that. Send /help to see what I can do."


async def test_the_console_chats_through_the_simulator_api(served):
    app, base = served
    await app[TELEGRAM_CHANNEL].wait_ready(10)
    lines = iter(["/start", "1", "/start", "2", ":quit"])
    output: list[str] = []

    async def read_line(prompt: str) -> str | None:
        return next(lines, None)

    args = argparse.Namespace(url=base, lang="zh-hans", follower="Li Lei", channel="telegram")
    assert await run_telegram_console(args, read_line=read_line, write=output.append) == 0
    zh = default_catalogs().translation("zh_Hans").gettext
    text = "\n".join(output)
    assert f"bot> {zh('Welcome! Thanks for following us. Ask me anything, or pick one:')}" in text
    assert f"  [1] {zh('Help')}" in text and "  [2] 中文 / English" in text
    token = current_locale.set("zh_Hans")
    try:
        assert all(line in text for line in help_text().splitlines())
        assert "Here is what I can do" not in text  # Chinese, as the user's language_code says
    finally:
        current_locale.reset(token)
    assert zh("Which language do you prefer?") in text  # "2" pressed the language button
    sim = app[TELEGRAM_SIMULATOR]
    assert len(sim.answered_callbacks) == 2


async def test_the_console_reports_a_missing_simulator(database_url: str, capsys):
    args = argparse.Namespace(url=f"http://127.0.0.1:{free_port()}", lang=None, follower=None)
    assert await run_telegram_console(args, read_line=lambda prompt: None) == 2  # type: ignore[arg-type]
    assert "cannot reach the simulator" in capsys.readouterr().err


def test_no_token_and_no_simulators_means_no_telegram_channel(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", simulators=False)
    app = build_app(settings, plugins=[telegram_plugin])
    assert app[CORE].channels == [] and TELEGRAM_CHANNEL not in app


def test_a_token_configures_the_real_bot_api(tmp_path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", telegram={
        "token": "987654:ABC-def_123", "mode": "webhook", "webhook_url": "https://bot.example.com/telegram",
        "webhook_secret": "hook_secret"})
    app = build_app(settings, plugins=[telegram_plugin])
    channel = app[TELEGRAM_CHANNEL]
    assert TELEGRAM_SIMULATOR not in app and channel.account == "987654"
    assert channel.config.base_url == "https://api.telegram.org/bot" and channel.config.mode == "webhook"
    assert [r.resource.canonical for r in app.router.routes()
            if r.method == "POST" and r.resource is not None] == ["/telegram"]


def test_the_default_plugins_include_telegram():
    assert telegram_plugin in default_plugins()
