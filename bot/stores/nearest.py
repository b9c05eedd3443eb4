"""The stores nearest a position, whether each is open now and its hours today, and loading them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.storage.dialect import affected_rows, upsert

from .geo import distance_m
from .models import Store
from .spec import StoresFile, parse_hours

DAY_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class NearbyStore:
    """A store as a follower near it sees it: in metres from them, open or not at ``now``."""

    slug: str
    name: dict[str, str]
    address: dict[str, str]
    phone: str | None
    distance_m: float
    open_now: bool
    closes_at: datetime | None  # while open: when it closes (the store's zone)
    opens_at: datetime | None  # while closed: when it next opens, within a week (the store's zone)


async def replace_stores(session: AsyncSession, stores: StoresFile) -> tuple[int, int]:
    """Store the file's stores (by id), remove the others; return (stored, removed). The caller commits."""
    rows = stores.rows()
    now = utcnow()
    for row in rows:
        stmt = upsert(session, Store, index_elements=[Store.slug],
                      set_={k: row[k] for k in ("latitude", "longitude", "timezone", "details")} | {"updated_at": now})
        await session.execute(stmt.values(**row, updated_at=now))
    removed = await session.execute(delete(Store).where(Store.slug.not_in([r["slug"] for r in rows])))
    return len(rows), affected_rows(removed)


async def list_stores(session: AsyncSession) -> Sequence[Store]:
    return (await session.execute(select(Store).order_by(Store.slug))).scalars().all()


async def nearest_stores(session: AsyncSession, latitude: float, longitude: float, *, limit: int = 3,
                         now: datetime | None = None, open_first: bool = True) -> list[NearbyStore]:
    """The ``limit`` stores nearest a WGS-84 position; open ones first when ``open_first``.

    Every store is read: a brand has tens to a few thousand, which costs less than a spatial index
    would to keep.
    """
    now = now or utcnow()
    found = [_nearby(s, latitude, longitude, now) for s in await list_stores(session)]
    found.sort(key=lambda s: ((not s.open_now) if open_first else False, s.distance_m))
    return found[:limit]


def _nearby(store: Store, lat: float, lng: float, now: datetime) -> NearbyStore:
    details: dict[str, Any] = store.details
    zone = ZoneInfo(store.timezone)
    local = now.astimezone(zone)
    week = parse_hours(details.get("hours") or {})
    closes_at = opens_at = None
    if week:
        closes_at = _closing(week, local)
        if closes_at is None:
            opens_at = _next_opening(week, local)
    return NearbyStore(store.slug, details["name"], details.get("address") or {}, details.get("phone"),
                       distance_m(lat, lng, store.latitude, store.longitude), closes_at is not None or not week,
                       closes_at, opens_at)


def _midnight(local: datetime, days: int = 0) -> datetime:
    day = (local + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, tzinfo=local.tzinfo)


def _closing(week: dict[int, list[tuple[int, int]]], local: datetime) -> datetime | None:
    """When the store closes if it is open at ``local`` (a range of yesterday may run past midnight)."""
    for back in (0, 1):
        start = _midnight(local, -back)
        for opens, closes in week.get((local.weekday() - back) % 7, []):
            if start + timedelta(minutes=opens) <= local < start + timedelta(minutes=closes):
                return start + timedelta(minutes=closes)
    return None


def _next_opening(week: dict[int, list[tuple[int, int]]], local: datetime) -> datetime | None:
    for ahead in range(8):
        start = _midnight(local, ahead)
        for opens, _closes in sorted(week.get((local.weekday() + ahead) % 7, [])):
            at = start + timedelta(minutes=opens)
            if at > local:
                return at
    return None
