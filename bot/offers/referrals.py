"""Family and friends: personal invites (``ref-<code>`` scenes), who counts, and the family offer.

Rules: a follower cannot invite themselves; a friend counts only when new (not following before
this follow, and first seen after the invite was made); a friend counts once and for one inviter
only (unique friend in ``referral``), so unfollowing and following again counts nothing more.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.reply import TextReply
from bot.i18n import INTERNATIONAL_LOCALE, Catalogs, negotiate
from bot.storage.models import Follower

from .claims import ClaimOutcome, ClaimResult, claim
from .models import Promotion, Referral, ReferralInvite
from .notify import enqueue_reply
from .render import LocaleText, claim_text, earlier_friend_grant_header, inviter_grant_header
from .spec import REFERRAL_SCENE_PREFIX


class ReferralStatus(StrEnum):
    COUNTED = "counted"
    SELF = "self"
    NOT_NEW = "not_new"  # was following already, or known before the invite existed
    ALREADY_COUNTED = "already_counted"  # for this or another inviter
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ReferralResult:
    status: ReferralStatus
    invite: ReferralInvite | None = None
    joined: int = 0  # friends counted for the inviter so far


def new_invite_code() -> str:
    """80 random bits in lowercase base32: 16 characters, valid in a scene and a deep link."""
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def invite_scene(invite: ReferralInvite) -> str:
    return f"{REFERRAL_SCENE_PREFIX}{invite.code}"


def invite_code_from_scene(scene: str | None) -> str | None:
    if scene and scene.startswith(REFERRAL_SCENE_PREFIX):
        return scene[len(REFERRAL_SCENE_PREFIX):] or None
    return None


async def get_or_create_invite(session: AsyncSession, follower: Any, *, now: datetime) -> ReferralInvite:
    """The follower's invite, made on first request (one per follower, safe when two requests race)."""
    query = select(ReferralInvite).where(ReferralInvite.follower_id == follower.id)
    invite = (await session.execute(query)).scalar_one_or_none()
    if invite is not None:
        return invite
    try:
        async with session.begin_nested():
            await session.execute(insert(ReferralInvite).values(
                follower_id=follower.id, code=new_invite_code(), created_at=now))
    except IntegrityError:
        pass  # made by a concurrent request (or, once in 2**80, a code clash: asked again next time)
    return (await session.execute(query)).scalar_one()


async def joined_count(session: AsyncSession, inviter_id: int) -> int:
    return (await session.execute(
        select(func.count()).select_from(Referral).where(Referral.inviter_id == inviter_id))).scalar_one()


async def record_referral(session: AsyncSession, code: str, friend: Any, *, was_following: bool,
                          now: datetime) -> ReferralResult:
    """Count ``friend`` for the invite ``code`` if the rules allow it."""
    invite = (await session.execute(
        select(ReferralInvite).where(ReferralInvite.code == code))).scalar_one_or_none()
    if invite is None:
        return ReferralResult(ReferralStatus.UNKNOWN)
    if invite.follower_id == friend.id:
        return ReferralResult(ReferralStatus.SELF, invite)
    created = friend.created_at
    if was_following or (created is not None and created < invite.created_at):
        return ReferralResult(ReferralStatus.NOT_NEW, invite)
    try:
        async with session.begin_nested():
            await session.execute(insert(Referral).values(
                invite_id=invite.id, inviter_id=invite.follower_id, friend_id=friend.id, at=now))
    except IntegrityError:
        return ReferralResult(ReferralStatus.ALREADY_COUNTED, invite)
    return ReferralResult(ReferralStatus.COUNTED, invite, await joined_count(session, invite.follower_id))


async def family_promotion(session: AsyncSession, *, now: datetime, channel: str | None = None) -> Promotion | None:
    """The running family & friends promotion (the first one loaded, if there are several)."""
    for promo in (await session.execute(
            select(Promotion).where(Promotion.friends_needed.is_not(None)).order_by(Promotion.id))).scalars():
        starts, ends = promo.starts_at, promo.ends_at
        if (starts is None or starts <= now) and (ends is None or now <= ends) and (
                channel is None or not promo.channels or channel in promo.channels):
            return promo
    return None


def _locale_of(follower: Any, catalogs: Catalogs, default_locale: str, international_locale: str) -> str:
    return negotiate(chosen=follower.locale, hint=follower.locale_hint, text=None, default=default_locale,
                     international=international_locale, available=catalogs.locales)


async def grant_family_offer(
    session: AsyncSession, promotion: Promotion, invite: ReferralInvite, joined: int, friend: Any, *,
    catalogs: Catalogs, default_locale: str, now: datetime, international_locale: str = INTERNATIONAL_LOCALE,
) -> ClaimResult | None:
    """Once ``friends_needed`` friends joined: give the inviter and every counted friend the offer.

    The friend writing now gets their result back (to answer inline); the inviter and friends who
    joined earlier are told through the outbox, only when they get a new code.
    """
    if not promotion.friends_needed or joined < promotion.friends_needed:
        return None
    inviter = await session.get(Follower, invite.follower_id)
    if inviter is not None:
        result = await claim(session, promotion, inviter, now=now, via="referral")
        if result.outcome is ClaimOutcome.CLAIMED and result.claim is not None:
            t = LocaleText(catalogs, _locale_of(inviter, catalogs, default_locale, international_locale))
            enqueue_reply(session, inviter, TextReply(claim_text(t, result, header=inviter_grant_header(
                t, promotion, joined))), dedupe_key=f"offer-grant:{result.claim.id}")
    friends = (await session.execute(
        select(Follower).join(Referral, Referral.friend_id == Follower.id)
        .where(Referral.inviter_id == invite.follower_id).order_by(Referral.id))).scalars().all()
    mine: ClaimResult | None = None
    for other in friends:
        if other.id == friend.id:
            other = friend  # the row is stale until this message commits; ``friend`` is current
        result = await claim(session, promotion, other, now=now, via="referral")
        if other.id == friend.id:
            mine = result
        elif result.outcome is ClaimOutcome.CLAIMED and result.claim is not None:
            t = LocaleText(catalogs, _locale_of(other, catalogs, default_locale, international_locale))
            enqueue_reply(session, other, TextReply(claim_text(t, result, header=earlier_friend_grant_header(
                t, promotion))), dedupe_key=f"offer-grant:{result.claim.id}")
    return mine
