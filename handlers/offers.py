"""Exclusive offers: claim by keyword, button or menu; campaign QR grants; personal invites."""

from __future__ import annotations

from sqlalchemy import select

from bot import Context, Inbound, Kind, QrReply, Reply, Router, TextReply, fold
from bot.offers import (
    ClaimOutcome,
    Promotion,
    ReferralStatus,
    claim,
    claim_replies,
    family_promotion,
    find_campaign,
    friend_grant_header,
    get_or_create_invite,
    grant_family_offer,
    invite_caption,
    invite_code_from_scene,
    invite_scene,
    joined_count,
    offer_index,
    offer_list,
    offers_for,
    own_invite_text,
    record_referral,
    record_touch,
)

from .welcome import welcome_replies

router = Router("offers")

# Whole-message words only, like the help and language words; compared folded (優惠 is 优惠).
OFFER_WORDS = {"offers", "offer", "deals", "优惠", "福利", "优惠券", "领券", "活动", "着数"}
INVITE_WORDS = {"invite", "invite friends", "邀请", "邀请好友", "邀请码", "我的邀请"}


def _word(words: set[str]):  # type: ignore[no-untyped-def]
    return lambda msg, ctx: fold(msg.text.strip()) in words


async def _claim_or_invite(msg: Inbound, ctx: Context, promo: Promotion, via: str) -> list[Reply]:
    if promo.friends_needed:  # a family offer is earned by inviting, not claimed directly
        return await _invite(msg, ctx, promo)
    result = await claim(ctx.session, promo, ctx.follower, now=ctx.now, locale=ctx.locale, via=via)
    return claim_replies(ctx, result)


async def _invite(msg: Inbound, ctx: Context, promo: Promotion | None = None) -> list[Reply]:
    invite = await get_or_create_invite(ctx.session, ctx.follower, now=ctx.now)
    if promo is None:
        promo = await family_promotion(ctx.session, now=ctx.now, channel=msg.channel)
    joined = await joined_count(ctx.session, ctx.follower.id)
    return [QrReply(scene=invite_scene(invite), caption=invite_caption(ctx, promo, joined))]


@router.on(Kind.COMMAND, command="offers", priority=40)
@router.on(Kind.TEXT, priority=40, when=_word(OFFER_WORDS))
@router.on(Kind.CLICK, priority=40, when=lambda msg, ctx: msg.payload == "offers")
async def list_offers(msg: Inbound, ctx: Context) -> list[Reply]:
    running = await offer_index(ctx.services).running(ctx.session, ctx.now, msg.channel)
    return await _offer_list(ctx, [p.id for p in running])


async def _offer_list(ctx: Context, ids: list[int]) -> list[Reply]:
    """Only what this follower can claim now, and "your code: ..." for what they hold."""
    promos = (await ctx.session.execute(select(Promotion).where(Promotion.id.in_(ids))
                                        .order_by(Promotion.id))).scalars().all() if ids else []
    return offer_list(ctx, await offers_for(ctx.session, promos, ctx.follower, now=ctx.now, locale=ctx.locale))


@router.on(Kind.COMMAND, command="invite", priority=40)
@router.on(Kind.TEXT, priority=40, when=_word(INVITE_WORDS))
@router.on(Kind.CLICK, priority=40, when=lambda msg, ctx: msg.payload == "invite")
async def invite(msg: Inbound, ctx: Context) -> list[Reply]:
    return await _invite(msg, ctx)


@router.on(Kind.CLICK, priority=40)
async def offer_button(msg: Inbound, ctx: Context) -> list[Reply] | None:
    found = await offer_index(ctx.services).by_payload(ctx.session, msg.payload)
    if found is None:
        return None
    promo = await ctx.session.get(Promotion, found.id)
    return await _claim_or_invite(msg, ctx, promo, "button") if promo is not None else None


@router.on(Kind.TEXT, priority=10)
async def offer_keyword(msg: Inbound, ctx: Context) -> list[Reply] | None:
    index = offer_index(ctx.services)
    found = await index.by_text(ctx.session, msg.text, msg.channel)
    if not found:
        return None
    running = [p for p in found if p.running(ctx.now)]
    if len(running) > 1:  # several offers answer to these words: let the follower pick
        return await _offer_list(ctx, [p.id for p in running])
    promo = await ctx.session.get(Promotion, (running or found)[0].id)
    return await _claim_or_invite(msg, ctx, promo, "keyword") if promo is not None else None


async def _arrival(msg: Inbound, ctx: Context, scene: str) -> list[Reply] | None:
    """A follow or scan through a scene: a personal invite or a campaign (else the welcome answers)."""
    new_follower = not ctx.was_following
    code = invite_code_from_scene(scene)
    if code is not None:
        return await _referral_arrival(msg, ctx, code)
    campaign = await find_campaign(ctx.session, scene)
    if campaign is None:
        return None
    kind = "follow" if msg.kind is Kind.FOLLOW or (msg.kind is Kind.COMMAND and new_follower) else "scan"
    await record_touch(ctx.session, campaign, ctx.follower, kind=kind, new_follower=new_follower, at=ctx.now)
    if campaign.promotion_id is None:
        return None
    promo = await ctx.session.get(Promotion, campaign.promotion_id)
    if promo is None:
        return None
    result = await claim(ctx.session, promo, ctx.follower, now=ctx.now, locale=ctx.locale, via="campaign",
                         campaign_id=campaign.id)
    greeting = welcome_replies() if new_follower else []
    return [*greeting, *claim_replies(ctx, result)]


async def _referral_arrival(msg: Inbound, ctx: Context, code: str) -> list[Reply] | None:
    result = await record_referral(ctx.session, code, ctx.follower, was_following=ctx.was_following, now=ctx.now)
    if result.status is ReferralStatus.SELF:
        return [TextReply(own_invite_text(ctx))]
    if result.status is not ReferralStatus.COUNTED or result.invite is None:
        return None
    promo = await family_promotion(ctx.session, now=ctx.now, channel=msg.channel)
    if promo is None:
        return None
    mine = await grant_family_offer(ctx.session, promo, result.invite, result.joined, ctx.follower,
                                    catalogs=ctx.catalogs, default_locale=ctx.default_locale, now=ctx.now,
                                    international_locale=ctx.international_locale)
    if mine is None:
        return None
    header = friend_grant_header(ctx, promo) if mine.outcome is ClaimOutcome.CLAIMED else None
    return [*welcome_replies(), *claim_replies(ctx, mine, header=header)]


@router.on(Kind.FOLLOW, Kind.SCAN, priority=20, when=lambda msg, ctx: bool(msg.payload))
async def campaign_arrival(msg: Inbound, ctx: Context) -> list[Reply] | None:
    return await _arrival(msg, ctx, msg.payload or "")


@router.on(Kind.COMMAND, command="start", priority=20, when=lambda msg, ctx: bool(msg.command_args))
async def start_with_payload(msg: Inbound, ctx: Context) -> list[Reply] | None:
    """Telegram's deep link ``/start <payload>``, when the adapter passes it on as a command."""
    return await _arrival(msg, ctx, msg.command_args)
