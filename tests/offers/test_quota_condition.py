"""The quota is kept by the conditional UPDATE itself, not only by the database's CHECK constraint.

Each claim path reads the counter first, so in most tests the read is what refuses a claim and the
UPDATE's condition is never exercised. Here the claimer's view of the counter is stale (another
process took codes meanwhile), and the ``claimed <= quota`` CHECK is switched off for the test's
transaction, so only the ``WHERE`` of the UPDATE stands between the claimer and an oversold quota.
The CHECK constraint stays in the schema, as a second line of defence; a test says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bot.offers import Claim, ClaimOutcome, Promotion, claim
from bot.offers.batch import _take_quota
from bot.storage.dialect import is_postgresql
from bot.storage.models import Follower
from bot.testing import BotHarness

from .conftest import make_followers

QUOTA_CHECK = "ck_promotion_claimed_within_quota"


@asynccontextmanager
async def _without_quota_check(conn: AsyncConnection) -> AsyncIterator[None]:
    """Switch the CHECK constraint off for this connection's transaction (rolled back by the caller)."""
    if is_postgresql(conn):
        await conn.execute(text(f"ALTER TABLE promotion DROP CONSTRAINT {QUOTA_CHECK}"))  # transactional DDL
        yield
    else:
        await conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        try:
            yield
        finally:
            await conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


async def _set_counter(h: BotHarness, *, quota: int | None, claimed: int) -> Promotion:
    """Set hotpot-50's counter in the database; return the promotion as it was read BEFORE (claimed 0)."""
    async with h.sessions() as session:
        stale = (await session.execute(select(Promotion).where(Promotion.slug == "hotpot-50"))).scalar_one()
        await session.execute(update(Promotion).where(Promotion.id == stale.id).values(quota=quota, claimed=claimed),
                              execution_options={"synchronize_session": False})
        await session.commit()
    stale.quota = quota  # the claimer knows the quota; it missed the claims made meanwhile
    assert stale.claimed == 0
    return stale


async def _counter(session: AsyncSession | AsyncConnection, promotion_id: int) -> int:
    return (await session.execute(select(Promotion.claimed).where(Promotion.id == promotion_id))).scalar_one()


async def test_the_single_claim_update_alone_refuses_a_claim_past_the_quota(offers: BotHarness) -> None:
    stale = await _set_counter(offers, quota=50, claimed=50)  # sold out meanwhile, by someone else
    [follower_id] = await make_followers(offers, 1)
    async with offers.sessions() as session:
        follower = await session.get(Follower, follower_id)
        async with _without_quota_check(await session.connection()):
            result = await claim(session, stale, follower)
            # Inside the same transaction: what the claim wrote, before anything is undone.
            assert (result.outcome, result.claim) == (ClaimOutcome.SOLD_OUT, None)
            assert await _counter(session, stale.id) == 50
            assert await session.scalar(select(func.count()).select_from(Claim)) == 0
        await session.rollback()


async def test_the_single_claim_update_takes_the_last_code_exactly_once(offers: BotHarness) -> None:
    stale = await _set_counter(offers, quota=50, claimed=49)  # one left, the claimers believe 50
    ids = await make_followers(offers, 2)
    async with offers.sessions() as session:
        first, second = [await session.get(Follower, i) for i in ids]
        async with _without_quota_check(await session.connection()):
            results = [await claim(session, stale, first), await claim(session, stale, second)]
            assert [r.outcome for r in results] == [ClaimOutcome.CLAIMED, ClaimOutcome.SOLD_OUT]
            assert await _counter(session, stale.id) == 50
            assert await session.scalar(select(func.count()).select_from(Claim)) == 1
        await session.rollback()


@pytest.mark.parametrize(("quota", "claimed", "wanted", "granted"), [
    (50, 48, 5, 2),  # the case: 48 of 50 taken, the batch believing 0, wanting more than is left
    (50, 48, 2, 2),  # exactly what is left
    (50, 48, 1, 1),
    (50, 50, 3, 0),  # sold out meanwhile
    (None, 48, 5, 5),  # no quota: everything asked for
])
async def test_take_quota_with_a_stale_counter_takes_exactly_what_is_left(
        offers: BotHarness, quota: int | None, claimed: int, wanted: int, granted: int) -> None:
    stale = await _set_counter(offers, quota=quota, claimed=claimed)
    believed = SimpleNamespace(claimed=0, quota=quota)  # read before the other process's claims
    async with offers.engine.connect() as conn, conn.begin() as transaction:
        async with _without_quota_check(conn):
            assert await _take_quota(conn, stale.id, wanted, believed) == granted
            assert await _counter(conn, stale.id) == claimed + granted
        await transaction.rollback()


async def test_take_quota_of_a_promotion_gone_takes_nothing(offers: BotHarness) -> None:
    async with offers.engine.connect() as conn, conn.begin():
        assert await _take_quota(conn, 10_000, 5, None) == 0
        gone: Any = SimpleNamespace(claimed=0, quota=50)
        assert await _take_quota(conn, 10_000, 5, gone) == 0


async def test_the_check_constraint_still_refuses_a_counter_past_the_quota(offers: BotHarness) -> None:
    async with offers.sessions() as session:
        with pytest.raises(IntegrityError, match="(?i)check"):
            await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50")
                                  .values(claimed=Promotion.quota + 1))
        await session.rollback()


async def test_a_claim_the_counter_read_refuses_writes_nothing(offers: BotHarness) -> None:
    """Sold out as read: answered without trying the quota UPDATE, so a message answered "sold out"
    takes no write lock and its exchange joins the group writer's next commit (after a flash sale
    sells out, the late askers do not queue one by one for SQLite's single writer)."""
    from bot.storage.store import WriteRoute

    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(quota=3, claimed=3))
        await session.commit()
    [follower_id] = await make_followers(offers, 1)
    async with offers.store.session() as session:
        promotion = (await session.execute(select(Promotion).where(Promotion.slug == "hotpot-50"))).scalar_one()
        result = await claim(session, promotion, await session.get(Follower, follower_id))
        assert (result.outcome, result.claim) == (ClaimOutcome.SOLD_OUT, None)
        assert offers.store.route(session) is WriteRoute.GROUP_WRITER
