"""Broadcasts for the CLI and the admin API: start (queued, for the broadcast worker to expand and send),
progress, cancel; each write audited in its transaction. The sending itself is ``bot.broadcast``'s."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.broadcast.audience import Audience
from bot.broadcast.expand import BroadcastError, create_broadcast
from bot.broadcast.models import Broadcast
from bot.broadcast.status import Progress, cancel_broadcast, progress
from bot.i18n import N_
from bot.offers.loader import get_promotion

from .audit import Actor, record
from .errors import Conflict, Invalid, NotFound, Term
from .schemas import BroadcastStart


def audience_of(body: BroadcastStart, timezone: str) -> Audience:
    """``since`` is a day in the operator's time zone (``--since``), from its start."""
    since = datetime.combine(body.since, time(0, 0), tzinfo=ZoneInfo(timezone)).astimezone(UTC) \
        if body.since else None
    return Audience(channels=tuple(body.channels), locales=tuple(body.locales), tags=tuple(body.tags),
                    sources=tuple(body.sources), followed_since=since)


async def start_broadcast(session: AsyncSession, actor: Actor, body: BroadcastStart, *, default_locale: str,
                          timezone: str) -> Broadcast:
    """Record a queued broadcast in the caller's transaction; a broadcast worker writes and sends its rows."""
    if body.promotion and await get_promotion(session, body.promotion) is None:
        raise Invalid("promotion", N_("no promotion {slug!r}; load it first"), slug=body.promotion)
    audience = audience_of(body, timezone)
    try:
        broadcast = await create_broadcast(session, name=body.name, texts=body.texts, audience=audience,
                                           default_locale=default_locale, promotion=body.promotion)
    except BroadcastError as exc:
        raise Invalid("texts", str(exc)) from None
    await record(session, actor, "broadcast.start", f"broadcast:{broadcast.id}",
                 after={"name": broadcast.name, "texts": broadcast.texts, "audience": broadcast.audience,
                        "promotion": broadcast.promotion})
    return broadcast


async def get_broadcast(session: AsyncSession, broadcast_id: int) -> Broadcast:
    broadcast = await session.get(Broadcast, broadcast_id, populate_existing=True)
    if broadcast is None:
        raise NotFound(N_("no broadcast {id}"), id=broadcast_id)
    return broadcast


async def list_broadcasts(session: AsyncSession, *, limit: int, before_id: int | None = None) -> Sequence[Broadcast]:
    """Newest first."""
    query = select(Broadcast).order_by(Broadcast.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Broadcast.id < before_id)
    return (await session.execute(query)).scalars().all()


async def broadcast_record(session: AsyncSession, broadcast: Broadcast) -> dict[str, Any]:
    """The broadcast with its live progress (rows by status, read now)."""
    p = await progress(session, broadcast.id, reasons=0)
    assert p is not None
    return _record(broadcast, p)


def _record(b: Broadcast, p: Progress) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "status": p.status, "texts": dict(b.texts), "audience": dict(b.audience),
            "promotion": b.promotion, "created_at": b.created_at, "finished_at": b.finished_at, "total": p.total,
            "sent": p.sent, "pending": p.pending, "failed": p.failed, "undeliverable": p.undeliverable,
            "cancelled": p.cancelled, "by_status": dict(p.by_status)}


async def cancel(session: AsyncSession, actor: Actor, broadcast_id: int) -> int:
    """Stop a broadcast (nothing more is sent), audited; Conflict when it is over. Commits."""
    broadcast = await get_broadcast(session, broadcast_id)
    status = broadcast.status
    await record(session, actor, "broadcast.cancel", f"broadcast:{broadcast_id}", before={"status": status})
    stopped = await cancel_broadcast(session, broadcast_id)  # commits the audit row with the cancel
    if stopped is None:
        raise Conflict(N_("broadcast {id} is over ({status}): nothing to cancel"), id=broadcast_id,
                       status=Term(status))
    return stopped
