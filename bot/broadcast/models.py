"""Broadcast tables: the announcement itself and the mass sends made for it.

The recipients are not a table of their own: each is an outbound ``Message`` row (the outbox) with
``broadcast_id`` set and ``dedupe_key = "bc:<broadcast>:<follower>"``. The schema is migration 0003.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage.models import Base, BigId

# Broadcast status, in order: written; rows being written; rows written and being sent; nothing pending.
QUEUED, EXPANDING, SENDING, DONE, CANCELLED = "queued", "expanding", "sending", "done", "cancelled"
ACTIVE = (QUEUED, EXPANDING, SENDING)


class Broadcast(Base):
    """An operator's announcement to an audience, in each follower's language."""

    __tablename__ = "broadcast"
    __table_args__ = (Index("ix_broadcast_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    texts: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"en": "...", "zh_Hans": "..."}
    audience: Mapped[dict[str, Any]] = mapped_column(JSON)  # an Audience, as JSON
    promotion: Mapped[str | None] = mapped_column(String(64))  # a promotion slug the message offers
    default_locale: Mapped[str] = mapped_column(String(16))  # for followers with no known language
    status: Mapped[str] = mapped_column(String(16))
    # Expansion: the last follower id written (keyset), and who is writing until when.
    cursor: Mapped[int] = mapped_column(BigId, default=0)
    lease_until: Mapped[datetime | None]
    total: Mapped[int] = mapped_column(Integer, default=0)  # rows written
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # by status, when it ended
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class MassSend(Base):
    """One call of a channel's mass-send API for a broadcast; counted against the platform's quota.

    Written (status ``sending``) before the call, so a crash cannot spend the quota unrecorded;
    ``sent`` or ``failed`` after it. The recipients' rows carry ``reason = "mass:<id>"`` meanwhile.
    """

    __tablename__ = "broadcast_mass_send"
    __table_args__ = (Index("ix_broadcast_mass_send_quota", "channel", "account", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcast.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    platform_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]  # while "sending": when the last call started (a crash leaves it old)
