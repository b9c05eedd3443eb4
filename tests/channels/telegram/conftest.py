"""A Telegram rig: the Bot API simulator and our channel on one loopback aiohttp app, a real dispatcher and database."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from bot.channels.telegram import TelegramChannel, TelegramConfig
from bot.core.router import Router
from bot.simulators.telegram import TelegramBotAPISimulator
from bot.storage.models import Follower, Message
from bot.testing import BotHarness
from bot.web import error_middleware

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

SECRET = "s3cret_Token-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Rig:
    """Simulator + channel served on one port; ``harness`` holds the dispatcher and database."""

    def __init__(self, harness: BotHarness, *, mode: str = "polling", enforce_limits: bool = False,
                 **config: Any) -> None:
        self.harness = harness
        self.sim = TelegramBotAPISimulator("123456:TEST-TOKEN", enforce_limits=enforce_limits,
                                           webhook_retry_delay=0.05)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config = TelegramConfig(
            token=self.sim.token, mode=mode, base_url=f"{self.base}/bot", base_file_url=f"{self.base}/file/bot",
            webhook_url=f"{self.base}/telegram" if mode == "webhook" else None,
            webhook_secret=SECRET if mode == "webhook" else None, poll_timeout=2, sweep_every=0.2,
            connect_backoff=(0.05, 0.5), **config)
        self.channel = TelegramChannel(dispatch=harness.dispatcher.dispatch, sessions=harness.sessions,
                                       config=self.config)
        self.app = web.Application(middlewares=[error_middleware])
        self.sim.add_routes(self.app)
        self.app.add_routes(self.channel.routes())
        self.runner = web.AppRunner(self.app, shutdown_timeout=1)

    async def serve(self) -> None:
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def start(self) -> None:
        await self.serve()
        await self.channel.start()
        await self.channel.wait_ready(10)

    async def close(self) -> None:
        await self.channel.stop()
        await self.sim.close()
        await self.runner.cleanup()

    def user(self, *, language_code: str | None = "en", first_name: str = "Test User") -> int:
        return self.sim.add_user(first_name=first_name, language_code=language_code, started=True)

    async def replies(self, chat_id: int, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        return await self.sim.wait_for_messages(chat_id, count, timeout)

    async def outbound(self, chat_id: int) -> list[Message]:
        async with self.harness.sessions() as session:
            return list((await session.execute(
                select(Message).join(Follower, Follower.id == Message.follower_id)
                .where(Follower.external_id == str(chat_id), Message.direction == "out")
                .order_by(Message.id))).scalars())

    async def follower(self, chat_id: int) -> Follower | None:
        async with self.harness.sessions() as session:
            return (await session.execute(select(Follower).where(
                Follower.channel == "telegram", Follower.external_id == str(chat_id)))).scalar_one_or_none()

    async def count_messages(self) -> int:
        async with self.harness.sessions() as session:
            return len((await session.execute(select(Message.id))).all())


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10, every: float = 0.05) -> Any:
    """Re-run ``check`` until it returns something truthy (the database lags the simulator a little)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last value {value!r})")
        await asyncio.sleep(every)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest.fixture
async def make_rig(database_url: str) -> AsyncIterator[RigFactory]:
    """``await make_rig(mode=..., routers=[...], enforce_limits=...)`` gives a started rig."""
    rigs: list[Rig] = []
    harnesses: list[BotHarness] = []

    async def make(*, routers: list[Router] | None = None, start: bool = True, **kw: Any) -> Rig:
        from handlers import default_router

        harness = BotHarness(database_url=database_url, default_locale="en",
                             routers=[*(routers or []), default_router()])
        await harness.__aenter__()
        harnesses.append(harness)
        rig = Rig(harness, **kw)
        rigs.append(rig)
        if start:
            await rig.start()
        return rig

    yield make
    for rig in rigs:
        await rig.close()
    for harness in harnesses:
        await harness.__aexit__(None, None, None)


@pytest.fixture
async def rig(make_rig: RigFactory) -> Rig:
    return await make_rig()
