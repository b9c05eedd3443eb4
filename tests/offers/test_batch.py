"""The ClaimBatcher's bulk path: one read, one quota update, one insert and one commit per batch,
with the same answers and guarantees as claim() (quota, per-follower limit, unique codes)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.core.clock import utcnow
from bot.offers import Claim, ClaimOutcome, PoolCode, Promotion, claim
from bot.offers import batch as batch_module
from bot.offers import claims as claims_module
from bot.offers.batch import ClaimBatcher
from bot.storage.models import Follower
from bot.testing import BotHarness
from handlers import default_router

from .claimer import claim_from_processes
from .conftest import load_into, make_followers
from .test_concurrency import _check_exactly_50, _quota_50


async def _promotion(h: BotHarness, slug: str, **changes: Any) -> Promotion:
    async with h.sessions() as session:
        if changes:
            await session.execute(update(Promotion).where(Promotion.slug == slug).values(**changes))
            await session.commit()
        return (await session.execute(select(Promotion).where(Promotion.slug == slug))).scalar_one()


async def _followers(h: BotHarness, count: int, *, prefix: str = "f") -> list[Follower]:
    ids = await make_followers(h, count, prefix=prefix)
    async with h.sessions() as session:
        rows = {f.id: f for f in (await session.execute(select(Follower).where(Follower.id.in_(ids)))).scalars()}
    return [rows[i] for i in ids]


async def _claims_of(h: BotHarness, promotion_id: int) -> list[Claim]:
    async with h.sessions() as session:
        return list((await session.execute(select(Claim).where(Claim.promotion_id == promotion_id)
                                           .order_by(Claim.follower_id, Claim.seq))).scalars())


async def _claimed(h: BotHarness, promotion_id: int) -> int:
    async with h.sessions() as session:
        return (await session.execute(select(Promotion.claimed).where(Promotion.id == promotion_id))).scalar_one()


async def _with_one_code_taken(h: BotHarness, count: int) -> tuple[Promotion, Follower, list[Follower], str]:
    """hotpot-50, ``count`` followers, and the code the first of them already holds."""
    promo = await _promotion(h, "hotpot-50")
    first, *others = await _followers(h, count)
    async with h.sessions() as session:
        taken = (await claim(session, promo, first)).code
        await session.commit()
    return promo, first, others, taken


async def test_500_concurrent_batched_claims_give_exactly_the_quota(database_url: str, tmp_path: Path) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        promotion_id = await _quota_50(h)
        promo = await _promotion(h, "hotpot-50")
        followers = await _followers(h, 250)
        batcher = ClaimBatcher(h.sessions, max_batch=64)
        # Every follower claims twice at the same moment: 500 claims, in batches of 64.
        results = await asyncio.gather(*(batcher.claim(promo, f) for f in followers + followers))
        outcomes = Counter(r.outcome for r in results)
        assert outcomes[ClaimOutcome.CLAIMED] == 50
        assert outcomes[ClaimOutcome.CLAIMED] + outcomes[ClaimOutcome.SOLD_OUT] \
            + outcomes[ClaimOutcome.ALREADY_CLAIMED] == 500
        assert (batcher.batches, batcher.fallbacks) == (8, 0)  # all through the bulk path
        # First come, first served: the 50 first followers in line got the codes, and their
        # second request (in a later batch) got the same code again.
        assert [r.outcome for r in results[:50]] == [ClaimOutcome.CLAIMED] * 50
        assert [r.outcome for r in results[50:250]] == [ClaimOutcome.SOLD_OUT] * 200
        assert [r.code for r in results[250:300]] == [r.code for r in results[:50]]
        await _check_exactly_50(h, promotion_id)


async def test_two_processes_batching_at_once_give_exactly_the_quota(database_url: str, tmp_path: Path) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        promotion_id = await _quota_50(h)
        followers = await make_followers(h, 250)
        halves = [followers[:150] + followers[100:175], followers[75:250] + followers[:50]]  # overlapping followers
        outcomes = await claim_from_processes(database_url, promotion_id, halves, batch=True)
        assert sum(o["claimed"] for o in outcomes) == 50
        assert [sum(o.values()) for o in outcomes] == [225, 225]
        await _check_exactly_50(h, promotion_id)


async def test_one_batch_answers_as_claim_would(offers: BotHarness) -> None:
    promo = await _promotion(offers, "hotpot-50")
    family = await _promotion(offers, "family")
    held, twice, once, away = await _followers(offers, 4)
    away.following = False
    async with offers.sessions() as session:
        earlier = await claim(session, promo, held)
        await session.commit()
    batcher = ClaimBatcher(offers.sessions)
    results = await asyncio.gather(
        batcher.claim(promo, held), batcher.claim(promo, twice), batcher.claim(family, once),
        batcher.claim(promo, twice, via="campaign"), batcher.claim(promo, away), batcher.claim(promo, once))
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    assert [r.outcome for r in results] == [
        ClaimOutcome.ALREADY_CLAIMED, ClaimOutcome.CLAIMED, ClaimOutcome.CLAIMED,
        ClaimOutcome.ALREADY_CLAIMED, ClaimOutcome.NOT_FOLLOWING, ClaimOutcome.CLAIMED]
    assert results[0].code == earlier.code and results[0].claim.id == earlier.claim.id
    # The same follower twice in one batch: one claim, the second request gets its code again.
    assert results[3].claim.id == results[1].claim.id and results[3].code == results[1].code
    assert results[1].claim.via == "api" and results[1].claim.seq == 1
    # The family offer's prefix, then 8 drawn characters (a code without the prefix starts with F one time in 31).
    assert results[2].promotion is family and (results[2].code[:1], len(results[2].code)) == ("F", 9)
    rows = await _claims_of(offers, promo.id)
    assert [(c.follower_id, c.code) for c in rows] == [
        (held.id, earlier.code), (twice.id, results[1].code), (once.id, results[5].code)]
    assert await _claimed(offers, promo.id) == 3
    assert await _claimed(offers, family.id) == 1
    with pytest.raises(TypeError):
        await batcher.claim(promo, once, colour="red")


async def test_the_per_follower_limit_holds_within_a_batch(offers: BotHarness) -> None:
    promo = await _promotion(offers, "hotpot-50", per_follower_limit=2)
    one_used, two_used, expired = await _followers(offers, 3)
    async with offers.sessions() as session:
        for follower, times in ((one_used, 1), (two_used, 2), (expired, 1)):
            for _ in range(times):
                await claim(session, promo, follower)
                await session.execute(update(Claim).where(Claim.follower_id == follower.id)
                                      .values(redeemed_at=utcnow()))
        await session.execute(update(Claim).where(Claim.follower_id == expired.id)
                              .values(redeemed_at=None, valid_until=utcnow() - timedelta(days=1)))
        await session.commit()
    batcher = ClaimBatcher(offers.sessions)
    # Three requests each in one batch: a second code for the first and third, none for the second.
    results = await asyncio.gather(*(batcher.claim(promo, f) for f in (one_used, two_used, expired) * 3))
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    for mine in (results[0::3], results[2::3]):
        assert [r.outcome for r in mine] == [ClaimOutcome.CLAIMED] + [ClaimOutcome.ALREADY_CLAIMED] * 2
        assert {r.claim.id for r in mine} == {mine[0].claim.id} and mine[0].claim.seq == 2
    assert [r.outcome for r in results[1::3]] == [ClaimOutcome.LIMIT_REACHED] * 3
    counts = Counter(c.follower_id for c in await _claims_of(offers, promo.id))
    assert counts == {one_used.id: 2, two_used.id: 2, expired.id: 2}
    assert await _claimed(offers, promo.id) == 6


async def test_the_last_codes_go_to_the_first_in_line(offers: BotHarness) -> None:
    promo = await _promotion(offers, "hotpot-50", quota=2)
    followers = await _followers(offers, 5)
    batcher = ClaimBatcher(offers.sessions)
    results = await asyncio.gather(*(batcher.claim(promo, f) for f in followers + followers[3:4] + followers[:1]))
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    assert [r.outcome for r in results] == [ClaimOutcome.CLAIMED] * 2 + [ClaimOutcome.SOLD_OUT] * 4 \
        + [ClaimOutcome.ALREADY_CLAIMED]
    assert results[-1].code == results[0].code
    assert await _claimed(offers, promo.id) == 2
    assert len(await _claims_of(offers, promo.id)) == 2


async def test_a_code_collision_redoes_the_batch_one_by_one(offers: BotHarness,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    promo, first, others, taken = await _with_one_code_taken(offers, 6)
    real = claims_module.generate_code
    # The bulk path draws a code that is already someone's: the insert fails on the unique key.
    bulk_draws = iter([taken])
    monkeypatch.setattr(batch_module, "generate_code", lambda *a: next(bulk_draws, None) or real(*a))
    # ... and claim() draws it again too on its first attempt: its SAVEPOINT retry takes another.
    single_draws = iter([taken])
    monkeypatch.setattr(claims_module, "generate_code", lambda *a: next(single_draws, None) or real(*a))
    batcher = ClaimBatcher(offers.sessions)
    results = await asyncio.gather(*(batcher.claim(promo, f) for f in others + [first]))
    assert (batcher.batches, batcher.fallbacks) == (0, 1)
    assert [r.outcome for r in results] == [ClaimOutcome.CLAIMED] * 5 + [ClaimOutcome.ALREADY_CLAIMED]
    assert results[-1].code == taken
    rows = await _claims_of(offers, promo.id)
    assert len(rows) == 6 and len({c.code for c in rows}) == 6
    assert {r.code for r in results} == {c.code for c in rows}
    assert await _claimed(offers, promo.id) == 6  # the bulk attempt's increment was rolled back


async def test_duplicate_draws_in_one_batch_are_drawn_again(offers: BotHarness,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    promo = await _promotion(offers, "hotpot-50")
    followers = await _followers(offers, 4)
    real = batch_module.generate_code
    draws = iter(["SAMECODE", "SAMECODE", "SAMECODE"])
    monkeypatch.setattr(batch_module, "generate_code", lambda *a: next(draws, None) or real(*a))
    batcher = ClaimBatcher(offers.sessions)
    results = await asyncio.gather(*(batcher.claim(promo, f) for f in followers))
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    assert results[0].code == "SAMECODE" and len({r.code for r in results}) == 4


async def test_pool_codes_in_bulk(offers: BotHarness) -> None:
    tea = await _promotion(offers, "tea")
    followers = await _followers(offers, 5)
    batcher = ClaimBatcher(offers.sessions)
    results = await asyncio.gather(*(batcher.claim(tea, f) for f in followers + followers[:1]))
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    assert [r.outcome for r in results] == [ClaimOutcome.CLAIMED] * 3 + [ClaimOutcome.SOLD_OUT] * 2 \
        + [ClaimOutcome.ALREADY_CLAIMED]
    assert [r.code for r in results[:3]] == ["TEA-0001", "TEA-0002", "TEA-0003"]
    assert results[-1].code == "TEA-0001"
    async with offers.sessions() as session:
        pool = (await session.execute(select(PoolCode.code, PoolCode.claim_id).order_by(PoolCode.id))).all()
    assert pool == [(r.code, r.claim.id) for r in results[:3]]
    assert await _claimed(offers, tea.id) == 3  # the two codes the pool did not have were given back
    more = await batcher.claim(tea, (await _followers(offers, 1, prefix="g"))[0])
    assert more.outcome == ClaimOutcome.SOLD_OUT


async def test_shared_codes_in_bulk(offers: BotHarness) -> None:
    promo = await _promotion(offers, "hotpot-50", code_strategy="shared", shared_code="HOTPOT50")
    followers = await _followers(offers, 3)
    batcher = ClaimBatcher(offers.sessions)
    results = await asyncio.gather(*(batcher.claim(promo, f) for f in followers))
    assert [r.code for r in results] == ["HOTPOT50"] * 3
    assert [c.code for c in await _claims_of(offers, promo.id)] == [None] * 3


async def test_the_one_by_one_batcher_still_works(offers: BotHarness) -> None:
    promo = await _promotion(offers, "hotpot-50", quota=2)
    followers = await _followers(offers, 3)
    batcher = ClaimBatcher(offers.sessions, bulk=False)
    results = await asyncio.gather(*(batcher.claim(promo, f) for f in followers))
    assert [r.outcome for r in results] == [ClaimOutcome.CLAIMED] * 2 + [ClaimOutcome.SOLD_OUT]
    assert (batcher.batches, batcher.fallbacks) == (0, 0)
    async with offers.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Claim))).scalar_one() == 2


async def test_each_batch_redone_one_by_one_is_counted(offers: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    promo, _first, others, taken = await _with_one_code_taken(offers, 3)
    real = batch_module.generate_code
    draws = iter([taken, taken])  # each batch's draw collides with the code already handed out
    monkeypatch.setattr(batch_module, "generate_code", lambda *a: next(draws, None) or real(*a))
    batcher = ClaimBatcher(offers.sessions)
    for follower in others:
        assert (await batcher.claim(promo, follower)).outcome == ClaimOutcome.CLAIMED
    assert (batcher.batches, batcher.fallbacks) == (0, 2)


async def test_a_batch_waits_for_a_claim_being_written_in_this_process_and_answers_with_it(offers: BotHarness) -> None:
    """A message's claim, written but not committed yet, and a batch asking for the same follower: the
    batch waits for it before it reads (on SQLite the process's write gate, on PostgreSQL the
    promotion's row lock), so it sees that claim and runs once, on the bulk path, with nothing to redo."""
    promo = await _promotion(offers, "hotpot-50")
    first, second = await _followers(offers, 2)
    batcher = ClaimBatcher(offers.sessions)
    async with offers.sessions() as session:
        mine = await claim(session, promo, first)  # holds the write until it commits
        asked = asyncio.ensure_future(asyncio.gather(batcher.claim(promo, first), batcher.claim(promo, second)))
        await asyncio.sleep(0.3)
        assert not asked.done()
        await session.commit()
    again, other = await asyncio.wait_for(asked, 30)
    assert (again.outcome, again.code, other.outcome) == (ClaimOutcome.ALREADY_CLAIMED, mine.code,
                                                          ClaimOutcome.CLAIMED)
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    assert await _claimed(offers, promo.id) == 2


async def test_the_bulk_path_counts_each_answer_by_outcome(offers: BotHarness) -> None:
    """``engagebot_claims_total`` by outcome, as ``claim()`` counts its own: once per answer."""
    from prometheus_client import REGISTRY

    def counted() -> dict[str, float]:
        return {outcome: REGISTRY.get_sample_value("engagebot_claims_total", {"outcome": outcome}) or 0.0
                for outcome in ("claimed", "sold_out", "already_claimed")}

    promo = await _promotion(offers, "hotpot-50", quota=1)
    first, late = await _followers(offers, 2)
    batcher = ClaimBatcher(offers.sessions)
    before = counted()
    results = await asyncio.gather(batcher.claim(promo, first), batcher.claim(promo, late), batcher.claim(promo, first))
    assert [r.outcome for r in results] == [ClaimOutcome.CLAIMED, ClaimOutcome.SOLD_OUT, ClaimOutcome.ALREADY_CLAIMED]
    assert (batcher.batches, batcher.fallbacks) == (1, 0)
    after = counted()
    assert {outcome: after[outcome] - before[outcome] for outcome in after} == {
        "claimed": 1, "sold_out": 1, "already_claimed": 1}
