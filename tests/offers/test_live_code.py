"""A follower holding a live code gets that same code back, whatever the per-follower limit allows.

The limit counts codes used up (redeemed or expired); asking again while a code is still usable is
never a second claim. Proven on every path a claim takes: ``claim()`` in a session (what handlers
call), the conversation itself, and the ``ClaimBatcher``'s bulk path (``_decide``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot.core.clock import utcnow
from bot.offers import Claim, ClaimOutcome, Promotion, claim
from bot.offers.batch import ClaimBatcher
from bot.storage.models import Follower
from bot.testing import BotHarness

from .conftest import make_followers

Ask = Callable[[], Awaitable[tuple[ClaimOutcome, str | None]]]

NEW = "Here is your code for “Hotpot ¥50 off”:"
AGAIN = "You already have a code for “Hotpot ¥50 off”. Here it is again:"
LIMIT = "You have already claimed “Hotpot ¥50 off” as many times as allowed."


async def _promotion(h: BotHarness, limit: int) -> Promotion:
    async with h.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(per_follower_limit=limit))
        await session.commit()
        return (await session.execute(select(Promotion).where(Promotion.slug == "hotpot-50"))).scalar_one()


async def _follower(h: BotHarness) -> Follower:
    [follower_id] = await make_followers(h, 1)
    async with h.sessions() as session:
        return await session.get(Follower, follower_id)


async def _asker(h: BotHarness, path: str, limit: int) -> Ask:
    """Ask for the offer once, by ``path``; answer (outcome, code shown)."""
    promotion = await _promotion(h, limit)
    if path == "conversation":
        follower = h.follower("asker", language="en")

        async def ask() -> tuple[ClaimOutcome, str | None]:
            await follower.say("hotpot")
            lines = follower.last_text.splitlines()
            outcome = {NEW: ClaimOutcome.CLAIMED, AGAIN: ClaimOutcome.ALREADY_CLAIMED,
                       LIMIT: ClaimOutcome.LIMIT_REACHED}[lines[0]]
            return outcome, lines[1] if len(lines) > 1 else None

        return ask
    row = await _follower(h)
    if path == "claim":
        async def ask() -> tuple[ClaimOutcome, str | None]:
            async with h.sessions() as session:
                fresh = await session.get(Promotion, promotion.id)  # the counter as a handler reads it
                result = await claim(session, fresh, row)
                await session.commit()
            return result.outcome, result.code

        return ask
    batcher = ClaimBatcher(h.sessions)

    async def ask() -> tuple[ClaimOutcome, str | None]:
        result = await batcher.claim(promotion, row)
        assert batcher.fallbacks == 0  # the bulk path answered, not claim() after a conflict
        return result.outcome, result.code

    return ask


async def _use_up(h: BotHarness, code: str, how: str) -> None:
    values = {"redeemed_at": utcnow()} if how == "redeemed" else {"valid_until": utcnow() - timedelta(seconds=1)}
    async with h.sessions() as session:
        await session.execute(update(Claim).where(Claim.code == code).values(**values))
        await session.commit()


async def _counts(h: BotHarness) -> tuple[int, int]:
    async with h.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(Claim))
        claimed = await session.scalar(select(Promotion.claimed).where(Promotion.slug == "hotpot-50"))
    return rows, claimed


@pytest.mark.parametrize("path", ["claim", "conversation", "batch"])
@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_asking_again_with_a_live_code_gives_the_same_code_under_any_limit(
        offers: BotHarness, limit: int, path: str) -> None:
    ask = await _asker(offers, path, limit)
    codes: list[str] = []
    for n in range(1, limit + 1):
        outcome, code = await ask()
        assert outcome == ClaimOutcome.CLAIMED and code is not None and code not in codes
        codes.append(code)
        for _ in range(2):  # asking again (and again) while it is live: the same code, nothing new
            assert await ask() == (ClaimOutcome.ALREADY_CLAIMED, code)
        assert await _counts(offers) == (n, n)
        await _use_up(offers, code, "redeemed" if n % 2 else "expired")
    # Every code allowed has been used up: no more.
    assert (await ask())[0] == ClaimOutcome.LIMIT_REACHED
    assert await _counts(offers) == (limit, limit)
