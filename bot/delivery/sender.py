"""What the delivery engine needs of a channel: its name, account, capabilities and send API.

A structural type, so delivery depends on nothing above it: any ``bot.channels.base.Channel``
fits, and so does a test's recording channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from bot.core.capabilities import Capabilities
from bot.core.reply import Reply


class Sender(Protocol):
    """A channel account's send side (``bot.channels.base.Channel`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def account(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def degrade(self, replies: Sequence[Reply]) -> list[Reply]:
        """Render rich replies into what this channel can show."""
        ...

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        """Send one reply; raise ``QuotaExceeded``, ``OutsideReplyWindow``, ``FollowerGone`` or ``PlatformAPIError``."""
        ...


class MassSender(Protocol):
    """A channel with a mass-send API (``Capabilities.mass_send`` declared)."""

    async def send_mass(self, external_ids: list[str], reply: Reply, *, context: dict[str, Any]) -> str | None: ...


def channel_key(channel: Sender) -> tuple[str, str]:
    """The (channel, account) its outbox rows carry: the name a channel writes into ``Inbound.channel``."""
    return getattr(channel, "channel_name", None) or channel.name, channel.account


def can_mass_send(channel: Sender) -> bool:
    return channel.capabilities.mass_send is not None and callable(getattr(channel, "send_mass", None))


__all__ = ["MassSender", "Sender", "can_mass_send", "channel_key"]
