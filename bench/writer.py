"""The group writer's batches alone: CPU per message by batch size, on a SQLite file, no server.

    python bench/writer.py [--sizes 1,10,30,60,120] [--messages 3000]

Each batch is what a WeChat text message makes under bench/wechat.py: a replay-cache row, the
follower's changed columns, the inbound row and one passive reply, written by the writer's own
function (``bot.storage.writer._write``) on the stdlib driver in one transaction, committed with
``synchronous=FULL``. Measured in this thread (``time.thread_time``), with nothing else running: no
event loop takes the GIL between the driver's calls, as it does in ``engagebot run``. The difference
between this figure and the group writer's CPU per request that bench/wechat.py prints is what
sharing the process with a busy event loop costs the writer's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Connection, insert, select

from bot.core.clock import utcnow
from bot.core.inbound import Inbound, Kind
from bot.core.reply import TextReply
from bot.core.serialize import reply_to_dict
from bot.storage import migrate
from bot.storage.engine import create_engine, sqlite_file_twin
from bot.storage.models import Follower
from bot.storage.replay import Seen
from bot.storage.store import _message_row
from bot.storage.writer import ExchangeWrite, _write

FOLLOWERS = 1000


def exchange(follower_id: int, number: int) -> ExchangeWrite:
    """One WeChat text message's writes, as the store queues them for the group writer."""
    msg = Inbound(channel="wechat", account="default", external_id=f"oBench{follower_id:07d}", kind=Kind.TEXT,
                  text="hello", message_id=f"{number}{secrets.token_hex(4)}")
    now = utcnow()
    reply = TextReply("Our opening hours are 10:00 to 22:00.")
    inbound = _message_row(follower_id, msg, direction="in", kind="text", text=msg.text, payload=None, body=None,
                           dedupe_key=msg.message_id, status="handled", created_at=now)
    outbound = _message_row(follower_id, msg, direction="out", kind="text", text=reply.text, payload=None,
                            body=reply_to_dict(reply), dedupe_key=None, status="passive", created_at=now,
                            sent_at=now, next_attempt_at=None)
    seen = Seen("wechat", secrets.token_hex(32), secrets.token_hex(32), now + timedelta(minutes=5))
    return ExchangeWrite(follower_id, {"last_action_at": now, "last_action_kind": "text", "window_sends": 0},
                         inbound, [outbound], None, seen=seen)


def prepare(conn: Connection) -> list[int]:
    """The followers the messages come from, created once (as after bench/wechat.py's warm-up)."""
    with conn.begin():
        conn.execute(insert(Follower), [
            {"channel": "wechat", "account": "default", "external_id": f"oBench{i:07d}", "following": True,
             "tags": [], "state_data": {}, "window_sends": 0, "created_at": utcnow()} for i in range(FOLLOWERS)])
    ids = list(conn.execute(select(Follower.id)).scalars())
    conn.rollback()
    return ids


def measure(conn: Connection, follower_ids: list[int], size: int, messages: int) -> tuple[float, float]:
    """(CPU per message in ms, wall time per batch in ms) for batches of ``size``."""
    batches = max(20, messages // size)
    made = [[exchange(follower_ids[(b * size + i) % len(follower_ids)], b * size + i) for i in range(size)]
            for b in range(batches)]
    cpu, wall = time.thread_time(), time.perf_counter()
    for batch in made:
        _write(conn, batch)
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return cpu / (batches * size) * 1000, wall / batches * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,30,60,120", help="batch sizes to measure (default 1,10,30,60,120)")
    parser.add_argument("--messages", type=int, default=3000, help="messages per size, at least 20 batches")
    args = parser.parse_args()
    try:
        sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--sizes: {args.sizes!r} is not a list of numbers like 1,10,30") from None
    if not sizes or min(sizes) < 1 or args.messages < 1:
        raise SystemExit("--sizes and --messages must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/writer.db")
        asyncio.run(migrate.upgrade(engine))
        asyncio.run(engine.dispose())
        twin = sqlite_file_twin(engine)
        assert twin is not None
        with twin.connect() as conn:
            follower_ids = prepare(conn)
            print(f"group writer's batches alone, SQLite synchronous=FULL, {FOLLOWERS} followers")
            for size in sizes:
                cpu_ms, wall_ms = measure(conn, follower_ids, size, args.messages)
                print(f"  batches of {size:>4}: CPU {cpu_ms:6.3f} ms per message, {cpu_ms * size:6.2f} ms per batch;"
                      f" wall {wall_ms:6.2f} ms per batch", flush=True)
        twin.dispose()


if __name__ == "__main__":
    main()
