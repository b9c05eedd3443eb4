"""The Weibo megaphone: public comments and @mentions answered once, in public, within an hourly cap.

Every ``poll_interval`` seconds the one instance holding the lease (``weibo_poll_state``) lists
``comments/to_me`` and ``statuses/mentions`` since its cursors, oldest first. Each item is:

1. recorded (``weibo_public_reply``, unique per account and item) before anything else;
2. settled: ``skipped`` (the brand's own, no rule or offer keyword matches, the hourly cap reached,
   with the reason), ``sent`` (one public reply of at most 140 characters, in the item's language),
   or ``failed`` (the platform refused it: repeated content 20019 and the like, not retried);
3. only then does the cursor move past it. A rate limit (10022/10023/10024) stops the cycle: the
   item stays ``recorded`` and comes again next time.

``attempted`` is committed before the reply is posted: an item found ``attempted`` but not ``sent``
(the process died between the post and the record) is looked up on the platform
(``comments/show.json`` of its post: the brand's own comments) before it is posted again. A claim
(``claimed_by``/``claimed_until``) keeps two instances from posting one item even when their
leases overlap. An offer keyword gets an invitation to DM or follow, never a code.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.services import Services
from bot.errors import EngagebotError, PlatformAPIError, QuotaExceeded
from bot.i18n import N_, Catalogs, script_locale
from bot.storage.dialect import affected_rows, insert_ignore
from bot.storage.models import WeiboPollState, WeiboPublicReply

from . import protocol
from .api import WeiboAPI

log = logging.getLogger("engagebot.weibo.megaphone")

RECORDED, SENT, SKIPPED, FAILED = "recorded", "sent", "skipped", "failed"
SETTLED = (SENT, SKIPPED, FAILED)
CLAIM = timedelta(seconds=60)
LISTING_COUNT = 50

# The public answer to an offer keyword: the code goes by DM, never in public.
OFFER_INVITATION = N_("Thanks! Follow us and send us a direct message with this word to get your code.")


class Megaphone:
    """The poller of one brand account. ``poll_once`` is one cycle; ``run`` loops until cancelled."""

    def __init__(self, *, api: WeiboAPI, sessions: async_sessionmaker[AsyncSession], account: str,
                 brand_uid: str, services: Services, catalogs: Catalogs, default_locale: str,
                 per_hour: int, interval: float, lease: timedelta | None = None,
                 instance: str | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.api = api
        self.sessions = sessions
        self.account = account
        self.brand_uid = brand_uid
        self.services = services
        self.catalogs = catalogs
        self.default_locale = default_locale
        self.per_hour = per_hour
        self.interval = interval
        self.lease = lease or timedelta(seconds=max(2 * interval + 30, 60))
        self.instance = instance or secrets.token_hex(8)
        self.clock = clock

    # --- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bad cycle must not end the poller: log and poll again later
                log.warning("megaphone cycle failed", extra={"channel": "weibo", "reason": str(exc)[:200]})
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> int:
        """One cycle; returns how many items were settled (0 when another instance holds the lease)."""
        if not await self.take_lease():
            return 0
        settled = 0
        async with self.sessions() as session:
            state = await session.get(WeiboPollState, self.account)
            assert state is not None
            cursors = {"comments": state.since_comments, "mentions": state.since_mentions}
        for source in ("comments", "mentions"):
            since = cursors[source]
            fetch = self.api.comments_to_me if source == "comments" else self.api.mentions
            items = sorted(await fetch(since, LISTING_COUNT), key=lambda p: int(p.cid or p.post_id))
            cursor = since
            for item in items:
                if not await self.handle(item):
                    break  # rate-limited or claimed elsewhere: this item and the later ones come again
                settled += 1
                cursor = item.cid or item.post_id
                await self._move_cursor(source, cursor)
        return settled

    async def take_lease(self) -> bool:
        """Hold the poll for this deployment: one instance at a time, taken over when its lease ends."""
        now = self.clock()
        async with self.sessions() as session:
            bind = session.bind
            await session.execute(insert_ignore(bind, WeiboPollState).values(
                account=self.account, since_comments="0", since_mentions="0", updated_at=now))
            result = await session.execute(update(WeiboPollState).where(
                WeiboPollState.account == self.account,
                or_(WeiboPollState.holder.is_(None), WeiboPollState.holder == self.instance,
                    WeiboPollState.lease_until < now),
            ).values(holder=self.instance, lease_until=now + self.lease, updated_at=now))
            await session.commit()
            return affected_rows(result) == 1

    async def release(self) -> None:
        async with self.sessions() as session:
            await session.execute(update(WeiboPollState).where(
                WeiboPollState.account == self.account, WeiboPollState.holder == self.instance,
            ).values(holder=None, lease_until=None))
            await session.commit()

    async def _move_cursor(self, source: str, cursor: str) -> None:
        column = "since_comments" if source == "comments" else "since_mentions"
        async with self.sessions() as session:
            await session.execute(update(WeiboPollState).where(
                WeiboPollState.account == self.account, WeiboPollState.holder == self.instance,
            ).values({column: cursor, "lease_until": self.clock() + self.lease, "updated_at": self.clock()}))
            await session.commit()

    # --- one item ------------------------------------------------------------------------

    async def handle(self, item: protocol.PublicPost) -> bool:
        """Record and settle one item; False when it must come again (rate limit, claimed elsewhere)."""
        if item.user_id == self.brand_uid:
            return True  # never answer the brand's own comments (nothing to record)
        row = await self._record(item)
        if row.status in SETTLED:
            return True
        attempted_before = await self._claim(row.id)
        if attempted_before is None:
            return False
        try:
            return await self._settle(item, row.id, attempted_before)
        finally:
            await self._unclaim(row.id)

    async def _settle(self, item: protocol.PublicPost, row_id: int, attempted_before: bool) -> bool:
        async with self.sessions() as session:
            row = await session.get(WeiboPublicReply, row_id)
            assert row is not None
            text, locale = row.reply_text, row.locale
        if text is None:
            decided = await self.answer_for(item.text)
            if decided is None:
                await self._finish(row_id, SKIPPED, "no prompt rule or offer keyword matches")
                return True
            text, locale = decided
        if attempted_before:
            if await self._already_posted(item, text):
                await self._finish(row_id, SENT, "found on the platform after a restart")
                return True
        elif await self._sent_last_hour() >= self.per_hour:
            await self._finish(row_id, SKIPPED, f"public reply cap reached ({self.per_hour} per hour)")
            return True
        async with self.sessions() as session:  # committed before the post: a crash after it is checked
            await session.execute(update(WeiboPublicReply).where(WeiboPublicReply.id == row_id).values(
                attempted=True, reply_text=text, locale=locale))
            await session.commit()
        try:
            if item.cid is not None:
                await self.api.comment_reply(cid=item.cid, post_id=item.post_id, comment=text)
            else:
                await self.api.comment_create(post_id=item.post_id, comment=text)
        except QuotaExceeded as exc:
            await self._note(row_id, str(exc))
            log.info("megaphone rate-limited", extra={"channel": "weibo", "reason": str(exc)[:200]})
            return False
        except (PlatformAPIError, EngagebotError) as exc:
            await self._finish(row_id, FAILED, str(exc))
            return True
        await self._finish(row_id, SENT, None)
        return True

    async def answer_for(self, text: str) -> tuple[str, str] | None:
        """(public reply, locale) for a comment's text, or None when nothing should be said."""
        locale = script_locale(text, default=self.default_locale) or self.default_locale
        offers = self.services.offer_keywords
        if offers is not None and await offers.matches(text, "weibo"):
            return protocol.fit_text(self.catalogs.gettext(locale, OFFER_INVITATION), protocol.MAX_PUBLIC_CHARS), locale
        rules = self.services.prompt_rules
        if rules is not None:
            rule = await rules.match(text)
            if rule is not None:
                return protocol.fit_text(rule.reply_for(locale), protocol.MAX_PUBLIC_CHARS), locale
        return None

    async def _already_posted(self, item: protocol.PublicPost, text: str) -> bool:
        """Did the brand post this answer already (the process died between the post and its record)?"""
        for comment in await self.api.brand_comments_on(item.post_id):
            user = comment.get("user")
            if not isinstance(user, dict):
                continue
            if str(user.get("idstr") or user.get("id")) != self.brand_uid:
                continue
            replied = comment.get("reply_comment")
            if item.cid is not None and isinstance(replied, dict):
                if str(replied.get("idstr") or replied.get("id")) == item.cid:
                    return True
            elif item.cid is None and text in str(comment.get("text", "")):
                return True
        return False

    # --- rows --------------------------------------------------------------------------

    async def _record(self, item: protocol.PublicPost) -> WeiboPublicReply:
        now = self.clock()
        async with self.sessions() as session:
            await session.execute(insert_ignore(session.bind, WeiboPublicReply).values(
                account=self.account, item_key=item.key, post_id=item.post_id, cid=item.cid, user_id=item.user_id,
                status=RECORDED, attempted=False, created_at=now))
            await session.commit()
            row = (await session.execute(select(WeiboPublicReply).where(
                WeiboPublicReply.account == self.account, WeiboPublicReply.item_key == item.key))).scalar_one()
            return row

    async def _claim(self, row_id: int) -> bool | None:
        """Claim the row for this instance; return whether it was attempted before, None if held elsewhere."""
        now = self.clock()
        async with self.sessions() as session:
            result = await session.execute(update(WeiboPublicReply).where(
                WeiboPublicReply.id == row_id, WeiboPublicReply.status == RECORDED,
                or_(WeiboPublicReply.claimed_until.is_(None), WeiboPublicReply.claimed_until < now,
                    WeiboPublicReply.claimed_by == self.instance),
            ).values(claimed_by=self.instance, claimed_until=now + CLAIM))
            await session.commit()
            if affected_rows(result) != 1:
                return None
            row = await session.get(WeiboPublicReply, row_id)
            assert row is not None
            return row.attempted

    async def _unclaim(self, row_id: int) -> None:
        async with self.sessions() as session:
            await session.execute(update(WeiboPublicReply).where(
                WeiboPublicReply.id == row_id, WeiboPublicReply.claimed_by == self.instance,
            ).values(claimed_by=None, claimed_until=None))
            await session.commit()

    async def _finish(self, row_id: int, status: str, reason: str | None) -> None:
        values: dict[str, Any] = {"status": status, "reason": reason[:255] if reason else None}
        if status == SENT:
            values["sent_at"] = self.clock()
        async with self.sessions() as session:
            await session.execute(update(WeiboPublicReply).where(WeiboPublicReply.id == row_id).values(values))
            await session.commit()
        log.info("megaphone item settled", extra={"channel": "weibo", "status": status,
                                                   "reason": (reason or "")[:200]})

    async def _note(self, row_id: int, reason: str) -> None:
        async with self.sessions() as session:
            await session.execute(update(WeiboPublicReply).where(WeiboPublicReply.id == row_id).values(
                reason=reason[:255]))
            await session.commit()

    async def _sent_last_hour(self) -> int:
        since = self.clock() - timedelta(hours=1)
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(WeiboPublicReply).where(
                WeiboPublicReply.account == self.account,
                or_(and_(WeiboPublicReply.status == SENT, WeiboPublicReply.sent_at > since),
                    and_(WeiboPublicReply.status == RECORDED, WeiboPublicReply.attempted.is_(True))),
            )) or 0)
