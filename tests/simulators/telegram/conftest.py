"""Fixtures: the simulator served on loopback, and python-telegram-bot pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import telegram
from aiohttp import web

from bot.simulators.telegram import TelegramBotAPISimulator


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
def sim() -> TelegramBotAPISimulator:
    return TelegramBotAPISimulator(webhook_retry_delay=0.05)


@pytest.fixture
async def base(sim: TelegramBotAPISimulator) -> AsyncIterator[str]:
    runner, url = await serve(sim.make_app())
    yield url
    await sim.close()
    await runner.cleanup()


def make_bot(sim: TelegramBotAPISimulator, base: str, token: str | None = None) -> telegram.Bot:
    return telegram.Bot(token or sim.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot")


@pytest.fixture
async def bot(sim: TelegramBotAPISimulator, base: str) -> AsyncIterator[telegram.Bot]:
    client = make_bot(sim, base)
    await client.initialize()
    yield client
    await client.shutdown()


@pytest.fixture
def user(sim: TelegramBotAPISimulator) -> int:
    """A user who has opened the chat (the bot may write to them)."""
    return sim.add_user(first_name="Li Lei", language_code="zh-hans", started=True)
