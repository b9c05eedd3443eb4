"""Followers for operators: search (channel, locale, tag, first-touch source), tag, export as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import N_
from bot.storage.engine import hold_write_gate
from bot.storage.models import Follower

from .audit import Actor, record
from .errors import NotFound
from .schemas import TagsUpdate

CSV_COLUMNS = ("id", "channel", "account", "external_id", "display_name", "locale", "following", "followed_at",
               "first_source", "tags")
EXPORT_BATCH = 500
NO_FOLLOWER = N_("no follower {id}")


@dataclass(frozen=True, slots=True)
class FollowerFilter:
    channel: str | None = None
    locale: str | None = None
    tag: str | None = None
    source: str | None = None  # the first-touch campaign scene

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.channel is not None:
            query = query.where(Follower.channel == self.channel)
        if self.locale is not None:
            query = query.where(Follower.locale == self.locale)
        if self.source is not None:
            query = query.where(Follower.first_source == self.source)
        if self.tag is not None:
            # The tags are a JSON list stored as its text on both backends (the same serializer writes it),
            # so the quoted, escaped tag appears in that text exactly when the list holds it.
            needle = json.dumps(self.tag).replace("!", "!!").replace("%", "!%").replace("_", "!_")
            query = query.where(cast(Follower.tags, String).like(f"%{needle}%", escape="!"))
        return query


def follower_record(f: Follower) -> dict[str, Any]:
    return {"id": f.id, "channel": f.channel, "account": f.account, "external_id": f.external_id,
            "display_name": f.display_name, "locale": f.locale, "following": f.following,
            "followed_at": f.followed_at, "first_source": f.first_source, "tags": list(f.tags or [])}


async def search_followers(session: AsyncSession, where: FollowerFilter, *, limit: int,
                           after_id: int | None = None) -> Sequence[Follower]:
    query = where.apply(select(Follower)).order_by(Follower.id).limit(limit)
    if after_id is not None:
        query = query.where(Follower.id > after_id)
    return (await session.execute(query)).scalars().all()


async def get_follower(session: AsyncSession, follower_id: int) -> Follower:
    follower = await session.get(Follower, follower_id)
    if follower is None:
        raise NotFound(NO_FOLLOWER, id=follower_id)
    return follower


async def tag_follower(session: AsyncSession, actor: Actor, follower_id: int, body: TagsUpdate) -> Follower:
    """Add and remove tags; the row is locked first, so two operators' changes both land."""
    await hold_write_gate(session)  # SQLite: one writer from the read on; PostgreSQL: the row lock below
    follower = (await session.execute(select(Follower).where(Follower.id == follower_id).with_for_update()
                                      .execution_options(populate_existing=True))).scalar_one_or_none()
    if follower is None:
        raise NotFound(NO_FOLLOWER, id=follower_id)
    before = list(follower.tags or [])
    tags = [t for t in before if t not in body.remove]
    tags += [t for t in dict.fromkeys(body.add) if t not in tags]
    if tags != before:
        follower.tags = tags
        await session.flush()
        await record(session, actor, "follower.tag", f"follower:{follower.id}", before={"tags": before},
                     after={"tags": tags})
    return follower


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading = + - @ would be run as a formula."""
    text = "" if value is None else ",".join(value) if isinstance(value, list) else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def export_csv(session: AsyncSession, where: FollowerFilter) -> AsyncIterator[str]:
    """The matching followers as CSV text, a header and then a chunk per batch (never all in memory)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    after: int | None = None
    while True:
        batch = await search_followers(session, where, limit=EXPORT_BATCH, after_id=after)
        for f in batch:
            row = follower_record(f)
            writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].id
