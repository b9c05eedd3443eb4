"""How far a broadcast got, cancelling one, and closing those with nothing left to send."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.delivery.windows import HELD_FOR_MASS
from bot.storage.dialect import affected_rows
from bot.storage.models import Message
from bot.storage.notices import notices_about
from bot.storage.status import UNSENT, DeliveryStatus

from .models import ACTIVE, CANCELLED, DONE, SENDING, Broadcast, MassSend

UNSETTLED = UNSENT  # rows that may still be sent


@dataclass(slots=True)
class Progress:
    """Counts of one broadcast's rows by status, and the commonest reasons for those not sent."""

    broadcast_id: int
    name: str
    status: str
    total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    reasons: list[tuple[str, str | None, int]] = field(default_factory=list)  # (status, reason, rows)
    # Sent again after a crash left their first try in doubt, on a platform that cannot drop repeats.
    possibly_twice: int = 0

    @property
    def sent(self) -> int:
        return self.by_status.get(DeliveryStatus.SENT, 0)

    @property
    def failed(self) -> int:
        return self.by_status.get(DeliveryStatus.FAILED, 0)

    @property
    def undeliverable(self) -> int:
        return self.by_status.get(DeliveryStatus.UNDELIVERABLE, 0)

    @property
    def cancelled(self) -> int:
        return self.by_status.get(DeliveryStatus.CANCELLED, 0)

    @property
    def pending(self) -> int:
        return sum(self.by_status.get(s, 0) for s in UNSETTLED)

    @property
    def settled(self) -> int:
        return self.total - self.pending


async def progress(session: AsyncSession, broadcast_id: int, *, reasons: int = 5) -> Progress | None:
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None:
        return None
    rows = (await session.execute(select(Message.status, func.count()).where(
        Message.broadcast_id == broadcast_id).group_by(Message.status))).all()
    by_status = {status: n for status, n in rows}
    result = Progress(broadcast.id, broadcast.name, broadcast.status, sum(by_status.values()), by_status)
    result.possibly_twice = (await session.execute(select(func.count()).select_from(Message).where(
        Message.broadcast_id == broadcast_id, Message.status == DeliveryStatus.SENT,
        Message.resent_in_doubt.is_(True)))).scalar_one()
    if reasons:
        result.reasons = [(s, r, n) for s, r, n in (await session.execute(
            select(Message.status, Message.reason, func.count().label("n")).where(
                Message.broadcast_id == broadcast_id,
                Message.status.in_((DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERABLE)))
            .group_by(Message.status, Message.reason).order_by(func.count().desc()).limit(reasons))).all()]
    return result


MASS_REPORT_EVENT = "masssendjobfinish"  # WeChat's report of a finished mass send (a platform notice)


@dataclass(slots=True)
class MassReport:
    """One mass-send call of a broadcast and what the platform reported of it, once it did."""

    mass_id: int
    channel: str
    account: str
    recipients: int
    status: str
    platform_id: str | None
    report: dict[str, str] | None  # Status, TotalCount, FilterCount, SentCount, ErrorCount

    def describe(self) -> str:
        head = f"mass send #{self.mass_id} on {self.channel}/{self.account}: {self.recipients} recipients, {self.status}"
        if self.platform_id is None:
            return head
        if self.report is None:
            return f"{head}; the platform has not reported on it yet"
        r = self.report
        counts = ", ".join(f"{label} {r[key]}" for key, label in (
            ("TotalCount", "total"), ("FilterCount", "after the platform's filter"), ("SentCount", "sent"),
            ("ErrorCount", "errors")) if key in r)
        return f"{head}; platform report: {r.get('Status', '?')}" + (f" ({counts})" if counts else "")


async def mass_reports(session: AsyncSession, broadcast_id: int) -> list[MassReport]:
    """The broadcast's mass sends with the platform's report of each (recorded from its notification)."""
    masses = (await session.execute(select(MassSend).where(MassSend.broadcast_id == broadcast_id)
                                    .order_by(MassSend.id))).scalars().all()
    reports: dict[tuple[str, str], dict[str, dict[str, str]]] = {}
    for key in {(m.channel, m.account) for m in masses}:
        ids = [m.platform_id for m in masses if (m.channel, m.account) == key and m.platform_id]
        reports[key] = await notices_about(session, channel=key[0], account=key[1], event=MASS_REPORT_EVENT,
                                           subjects=ids)
    return [MassReport(m.id, m.channel, m.account, m.recipients, m.status, m.platform_id,
                       reports[(m.channel, m.account)].get(m.platform_id) if m.platform_id else None)
            for m in masses]


async def recent_broadcasts(session: AsyncSession, *, limit: int = 10) -> Sequence[Broadcast]:
    return (await session.execute(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit))).scalars().all()


async def cancel_broadcast(session: AsyncSession, broadcast_id: int) -> int | None:
    """Stop a broadcast: its unsent rows become ``cancelled``; return how many, or None if it was over.

    Commits. A send already handed to the platform when this runs is still recorded as sent.
    """
    now = utcnow()
    stopped = await session.execute(update(Broadcast).where(
        Broadcast.id == broadcast_id, Broadcast.status.in_(ACTIVE),
    ).values(status=CANCELLED, lease_until=None, finished_at=now))
    if affected_rows(stopped) != 1:
        await session.rollback()
        return None
    # Rows already handed to a mass send (reason "mass:<id>") stay: that call may have reached the platform.
    result = await session.execute(update(Message).where(
        Message.broadcast_id == broadcast_id,
        or_(Message.status == DeliveryStatus.PENDING,
            and_(Message.status == DeliveryStatus.HELD, Message.reason == HELD_FOR_MASS)),
    ).values(status=DeliveryStatus.CANCELLED, reason="broadcast cancelled", next_attempt_at=None),
        execution_options={"synchronize_session": False})
    await _store_counts(session, broadcast_id)
    await session.commit()
    return affected_rows(result)


async def _store_counts(session: AsyncSession, broadcast_id: int) -> None:
    """Keep the counts on the broadcast row, in the caller's transaction (the list reads them cheaply)."""
    rows = (await session.execute(select(Message.status, func.count()).where(
        Message.broadcast_id == broadcast_id).group_by(Message.status))).all()
    counts = {status: n for status, n in rows}
    await session.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(
        counts=counts, total=sum(counts.values())))


async def finish_done(session: AsyncSession) -> list[int]:
    """Mark ``done`` every sending broadcast with no row left to send; return their ids."""
    unsettled = select(Message.id).where(Message.broadcast_id == Broadcast.id, Message.status.in_(UNSETTLED))
    ids = (await session.execute(select(Broadcast.id).where(
        Broadcast.status == SENDING, ~unsettled.exists()))).scalars().all()
    finished = []
    for broadcast_id in ids:
        result = await session.execute(update(Broadcast).where(
            Broadcast.id == broadcast_id, Broadcast.status == SENDING,
        ).values(status=DONE, finished_at=utcnow()))
        if affected_rows(result) == 1:
            await _store_counts(session, broadcast_id)
            finished.append(broadcast_id)
        await session.commit()
    return finished


def render_progress(p: Progress, *, width: int = 30) -> str:
    """One terminal line: a bar (sent, not delivered, still pending) and the counts."""
    total = max(p.total, 1)
    sent = round(width * p.sent / total)
    missed = round(width * (p.failed + p.undeliverable + p.cancelled) / total)
    missed = min(missed, width - sent)
    bar = "█" * sent + "▒" * missed + "░" * (width - sent - missed)
    percent = 100 * p.settled / total if p.total else 100.0
    parts = [f"sent {p.sent}", f"failed {p.failed}", f"undeliverable {p.undeliverable}", f"pending {p.pending}"]
    if p.cancelled:
        parts.append(f"cancelled {p.cancelled}")
    doubt = f"; possibly sent twice {p.possibly_twice}" if p.possibly_twice else ""
    return (f"#{p.broadcast_id} {p.name[:24]:<24} [{bar}] {percent:5.1f}%  {' · '.join(parts)} of {p.total}{doubt}"
            f"  ({p.status})")


__all__ = ["CANCELLED", "DONE", "MassReport", "Progress", "mass_reports", "cancel_broadcast", "finish_done", "progress", "recent_broadcasts",
           "render_progress"]
