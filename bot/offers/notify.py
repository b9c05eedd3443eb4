"""Tell a follower something when they are not the one writing: an outbox row the channel delivers."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.core.reply import Reply
from bot.core.serialize import reply_kind, reply_text, reply_to_dict
from bot.storage.models import Message
from bot.storage.status import DeliveryStatus


def enqueue_reply(session: AsyncSession, follower: Any, reply: Reply, *, dedupe_key: str | None = None) -> Message:
    """Add a pending outbound row for ``follower``; the channel's OutboxSender sends it after the commit.

    ``next_attempt_at`` is left empty, so the sweeper takes it on its next round; ``dedupe_key``
    (unique per account) keeps a retried grant from being sent twice.
    """
    row = Message(
        follower_id=follower.id, channel=follower.channel, account=follower.account, direction="out",
        kind=reply_kind(reply), text=reply_text(reply)[:4000], body=reply_to_dict(reply), dedupe_key=dedupe_key,
        status=DeliveryStatus.PENDING, attempts=0, next_attempt_at=None, created_at=utcnow(),
    )
    session.add(row)
    return row
