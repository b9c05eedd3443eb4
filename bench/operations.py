"""What operations cost: a /metrics scrape's database read, and a retention pass.

    python bench/operations.py [--rows 100000] [--database-url URL]

Fills a fresh database (a temporary SQLite file, or ``--database-url``, an empty database) with ``--rows`` old handled
messages plus a tenth as many recent ones, and as many outbox rows half unsent; then measures the
scrape-time read of the outbox (``bot.health.outbox_source``: depth and oldest age, mean of 10), and a
retention pass (``bot.storage.retention.prune``): total time, and each batch's transaction (median and
maximum: how long the message table, or SQLite's one writer, is held at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

import bot.storage.retention as retention
from bot.core.clock import utcnow
from bot.health import outbox_source
from bot.storage.engine import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import Follower, Message


def _rows(count: int, **values: Any) -> list[dict[str, Any]]:
    return [{"follower_id": 1, "channel": "wechat", "account": "a", "kind": "text", "text": "hello there", **values}
            for _ in range(count)]


async def run(url: str, rows: int) -> None:
    engine = create_engine(url)
    await upgrade(engine)
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(insert(Follower), [{"channel": "wechat", "account": "a", "external_id": "o1",
                                               "created_at": now, "tags": [], "state_data": {}}])
        for start in range(0, rows, 10_000):
            n = min(10_000, rows - start)
            await conn.execute(insert(Message), _rows(n, direction="in", status="handled",
                                                      created_at=now - timedelta(days=200)))
            await conn.execute(insert(Message), _rows(n // 2, direction="out", status="pending", created_at=now))
            await conn.execute(insert(Message), _rows(n - n // 2, direction="out", status="sent", created_at=now))
        await conn.execute(insert(Message), _rows(rows // 10, direction="in", status="handled", created_at=now))
    source = outbox_source(engine)
    await source()
    started = time.perf_counter()
    for _ in range(10):
        await source()
    scrape = (time.perf_counter() - started) / 10
    batches: list[float] = []
    delete_batch = retention._delete_batch

    async def timed(engine: Any, statement: Any, params: dict[str, Any] | None = None) -> tuple[int, float]:
        deleted, held = await delete_batch(engine, statement, params)
        batches.append(held)
        return deleted, held

    retention._delete_batch = timed  # type: ignore[assignment]  # measure each transaction
    started = time.perf_counter()
    pruned = await retention.prune(engine, cutoff=now - timedelta(days=90), now=now)
    total = time.perf_counter() - started
    retention._delete_batch = delete_batch  # type: ignore[assignment]
    await engine.dispose()
    print(f"{engine.dialect.name}: scrape read of the outbox ({rows // 2} unsent of {rows * 21 // 10} rows): "
          f"{scrape * 1000:.1f} ms")
    print(f"{engine.dialect.name}: retention pruned {pruned.messages} rows in {pruned.batches} transactions, "
          f"{total:.1f} s in all (pauses {retention.BATCH_PAUSE * 1000:.0f} ms between batches, a budget of "
          f"{retention.BATCH_BUDGET * 1000:.0f} ms each); a transaction: {pruned.messages / pruned.batches:.0f} rows "
          f"on average, held the database a median {statistics.median(batches) * 1000:.1f} ms, longest "
          f"{pruned.longest_hold * 1000:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db", args.rows))


if __name__ == "__main__":
    main()
