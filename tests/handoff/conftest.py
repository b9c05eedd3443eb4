"""A bot on the mock channel with one prompt rule, and the inbox's service functions on its database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.admin.inbox import Inbox
from bot.channels.mock import MOCK_CAPABILITIES
from bot.core.capabilities import Capabilities, ReplyWindow
from bot.delivery import OutboxSender
from bot.i18n import default_catalogs
from bot.rules import PromptRuleCache
from bot.storage.models import Follower, Message
from bot.storage.prompts import replace_prompt_rules
from bot.testing import BotHarness
from handlers import default_router
from tests.channels.telegram.conftest import make_rig  # noqa: F401  (the Telegram rig, for test_telegram.py)
from tests.channels.wechat.conftest import make_env  # noqa: F401  (the WeChat rig, for test_wechat.py)

HOURS_RULE = {"name": "hours", "match": {"en": ["hours"], "zh_Hans": ["营业时间"]},
              "reply": {"en": "We are open 10:00-22:00.", "zh_Hans": "我们10:00至22:00营业。",
                        "zh_Hant": "我們10:00至22:00營業。"},
              "priority": 0, "regex": False}
# The mock channel with WeChat's window after a message: 48 hours, 5 sends.
WINDOWED = replace(MOCK_CAPABILITIES, window_after_message=ReplyWindow(timedelta(hours=48), 5),
                   window_after_event=ReplyWindow(timedelta(seconds=60), 3))
TIMEOUT = timedelta(minutes=15)


@dataclass
class Desk:
    """The bot (``harness``), the inbox an agent uses, and the mock channel's outbox sender."""

    harness: BotHarness
    inbox: Inbox
    sender: OutboxSender

    async def follower_row(self, external_id: str) -> Follower:
        async with self.harness.sessions() as s:
            return (await s.execute(select(Follower).where(Follower.external_id == external_id))).scalar_one()

    async def messages(self, external_id: str, direction: str | None = None) -> list[Message]:
        query = select(Message).join(Follower, Follower.id == Message.follower_id).where(
            Follower.external_id == external_id)
        if direction:
            query = query.where(Message.direction == direction)
        async with self.harness.sessions() as s:
            return list((await s.execute(query.order_by(Message.id))).scalars())

    def sent_texts(self, external_id: str) -> list[str]:
        return [getattr(r, "text", "") for r in self.harness.channel.sent[external_id]]


async def make_desk(database_url: str, capabilities: Capabilities = MOCK_CAPABILITIES,
                    **inbox: Any) -> AsyncIterator[Desk]:
    async with BotHarness(routers=[default_router()], database_url=database_url, capabilities=capabilities,
                          default_locale="zh_Hans") as harness:
        async with harness.sessions() as session, session.begin():
            await replace_prompt_rules(session, [HOURS_RULE])
        rules = PromptRuleCache(harness.sessions, ttl=0)
        harness.dispatcher.services.prompt_rules = rules
        desk = Desk(harness, Inbox(harness.sessions, default_catalogs(), {"mock": capabilities},
                                   default_locale="zh_Hans", timeout=TIMEOUT, **inbox),
                    OutboxSender(harness.channel, harness.sessions))
        try:
            yield desk
        finally:
            await desk.sender.stop()


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    async for made in make_desk(database_url):
        yield made


@pytest.fixture
async def windowed_desk(database_url: str) -> AsyncIterator[Desk]:
    async for made in make_desk(database_url, WINDOWED):
        yield made
