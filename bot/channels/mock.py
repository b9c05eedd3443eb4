"""A channel with no platform: tests and the terminal console talk to the bot through it.

Replies are answered inline (like a passive reply), degraded to the declared capabilities, and
collected per follower so a test can read them.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any, ClassVar

from bot.core.capabilities import Capabilities
from bot.core.dispatcher import PassiveSlot
from bot.core.inbound import Inbound, Kind
from bot.core.reply import Reply

from .base import Channel, Dispatch

MOCK_CAPABILITIES = Capabilities(max_text_length=4096, buttons=True, max_articles=10, images=True)


class MockChannel(Channel):
    name: ClassVar[str] = "mock"

    def __init__(self, *, dispatch: Dispatch, account: str = "mock", capabilities: Capabilities = MOCK_CAPABILITIES,
                 channel_name: str = "mock") -> None:
        super().__init__(dispatch=dispatch, account=account)
        self.capabilities = capabilities
        self.channel_name = channel_name
        self.transcripts: dict[str, list[Reply]] = defaultdict(list)
        self.sent: dict[str, list[Reply]] = defaultdict(list)  # through send_reply (outbox, broadcasts)
        self._ids = itertools.count(1)

    async def receive(
        self, external_id: str, kind: Kind, text: str = "", *, payload: str | None = None,
        language_hint: str | None = None, message_id: str | None = None, display_name: str | None = None,
    ) -> list[Reply]:
        """Play one action of a follower and return the replies as this channel shows them."""
        msg = Inbound(
            channel=self.channel_name, account=self.account, external_id=external_id, kind=kind, text=text,
            payload=payload, language_hint=language_hint, display_name=display_name,
            message_id=message_id if message_id is not None else f"mock-{next(self._ids)}-{id(self)}",
        )
        result = await self.dispatch(msg, passive=PassiveSlot())
        replies = self.degrade(result.replies)
        self.transcripts[external_id].extend(replies)
        return replies

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        self.sent[external_id].append(reply)
