"""Offers as handlers use them: everything for the follower of one message, given its Context.

No SQL for the caller: these run the queries in the message's session (``ctx.session``), so what a
claim writes commits with the message. Exported through ``bot`` (the handlers' public API).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from bot.core.context import Context

from .campaigns import find_campaign, record_touch
from .claims import ClaimResult, FollowerOffers, claim, offers_for
from .index import offer_index
from .models import Campaign, Promotion, ReferralInvite
from .referrals import (
    ReferralResult,
    family_promotion,
    get_or_create_invite,
    grant_family_offer,
    joined_count,
    record_referral,
)


async def running_offers(ctx: Context) -> FollowerOffers:
    """The offers running on this message's channel, for this follower: what they can claim now and
    the codes they hold."""
    running = await offer_index(ctx.services).running(lambda: ctx.session, ctx.now, ctx.msg.channel)
    return await _follower_offers(ctx, [p.id for p in running])


async def promotion_for_payload(ctx: Context, payload: str | None) -> Promotion | None:
    """The promotion a button (``offer:<slug>``) or a menu key stands for, or None."""
    found = await offer_index(ctx.services).by_payload(lambda: ctx.session, payload)
    return await ctx.session.get(Promotion, found.id) if found is not None else None


async def offer_named_in(ctx: Context, text: str) -> Promotion | FollowerOffers | None:
    """The promotion a keyword in ``text`` names on this channel (the running one, else the first
    named); the follower's offers among them when several running ones answer to the words; None."""
    found = await offer_index(ctx.services).by_text(lambda: ctx.session, text, ctx.msg.channel)
    if not found:
        return None
    running = [p for p in found if p.running(ctx.now)]
    if len(running) > 1:  # several offers answer to these words: the follower picks
        return await _follower_offers(ctx, [p.id for p in running])
    return await ctx.session.get(Promotion, (running or found)[0].id)


async def _follower_offers(ctx: Context, ids: Sequence[int]) -> FollowerOffers:
    """Only what this follower can claim now, and the codes they hold."""
    promos = (await ctx.session.execute(select(Promotion).where(Promotion.id.in_(ids))
                                        .order_by(Promotion.id))).scalars().all() if ids else []
    return await offers_for(ctx.session, promos, ctx.follower, now=ctx.now, locale=ctx.locale)


async def claim_offer(ctx: Context, promotion: Promotion, *, via: str, campaign_id: int | None = None) -> ClaimResult:
    """Hand this follower a code of ``promotion`` (their live one again if they hold one), or say why not."""
    return await claim(ctx.session, promotion, ctx.follower, now=ctx.now, locale=ctx.locale, via=via,
                       campaign_id=campaign_id)


async def follower_invite(ctx: Context) -> ReferralInvite:
    """This follower's personal invite (created on first use)."""
    return await get_or_create_invite(ctx.session, ctx.follower, now=ctx.now)


async def friends_joined(ctx: Context) -> int:
    """How many friends this follower's invite brought so far."""
    return await joined_count(ctx.session, ctx.follower.id)


async def family_offer(ctx: Context) -> Promotion | None:
    """The family & friends promotion running on this message's channel, if any."""
    return await family_promotion(ctx.session, now=ctx.now, channel=ctx.msg.channel)


async def campaign_for_scene(ctx: Context, scene: str) -> Campaign | None:
    """The campaign whose QR code or link carries ``scene``, if any."""
    return await find_campaign(ctx.session, scene)


async def record_campaign_touch(ctx: Context, campaign: Campaign, *, kind: str, new_follower: bool) -> None:
    """Count this follower's follow or scan for the campaign (committed with the message)."""
    await record_touch(ctx.session, campaign, ctx.follower, kind=kind, new_follower=new_follower, at=ctx.now)


async def campaign_promotion(ctx: Context, campaign: Campaign) -> Promotion | None:
    """The promotion a campaign grants on arrival, if any."""
    if campaign.promotion_id is None:
        return None
    return await ctx.session.get(Promotion, campaign.promotion_id)


async def count_referral(ctx: Context, code: str) -> ReferralResult:
    """Count this follower as a friend brought by the invite ``code``, if the rules allow it."""
    return await record_referral(ctx.session, code, ctx.follower, was_following=ctx.was_following, now=ctx.now)


async def grant_family(ctx: Context, promotion: Promotion, referral: ReferralResult) -> ClaimResult | None:
    """Once enough friends joined: the family offer for the inviter and every friend; this follower's
    result (the others are told through the outbox), or None."""
    if referral.invite is None:
        return None
    return await grant_family_offer(ctx.session, promotion, referral.invite, referral.joined, ctx.follower,
                                    catalogs=ctx.catalogs, default_locale=ctx.default_locale, now=ctx.now,
                                    international_locale=ctx.international_locale)
