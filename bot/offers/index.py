"""Which promotion a message asks for: keywords, buttons and menu keys, cached in memory.

Promotions change when an operator loads a file; reading them for every text message would cost a
query on the hot path, so the index is re-read at most every ``ttl`` seconds (the prompt-rules TTL),
by one message at a time: the others arriving meanwhile wait for its read rather than each opening a
session and running the same query (under load, dozens of them every ``ttl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.keywords import KeywordIndex
from bot.core.services import Services
from bot.core.single_flight import LeaderCancelled, follow, lead

from .models import Promotion

OFFER_PAYLOAD_PREFIX = "offer:"


@dataclass(frozen=True, slots=True)
class IndexedPromotion:
    id: int
    slug: str
    keywords: tuple[str, ...]  # as written, every locale (the index folds case and script)
    menu_key: str | None
    channels: tuple[str, ...]
    starts_at: datetime | None
    ends_at: datetime | None
    friends_needed: int | None

    def running(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now <= self.ends_at)

    def on_channel(self, channel: str) -> bool:
        return not self.channels or channel in self.channels


class OfferIndex:
    def __init__(self, *, ttl: float = 2.0) -> None:
        self.ttl = ttl
        self._items: list[IndexedPromotion] = []
        self._keywords: KeywordIndex[IndexedPromotion] = KeywordIndex(())
        self._loaded_at = float("-inf")
        self._loading: asyncio.Future[list[IndexedPromotion]] | None = None  # a message's read in progress, which others wait for
        self._generation = 0  # invalidations so far: a read begun before the last one is not kept as fresh

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")
        self._generation += 1

    async def items(self, open_session: Callable[[], AsyncSession]) -> list[IndexedPromotion]:
        """The promotions, re-read when older than ``ttl``; ``open_session`` is called only then, so a
        message the cache answers, or waits for another message's read, opens no database session.

        A read's outcome is its waiters': they get what it read, or its error (a database that fails
        fails them together, not one after another); only a read cancelled with its request leaves a
        waiter to read in its place."""
        if time.monotonic() - self._loaded_at <= self.ttl:
            return self._items
        while (loading := self._loading) is not None:
            with contextlib.suppress(LeaderCancelled):
                return await follow(loading)
        self._loading = loading = asyncio.get_running_loop().create_future()
        try:
            return await lead(loading, self._load(open_session), share=_same)
        finally:
            self._loading = None

    async def _load(self, open_session: Callable[[], AsyncSession]) -> list[IndexedPromotion]:
        generation = self._generation
        rows = (await open_session().execute(select(
            Promotion.id, Promotion.slug, Promotion.keywords, Promotion.menu_key, Promotion.channels,
            Promotion.starts_at, Promotion.ends_at, Promotion.friends_needed).order_by(Promotion.id))).all()
        items = [IndexedPromotion(
            id=r.id, slug=r.slug, menu_key=r.menu_key, channels=tuple(r.channels or ()),
            keywords=tuple(w for words in (r.keywords or {}).values() for w in words),
            starts_at=r.starts_at, ends_at=r.ends_at, friends_needed=r.friends_needed,
        ) for r in rows]
        self._items = items
        self._keywords = KeywordIndex((k, rank, p) for rank, p in enumerate(items) for k in p.keywords)
        if generation == self._generation:  # else invalidated while reading: the next message reads again
            self._loaded_at = time.monotonic()
        return items

    async def by_text(self, open_session: Callable[[], AsyncSession], text: str, channel: str) -> list[IndexedPromotion]:
        """Promotions whose keyword (in any locale, either Chinese script) appears in the text, in the order they were added."""
        if not text.strip():
            return []
        await self.items(open_session)
        return [p for p in self._keywords.all(text) if p.on_channel(channel)]

    async def by_payload(self, open_session: Callable[[], AsyncSession], payload: str | None) -> IndexedPromotion | None:
        """The promotion a button (``offer:<slug>``) or a menu key stands for."""
        if not payload:
            return None
        for p in await self.items(open_session):
            if payload == f"{OFFER_PAYLOAD_PREFIX}{p.slug}" or (p.menu_key is not None and payload == p.menu_key):
                return p
        return None

    async def running(self, open_session: Callable[[], AsyncSession], now: datetime,
                      channel: str) -> list[IndexedPromotion]:
        return [p for p in await self.items(open_session) if p.running(now) and p.on_channel(channel)]


class OfferKeywordMatcher:
    """``Services.offer_keywords``: does a text name a running offer's keyword on a channel?"""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], index: OfferIndex) -> None:
        self.sessions = sessions
        self.index = index

    async def matches(self, text: str, channel: str) -> bool:
        now = utcnow()
        async with self.sessions() as session:
            return any(p.running(now) for p in await self.index.by_text(lambda: session, text, channel))


def offer_index(services: Services) -> OfferIndex:
    """The app's index (the app adds one with the prompt-rules TTL), created on first use otherwise."""
    return services.get_or_add(OfferIndex, OfferIndex)


def _same(items: list[IndexedPromotion]) -> list[IndexedPromotion]:
    return items
