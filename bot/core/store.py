"""What the dispatcher needs from persistence; ``bot.storage`` implements it.

Core defines the contract so it stays free of storage imports (the arrows of the architecture
point down); tests may hand in any object that fulfils it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from .follower import FollowerRecord
from .inbound import Inbound
from .replay_check import ReplayCheck
from .reply import Reply


@dataclass(slots=True)
class Exchange:
    """An inbound message and what was answered to it, as stored.

    The first ``passive_count`` replies go inline in the platform's HTTP answer; the rest are
    outbox rows (``pending_ids``) for the channel's send API.
    """

    inbound_id: int
    replies: list[Reply]
    outbound_ids: list[int]
    passive_count: int
    follower_id: int

    @property
    def passive_replies(self) -> list[Reply]:
        return self.replies[: self.passive_count]

    @property
    def pending_ids(self) -> list[int]:
        return self.outbound_ids[self.passive_count:]


class DuplicateExchange(Exception):
    """Another worker stored the same platform message first."""


class Store(Protocol):
    def session(self, *, replay_check: ReplayCheck | None = None) -> AsyncSession:
        """A new session (an async context manager too); the dispatcher opens one for a message only
        when a handler uses ``ctx.session``, and closes it after the message. With ``replay_check``,
        its first statement waits until the check is settled (and fails with ``ReplayError`` for a replay)."""

    async def find_exchange(self, msg: Inbound) -> Exchange | None:
        """Return what was stored for this platform message already, if anything."""

    async def load(self, msg: Inbound) -> tuple[FollowerRecord, Exchange | None]:
        """Return the follower who sent ``msg`` (created on first contact, once ``msg.replay_check`` is
        settled) and, when ``msg`` is a platform retry of a stored message, what was stored for it."""

    async def record_notice(self, msg: Inbound) -> int | None:
        """Store a platform notification (kind NOTIFICATION) once and apply it to its follower (a location
        report, a paused conversation); return its id, or None when it was stored already."""

    def apply_action(self, follower: FollowerRecord, msg: Inbound, *, reply_window_kind: str | None) -> None:
        """Update the follower for what it just did (follow, unfollow, first touch, reply window)."""

    async def record_exchange(
        self, session: AsyncSession | None, msg: Inbound, follower: FollowerRecord, replies: list[Reply], *,
        passive_count: int,
    ) -> Exchange:
        """Store the inbound message, the replies (the first ``passive_count`` as answered inline, the
        rest as pending outbox rows) and the follower's changes; commit. ``session`` is the message's
        session if a handler opened one (what it wrote commits with the exchange), else None.

        Raises DuplicateExchange when the platform message was stored by someone else meanwhile. With
        ``msg.replay_check``, its row is written in the same transaction when it is still open (else it
        is waited for first); a replay raises ``ReplayError`` and nothing is stored.
        """
