"""Claim one promotion from many tasks in this process: ``python -m tests.offers.claimer URL PROMO_ID IDS``.

Used by the concurrency tests to claim from two processes at once; prints the outcomes as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter

from bot.offers.claims import claim
from bot.offers.models import Promotion
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.models import Follower


async def claim_all(url: str, promotion_id: int, follower_ids: list[int]) -> Counter[str]:
    engine = create_engine(url)
    sessions = make_sessionmaker(engine)
    outcomes: Counter[str] = Counter()

    async def one(follower_id: int) -> None:
        async with sessions() as session:
            promo = await session.get(Promotion, promotion_id)
            follower = await session.get(Follower, follower_id)
            result = await claim(session, promo, follower)
            await session.commit()
            outcomes[str(result.outcome)] += 1

    try:
        await asyncio.gather(*(one(f) for f in follower_ids))
    finally:
        await engine.dispose()
    return outcomes


if __name__ == "__main__":
    url, promotion_id, ids = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
    print(json.dumps(asyncio.run(claim_all(url, promotion_id, ids))))
