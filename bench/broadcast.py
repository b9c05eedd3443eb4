"""Broadcast throughput and memory on SQLite, against baselines measured in the same run.

    .venv/bin/python bench/broadcast.py               # 10,000 and 100,000 followers
    .venv/bin/python bench/broadcast.py --sizes 5000  # quicker

Each measurement runs in a fresh child process with a fresh database, so peak RSS belongs to it:

* broadcast: expand (one outbox row per follower, streamed in keyset pages) and send everything
  through the mock channel with no rate limit (a counting sink: the platform keeps nothing);
* plain loop (baseline): the same database work without the outbox machinery, i.e. insert the same
  rows with executemany in pages of 1,000, then mark them sent 500 at a time walking the primary key;
* load at once (baseline): read every follower and build every row in memory, as an expansion that
  does not stream would; its memory is what streaming saves.

Memory is peak RSS of the child (``ru_maxrss``) minus its RSS before the work, and the peak of
Python allocations (tracemalloc) during the expansion or the load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _database(tmp: str, n: int):  # type: ignore[no-untyped-def]
    from bot.storage.engine import create_engine, make_sessionmaker
    from bot.storage.migrate import upgrade
    from tests.support.broadcast import add_followers

    engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    half = n // 2  # half read English, half Chinese: two texts, as in real use
    await add_followers(sessions, half, channel="mock", account="mock", locale_hint="en-US")
    await add_followers(sessions, n - half, start=half, channel="mock", account="mock", locale_hint="zh-CN")
    return engine, sessions


async def child_broadcast(n: int, tmp: str) -> dict[str, float]:
    from bot.broadcast import Audience, BroadcastWorker, create_broadcast, expand_broadcast
    from bot.channels.mock import CountingSink, MockChannel

    engine, sessions = await _database(tmp, n)
    rss_before = _rss_mb()

    async def new_broadcast() -> int:
        async with sessions() as session:
            b = await create_broadcast(session, name="bench", texts={"en": "Spring sale", "zh_Hans": "春季促销"},
                                       audience=Audience(), default_locale="zh_Hans")
            await session.commit()
            return b.id

    first = await new_broadcast()
    t0 = time.perf_counter()
    await expand_broadcast(sessions, first)
    expand_s = time.perf_counter() - t0
    sink = CountingSink()
    worker = BroadcastWorker(sessions, [MockChannel(dispatch=None, sink=sink)], poll_every=0.05)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    await worker.run_until_idle()
    send_s = time.perf_counter() - t0
    assert sink.count == n, (sink.count, n)
    rss_growth = _peak_rss_mb() - rss_before
    # Memory of the expansion alone, traced (tracemalloc slows it down, so not in the timed run).
    second = await new_broadcast()
    tracemalloc.start()
    await expand_broadcast(sessions, second)
    expand_traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    await engine.dispose()
    return {"expand_s": expand_s, "send_s": send_s, "expand_traced_mb": expand_traced, "rss_growth_mb": rss_growth}


async def child_plain(n: int, tmp: str) -> dict[str, float]:
    from sqlalchemy import insert, select, update

    from bot.core.clock import utcnow
    from bot.storage.models import Follower, Message
    from bot.storage.status import DeliveryStatus

    engine, sessions = await _database(tmp, n)
    t0 = time.perf_counter()
    async with sessions() as session:
        ids = (await session.execute(select(Follower.id).order_by(Follower.id))).scalars().all()
        now = utcnow()
        for start in range(0, n, 1000):
            await session.execute(insert(Message.__table__), [
                {"follower_id": i, "channel": "mock", "account": "mock", "direction": "out", "kind": "text",
                 "text": "Spring sale", "body": {"type": "text", "text": "Spring sale"}, "dedupe_key": f"p:{i}",
                 "status": DeliveryStatus.PENDING, "attempts": 0, "created_at": now} for i in ids[start:start + 1000]])
            await session.commit()
    insert_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    last = 0
    while True:  # keyset over the primary key, 500 at a time: the cheapest way to walk and mark them
        async with sessions() as session:
            batch = (await session.execute(select(Message.id).where(Message.id > last)
                                           .order_by(Message.id).limit(500))).scalars().all()
            if not batch:
                break
            await session.execute(update(Message).where(Message.id.in_(batch)).values(
                status=DeliveryStatus.SENT, sent_at=now))
            await session.commit()
            last = batch[-1]
    mark_s = time.perf_counter() - t0
    await engine.dispose()
    return {"insert_s": insert_s, "mark_s": mark_s}


async def child_load(n: int, tmp: str) -> dict[str, float]:
    from sqlalchemy import select

    from bot.broadcast.audience import follower_locale
    from bot.storage.models import Follower

    engine, sessions = await _database(tmp, n)
    rss_before = _rss_mb()
    tracemalloc.start()
    async with sessions() as session:
        followers = (await session.execute(select(Follower))).scalars().all()
        rows = [{"follower_id": f.id, "channel": f.channel, "account": f.account,
                 "text": follower_locale(f.locale, f.locale_hint, "zh_Hans"), "dedupe_key": f"bc:1:{f.id}"}
                for f in followers]
    traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    assert len(rows) == n
    await engine.dispose()
    return {"load_traced_mb": traced, "rss_growth_mb": _peak_rss_mb() - rss_before}


CHILDREN = {"broadcast": child_broadcast, "plain": child_plain, "load": child_load}


def run_child(kind: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], capture_output=True, text=True,
                         cwd=ROOT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} {n} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, n = args.child[0], int(args.child[1])
        with tempfile.TemporaryDirectory(prefix="engagebot-bench-") as tmp:
            print(json.dumps(asyncio.run(CHILDREN[kind](n, tmp))))
        return

    results: dict[int, dict[str, dict[str, float]]] = {}
    for n in args.sizes:
        results[n] = {kind: run_child(kind, n) for kind in CHILDREN}
    print(f"broadcast on SQLite (WAL, synchronous=FULL), mock channel with no rate limit; python {sys.version.split()[0]}")
    print(f"{'followers':>10} | {'expand rows/s':>13} {'send rows/s':>11} {'end-to-end':>10} | "
          f"{'plain insert':>12} {'plain mark':>10} {'ratio':>6} | {'expand peak':>11} {'load-all peak':>13} "
          f"{'saved':>6} | {'RSS +MB':>7} {'load-all RSS +MB':>16}")
    for n, r in results.items():
        b, p, ld = r["broadcast"], r["plain"], r["load"]
        total = b["expand_s"] + b["send_s"]
        plain = p["insert_s"] + p["mark_s"]
        print(f"{n:>10,} | {n / b['expand_s']:>13,.0f} {n / b['send_s']:>11,.0f} {total:>9.1f}s | "
              f"{p['insert_s']:>11.2f}s {p['mark_s']:>9.2f}s {total / plain:>5.1f}x | "
              f"{b['expand_traced_mb']:>9.1f}MB {ld['load_traced_mb']:>11.1f}MB {ld['load_traced_mb'] / b['expand_traced_mb']:>5.0f}x"
              f" | {b['rss_growth_mb']:>7.1f} {ld['rss_growth_mb']:>16.1f}")
    if len(results) > 1:
        small, large = min(results), max(results)
        grow = results[large]["broadcast"]["expand_traced_mb"] / results[small]["broadcast"]["expand_traced_mb"]
        load_grow = results[large]["load"]["load_traced_mb"] / results[small]["load"]["load_traced_mb"]
        print(f"audience x{large / small:.0f}: broadcast expansion peak x{grow:.2f}, load-at-once peak x{load_grow:.1f}; "
              f"broadcast RSS growth {results[small]['broadcast']['rss_growth_mb']:.1f} -> "
              f"{results[large]['broadcast']['rss_growth_mb']:.1f} MB")
    print("ratio: broadcast end-to-end time / plain loop doing the same inserts and updates")


if __name__ == "__main__":
    main()
