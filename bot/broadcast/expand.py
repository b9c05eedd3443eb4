"""Create a broadcast and write its outbox rows, one per follower, streaming the audience.

Followers are read in keyset pages (``id > cursor ORDER BY id LIMIT n``); each page's rows and the
new cursor are committed together, so an expansion killed midway resumes where it stopped, and a
re-run writes nothing twice (``dedupe_key = "bc:<broadcast>:<follower>"`` is unique per account).
Memory holds one page, whatever the audience size.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.reply import Button, ButtonsReply, Reply, TextReply
from bot.core.serialize import reply_kind, reply_text, reply_to_dict
from bot.i18n import INTERNATIONAL_LOCALE, N_, Catalogs, default_catalogs, locale_keys
from bot.storage.dialect import affected_rows, insert_ignore
from bot.storage.models import Follower, Message
from bot.storage.status import DeliveryStatus

from .audience import Audience, follower_locale, text_for
from .models import EXPANDING, QUEUED, SENDING, Broadcast

log = logging.getLogger("engagebot.broadcast")

EXPAND_BATCH = 1000
EXPAND_LEASE = timedelta(seconds=60)
# The button a follower presses to claim the promotion a broadcast announces (bot.offers reads the payload).
CLAIM_BUTTON = N_("Get the offer")
OFFER_PAYLOAD_PREFIX = "offer:"  # bot.offers.index.OFFER_PAYLOAD_PREFIX


class BroadcastError(ValueError):
    """An operator's broadcast request is invalid (no text, unknown broadcast...)."""


def dedupe_key(broadcast_id: int, follower_id: int) -> str:
    return f"bc:{broadcast_id}:{follower_id}"


async def create_broadcast(
    session: AsyncSession, *, name: str, texts: Mapping[str, str], audience: Audience,
    default_locale: str, promotion: str | None = None,
) -> Broadcast:
    """Record a broadcast (status ``queued``) in the caller's transaction; nothing is sent yet."""
    texts = {loc: t for loc, t in texts.items() if t and t.strip()}
    if not texts:
        raise BroadcastError("a broadcast needs a text in at least one locale")
    try:
        texts = locale_keys(texts)  # zh-hant, zh-HK... name catalogs too
    except ValueError as exc:
        raise BroadcastError(str(exc)) from None
    broadcast = Broadcast(
        name=name[:128], texts=dict(texts), audience=audience.to_json(), promotion=promotion,
        default_locale=default_locale, status=QUEUED, cursor=0, total=0, counts={}, created_at=utcnow())
    session.add(broadcast)
    await session.flush()
    return broadcast


def render(broadcast: Broadcast, locale: str, catalogs: Catalogs) -> Reply:
    """The reply one follower gets: the operator's text in its locale, plus a claim button for a promotion."""
    text = text_for(broadcast.texts, locale, broadcast.default_locale)
    if broadcast.promotion:
        label = catalogs.gettext(locale, CLAIM_BUTTON)
        return ButtonsReply(text, (Button(label, f"{OFFER_PAYLOAD_PREFIX}{broadcast.promotion}"),))
    return TextReply(text)


async def expand_broadcast(
    sessions: async_sessionmaker[AsyncSession], broadcast_id: int, *, batch_size: int = EXPAND_BATCH,
    lease: timedelta = EXPAND_LEASE, catalogs: Catalogs | None = None,
    international_locale: str = INTERNATIONAL_LOCALE,
) -> bool:
    """Write the broadcast's outbox rows; return False if another expander holds it or it is over.

    Safe to call again after a crash, or from several processes: a lease decides who writes, and
    the unique dedupe key drops whatever a lapsed writer had written already.
    """
    catalogs = catalogs or default_catalogs()
    now = utcnow()
    async with sessions() as session:
        claimed = await session.execute(update(Broadcast).where(
            Broadcast.id == broadcast_id, Broadcast.status.in_((QUEUED, EXPANDING)),
            or_(Broadcast.lease_until.is_(None), Broadcast.lease_until < now),
        ).values(status=EXPANDING, lease_until=now + lease))
        if affected_rows(claimed) != 1:
            return False
        await session.commit()
        broadcast = await session.get(Broadcast, broadcast_id)
        assert broadcast is not None
    audience = Audience.from_json(broadcast.audience)
    cursor = broadcast.cursor
    rendered: dict[str, tuple[dict[str, Any], str, str]] = {}  # per locale: body, text, kind

    def row_for(follower: Any, created: datetime) -> dict[str, Any] | None:
        locale = follower_locale(follower.locale, follower.locale_hint, broadcast.default_locale,
                                 catalogs.locales, international=international_locale)
        if not audience.accepts(locale, follower.tags):
            return None
        if locale not in rendered:
            reply = render(broadcast, locale, catalogs)
            rendered[locale] = (reply_to_dict(reply), reply_text(reply)[:4000], reply_kind(reply))
        body, text, kind = rendered[locale]
        return {"follower_id": follower.id, "channel": follower.channel, "account": follower.account,
                "direction": "out", "kind": kind, "text": text, "body": body,
                "dedupe_key": dedupe_key(broadcast_id, follower.id), "broadcast_id": broadcast_id,
                "status": DeliveryStatus.PENDING, "attempts": 0, "next_attempt_at": None, "created_at": created}

    page = (select(Follower.id, Follower.channel, Follower.account, Follower.locale, Follower.locale_hint,
                   Follower.tags).where(*audience.sql_conditions()).order_by(Follower.id).limit(batch_size))
    while True:
        async with sessions() as session:
            followers = (await session.execute(page.where(Follower.id > cursor))).all()
            now = utcnow()
            if not followers:
                total = (await session.execute(select(func.count()).select_from(Message).where(
                    Message.broadcast_id == broadcast_id))).scalar_one()
                await session.execute(update(Broadcast).where(
                    Broadcast.id == broadcast_id, Broadcast.status == EXPANDING,
                ).values(status=SENDING, lease_until=None, total=total))
                await session.commit()
                log.info("broadcast expanded", extra={"broadcast": broadcast_id, "rows": total})
                return True
            # First touch the broadcast row: a concurrent cancel waits for this page, then cancels it too.
            still_ours = await session.execute(update(Broadcast).where(
                Broadcast.id == broadcast_id, Broadcast.status == EXPANDING,
            ).values(cursor=followers[-1].id, lease_until=now + lease))
            if affected_rows(still_ours) != 1:
                await session.rollback()
                return False  # cancelled meanwhile
            values = [v for f in followers if (v := row_for(f, now)) is not None]
            if values:
                await session.execute(insert_ignore(session, Message, index_elements=["channel", "account", "dedupe_key"]),
                                      values)
            await session.commit()
            cursor = followers[-1].id

