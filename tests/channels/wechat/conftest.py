"""The WeChat adapter behind a real loopback server, and the platform simulator behind another."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from bot.channels.wechat.adapter import WeChatChannel
from bot.core.router import Router
from bot.settings import WeChatAccount
from bot.simulators.wechat import WeChatSimulator
from bot.testing import BotHarness
from handlers import default_router
from tests.support.servers import serve, serve_channel

TOKEN = "adaptertoken42"
APP_ID = "wx1234567890abcdef"
APP_SECRET = "app-secret-for-tests"
AES_KEY = "Zyxwvutsrqponmlkjihgfedcba9876543210ABCDEFG"


@dataclass
class WeChatEnv:
    sim: WeChatSimulator
    channel: WeChatChannel
    bot: BotHarness
    bot_url: str
    sim_url: str

    def follower(self, *, language: str | None = "zh_CN") -> str:
        return self.sim.add_follower(language=language)

    async def following(self, *, language: str | None = "zh_CN") -> str:
        openid = self.sim.add_follower(language=language)
        result = await self.sim.follow(openid)
        assert result.ok, result.error
        return openid

    async def count(self, model: Any, *conditions: Any) -> int:
        from sqlalchemy import func, select

        async with self.bot.sessions() as s:
            return await s.scalar(select(func.count()).select_from(model).where(*conditions))


@asynccontextmanager
async def wechat_env(
    database_url: str, *, safe: bool = False, routers: list[Router] | None = None,
    sim_overrides: dict[str, Any] | None = None, config_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[WeChatEnv]:
    aes = AES_KEY if safe else None
    sim_kwargs = dict(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, aes_key=aes, callback_timeout=5.0)
    sim_kwargs.update(sim_overrides or {})
    sim = WeChatSimulator(**sim_kwargs)
    async with serve(sim.make_app()) as sim_url, BotHarness(
        routers=[*(routers or []), default_router()], database_url=database_url,
    ) as bot:
        cfg = dict(token=SecretStr(TOKEN), app_id=APP_ID, app_secret=SecretStr(APP_SECRET),
                   aes_key=SecretStr(aes) if aes else None, api_base=sim_url)
        cfg.update(config_overrides or {})
        channel = WeChatChannel(dispatch=bot.dispatcher.dispatch, account="default",
                                config=WeChatAccount(**cfg), sessions=bot.sessions)
        async with serve_channel(channel) as bot_url:
            sim.callback_url = f"{bot_url}/wechat"
            yield WeChatEnv(sim, channel, bot, bot_url, sim_url)


@pytest.fixture
def make_env(database_url: str) -> Callable[..., Any]:
    return lambda **kw: wechat_env(database_url, **kw)
