"""Helpers for broadcast tests: followers in bulk, and a channel that records when it sent what."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import Audience, create_broadcast, expand_broadcast
from bot.channels.base import Channel
from bot.core.capabilities import Capabilities
from bot.core.clock import utcnow
from bot.core.reply import Reply
from bot.core.serialize import reply_text
from bot.storage.models import Follower, Message


async def add_followers(sessions: async_sessionmaker[AsyncSession], count: int, *, start: int = 0,
                        channel: str = "fake", account: str = "acct", **fields: Any) -> None:
    """Insert ``count`` following followers ``f<start>``... with these column values, in pages."""
    now = utcnow()
    base = dict(channel=channel, account=account, following=True, tags=[], state_data={}, window_sends=0,
                created_at=now, followed_at=now)
    base.update(fields)
    async with sessions() as session:
        for first in range(start, start + count, 1000):
            await session.execute(insert(Follower), [
                {**base, "external_id": f"f{i}"} for i in range(first, min(first + 1000, start + count))])
        await session.commit()


async def start_broadcast(sessions: async_sessionmaker[AsyncSession], *, texts: dict[str, str] | None = None,
                          audience: Audience = Audience()) -> int:
    """Create a broadcast and write its outbox rows; return its id."""
    async with sessions() as session:
        broadcast = await create_broadcast(session, name="t", texts=texts or {"en": "Hi", "zh_Hans": "嗨"},
                                           audience=audience, default_locale="en")
        await session.commit()
        broadcast_id = broadcast.id
    await expand_broadcast(sessions, broadcast_id)
    return broadcast_id


async def statuses(sessions: async_sessionmaker[AsyncSession], broadcast_id: int) -> dict[str, int]:
    async with sessions() as session:
        rows = (await session.execute(select(Message.status, func.count()).where(
            Message.broadcast_id == broadcast_id).group_by(Message.status))).all()
    return {s: n for s, n in rows}


async def rows_by_external_id(sessions: async_sessionmaker[AsyncSession], broadcast_id: int) -> dict[str, Any]:
    async with sessions() as session:
        rows = (await session.execute(select(Follower.external_id, Message.text, Message.status, Message.reason)
                                      .join(Follower, Follower.id == Message.follower_id)
                                      .where(Message.broadcast_id == broadcast_id))).all()
    return {r.external_id: r for r in rows}


async def _never(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("this channel receives nothing")


class RecordingChannel(Channel):
    """A channel that records each send with its loop time; optionally slow, optionally mass-sending."""

    name: ClassVar[str] = "fake"

    def __init__(self, capabilities: Capabilities = Capabilities(), *, account: str = "acct",
                 latency: float = 0.0) -> None:
        super().__init__(dispatch=_never, account=account)
        self.capabilities = capabilities
        self.latency = latency
        self.sends: list[tuple[float, str, str, str | None]] = []  # (time, external id, text, key)
        self.mass_sends: list[tuple[list[str], str, str]] = []  # (external ids, text, key)

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        sent_at = asyncio.get_running_loop().time()  # when the request leaves: what the platform counts
        if self.latency:
            await asyncio.sleep(self.latency)
        self.sends.append((sent_at, external_id, reply_text(reply), (context or {}).get("idempotency_key")))

    async def send_mass(self, external_ids: Sequence[str], reply: Reply, *, context: dict[str, Any]) -> str:
        self.mass_sends.append((list(external_ids), reply_text(reply), context["idempotency_key"]))
        return f"m{len(self.mass_sends)}"

    def recipients(self) -> list[str]:
        return [s[1] for s in self.sends]


def ago(**kwargs: float) -> datetime:
    return utcnow() - timedelta(**kwargs)
