"""Claim one promotion from many tasks in this process: ``python -m tests.offers.claimer URL PROMO_ID IDS [batch]``.

Used by the concurrency tests to claim from two processes at once; prints the outcomes as JSON.
With ``batch`` the claims go through a :class:`ClaimBatcher` (its bulk path) instead of a session each.
Run as a program it first loads every promotion and follower, prints ``ready`` and waits for a line on
stdin, so that two processes start claiming at the same moment (see :func:`claim_from_processes`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.offers.batch import ClaimBatcher
from bot.offers.claims import claim
from bot.offers.models import Promotion
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.models import Follower

ROOT = Path(__file__).resolve().parents[2]


async def claim_all(url: str, promotion_id: int, follower_ids: list[int], *, batch: bool = False,
                    max_batch: int = 64, barrier: Any = None) -> Counter[str]:
    """Claim for each follower id, each in its own task; ``barrier`` is awaited once everything is loaded."""
    engine = create_engine(url)
    sessions = make_sessionmaker(engine)
    outcomes: Counter[str] = Counter()
    batcher = ClaimBatcher(sessions, max_batch=max_batch)
    try:
        async with sessions() as session:  # loaded (and the promotion's counter read) before the start
            promo = await session.get(Promotion, promotion_id)
            followers = {f.id: f for f in (await session.execute(
                select(Follower).where(Follower.id.in_(follower_ids)))).scalars()}
        if barrier is not None:
            await barrier()

        async def one(follower_id: int) -> None:
            follower = followers[follower_id]
            if batch:
                result = await batcher.claim(promo, follower)
            else:
                async with sessions() as session:
                    result = await claim(session, promo, follower)
                    await session.commit()
            outcomes[str(result.outcome)] += 1

        await asyncio.gather(*(one(f) for f in follower_ids))
    finally:
        await engine.dispose()
    return outcomes


async def claim_from_processes(database_url: str, promotion_id: int, id_lists: list[list[int]], *,
                               batch: bool = False) -> list[Counter[str]]:
    """Claim from one process per id list, all released together once every one is ready."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.offers.claimer", database_url, str(promotion_id), ",".join(map(str, ids)),
        *(["batch"] if batch else []), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE) for ids in id_lists]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 60)
            if line != b"ready\n":
                _out, err = await p.communicate()
                raise AssertionError(f"claimer did not start: {line!r} {err.decode()}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        results = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    for p, (_out, err) in zip(procs, results):
        assert p.returncode == 0, err.decode()
    return [Counter(json.loads(out)) for out, _err in results]


async def _wait_for_go() -> None:
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


if __name__ == "__main__":
    url, promotion_id, ids = sys.argv[1], int(sys.argv[2]), [int(x) for x in sys.argv[3].split(",")]
    print(json.dumps(asyncio.run(claim_all(url, promotion_id, ids, batch=sys.argv[4:] == ["batch"],
                                           barrier=_wait_for_go))))
