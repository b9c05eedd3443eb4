"""What keeping the embedded Telegram simulator's state across restarts costs.

    python bench/simulators.py [--users 1000] [--messages 20] [--active 100] [--database-url URL]

Builds a simulated world (``--users`` users with ``--messages`` messages each), then measures:
the first save of every record, the restore of all of them into a fresh simulator (what a restart of
``engagebot run`` adds to its start), and one periodic save while ``--active`` chats each got one new
message (what the 0.25 s save loop does under traffic). The baseline is the same records written to
and read from an in-memory dict, in the same run, so the ratios say what the database adds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.simulation import SimulatorPersistence
from bot.simulators.telegram import TelegramBotAPISimulator
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.migrate import upgrade


def build_world(users: int, messages: int) -> TelegramBotAPISimulator:
    sim = TelegramBotAPISimulator()
    for n in range(users):
        uid = sim.add_user(first_name=f"User {n}", language_code="zh-hans" if n % 2 else "en")
        for m in range(messages):
            sim.send_text(uid, f"message {m} 你好")
    sim.updates.clear()  # as if the bot had confirmed them
    return sim


def in_memory(sim: TelegramBotAPISimulator, fresh: TelegramBotAPISimulator) -> tuple[float, float]:
    store: dict = {}
    started = time.perf_counter()
    for kind, key, data in sim.take_changes(force_meta=True):
        store[(kind, key)] = data
    saved = time.perf_counter() - started
    started = time.perf_counter()
    fresh.restore([(kind, key, data) for (kind, key), data in store.items()])
    return saved, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--active", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        engine = create_engine(url)
        await upgrade(engine)
        sessions = make_sessionmaker(engine)

        base_save, base_restore = in_memory(build_world(args.users, args.messages), TelegramBotAPISimulator())

        sim = build_world(args.users, args.messages)
        persistence = SimulatorPersistence(sessions, "bench", sim)
        started = time.perf_counter()
        await persistence.flush(clean=True)
        first_save = time.perf_counter() - started

        fresh = TelegramBotAPISimulator(sim.token)
        started = time.perf_counter()
        await SimulatorPersistence(sessions, "bench", fresh).restore()
        restore = time.perf_counter() - started
        assert len(fresh.users) == args.users and fresh.chats.keys() == sim.chats.keys()

        for uid in list(sim.users)[: args.active]:
            sim.send_text(uid, "one more")
        started = time.perf_counter()
        await persistence.flush(clean=False)
        tick = time.perf_counter() - started
        await engine.dispose()

    records = args.users * 2 + 1
    print(f"world: {args.users} users x {args.messages} messages = {records} records ({engine.dialect.name})")
    print(f"first save of every record: {first_save * 1000:8.1f} ms   in-memory baseline "
          f"{base_save * 1000:7.1f} ms   ratio {first_save / base_save:6.1f}x")
    print(f"restore at start:           {restore * 1000:8.1f} ms   in-memory baseline "
          f"{base_restore * 1000:7.1f} ms   ratio {restore / base_restore:6.1f}x")
    print(f"one save tick, {args.active} active chats: {tick * 1000:6.1f} ms "
          f"(the loop runs every {persistence.interval} s)")


if __name__ == "__main__":
    asyncio.run(main())
