"""Nearest stores: a follower who shares a location gets the nearest open stores, in their language.

"store near me" / "附近门店" answers from the location the platform reported a moment ago (WeChat's
location reports), or asks for one the way the channel allows (Telegram's location button).
"""

from bot import (
    Context,
    Inbound,
    Kind,
    LocationRequestReply,
    Reply,
    Router,
    TextReply,
    _,
    any_stores,
    describe_stores,
    reported_position,
    shared_position,
    stores_near,
)

router = Router("stores", ctx_only=True)  # changes nothing but through ctx: see Router.on

ASK_WORDS = {
    "en": ["store near me", "stores near me", "nearest store", "find a store", "store nearby"],
    "zh_Hans": ["附近门店", "附近的店", "最近的门店", "门店在哪", "附近有店"],
    "zh_Hant": ["附近門店", "附近的店", "最近的門店", "門店在哪"],
}


@router.on(Kind.LOCATION, priority=30)
async def nearest(msg: Inbound, ctx: Context) -> list[Reply] | None:
    position = shared_position(msg.payload)
    if position is None:
        return None
    stores = await stores_near(ctx, position)
    if not stores:
        return None  # no stores loaded: the polite answer for a location
    return [TextReply(describe_stores(ctx, stores))]


# Below the operator's prompt rules (priority 0): a brand's own answer to "门店在哪" wins. A menu
# button with the key "stores" asks the same.
async def _has_stores(msg: Inbound, ctx: Context) -> object | None:
    """Whether ``ask_for_location`` answers (it passes on when no store is loaded), read only."""
    return True if await any_stores(ctx) else None


@router.on(keywords=ASK_WORDS, priority=-10, answers="stores", probe=_has_stores)
@router.on(Kind.CLICK, priority=-4, when=lambda msg, ctx: msg.payload == "stores")
async def ask_for_location(msg: Inbound, ctx: Context) -> list[Reply] | None:
    if not await any_stores(ctx):
        return None
    position = reported_position(ctx)
    if position is not None:
        return [TextReply(describe_stores(ctx, await stores_near(ctx, position)))]
    return [LocationRequestReply(
        _("Share your location and I will find the stores nearest you."), _("Share my location"),
        _("To share it: tap + below the chat, then Location."))]
