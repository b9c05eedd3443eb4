"""Claims per second under many concurrent claimers, against plain INSERT+commit transactions.

    python bench/offers.py [--claims N=5000] [--concurrency 200] [--database-url URL] [--synchronous FULL|NORMAL]

Three ways of claiming, each for its own followers of one promotion, each claim the real thing:
- one transaction each (as inside a message): its own session, the follower's claims read, the
  quota taken with a conditional UPDATE, the code inserted in a SAVEPOINT, commit (N/2 claims);
- ClaimBatcher one-by-one (``bulk=False``): the same claim() for every request of a batch, one
  commit per batch (N/2 claims);
- ClaimBatcher bulk path: per batch one read of the followers' claims, one conditional quota
  UPDATE for all, one executemany insert, one commit (N - N/2 claims).
The baseline runs N/2 single-row INSERT+commit transactions on the same database with the same
concurrency, in the same run, so the ratios say what claiming costs over the cheapest durable write.
Without --database-url a temporary SQLite file is used; give a PostgreSQL URL to bench there too
(in a new database created on that server and dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from bot.core.clock import utcnow
from bot.offers.batch import ClaimBatcher
from bot.offers.claims import ClaimOutcome, claim
from bot.offers.models import Claim, Promotion
from bot.storage.engine import create_engine, is_sqlite, make_sessionmaker
from bot.storage.migrate import upgrade
from bot.storage.models import Follower

_scratch = MetaData()
BASELINE = Table("bench_baseline_insert", _scratch,
                 Column("id", Integer, primary_key=True), Column("note", String(64), nullable=False))


async def _run(n: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> float:
    """Run ``one(i)`` for i in 0..n-1 with ``concurrency`` workers; return the seconds taken."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await one(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench_claims(url: str, n: int, *, concurrency: int = 200, synchronous: str = "FULL") -> dict[str, float]:
    """Measure claims/s for followers claiming one promotion (quota: one code each) with ``concurrency`` claimers."""
    engine = create_engine(url, sqlite_synchronous=synchronous)
    sessions = make_sessionmaker(engine)
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.run_sync(_scratch.create_all)
        now = utcnow()
        tag = uuid.uuid4().hex[:8]
        half = n // 2
        total = half + half + (n - half)  # one transaction each, one-by-one batcher, bulk batcher
        async with sessions() as session:
            promo = Promotion(
                slug=f"bench-{tag}", title={"en": "Bench"}, description={}, terms={}, channels=[],
                followers_only=True, audience_tags=[], audience_locales=[], timezone="Asia/Shanghai", quota=total,
                per_follower_limit=1, claimed=0, code_strategy="unique", code_length=8, code_prefix="",
                keywords={}, created_at=now, updated_at=now)
            session.add(promo)
            await session.execute(insert(Follower), [dict(
                channel="bench", account=tag, external_id=f"f{i}", following=True, followed_at=now, tags=[],
                state_data={}, window_sends=0, created_at=now) for i in range(total)])
            await session.commit()
            followers = list((await session.execute(
                select(Follower).where(Follower.account == tag).order_by(Follower.id))).scalars())

        async def baseline(i: int) -> None:
            async with sessions() as session:
                await session.execute(insert(BASELINE).values(note=f"{tag}-{i}"))
                await session.commit()

        outcomes: dict[str, int] = {}
        one_by_one = ClaimBatcher(sessions, bulk=False)
        batcher = ClaimBatcher(sessions)

        async def one_claim(i: int) -> None:
            async with sessions() as session:
                result = await claim(session, promo, followers[i], via="bench")
                await session.commit()
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1

        async def grouped_claim(i: int) -> None:
            result = await one_by_one.claim(promo, followers[half + i], via="bench")
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1

        async def bulk_claim(i: int) -> None:
            result = await batcher.claim(promo, followers[2 * half + i], via="bench")
            outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1

        # Each way of claiming has its own followers: one transaction each (as inside a message,
        # where the dispatcher commits), the one-by-one group commit, the bulk path.
        base_s = await _run(half, concurrency, baseline)
        claim_s = await _run(half, concurrency, one_claim)
        group_s = await _run(half, concurrency, grouped_claim)
        bulk_s = await _run(n - half, concurrency, bulk_claim)
        async with sessions() as session:
            codes = (await session.execute(select(func.count(func.distinct(Claim.code))).where(
                Claim.promotion_id == promo.id))).scalar_one()
        assert outcomes == {ClaimOutcome.CLAIMED: total}, outcomes
        assert codes == total, codes
        assert batcher.fallbacks == 0 and batcher.batches > 0, (batcher.batches, batcher.fallbacks)
        base, single, grouped, bulk = half / base_s, half / claim_s, half / group_s, (n - half) / bulk_s
        return {"baseline_per_s": base, "claims_per_s": single, "ratio": single / base,
                "grouped_per_s": grouped, "grouped_ratio": grouped / base,
                "bulk_per_s": bulk, "bulk_ratio": bulk / base,
                "bulk_batch_size": (n - half) / batcher.batches}
    finally:
        await engine.dispose()


def _print(label: str, figures: dict[str, float], n: int, concurrency: int) -> None:
    half = n // 2
    print(f"{label}: {concurrency} concurrent claimers; baseline {half} INSERT+commit transactions; "
          f"{half} claims one transaction each, {half} through the one-by-one batcher, {n - half} through the bulk path")
    print(f"  baseline INSERT+commit : {figures['baseline_per_s']:8.0f} tx/s")
    print(f"  atomic claims          : {figures['claims_per_s']:8.0f} claims/s  (one transaction each)")
    print(f"  claims / baseline      : {figures['ratio']:8.2f}")
    print(f"  one-by-one batcher     : {figures['grouped_per_s']:8.0f} claims/s  (ClaimBatcher(bulk=False): claim() each, one commit)")
    print(f"  one-by-one / baseline  : {figures['grouped_ratio']:8.2f}")
    print(f"  bulk batcher           : {figures['bulk_per_s']:8.0f} claims/s  (ClaimBatcher bulk path, "
          f"{figures['bulk_batch_size']:.0f} claims per batch on average)")
    print(f"  bulk / baseline        : {figures['bulk_ratio']:8.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--database-url", action="append", default=[],
                        help="PostgreSQL (or SQLite) URL; repeatable. A temporary SQLite file is always benched.")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite synchronous mode")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="engagebot-bench-") as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        figures = await bench_claims(sqlite_url, args.claims, concurrency=args.concurrency, synchronous=args.synchronous)
        _print(f"SQLite (synchronous={args.synchronous})", figures, args.claims, args.concurrency)
    for url in args.database_url:
        async with _scratch_database(url) as scratch_url:
            figures = await bench_claims(scratch_url, args.claims, concurrency=args.concurrency,
                                         synchronous=args.synchronous)
        _print("SQLite" if is_sqlite(url) else "PostgreSQL", figures, args.claims, args.concurrency)


@asynccontextmanager
async def _scratch_database(url: str) -> AsyncIterator[str]:
    """On PostgreSQL, bench in a new database dropped afterwards (the server's own stays untouched)."""
    if is_sqlite(url):
        yield url
        return
    from tests.support.db import scratch_postgres_database

    async with scratch_postgres_database(url, prefix="engagebot_bench") as scratch:
        yield scratch


if __name__ == "__main__":
    asyncio.run(main())
