"""Messages per second through the router with everything persisted, against a bare loop.

    python bench/router.py [--messages 5000] [--concurrency 64] [--database-url URL]

The baseline hands the same Inbound messages to a bare async function that returns a fixed reply
(no router, no database), in the same run, so the ratio says what routing and persistence cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.channels.mock import MockChannel
from bot.core.inbound import Inbound, Kind
from bot.core.reply import TextReply
from bot.testing import BotHarness
from handlers import default_router

TEXTS = ["hello", "你好", "what are your hours?", "/help", "营业时间", "English", "中文", "price?"]


def make_messages(n: int, followers: int) -> list[tuple[str, Kind, str]]:
    out = []
    for i in range(n):
        text = TEXTS[i % len(TEXTS)]
        out.append((f"user-{i % followers}", Kind.COMMAND if text.startswith("/") else Kind.TEXT, text))
    return out


async def run_concurrently(messages: list[tuple[str, Kind, str]], concurrency: int, send) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    queue = list(reversed(messages))
    latencies: list[float] = []

    async def worker() -> None:
        while queue:
            item = queue.pop()
            started = time.perf_counter()
            await send(*item)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--followers", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    messages = make_messages(args.messages, args.followers)

    async def bare(external_id: str, kind: Kind, text: str) -> list[TextReply]:
        Inbound(channel="mock", account="mock", external_id=external_id, kind=kind, text=text)
        await asyncio.sleep(0)
        return [TextReply("fixed reply")]

    base_time, base_lat = await run_concurrently(messages, args.concurrency, bare)

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{os.path.join(tmp, 'bench.db')}"
        async with BotHarness(routers=[default_router()], database_url=url) as bot:
            channel: MockChannel = bot.channel
            # warm up: create the followers and compile everything once
            await run_concurrently(make_messages(args.followers, args.followers), args.concurrency, channel.receive)
            bot_time, bot_lat = await run_concurrently(messages, args.concurrency, channel.receive)

    def describe(name: str, seconds: float, lat: list[float]) -> str:
        q = statistics.quantiles(lat, n=100)
        return (f"{name:<28} {len(lat) / seconds:>10,.0f} msg/s   p50 {q[49] * 1000:6.2f} ms   "
                f"p99 {q[98] * 1000:6.2f} ms")

    backend = "PostgreSQL" if (args.database_url or "").startswith("postgresql") else "SQLite"
    print(f"{args.messages} messages from {args.followers} followers, {args.concurrency} concurrent, {backend}")
    print(describe("baseline (no router, no DB)", base_time, base_lat))
    print(describe("router + persistence", bot_time, bot_lat))
    print(f"ratio router/baseline: {base_time / bot_time:.4f}  "
          f"({args.messages / bot_time:,.0f} persisted messages/s)")


if __name__ == "__main__":
    asyncio.run(main())
