"""Telegram passes the conformance kit against the Bot API simulator, in webhook mode (signed by the secret token).

Telegram reads no reply from the webhook's answer: every reply goes through the send API, so the
passive-deadline point is checked as declared (``passive_reply_deadline`` None), and the reply windows too
(Telegram has none; the outbox paces the sends by the declared rates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import pytest

from bot.channels.telegram import TelegramChannel
from bot.core.router import Router
from bot.testing import BotHarness
from bot.testing.conformance import ChannelConformance, ChannelDriver, wait_for_texts
from tests.channels.telegram.conftest import SECRET, Rig

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
LANGUAGES = {"en": "en", "zh_Hans": "zh-hans"}  # the user's app language, as Telegram gives it


def shown(message: dict[str, Any]) -> str:
    buttons = [b["text"] for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
    text = message.get("text") or message.get("caption") or ""
    return "\n".join([*(["[image]"] if message.get("photo") else []), text, *buttons])


class TelegramDriver(ChannelDriver):
    channel: TelegramChannel

    async def start(self, *, database_url: str, routers: Sequence[Router]) -> None:
        self.harness = BotHarness(routers=routers, database_url=database_url)
        await self.harness.__aenter__()
        self.sessions = self.harness.sessions
        self.rig = Rig(self.harness, mode="webhook")
        await self.rig.start()
        self.channel = self.rig.channel
        self.starts: dict[str, int] = {}

    async def stop(self) -> None:
        await self.rig.close()
        await self.harness.__aexit__(None, None, None)

    async def follower(self, *, language: str | None = None) -> str:
        user = self.rig.sim.add_user(language_code=LANGUAGES.get(language or "", language), started=False)
        self.starts[str(user)] = self.rig.sim.start(user)["message"]["message_id"]
        return str(user)

    async def _post(self, update: dict[str, Any], *, secret: str = SECRET) -> int:
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.rig.base}/telegram", json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": secret}) as resp:
            return resp.status

    async def send_text(self, follower: str, text: str) -> int:
        self.rig.sim.send_text(int(follower), text)  # the simulator posts it to the webhook
        return 200

    async def send_badly_signed(self, follower: str, text: str) -> int:
        update = {"update_id": 990_000_001, "message": {
            "message_id": 1, "date": 1_700_000_000, "text": text,
            "chat": {"id": int(follower), "type": "private", "first_name": "Stranger"},
            "from": {"id": int(follower), "is_bot": False, "first_name": "Stranger"}}}
        return await self._post(update, secret="not_" + SECRET)

    async def send_retry(self, follower: str, text: str) -> None:
        update = self.rig.sim.send_text(int(follower), text)  # delivered once by the simulator...
        await self.received(follower, 1)
        assert await self._post(update) == 200  # ...and again, as Telegram does when an answer was lost

    async def send_notification(self, follower: str) -> int:
        self.rig.sim.edit_text(int(follower), self.starts[follower], "/start again")  # an edit: recorded, unanswered
        return 200

    async def send_unreadable(self, follower: str) -> int:
        self.rig.sim.send_sticker(int(follower))
        return 200

    async def received(self, follower: str, count: int, *, timeout: float = 10) -> list[str]:
        return await wait_for_texts(lambda: [shown(m) for m in self.rig.sim.sent(int(follower))], count,
                                    timeout=timeout)


class TestTelegramConformance(ChannelConformance):
    @pytest.fixture
    def conformance_driver(self) -> ChannelDriver:
        return TelegramDriver()
