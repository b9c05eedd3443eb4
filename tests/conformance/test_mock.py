"""The mock channel passes the conformance kit (it has no platform: no signature, no send windows)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bot.channels.mock import MockChannel
from bot.core.inbound import Inbound, Kind, Notice
from bot.core.reply import ButtonsReply, Reply, TextReply
from bot.core.router import Router
from bot.testing import BotHarness
from bot.testing.conformance import ChannelConformance, ChannelDriver, wait_for_texts


def shown(reply: Reply) -> str:
    if isinstance(reply, ButtonsReply):
        return "\n".join([reply.text, *(b.label for b in reply.buttons)])
    return reply.text if isinstance(reply, TextReply) else repr(reply)


class MockDriver(ChannelDriver):
    not_met = {
        "signature": "no platform: followers' actions are calls in the same process, nothing is signed",
        "windows": "no platform: the mock answers inline and keeps its sends, with no window or pace to keep",
        "crash": "no send engine: the mock's sends are calls in the same process (or rows of its sink)",
    }
    channel: MockChannel

    def __init__(self) -> None:
        self._ids = 0
        self._languages: dict[str, str | None] = {}

    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None:
        self.harness = BotHarness(routers=routers, database_url=database_url)
        await self.harness.__aenter__()
        self.channel, self.sessions = self.harness.channel, self.harness.sessions

    async def stop(self) -> None:
        await self.harness.__aexit__(None, None, None)

    async def _act(self, follower: str, kind: Kind, text: str = "", **kw: object) -> int:
        await self.channel.receive(follower, kind, text, language_hint=self._languages.get(follower), **kw)  # type: ignore[arg-type]
        return 200

    async def follower(self, *, language: str | None = None) -> str:
        self._ids += 1
        follower = f"mock-follower-{self._ids}"
        self._languages[follower] = language
        self.channel.transcripts[follower].clear()
        return follower

    async def send_text(self, follower: str, text: str) -> int:
        return await self._act(follower, Kind.TEXT, text)

    async def send_badly_signed(self, follower: str, text: str) -> int:
        raise AssertionError("declared: nothing to sign")

    async def send_retry(self, follower: str, text: str) -> None:
        msg_id = f"retried-{follower}"
        # The first answer is lost (that is why the platform retries): only the retry's reaches the follower.
        await self.channel.dispatch(Inbound(channel="mock", account=self.channel.account, external_id=follower,
                                            kind=Kind.TEXT, text=text, message_id=msg_id,
                                            language_hint=self._languages.get(follower)))
        await self._act(follower, Kind.TEXT, text, message_id=msg_id)

    async def send_notification(self, follower: str) -> int:
        await self.channel.dispatch(Inbound(channel="mock", account=self.channel.account, external_id=follower,
                                            kind=Kind.NOTIFICATION, message_id=f"note-{follower}",
                                            notice=Notice(event="receipt")))
        return 200

    async def send_unreadable(self, follower: str) -> int:
        return await self._act(follower, Kind.UNKNOWN)

    async def received(self, follower: str, count: int, *, timeout: float = 10) -> list[str]:
        return await wait_for_texts(lambda: [shown(r) for r in (*self.channel.transcripts[follower],
                                                                 *self.channel.sent[follower])], count, timeout=timeout)


class TestMockConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return MockDriver()
