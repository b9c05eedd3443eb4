"""The mock channel passes the conformance kit (it has no platform: no signature, no send windows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bot.channels.mock import MOCK_CAPABILITIES, MockChannel
from bot.core.capabilities import Capabilities
from bot.core.inbound import Inbound, Kind, Notice
from bot.core.reply import ButtonsReply, ImageReply, Reply, TextReply
from bot.core.router import Router
from bot.testing import BotHarness
from bot.testing.conformance import ChannelConformance, ChannelDriver, conformance_router, wait_for_texts


def shown(reply: Reply) -> str:
    if isinstance(reply, ButtonsReply):
        return "\n".join([reply.text, *(b.label for b in reply.buttons)])
    if isinstance(reply, ImageReply):
        return "\n".join(p for p in ("[image]", reply.caption) if p)
    return reply.text if isinstance(reply, TextReply) else repr(reply)


class MockDriver(ChannelDriver):
    """What the mock does not meet is declared in its capabilities (``MOCK_CAPABILITIES.not_met``)."""

    channel: MockChannel

    def __init__(self, capabilities: Capabilities = MOCK_CAPABILITIES) -> None:
        self.declares = capabilities
        self._ids = 0
        self._languages: dict[str, str | None] = {}

    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None:
        self.harness = BotHarness(routers=routers, database_url=database_url, capabilities=self.declares)
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
        return await self.send_text(follower, text)  # nothing is signed: a bad signature is no signature

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


@pytest.fixture
async def undeclared(tmp_path: Path) -> AsyncIterator[tuple[ChannelConformance, MockDriver]]:
    """The kit's checks on a mock whose capabilities declare what it does not keep (or cannot be checked)."""
    driver = MockDriver(replace(MOCK_CAPABILITIES, not_met=(("locale", "pretends to get no language"),
                                                            ("retry", "pretends to handle retries twice"),
                                                            ("typing", "no such point"))))
    await driver.start(database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", routers=[conformance_router({})])
    try:
        yield ChannelConformance(), driver
    finally:
        await driver.stop()


async def test_a_declaration_the_channel_does_not_keep_fails_the_kit(
        undeclared: tuple[ChannelConformance, MockDriver]) -> None:
    kit, driver = undeclared
    with pytest.raises(AssertionError, match="expected \\['hint=None'\\], got \\['hint=en'\\]"):
        await kit.test_the_platform_s_language_hint_picks_the_locale(driver, "en", "en")
    with pytest.raises(AssertionError, match="'typing' is no conformance point"):
        await kit.test_what_the_channel_declares_not_met_is_a_known_point_with_a_reason(driver)


async def test_a_declaration_the_kit_cannot_check_is_skipped_not_passed(
        undeclared: tuple[ChannelConformance, MockDriver]) -> None:
    kit, driver = undeclared
    with pytest.raises(pytest.skip.Exception, match="mock declares 'retry' not met: pretends to handle retries twice"):
        await kit.test_a_platform_retry_is_handled_once(driver, {})
