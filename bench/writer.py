"""The group writer's batches alone: CPU per message by batch size, on a SQLite file, no server.

    python bench/writer.py [--sizes 1,10,30,60,120] [--messages 3000]
    python bench/writer.py --replay-backlog 600000   # a batch's replay rows, with and without its prune

Each batch is what a WeChat text message makes under bench/wechat.py: a replay-cache row, the
follower's changed columns, the inbound row and one passive reply, written by the writer's own
function (``bot.storage.writer._write``) on the stdlib driver in one transaction, committed with
``synchronous=FULL``. Measured in this thread (``time.thread_time``), with nothing else running: no
event loop takes the GIL between the driver's calls, as it does in ``engagebot run``. The difference
between this figure and the group writer's CPU per request that bench/wechat.py prints is what
sharing the process with a busy event loop costs the writer's thread.

``--replay-backlog N``: N replay-cache rows, a tenth of them expired (as after half a minute without a
prune at the rate that fills N in five minutes); then the wall time of a batch's 25 replay rows on their own,
with the batch's bounded prune (``PRUNE_ROWS``), and with one DELETE of every expired row, as the writer
did before its prunes were bounded.
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

from sqlalchemy import Connection, delete, insert, select

from bot.core.clock import utcnow
from bot.core.inbound import Inbound, Kind
from bot.core.reply import TextReply
from bot.core.serialize import reply_to_dict
from bot.storage import migrate
from bot.storage.engine import create_engine, sqlite_file_twin
from bot.storage.models import Follower, SeenRequest
from bot.storage.replay import PRUNE_ROWS, Seen, prune_seen, record_seen
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


def replay_backlog(conn: Connection, rows: int) -> None:
    """Print how long a batch's replay rows take with no prune, its bounded prune, and an unbounded one."""
    now = utcnow()
    window = timedelta(minutes=5)
    with conn.begin():
        for start in range(0, rows, 20_000):
            conn.execute(insert(SeenRequest), [
                {"scope": "wechat", "key": secrets.token_hex(32), "body_hash": secrets.token_hex(32),
                 # Expiry times spread over the window; the earliest tenth already past.
                 "expires_at": now - window / 10 + window * (i / rows)} for i in range(start, min(rows, start + 20_000))])
    print(f"replay cache of {rows:,} rows, {rows // 10:,} of them expired when filled (more as time passes);"
          f" a batch's 25 rows written with no prune, its bounded prune ({PRUNE_ROWS} rows), or an unbounded one:")

    def batch(prune: str) -> None:
        seen = [Seen("wechat", secrets.token_hex(32), secrets.token_hex(32), utcnow() + window) for _ in range(25)]
        started = time.perf_counter()
        with conn.begin():
            if prune == "bounded":
                deleted = prune_seen(conn, PRUNE_ROWS)
            elif prune == "unbounded":
                deleted = conn.execute(delete(SeenRequest).where(SeenRequest.expires_at < utcnow())).rowcount
            else:
                deleted = 0
            record_seen(conn, seen)
        print(f"  {prune:<28} {(time.perf_counter() - started) * 1000:8.1f} ms  ({deleted:,} expired rows deleted)",
              flush=True)

    for prune in ("no prune", "bounded", "no prune", "bounded", "bounded", "unbounded"):
        batch(prune)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,30,60,120", help="batch sizes to measure (default 1,10,30,60,120)")
    parser.add_argument("--messages", type=int, default=3000, help="messages per size, at least 20 batches")
    parser.add_argument("--replay-backlog", type=int, default=0, metavar="ROWS",
                        help="instead: a replay cache of this many rows, and a batch's prune in it")
    args = parser.parse_args()
    try:
        sizes = [int(part) for part in args.sizes.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--sizes: {args.sizes!r} is not a list of numbers like 1,10,30") from None
    if not sizes or min(sizes) < 1 or args.messages < 1 or args.replay_backlog < 0:
        raise SystemExit("--sizes and --messages must be positive, --replay-backlog at least 0")
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/writer.db")
        asyncio.run(migrate.upgrade(engine))
        asyncio.run(engine.dispose())
        twin = sqlite_file_twin(engine)
        assert twin is not None
        with twin.connect() as conn:
            if args.replay_backlog:
                replay_backlog(conn, args.replay_backlog)
                return
            follower_ids = prepare(conn)
            print(f"group writer's batches alone, SQLite synchronous=FULL, {FOLLOWERS} followers")
            for size in sizes:
                cpu_ms, wall_ms = measure(conn, follower_ids, size, args.messages)
                print(f"  batches of {size:>4}: CPU {cpu_ms:6.3f} ms per message, {cpu_ms * size:6.2f} ms per batch;"
                      f" wall {wall_ms:6.2f} ms per batch", flush=True)
        twin.dispose()


if __name__ == "__main__":
    main()
