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

OPEN_FIRST_RADIUS_M = 5_000  # within this (or twice the nearest store's distance) open stores come first


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
    found = sorted((_nearby(s, latitude, longitude, now) for s in await list_stores(session)),
                   key=lambda s: s.distance_m)
    if open_first and found:
        # Open ones first, among the stores about as near as the nearest: an open store a city away
        # must not hide the closed one round the corner.
        near = max(OPEN_FIRST_RADIUS_M, 2 * found[0].distance_m)
        close_by = [s for s in found if s.distance_m <= near]
        found = sorted(close_by, key=lambda s: not s.open_now) + found[len(close_by):]
    return found[:limit]


def _nearby(store: Store, lat: float, lng: float, now: datetime) -> NearbyStore:
    details: dict[str, Any] = store.details
    zone = ZoneInfo(store.timezone)
    local = now.astimezone(zone)
    week = parse_hours(details.get("hours") or {})
    open_now, closes_at, opens_at = True, None, None
    if week:
        closes_at = _closing(week, local)
        open_now = closes_at is not None
        if closes_at is None:
            opens_at = _next_opening(week, local)
        elif closes_at - local >= timedelta(days=7):
            closes_at = None  # open round the clock: "open", with no closing time to give
    return NearbyStore(store.slug, details["name"], details.get("address") or {}, details.get("phone"),
                       distance_m(lat, lng, store.latitude, store.longitude), open_now, closes_at, opens_at)


def _midnight(local: datetime, days: int = 0) -> datetime:
    day = (local + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, tzinfo=local.tzinfo)


def _closing(week: dict[int, list[tuple[int, int]]], local: datetime) -> datetime | None:
    """When the store closes if it is open at ``local`` (a range of yesterday may run past midnight).

    A range ending where the next one starts (``mon 18:00-24:00``, ``tue 00:00-02:00``) is followed
    on: the store closes at 02:00. For one open round the clock the walk stops a week on.
    """
    for back in (0, 1):
        start = _midnight(local, -back)
        for opens, closes in week.get((local.weekday() - back) % 7, []):
            if start + timedelta(minutes=opens) <= local < start + timedelta(minutes=closes):
                return _follow_on(week, start + timedelta(minutes=closes))
    return None


def _follow_on(week: dict[int, list[tuple[int, int]]], closes: datetime) -> datetime:
    for _ in range(8):
        day = _midnight(closes)
        at = round((closes - day).total_seconds() / 60)
        later = [c for o, c in week.get(closes.weekday(), []) if o == at and c > at]
        if not later:
            return closes
        closes = day + timedelta(minutes=max(later))
    return closes


def _next_opening(week: dict[int, list[tuple[int, int]]], local: datetime) -> datetime | None:
    for ahead in range(8):
        start = _midnight(local, ahead)
        for opens, _closes in sorted(week.get((local.weekday() + ahead) % 7, [])):
            at = start + timedelta(minutes=opens)
            if at > local:
                return at
    return None
