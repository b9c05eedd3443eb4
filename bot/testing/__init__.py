"""A harness to test handlers without any platform: followers talk through the mock channel.

The caller names the routers (the library depends on nothing above it: pass
``handlers.default_router()`` for the built-in handlers).

    async with BotHarness(routers=[my_router, default_router()]) as bot:
        alice = bot.follower("alice", language="en")
        replies = await alice.say("hours")
        assert alice.last_text == "We are open 10:00-22:00 every day."
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from bot.channels.mock import MOCK_CAPABILITIES, MockChannel
from bot.core.capabilities import Capabilities
from bot.core.dispatcher import Dispatcher
from bot.core.inbound import Kind
from bot.core.reply import ButtonsReply, Reply, TextReply
from bot.core.router import Router
from bot.core.services import Services
from bot.i18n import INTERNATIONAL_LOCALE, default_catalogs, require_locale
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade
from bot.storage.store import SqlStore


def texts(replies: Sequence[Reply]) -> list[str]:
    """The text of each reply (buttons' text included), for assertions."""
    return [r.text for r in replies if isinstance(r, (TextReply, ButtonsReply))]


class MockFollower:
    def __init__(self, harness: BotHarness, external_id: str, language: str | None) -> None:
        self.harness = harness
        self.external_id = external_id
        self.language = language
        self.replies: list[Reply] = []

    async def _act(self, kind: Kind, text: str = "", payload: str | None = None) -> list[Reply]:
        self.replies = await self.harness.channel.receive(
            self.external_id, kind, text, payload=payload, language_hint=self.language)
        return self.replies

    async def say(self, text: str) -> list[Reply]:
        return await self._act(Kind.COMMAND if text.startswith("/") else Kind.TEXT, text)

    async def follow(self, scene: str | None = None) -> list[Reply]:
        return await self._act(Kind.FOLLOW, payload=scene)

    async def scan(self, scene: str) -> list[Reply]:
        return await self._act(Kind.SCAN, payload=scene)

    async def click(self, payload: str) -> list[Reply]:
        return await self._act(Kind.CLICK, payload=payload)

    async def unfollow(self) -> list[Reply]:
        return await self._act(Kind.UNFOLLOW)

    async def send(self, kind: Kind, text: str = "", payload: str | None = None) -> list[Reply]:
        return await self._act(kind, text, payload)

    @property
    def texts(self) -> list[str]:
        return texts(self.replies)

    @property
    def last_text(self) -> str | None:
        found = self.texts
        return found[-1] if found else None


class BotHarness:
    """A dispatcher for ``routers``, a mock channel and a fresh database (temporary SQLite unless a URL
    is given). ``services`` are what ``ctx.services`` holds (``dispatcher.services`` after building)."""

    def __init__(
        self, *, routers: Sequence[Router], database_url: str | None = None,
        capabilities: Capabilities = MOCK_CAPABILITIES, default_locale: str = "zh_Hans",
        international_locale: str = INTERNATIONAL_LOCALE, services: Services | None = None,
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if database_url is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="engagebot-test-")
            database_url = f"sqlite+aiosqlite:///{Path(self._tmp.name) / 'bot.db'}"
        self.database_url = database_url
        self.engine = create_engine(database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.store = SqlStore(self.sessions, self.engine)
        root = Router("harness")
        root.include(*routers)
        self.dispatcher = Dispatcher(store=self.store, router=root, catalogs=default_catalogs(),
                                     default_locale=require_locale(default_locale),
                                     international_locale=require_locale(international_locale), services=services)
        self.channel = MockChannel(dispatch=self.dispatcher.dispatch, capabilities=capabilities)

    def follower(self, external_id: str, *, language: str | None = None) -> MockFollower:
        return MockFollower(self, external_id, language)

    async def __aenter__(self) -> BotHarness:
        await upgrade(self.engine)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.store.close()
        await self.engine.dispose()
        if self._tmp is not None:
            self._tmp.cleanup()
