"""Platform notices: stored once (a platform retry is a repeat), never answered.

A notice about a follower may change the follower: a location report becomes its last location; a
customer-service session opened on the platform pauses the bot for that follower until the session
closes (``paused_by``, which the dispatcher reads). Notices about the account (a mass send's report)
make no follower of their sender.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.follower import PLATFORM_DESK
from bot.core.inbound import Inbound, Notice

from .dialect import insert_ignore
from .engine import hold_write_gate
from .models import Follower, PlatformNotice

MAX_DETAILS = 16  # fields kept per notice; the adapter picks the ones that matter
MAX_DETAIL_LENGTH = 256


async def record_notice(sessions: async_sessionmaker[AsyncSession], msg: Inbound) -> int | None:
    """Store ``msg`` (a NOTIFICATION) and apply it to its follower; return its row id, None for a repeat."""
    # An adapter that says no more than "a notification" (a test's mock channel) still gets it recorded.
    notice = msg.notice or Notice(event="notification")
    key = msg.message_id or f"{msg.external_id}:{msg.received_at.timestamp()}"
    details = {str(k)[:64]: str(v)[:MAX_DETAIL_LENGTH] for k, v in list(notice.details.items())[:MAX_DETAILS]}
    async with sessions() as session:
        await hold_write_gate(session)
        follower_id = None
        if notice.about_follower:
            follower_id = (await session.execute(select(Follower.id).where(
                Follower.channel == msg.channel, Follower.account == msg.account,
                Follower.external_id == msg.external_id))).scalar_one_or_none()
        # ON CONFLICT DO NOTHING RETURNING: a row id for a new notice, nothing for a platform retry.
        notice_id = (await session.execute(insert_ignore(session, PlatformNotice).values(
            channel=msg.channel, account=msg.account, event=notice.event[:64], dedupe_key=key[:128],
            follower_id=follower_id, subject=notice.subject[:64] if notice.subject else None, details=details,
            received_at=msg.received_at).returning(PlatformNotice.id))).scalar_one_or_none()
        if notice_id is None:
            await session.rollback()
            return None
        if follower_id is not None:
            await _apply(session, follower_id, notice, msg.received_at)
        await session.commit()
        return notice_id


async def _apply(session: AsyncSession, follower_id: int, notice: Notice, received_at: datetime) -> None:
    changes: dict[str, Any] = {}
    if notice.location is not None:
        changes.update(last_latitude=notice.location[0], last_longitude=notice.location[1],
                       last_located_at=received_at)
    if changes:
        await session.execute(update(Follower).where(Follower.id == follower_id).values(**changes))
    if notice.conversation is not None:
        # Events may come out of order (a retry of an earlier one after a later one): only a newer
        # event moves the pause, and an operator's pause is not the platform's to end.
        newer = or_(Follower.paused_at.is_(None), Follower.paused_at <= received_at)
        mine = or_(Follower.paused_by.is_(None), Follower.paused_by == PLATFORM_DESK)
        await session.execute(update(Follower).where(Follower.id == follower_id, newer, mine).values(
            paused_by=PLATFORM_DESK if notice.conversation == "taken" else None, paused_at=received_at))


async def notices_about(session: AsyncSession, *, channel: str, account: str, event: str,
                        subjects: list[str]) -> dict[str, dict[str, Any]]:
    """The details of the first notice of ``event`` about each of ``subjects`` (a mass send's report)."""
    if not subjects:
        return {}
    rows = (await session.execute(select(PlatformNotice.subject, PlatformNotice.details).where(
        PlatformNotice.channel == channel, PlatformNotice.account == account, PlatformNotice.event == event,
        PlatformNotice.subject.in_(subjects)).order_by(PlatformNotice.id))).all()
    found: dict[str, dict[str, Any]] = {}
    for subject, details in rows:
        found.setdefault(subject, dict(details))
    return found
