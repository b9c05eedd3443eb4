"""The database keeps the quota and the limits when hundreds claim at once, in one or two processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import func, select, update

from bot.offers import Claim, Promotion
from bot.testing import BotHarness
from handlers import default_router

from .claimer import claim_all, claim_from_processes
from .conftest import load_into, make_followers


async def _quota_50(h: BotHarness) -> int:
    async with h.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(quota=50))
        await session.commit()
        return (await session.execute(select(Promotion.id).where(Promotion.slug == "hotpot-50"))).scalar_one()


async def _check_exactly_50(h: BotHarness, promotion_id: int) -> None:
    async with h.sessions() as session:
        codes = (await session.execute(select(Claim.code).where(Claim.promotion_id == promotion_id))).scalars().all()
        per_follower = (await session.execute(
            select(func.count()).select_from(Claim).where(Claim.promotion_id == promotion_id)
            .group_by(Claim.follower_id))).scalars().all()
        claimed = (await session.execute(select(Promotion.claimed).where(Promotion.id == promotion_id))).scalar_one()
    assert len(codes) == 50
    assert len(set(codes)) == 50
    assert max(per_follower) == 1
    assert claimed == 50


async def test_500_concurrent_claims_give_exactly_the_quota(database_url: str, tmp_path: Path) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        promotion_id = await _quota_50(h)
        followers = await make_followers(h, 250)
        # Every follower claims twice at the same moment: 500 claims, each in its own session.
        outcomes = await claim_all(database_url, promotion_id, followers + followers)
        assert outcomes["claimed"] == 50
        assert outcomes["claimed"] + outcomes["sold_out"] + outcomes["already_claimed"] == 500
        await _check_exactly_50(h, promotion_id)



async def test_two_processes_claiming_at_once_give_exactly_the_quota(database_url: str, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL: two processes released together, each believing nothing is claimed yet."""
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        promotion_id = await _quota_50(h)
        followers = await make_followers(h, 250)
        halves = [followers[:150] + followers[100:175], followers[75:250] + followers[:50]]  # overlapping followers
        outcomes = await claim_from_processes(database_url, promotion_id, halves)
        assert sum(o["claimed"] for o in outcomes) == 50
        assert [sum(o.values()) for o in outcomes] == [225, 225]
        await _check_exactly_50(h, promotion_id)


async def test_the_batcher_keeps_the_quota_with_one_commit_per_batch(database_url: str, tmp_path: Path) -> None:
    from bot.offers.batch import ClaimBatcher
    from bot.storage.models import Follower

    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        promotion_id = await _quota_50(h)
        ids = await make_followers(h, 120)
        async with h.sessions() as session:
            promo = await session.get(Promotion, promotion_id)
            followers = list((await session.execute(select(Follower).where(Follower.id.in_(ids)))).scalars())
        batcher = ClaimBatcher(h.sessions, max_batch=32)
        results = await asyncio.gather(*(batcher.claim(promo, f) for f in followers + followers[:30]))
        assert sum(r.outcome == "claimed" for r in results) == 50
        await _check_exactly_50(h, promotion_id)


async def test_concurrent_pool_claims_hand_out_every_code_once(database_url: str, tmp_path: Path) -> None:
    """On PostgreSQL claimers skip the pool rows others are taking (SKIP LOCKED), none is told sold out early."""
    codes = [f"TEA-{n:04d}" for n in range(20)]
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path, files={"tea.csv": "code\n" + "\n".join(codes) + "\n"})
        async with h.sessions() as session:
            tea = (await session.execute(select(Promotion.id).where(Promotion.slug == "tea"))).scalar_one()
        followers = await make_followers(h, 30)
        outcomes = await claim_all(database_url, tea, followers)
        assert outcomes == {"claimed": 20, "sold_out": 10}
        async with h.sessions() as session:
            handed = (await session.execute(select(Claim.code).where(Claim.promotion_id == tea))).scalars().all()
        assert sorted(handed) == codes
