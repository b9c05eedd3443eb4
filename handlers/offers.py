"""Exclusive offers: claim by keyword, button or menu; campaign QR grants; personal invites."""

from __future__ import annotations

from collections.abc import Callable

from bot import (
    ClaimOutcome,
    Context,
    FollowerOffers,
    Inbound,
    Kind,
    Promotion,
    QrReply,
    ReferralStatus,
    Reply,
    Router,
    TextReply,
    campaign_for_scene,
    campaign_promotion,
    claim_offer,
    claim_replies,
    count_referral,
    family_offer,
    fold,
    follower_invite,
    friend_grant_header,
    friends_joined,
    grant_family,
    invite_caption,
    invite_code_from_scene,
    invite_scene,
    offer_list,
    offer_named_in,
    own_invite_text,
    promotion_for_payload,
    record_campaign_touch,
    running_offers,
    welcome_replies,
)

router = Router("offers", ctx_only=True)  # changes nothing but through ctx: see Router.on

# Whole-message words only, like the help and language words; compared folded (優惠 is 优惠).
OFFER_WORDS = {"offers", "offer", "deals", "优惠", "福利", "优惠券", "领券", "活动", "着数"}
INVITE_WORDS = {"invite", "invite friends", "邀请", "邀请好友", "邀请码", "我的邀请"}


def _word(words: set[str]) -> Callable[[Inbound, Context], bool]:
    return lambda msg, ctx: fold(msg.text.strip()) in words


async def _claim_or_invite(msg: Inbound, ctx: Context, promo: Promotion, via: str) -> list[Reply]:
    if promo.friends_needed:  # a family offer is earned by inviting, not claimed directly
        return await _invite(msg, ctx, promo)
    return claim_replies(ctx, await claim_offer(ctx, promo, via=via))


async def _invite(msg: Inbound, ctx: Context, promo: Promotion | None = None) -> list[Reply]:
    invite = await follower_invite(ctx)
    if promo is None:
        promo = await family_offer(ctx)
    joined = await friends_joined(ctx)
    return [QrReply(scene=invite_scene(invite), caption=invite_caption(ctx, promo, joined))]


@router.on(Kind.COMMAND, command="offers", priority=40, answers="offers")
@router.on(Kind.TEXT, priority=40, when=_word(OFFER_WORDS), answers="offers")
@router.on(Kind.CLICK, priority=40, when=lambda msg, ctx: msg.payload == "offers")
async def list_offers(msg: Inbound, ctx: Context) -> list[Reply]:
    """Only what this follower can claim now, and "your code: ..." for what they hold."""
    return offer_list(ctx, await running_offers(ctx))


@router.on(Kind.COMMAND, command="invite", priority=40, answers="invite")
@router.on(Kind.TEXT, priority=40, when=_word(INVITE_WORDS), answers="invite")
@router.on(Kind.CLICK, priority=40, when=lambda msg, ctx: msg.payload == "invite")
async def invite(msg: Inbound, ctx: Context) -> list[Reply]:
    return await _invite(msg, ctx)


@router.on(Kind.CLICK, priority=40)
async def offer_button(msg: Inbound, ctx: Context) -> list[Reply] | None:
    promo = await promotion_for_payload(ctx, msg.payload)
    return await _claim_or_invite(msg, ctx, promo, "button") if promo is not None else None


async def _offer_named(msg: Inbound, ctx: Context) -> object | None:
    """The offer (or offers) a keyword in the message names: what ``offer_keyword`` answers, read only."""
    return await offer_named_in(ctx, msg.text)


@router.on(Kind.TEXT, priority=10, answers="offer", probe=_offer_named)
async def offer_keyword(msg: Inbound, ctx: Context) -> list[Reply] | None:
    found = await offer_named_in(ctx, msg.text)
    if isinstance(found, FollowerOffers):  # several offers answer to these words: let the follower pick
        return offer_list(ctx, found)
    return await _claim_or_invite(msg, ctx, found, "keyword") if found is not None else None


async def _arrival(msg: Inbound, ctx: Context, scene: str) -> list[Reply] | None:
    """A follow or scan through a scene: a personal invite or a campaign (else the welcome answers)."""
    new_follower = not ctx.was_following
    code = invite_code_from_scene(scene)
    if code is not None:
        return await _referral_arrival(msg, ctx, code)
    campaign = await campaign_for_scene(ctx, scene)
    if campaign is None:
        return None
    kind = "follow" if msg.kind is Kind.FOLLOW or (msg.kind is Kind.COMMAND and new_follower) else "scan"
    await record_campaign_touch(ctx, campaign, kind=kind, new_follower=new_follower)
    promo = await campaign_promotion(ctx, campaign)
    if promo is None:
        return None
    result = await claim_offer(ctx, promo, via="campaign", campaign_id=campaign.id)
    greeting = welcome_replies() if new_follower else []
    return [*greeting, *claim_replies(ctx, result)]


async def _referral_arrival(msg: Inbound, ctx: Context, code: str) -> list[Reply] | None:
    result = await count_referral(ctx, code)
    if result.status is ReferralStatus.SELF:
        return [TextReply(own_invite_text(ctx))]
    if result.status is not ReferralStatus.COUNTED or result.invite is None:
        return None
    promo = await family_offer(ctx)
    if promo is None:
        return None
    mine = await grant_family(ctx, promo, result)
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
