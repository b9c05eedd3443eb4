"""Claim one promotion from many tasks in this process: ``python -m tests.offers.claimer URL PROMO_ID IDS [batch]``.

Used by the concurrency tests to claim from two processes at once; prints the outcomes as JSON.
With ``batch`` the claims go through a :class:`ClaimBatcher` (its bulk path) instead of a session each.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

from bot.offers.batch import ClaimBatcher
from bot.offers.claims import claim
from bot.offers.models import Promotion
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.models import Follower


async def claim_all(url: str, promotion_id: int, follower_ids: list[int], *, batch: bool = False,
                    max_batch: int = 64) -> Counter[str]:
    engine = create_engine(url)
    sessions = make_sessionmaker(engine)
    outcomes: Counter[str] = Counter()
    batcher = ClaimBatcher(sessions, max_batch=max_batch)

    async def one(follower_id: int) -> None:
        async with sessions() as session:
            promo = await session.get(Promotion, promotion_id)
            follower = await session.get(Follower, follower_id)
            if not batch:
                result = await claim(session, promo, follower)
                await session.commit()
        if batch:  # the session is closed: its connection is not held while the batch runs
            result = await batcher.claim(promo, follower)
        outcomes[str(result.outcome)] += 1

    try:
        await asyncio.gather(*(one(f) for f in follower_ids))
    finally:
        await engine.dispose()
    return outcomes


if __name__ == "__main__":
    url, promotion_id, ids = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
    print(json.dumps(asyncio.run(claim_all(url, promotion_id, ids, batch=sys.argv[4:] == ["batch"]))))
