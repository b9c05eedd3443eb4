"""Fixtures for the offers tests: a promotions file, loaded into a harness's database."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.offers import load_promo_file, offer_index, read_promo_file
from bot.offers.loader import LoadSummary
from bot.storage.models import Follower
from bot.storage.store import get_or_create_follower
from bot.testing import BotHarness
from handlers import default_router

PROMOS = """
promotions:
  - slug: hotpot-50
    title: {en: "Hotpot ¥50 off", zh_Hans: "火锅立减50元"}
    description: {en: "For dinner at any Jing'an store.", zh_Hans: "静安区各门店晚餐可用。"}
    terms: {en: "One per table.", zh_Hans: "每桌限用一张。"}
    timezone: Asia/Shanghai
    starts_at: 2026-01-01 10:00
    ends_at: 2099-12-31
    quota: 500
    code: {strategy: unique, length: 8}
    validity: {until: 2099-12-31}
    keywords: {en: [hotpot], zh_Hans: [火锅]}
    menu_key: OFFER_HOTPOT
    value: {amount: 50, currency: CNY, kind: discount}
  - slug: tea
    title: {en: "Free milk tea", zh_Hans: "免费奶茶"}
    keywords: {en: [tea], zh_Hans: [奶茶]}
    code: {strategy: pool, codes_csv: tea.csv}
    value: {amount: 18, currency: CNY, kind: price}
  - slug: family
    title: {en: "Family dinner voucher", zh_Hans: "家庭聚餐券"}
    friends_needed: 2
    code: {strategy: unique, length: 8, prefix: F}
campaigns:
  - slug: mall-poster
    scene: mall-poster-2026
    source: "Poster, Jing'an mall"
    promotion: hotpot-50
  - slug: kol-lily
    scene: kol-lily
    source: "KOL: Lily"
"""

TEA_CSV = "code\nTEA-0001\nTEA-0002\nTEA-0003\n"


def write_files(tmp_path: Path, yaml_text: str, files: dict[str, str] | None = None) -> Path:
    for name, content in {"tea.csv": TEA_CSV, **(files or {})}.items():
        (tmp_path / name).write_text(content, "utf-8")
    path = tmp_path / "promos.yaml"
    path.write_text(textwrap.dedent(yaml_text), "utf-8")
    return path


async def load_into(harness: BotHarness, tmp_path: Path, yaml_text: str = PROMOS,
                    files: dict[str, str] | None = None) -> LoadSummary:
    parsed = read_promo_file(write_files(tmp_path, yaml_text, files))
    async with harness.sessions() as session, session.begin():
        summary = await load_promo_file(session, parsed)
    offer_index(harness.dispatcher.services).invalidate()
    return summary


async def make_followers(harness: BotHarness, count: int, *, prefix: str = "f") -> list[int]:
    """Followers created straight in the database (following, as after a follow)."""
    from bot.core.clock import utcnow

    ids = []
    async with harness.sessions() as session:
        for n in range(count):
            f = await get_or_create_follower(session, channel="mock", account="mock", external_id=f"{prefix}{n}")
            f.following, f.followed_at = True, utcnow()
            ids.append(f.id)
        await session.commit()
    return ids


async def follower_row(harness: BotHarness, external_id: str) -> Follower:
    async with harness.sessions() as session:
        return (await session.execute(select(Follower).where(Follower.external_id == external_id))).scalar_one()


@pytest.fixture
async def offers(database_url: str, tmp_path: Path) -> AsyncIterator[BotHarness]:
    """A harness with the sample promotions and campaigns loaded."""
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        yield h
