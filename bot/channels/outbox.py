"""Deliver outbox rows through a channel's send API: within the reply window, once, with retries.

An outbound row is written (status ``pending``, leased to its writer) in the same commit as the
message it answers, before any send. The sender marks it ``sent``, ``failed`` or ``undeliverable``
after the attempt; a row whose lease ran out (the process died mid-send) is picked up again by the
sweeper. The reply window is counted in the database with a conditional update, so several
instances never together exceed what the platform allows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.inbound import utcnow
from bot.core.serialize import reply_from_dict
from bot.errors import FollowerGone, OutsideReplyWindow, PlatformAPIError, QuotaExceeded
from bot.storage.models import Follower, Message

from .base import Channel

log = logging.getLogger("engagebot.outbox")

MAX_ATTEMPTS = 8
LEASE = timedelta(seconds=60)


def window_for(caps: Capabilities, kind: str | None) -> ReplyWindow | None:
    if kind == "event":
        return caps.window_after_event
    if kind == "message":
        return caps.window_after_message
    return None


async def take_window_slot(session: AsyncSession, caps: Capabilities, follower_id: int, now: datetime) -> str | None:
    """Count one send against the follower's reply window; return why not when the platform would refuse."""
    if caps.window_after_message is None and caps.window_after_event is None:
        return None
    row = (await session.execute(select(Follower.last_action_kind, Follower.following).where(
        Follower.id == follower_id))).first()
    if row is None:
        return "unknown follower"
    if not row.following:
        return "follower unfollowed"
    window = window_for(caps, row.last_action_kind)
    if window is None:
        return "no reply window open"
    conditions = [Follower.id == follower_id, Follower.last_action_at > now - window.duration]
    if window.max_sends is not None:
        conditions.append(Follower.window_sends < window.max_sends)
    result = await session.execute(
        update(Follower).where(*conditions).values(window_sends=Follower.window_sends + 1))
    if result.rowcount == 1:
        return None
    return "reply window closed" if window.max_sends is None else "reply window closed or its send count used up"


class OutboxSender:
    """Sends a channel's outbox rows; also sweeps rows left behind by a crash."""

    def __init__(self, channel: Channel, sessions: async_sessionmaker[AsyncSession], *, sweep_every: float = 5.0) -> None:
        self.channel = channel
        self.sessions = sessions
        self.sweep_every = sweep_every
        self._sweeper: asyncio.Task[None] | None = None

    async def deliver(self, message_ids: Sequence[int], *, context: dict[str, Any] | None = None) -> None:
        """Send these rows now, in order (they answer one message and must arrive in sequence)."""
        for message_id in message_ids:
            await self._deliver_one(message_id, context=context)

    async def _deliver_one(self, message_id: int, *, context: dict[str, Any] | None) -> None:
        caps = self.channel.capabilities
        async with self.sessions() as session:
            row = (await session.execute(
                select(Message, Follower.external_id).join(Follower, Follower.id == Message.follower_id)
                .where(Message.id == message_id, Message.status == "pending"))).first()
            if row is None:
                return  # sent already by another worker, or cancelled
            message, external_id = row
            now = utcnow()
            refusal = await take_window_slot(session, caps, message.follower_id, now)
            if refusal is not None:
                await _finish(session, message, "undeliverable", refusal)
                return
            message.attempts += 1
            await session.commit()  # the window slot and the attempt are counted before the send
            try:
                for reply in self.channel.degrade([reply_from_dict(message.body or {})]):
                    await self.channel.send_reply(external_id, reply, context=context)
            except QuotaExceeded as exc:
                delay = exc.retry_after or min(2 ** message.attempts, 300)
                if message.attempts >= MAX_ATTEMPTS:
                    await _finish(session, message, "failed", f"quota: {exc}")
                else:
                    message.next_attempt_at = utcnow() + timedelta(seconds=delay)
                    message.reason = f"retry: {exc}"[:255]
                    await session.commit()
                return
            except OutsideReplyWindow as exc:
                await _finish(session, message, "undeliverable", str(exc) or "reply window closed")
                return
            except FollowerGone as exc:
                await session.execute(update(Follower).where(Follower.id == message.follower_id)
                                      .values(following=False, unfollowed_at=utcnow()))
                await _finish(session, message, "undeliverable", str(exc) or "follower gone")
                return
            except PlatformAPIError as exc:
                await _finish(session, message, "failed", str(exc))
                return
            await _finish(session, message, "sent", None)

    async def sweep_once(self, *, limit: int = 200) -> int:
        """Claim and deliver pending rows whose lease or retry time has passed; return how many."""
        now = utcnow()
        async with self.sessions() as session:
            ids = (await session.execute(
                select(Message.id).where(
                    Message.status == "pending", Message.channel == self.channel.name,
                    Message.direction == "out",
                    or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now))
                .order_by(Message.id).limit(limit))).scalars().all()
            claimed: list[int] = []
            for message_id in ids:
                # Conditional update: of several instances sweeping, exactly one takes each row.
                result = await session.execute(update(Message).where(
                    Message.id == message_id, Message.status == "pending",
                    or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
                ).values(next_attempt_at=now + LEASE))
                if result.rowcount == 1:
                    claimed.append(message_id)
            await session.commit()
        await self.deliver(claimed)
        return len(claimed)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep sweeping: one bad row or a DB hiccup must not stop delivery
                log.exception("outbox sweep failed", extra={"channel": self.channel.name})
            await asyncio.sleep(self.sweep_every)

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"outbox-{self.channel.name}")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None


async def _finish(session: AsyncSession, message: Message, status: str, reason: str | None) -> None:
    message.status = status
    message.reason = reason[:255] if reason else None
    message.next_attempt_at = None
    if status == "sent":
        message.sent_at = utcnow()
    await session.commit()
    if status != "sent":
        log.warning("outbound not delivered", extra={"channel": message.channel, "message_id": message.id,
                                                    "status": status, "reason": reason})
