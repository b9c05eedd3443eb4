"""Send to followers outside the reply window through a channel's mass-send API, within its quota.

The outbox marks such rows ``held`` when the channel declares ``Capabilities.mass_send`` and has a
``send_mass(external_ids, reply, *, context)`` coroutine (returning the platform's message id). Once
a broadcast has nothing left ``pending`` on the channel, its held rows go out in as few calls as the
platform allows: one per distinct text (locale), up to ``max_recipients`` followers each.

Each call is a ``MassSend`` row written (status ``sending``, counted against the quota) before the
call, with its recipients tagged ``reason = "mass:<id>"``; a crash between call and mark leaves it
``sending``, and it is made again after the lease with the same idempotency key
(:func:`mass_key`), which WeChat keeps for 24 hours as ``clientmsgid``: the platform answers that it
has that mass send already instead of sending it twice. When the quota is used up, the rows are
reported ``undeliverable`` with that reason rather than waiting for days.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.serialize import reply_from_dict
from bot.delivery.retry import RetryPolicy
from bot.delivery.sender import MassSender, Sender, can_mass_send, channel_key
from bot.delivery.windows import HELD_FOR_MASS, OUTSIDE_WINDOW
from bot.errors import EngagebotError, QuotaExceeded
from bot.storage.dialect import affected_rows, lock_for_transaction
from bot.storage.models import Follower, Message
from bot.storage.status import DeliveryStatus

from .models import SENDING, Broadcast, MassSend

log = logging.getLogger("engagebot.broadcast.mass")

MASS_LEASE = timedelta(seconds=60)  # a mass send still "sending" after this was cut short: call again
RETRY = RetryPolicy()  # a "try again later" soon enough keeps the call for later; a longer one fails it
QUOTA_USED_UP = f"{OUTSIDE_WINDOW}; the mass-send quota is used up"


def mass_key(mass: Any) -> str:
    """The idempotency key of one mass send: its id and creation time (unique even after a database reset).

    At most 64 bytes, as WeChat's ``clientmsgid`` allows.
    """
    return f"mass:{mass.id}:{int(mass.created_at.timestamp() * 1_000_000)}"


async def run_mass_sends(channel: Sender, sessions: async_sessionmaker[AsyncSession], *,
                         lease: timedelta = MASS_LEASE) -> int:
    """Repeat mass sends left in doubt, then send held rows of broadcasts done with single sends; return calls."""
    if not can_mass_send(channel):
        return 0
    name, account = channel_key(channel)
    calls = 0
    now = utcnow()
    async with sessions() as session:
        stale = (await session.execute(select(MassSend.id).where(
            MassSend.channel == name, MassSend.account == account, MassSend.status == DeliveryStatus.SENDING,
            func.coalesce(MassSend.sent_at, MassSend.created_at) < now - lease))).scalars().all()
        waiting = (await session.execute(select(Message.broadcast_id).distinct().where(
            Message.channel == name, Message.account == account, Message.status == DeliveryStatus.HELD,
            Message.reason == HELD_FOR_MASS))).scalars().all()
    for mass_id in stale:
        await _call(channel, sessions, mass_id, retake_before=now - lease)
        calls += 1
    for broadcast_id in waiting:
        if broadcast_id is not None:  # held rows all belong to a broadcast; the column allows NULL
            calls += await _send_broadcast(channel, sessions, broadcast_id)
    return calls


async def _send_broadcast(channel: Sender, sessions: async_sessionmaker[AsyncSession], broadcast_id: int) -> int:
    name, account = channel_key(channel)
    quota = channel.capabilities.mass_send
    assert quota is not None
    mine = (Message.broadcast_id == broadcast_id, Message.channel == name, Message.account == account)
    calls = 0
    while True:
        async with sessions() as session:
            status = (await session.execute(select(Broadcast.status).where(Broadcast.id == broadcast_id))).scalar()
            if status != SENDING:
                return calls  # still expanding (wait), or cancelled
            if (await session.execute(select(Message.id).where(
                    *mine, Message.status == DeliveryStatus.PENDING).limit(1))).first():
                return calls  # single sends first: some of these followers may still be reached directly
            texts = (await session.execute(select(Message.text).where(
                *mine, Message.status == DeliveryStatus.HELD, Message.reason == HELD_FOR_MASS,
            ).limit(1))).scalars().all()
            if not texts:
                return calls
            await _lock_quota(session, name, account)
            now = utcnow()
            used = (await session.execute(select(func.count()).select_from(MassSend).where(
                MassSend.channel == name, MassSend.account == account,
                MassSend.created_at > now - quota.period))).scalar_one()
            if used >= quota.per_period:
                result = await session.execute(update(Message).where(
                    *mine, Message.status == DeliveryStatus.HELD, Message.reason == HELD_FOR_MASS,
                ).values(status=DeliveryStatus.UNDELIVERABLE, reason=QUOTA_USED_UP),
                    execution_options={"synchronize_session": False})
                await session.commit()
                log.warning("mass-send quota used up", extra={"channel": name, "broadcast": broadcast_id,
                                                              "rows": affected_rows(result)})
                return calls
            mass = MassSend(broadcast_id=broadcast_id, channel=name, account=account, text=texts[0], recipients=0,
                            status=DeliveryStatus.SENDING, created_at=now)
            session.add(mass)
            await session.flush()
            batch = (select(Message.id).where(*mine, Message.status == DeliveryStatus.HELD,
                                              Message.reason == HELD_FOR_MASS, Message.text == texts[0])
                     .order_by(Message.id).limit(quota.max_recipients))
            tagged = await session.execute(update(Message).where(Message.id.in_(batch)).values(
                reason=f"mass:{mass.id}"), execution_options={"synchronize_session": False})
            mass.recipients = affected_rows(tagged)
            await session.commit()  # quota spent and recipients chosen before the call
            mass_id = mass.id
        await _call(channel, sessions, mass_id)
        calls += 1


async def _call(channel: Sender, sessions: async_sessionmaker[AsyncSession], mass_id: int, *,
                retake_before: datetime | None = None) -> None:
    """Make (or repeat, ``retake_before`` given) one mass send, then record its outcome on its rows."""
    tag = f"mass:{mass_id}"
    async with sessions() as session:
        # Taken for this call (``sent_at`` is when a call started while it is "sending"): another worker
        # repeats it only once this call is older than the lease, i.e. was cut short by a crash.
        free = (MassSend.sent_at.is_(None) if retake_before is None
                else func.coalesce(MassSend.sent_at, MassSend.created_at) < retake_before)
        taken = await session.execute(update(MassSend).where(MassSend.id == mass_id,
                                                             MassSend.status == DeliveryStatus.SENDING, free)
                                      .values(sent_at=utcnow()).returning(MassSend.created_at))
        created_at = taken.scalar()
        await session.commit()
        if created_at is None:
            return  # finished meanwhile by another worker
        rows = (await session.execute(select(Follower.external_id, Message.body).join(
            Follower, Follower.id == Message.follower_id).where(Message.reason == tag,
                                                                Message.status == DeliveryStatus.HELD)
            .order_by(Message.id))).all()
        if not rows:
            await session.execute(update(MassSend).where(MassSend.id == mass_id).values(
                status=DeliveryStatus.SENT, sent_at=utcnow()))
            await session.commit()
            return
        reply = channel.degrade([reply_from_dict(rows[0].body or {})])[0]
        external_ids = [r.external_id for r in rows]
    sender: MassSender = channel  # type: ignore[assignment]  # reached only for a channel can_mass_send() accepted
    key = mass_key(MassSend(id=mass_id, created_at=created_at))
    try:
        platform_id = await sender.send_mass(external_ids, reply, context={"idempotency_key": key, "mass_send_id": mass_id})
    except QuotaExceeded as exc:
        if RETRY.postpones_mass_send(exc):
            log.info("mass send postponed", extra={"channel": channel.name, "mass_send": mass_id, "error": str(exc)})
            return  # still "sending": called again (same key) once its lease has passed
        await _fail(sessions, mass_id, tag, exc)
        log.warning("mass send failed", extra={"channel": channel.name, "mass_send": mass_id, "error": str(exc)})
        return
    except EngagebotError as exc:
        await _fail(sessions, mass_id, tag, exc)
        log.warning("mass send failed", extra={"channel": channel.name, "mass_send": mass_id, "error": str(exc)})
        return
    now = utcnow()
    async with sessions() as session:
        await session.execute(update(MassSend).where(MassSend.id == mass_id).values(
            status=DeliveryStatus.SENT, platform_id=str(platform_id)[:64] if platform_id else None, sent_at=now))
        await session.execute(update(Message).where(
            Message.reason == tag, Message.status.in_((DeliveryStatus.HELD, DeliveryStatus.CANCELLED))).values(
            status=DeliveryStatus.SENT, sent_at=now, reason=f"mass send {platform_id or mass_id}"[:255], next_attempt_at=None),
            execution_options={"synchronize_session": False})
        await session.commit()


async def _fail(sessions: async_sessionmaker[AsyncSession], mass_id: int, tag: str, exc: Exception) -> None:
    async with sessions() as session:
        await session.execute(update(MassSend).where(MassSend.id == mass_id).values(
            status=DeliveryStatus.FAILED, reason=str(exc)[:255]))
        await session.execute(update(Message).where(Message.reason == tag, Message.status == DeliveryStatus.HELD).values(
            status=DeliveryStatus.FAILED, reason=f"mass send failed: {exc}"[:255]),
            execution_options={"synchronize_session": False})
        await session.commit()


async def _lock_quota(session: AsyncSession, channel: str, account: str) -> None:
    """Serialize quota checks per account on PostgreSQL (SQLite serializes writers already)."""
    await lock_for_transaction(session, zlib.crc32(f"mass:{channel}:{account}".encode()))
