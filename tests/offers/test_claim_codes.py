"""What a claim hands out: a pool code of its own promotion, a validity counted from the claim, and
a quota counter that counts only codes actually handed out."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot.offers import Campaign, Claim, ClaimOutcome, ClaimResult, PoolCode, Promotion, claim
from bot.offers import claims as claims_module
from bot.offers.batch import ClaimBatcher
from bot.storage.models import Follower
from bot.testing import BotHarness
from handlers import default_router

from .conftest import PROMOS, load_into, make_followers

TWO_POOLS = PROMOS.replace("campaigns:\n", """
  - slug: coffee
    title: {en: "Free coffee", zh_Hans: "免费咖啡"}
    keywords: {en: [coffee], zh_Hans: [咖啡]}
    code: {strategy: pool, codes_csv: coffee.csv}
  - slug: weekly
    title: {en: "Weekly dumplings", zh_Hans: "每周饺子"}
    keywords: {en: [dumplings], zh_Hans: [饺子]}
    timezone: Asia/Shanghai
    validity: {days: 7}
    code: {strategy: unique, length: 8}
campaigns:
""", 1)

COFFEE_CSV = "code\nCOF-0001\nCOF-0002\n"


async def _harness(database_url: str, tmp_path: Path) -> BotHarness:
    h = BotHarness(routers=[default_router()], database_url=database_url)
    await h.__aenter__()
    await load_into(h, tmp_path, TWO_POOLS, files={"coffee.csv": COFFEE_CSV})
    return h


async def _promotion(h: BotHarness, slug: str) -> Promotion:
    async with h.sessions() as session:
        return (await session.execute(select(Promotion).where(Promotion.slug == slug))).scalar_one()


async def _followers(h: BotHarness, count: int, *, prefix: str = "f") -> list[Follower]:
    ids = await make_followers(h, count, prefix=prefix)
    async with h.sessions() as session:
        return [await session.get(Follower, i) for i in ids]


async def test_a_pool_claim_takes_a_code_of_its_own_pool_only(database_url: str, tmp_path: Path) -> None:
    h = await _harness(database_url, tmp_path)
    try:
        tea, coffee = await _promotion(h, "tea"), await _promotion(h, "coffee")
        first, second, third = await _followers(h, 3)
        async with h.sessions() as session:
            got = [(await claim(session, coffee, f)).code for f in (first, second)]
            await session.commit()
        assert got == ["COF-0001", "COF-0002"]  # the tea pool (loaded first) is left alone
        async with h.sessions() as session:
            empty = await claim(session, coffee, third)
            tea_code = (await claim(session, tea, third)).code
            await session.commit()
        assert (empty.outcome, empty.promotion.slug, tea_code) == (ClaimOutcome.SOLD_OUT, "coffee", "TEA-0001")
        async with h.sessions() as session:
            counters = dict((await session.execute(select(Promotion.slug, Promotion.claimed))).all())
            free = Counter((await session.execute(select(PoolCode.promotion_id).where(
                PoolCode.claim_id.is_(None)))).scalars())
        # The claim the empty pool refused was given back: the counter says what was handed out.
        assert (counters["coffee"], counters["tea"]) == (2, 1)
        assert free == {tea.id: 2}
    finally:
        await h.__aexit__(None, None, None)


async def test_the_batch_takes_pool_codes_of_its_own_pool_only(database_url: str, tmp_path: Path) -> None:
    h = await _harness(database_url, tmp_path)
    try:
        coffee = await _promotion(h, "coffee")
        followers = await _followers(h, 3)
        results = await asyncio.gather(*(ClaimBatcher(h.sessions).claim(coffee, f) for f in followers))
        assert sorted(r.code or "-" for r in results) == ["-", "COF-0001", "COF-0002"]
        assert (await _promotion(h, "coffee")).claimed == 2
    finally:
        await h.__aexit__(None, None, None)


async def test_a_validity_in_days_ends_at_the_end_of_the_last_day_in_the_promotions_zone(
        database_url: str, tmp_path: Path) -> None:
    h = await _harness(database_url, tmp_path)
    try:
        weekly = await _promotion(h, "weekly")
        [follower] = await _followers(h, 1)
        claimed_at = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # already 2 March, 01:30 in Shanghai
        async with h.sessions() as session:
            result = await claim(session, weekly, follower, now=claimed_at)
            await session.commit()
        # 2 March + 7 days = 9 March, 23:59:59 in Shanghai = 15:59:59 UTC.
        assert result.claim.valid_until == datetime(2026, 3, 9, 15, 59, 59, tzinfo=UTC)
        assert result.claim.claimed_at == claimed_at
        [other] = await _followers(h, 1, prefix="bulk")
        batcher = ClaimBatcher(h.sessions)
        bulk = await batcher.claim(weekly, other, now=claimed_at)
        assert (batcher.batches, bulk.outcome) == (1, ClaimOutcome.CLAIMED)
        assert bulk.claim.valid_until == datetime(2026, 3, 9, 15, 59, 59, tzinfo=UTC)
    finally:
        await h.__aexit__(None, None, None)


async def test_a_refusal_by_the_quota_update_still_names_the_promotion(offers: BotHarness) -> None:
    async with offers.sessions() as session:
        stale = (await session.execute(select(Promotion).where(Promotion.slug == "hotpot-50"))).scalar_one()
        await session.execute(update(Promotion).where(Promotion.id == stale.id).values(quota=1, claimed=1),
                              execution_options={"synchronize_session": False})
        await session.commit()
    stale.quota = 1
    [follower] = await make_followers(offers, 1)
    async with offers.sessions() as session:
        result = await claim(session, stale, await session.get(Follower, follower))
        await session.rollback()
    assert (result.outcome, result.promotion) == (ClaimOutcome.SOLD_OUT, stale)


async def _one(h: BotHarness, slug: str, follower: Follower, **options: object) -> ClaimResult:
    async with h.sessions() as session:
        result = await claim(session, await _promotion(h, slug), follower, **options)  # type: ignore[arg-type]
        await session.commit()
    return result


async def _counter(h: BotHarness, slug: str) -> int:
    return (await _promotion(h, slug)).claimed


async def test_a_followers_codes_of_other_promotions_do_not_count(offers: BotHarness) -> None:
    [follower] = await _followers(offers, 1)
    hotpot, tea = await _one(offers, "hotpot-50", follower), await _one(offers, "tea", follower)
    assert (hotpot.outcome, tea.outcome) == (ClaimOutcome.CLAIMED, ClaimOutcome.CLAIMED)
    assert tea.code == "TEA-0001" and hotpot.code != tea.code
    assert (hotpot.claim.via, tea.claim.seq) == ("api", 1)


async def test_a_shared_code_is_the_promotions_own_and_stored_as_none(offers: BotHarness) -> None:
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50")
                              .values(code_strategy="shared", shared_code="HOTPOT50"))
        await session.commit()
    followers = await _followers(offers, 2)
    results = [await _one(offers, "hotpot-50", f) for f in followers]
    assert [(r.outcome, r.code, r.claim.code) for r in results] == [(ClaimOutcome.CLAIMED, "HOTPOT50", None)] * 2
    async with offers.sessions() as session:
        assert (await session.execute(select(Claim.code))).scalars().all() == [None, None]


async def test_a_generated_code_that_exists_is_drawn_again(offers: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = await _followers(offers, 2)
    taken = (await _one(offers, "hotpot-50", first)).code
    real = claims_module.generate_code
    draws = iter([taken, taken])
    monkeypatch.setattr(claims_module, "generate_code", lambda *a: next(draws, None) or real(*a))
    result = await _one(offers, "hotpot-50", second)
    assert result.outcome == ClaimOutcome.CLAIMED and result.code not in (None, taken)
    assert await _counter(offers, "hotpot-50") == 2


async def test_a_code_space_used_up_is_an_error_naming_the_promotion(offers: BotHarness,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = await _followers(offers, 2)
    taken = (await _one(offers, "hotpot-50", first)).code
    monkeypatch.setattr(claims_module, "generate_code", lambda *a: taken)
    with pytest.raises(RuntimeError) as caught:
        await _one(offers, "hotpot-50", second)
    assert str(caught.value) == f"no free code found for 'hotpot-50' after {claims_module.CODE_ATTEMPTS} attempts"


async def test_the_same_follower_claiming_twice_at_once_gets_one_code(offers: BotHarness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The second claim read the follower's claims before the first committed: its insert meets the
    (promotion, follower, seq) key, it gives its quota back, reads again and answers with that code."""
    [follower] = await _followers(offers, 1)
    first = await _one(offers, "hotpot-50", follower)
    real, reads = claims_module.claims_of, []

    async def read_before_the_first_committed(*args: object) -> list[Claim]:
        reads.append(1)
        return [] if len(reads) == 1 else await real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(claims_module, "claims_of", read_before_the_first_committed)
    again = await _one(offers, "hotpot-50", follower)
    assert (again.outcome, again.code, len(reads)) == (ClaimOutcome.ALREADY_CLAIMED, first.code, 2)
    assert await _counter(offers, "hotpot-50") == 1
    async with offers.sessions() as session:
        assert len((await session.execute(select(Claim))).scalars().all()) == 1


async def test_a_session_that_read_a_code_sees_it_redeemed_meanwhile(offers: BotHarness) -> None:
    [follower] = await _followers(offers, 1)
    async with offers.sessions() as session:
        promotion = await _promotion(offers, "hotpot-50")
        code = (await claim(session, promotion, follower)).code
        held = await claims_module.claims_of(session, promotion.id, follower.id)  # in the session's identity map
        await session.commit()
        async with offers.sessions() as till:
            await till.execute(update(Claim).where(Claim.code == code).values(redeemed_at=Claim.claimed_at))
            await till.commit()
        assert (await claim(session, promotion, follower)).outcome == ClaimOutcome.LIMIT_REACHED
        assert held[0].redeemed_at is not None  # read again, not served from what the session had


async def test_a_code_is_live_up_to_its_last_second(offers: BotHarness) -> None:
    [follower] = await _followers(offers, 1)
    first = await _one(offers, "hotpot-50", follower)
    until = first.claim.valid_until
    again = await _one(offers, "hotpot-50", follower, now=until)  # at that very moment: still usable
    assert (again.outcome, again.code) == (ClaimOutcome.ALREADY_CLAIMED, first.code)


async def test_the_locale_of_the_message_decides_a_language_audience(offers: BotHarness) -> None:
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(audience_locales=["en"]))
        await session.commit()
    english, chinese = await _followers(offers, 2)  # neither has a stored locale
    assert (await _one(offers, "hotpot-50", english, locale="en")).outcome == ClaimOutcome.CLAIMED
    assert (await _one(offers, "hotpot-50", chinese, locale="zh_Hans")).outcome == ClaimOutcome.NOT_IN_AUDIENCE


async def test_a_claim_that_keeps_losing_its_race_says_so(offers: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    [follower] = await _followers(offers, 1)
    await _one(offers, "hotpot-50", follower)

    async def never_sees_it(*args: object) -> list[Claim]:
        return []

    monkeypatch.setattr(claims_module, "claims_of", never_sees_it)
    with pytest.raises(RuntimeError) as caught:
        await _one(offers, "hotpot-50", follower)
    assert str(caught.value) == "claim of 'hotpot-50' kept racing with itself"
    assert await _counter(offers, "hotpot-50") == 1  # every lost race gave its quota back


async def test_the_bulk_path_skips_pool_codes_handed_out_before(database_url: str, tmp_path: Path) -> None:
    h = await _harness(database_url, tmp_path)
    try:
        coffee = await _promotion(h, "coffee")
        first, *others = await _followers(h, 3)
        assert (await _one(h, "coffee", first)).code == "COF-0001"
        batcher = ClaimBatcher(h.sessions)
        results = await asyncio.gather(*(batcher.claim(coffee, f) for f in others))
        assert [(r.outcome, r.code) for r in results] == [(ClaimOutcome.CLAIMED, "COF-0002"),
                                                          (ClaimOutcome.SOLD_OUT, None)]
        assert (batcher.batches, batcher.fallbacks) == (1, 0)  # found by the bulk path itself, no conflict
    finally:
        await h.__aexit__(None, None, None)


@pytest.mark.parametrize("bulk", [True, False])
async def test_the_batcher_passes_every_option_on(offers: BotHarness, bulk: bool) -> None:
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(audience_locales=["en"]))
        await session.commit()
    promo = await _promotion(offers, "hotpot-50")
    english, chinese = await _followers(offers, 2)
    at = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    async with offers.sessions() as session:
        poster = (await session.execute(select(Campaign.id).where(Campaign.slug == "mall-poster"))).scalar_one()
    batcher = ClaimBatcher(offers.sessions, bulk=bulk)
    yes, no = await asyncio.gather(
        batcher.claim(promo, english, locale="en", via="campaign", now=at, campaign_id=poster),
        batcher.claim(promo, chinese, locale="zh_Hans", via="campaign", now=at, campaign_id=poster))
    assert (yes.outcome, no.outcome, no.promotion.slug) == (ClaimOutcome.CLAIMED, ClaimOutcome.NOT_IN_AUDIENCE,
                                                            "hotpot-50")
    assert (yes.claim.via, yes.claim.claimed_at, yes.claim.campaign_id) == ("campaign", at, poster)
    async with offers.sessions() as session:
        stored = (await session.execute(select(Claim.via, Claim.campaign_id))).one()
    assert tuple(stored) == ("campaign", poster)
    again = await batcher.claim(promo, english, locale="en")
    assert (again.outcome, again.promotion.slug, again.code) == (ClaimOutcome.ALREADY_CLAIMED, "hotpot-50", yes.code)


async def test_the_limit_and_sold_out_answers_of_a_batch_name_their_promotion(offers: BotHarness) -> None:
    promo = await _promotion(offers, "hotpot-50")
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.id == promo.id).values(quota=1))
        await session.commit()
    promo = await _promotion(offers, "hotpot-50")
    first, late = await _followers(offers, 2)
    batcher = ClaimBatcher(offers.sessions)
    got = await batcher.claim(promo, first)
    async with offers.sessions() as session:
        await session.execute(update(Claim).values(redeemed_at=Claim.claimed_at))
        await session.commit()
    limit, sold_out = await asyncio.gather(batcher.claim(promo, first), batcher.claim(promo, late))
    assert got.outcome == ClaimOutcome.CLAIMED
    assert [(r.outcome, r.promotion.slug) for r in (limit, sold_out)] == [
        (ClaimOutcome.LIMIT_REACHED, "hotpot-50"), (ClaimOutcome.SOLD_OUT, "hotpot-50")]


async def test_a_request_that_fails_the_batch_fails_alone(offers: BotHarness) -> None:
    """A claim the database refuses outright (here: a follower that does not exist) gets its error;
    the others of its batch, and the batches queued behind it, are still answered."""
    promo = await _promotion(offers, "hotpot-50")
    followers = await _followers(offers, 4)
    ghost = SimpleNamespace(id=10**9, channel="mock", following=True, followed_at=None, tags=[], locale=None)
    batcher = ClaimBatcher(offers.sessions, max_batch=2)
    results = await asyncio.wait_for(asyncio.gather(
        batcher.claim(promo, followers[0]), batcher.claim(promo, ghost),
        *(batcher.claim(promo, f) for f in followers[1:]), return_exceptions=True), 30)
    assert isinstance(results[1], IntegrityError)
    assert [r.outcome for r in results if not isinstance(r, BaseException)] == [ClaimOutcome.CLAIMED] * 4
    assert (await _promotion(offers, "hotpot-50")).claimed == 4
