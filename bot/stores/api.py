"""What handlers use of the stores: the ones near a position the follower shared, and how to say so."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.core.context import Context
from bot.i18n import pick_text

from .geo import to_wgs84
from .models import Store
from .nearest import NearbyStore, nearest_stores

RECENT_LOCATION = timedelta(minutes=30)  # a location report this fresh still says where the follower is


def shared_position(payload: str | None) -> tuple[float, float] | None:
    """The (latitude, longitude) of a LOCATION message's payload ("lat,lng"); None if it has none."""
    lat, sep, lng = (payload or "").partition(",")
    try:
        position = (float(lat), float(lng))
    except ValueError:
        return None
    if not sep or not (-90 <= position[0] <= 90 and -180 <= position[1] <= 180):
        return None
    return position


def reported_position(ctx: Context, *, max_age: timedelta = RECENT_LOCATION) -> tuple[float, float] | None:
    """Where the platform last reported the follower to be (WeChat's location reports), if recently."""
    f = ctx.follower
    if f.last_latitude is None or f.last_longitude is None or f.last_located_at is None:
        return None
    if ctx.now - f.last_located_at > max_age:
        return None
    return f.last_latitude, f.last_longitude


async def any_stores(ctx: Context) -> bool:
    """Whether the brand has loaded any store (without them, "store near me" is not ours to answer)."""
    return (await ctx.session.execute(select(Store.id).limit(1))).first() is not None


async def stores_near(ctx: Context, position: tuple[float, float], *, limit: int = 3) -> list[NearbyStore]:
    """The stores nearest ``position`` (in the channel's datum: GCJ-02 on WeChat), open ones first."""
    lat, lng = to_wgs84(*position, ctx.capabilities.location_datum)
    return await nearest_stores(ctx.session, lat, lng, limit=limit, now=ctx.now)


def describe_stores(ctx: Context, stores: list[NearbyStore]) -> str:
    """The stores as the follower reads them: name, distance, whether open now, address."""
    if not stores:
        return ctx._("We have no stores to show yet.")
    blocks = [ctx._("Stores near you:")]
    for store in stores:
        lines = [f"{pick_text(store.name, ctx.locale)} · {ctx.fmt.distance(store.distance_m)}", _status(ctx, store)]
        if address := pick_text(store.address, ctx.locale):
            lines.append(address)
        if store.phone:
            lines.append(store.phone)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _status(ctx: Context, store: NearbyStore) -> str:
    fmt = ctx.fmt
    if store.closes_at is not None:
        return ctx._("Open now, until {time}").format(time=fmt.time(store.closes_at))
    if store.open_now:
        return ctx._("Open")
    if store.opens_at is None:
        return ctx._("Closed")
    local_now = ctx.now.astimezone(store.opens_at.tzinfo)
    days = (store.opens_at.date() - local_now.date()).days
    when = fmt.time(store.opens_at)
    if days == 0:
        return ctx._("Closed now; opens at {time}").format(time=when)
    if days == 1:
        return ctx._("Closed now; opens tomorrow at {time}").format(time=when)
    return ctx._("Closed now; opens {day} at {time}").format(day=fmt.weekday(store.opens_at), time=when)
