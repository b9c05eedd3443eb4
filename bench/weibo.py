"""Signed Weibo text pushes per second, everything persisted, against a bare aiohttp handler.

    python bench/weibo.py [--workers 1,2] [--seconds 8] [--connections 64] [--database-url URL] [--followers 1000]
                          [--rounds 3]

wrk (bench/driver.py) first loads a bare aiohttp handler that returns a fixed JSON reply, then
``engagebot run`` with a Weibo account: signature check, replay cache, JSON validation, dedupe,
follower upsert, routing, storing the message and the reply, the passive JSON reply. Pushes are
signed beforehand with millisecond timestamps and fresh nonces. A push's dedupe key is sender,
created_at (seconds) and type, so each follower's pushes carry created_at one second apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dbsize, driver
from bench.driver import Request, Result

SECRET = "bench-app-secret"
TOKEN = "2.00bench"
BRAND = "5000000001"
PATH = "/weibo"
EXPECT = b'{"result":true'
BARE_REPLY = json.dumps({"result": True, "sender_id": int(BRAND), "receiver_id": 1, "type": "text",
                         "data": "%7B%22text%22%3A%22fixed%22%7D"}, separators=(",", ":"))
TEXTS = ["你好", "hello", "营业时间", "what are your hours?", "/help", "优惠"]


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def build_requests(n: int, *, followers: int, first_second: int) -> list[Request]:
    """``n`` pushes from ``followers`` fans in turn; round r of fans is dated ``first_second - r``."""
    out = []
    timestamp = str(int(time.time() * 1000))
    for i in range(n):
        fan = str(6_000_000_000 + i % followers)
        created = time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(first_second - i // followers))
        body = json.dumps({"type": "text", "receiver_id": int(BRAND), "sender_id": int(fan), "created_at": created,
                           "text": TEXTS[i % len(TEXTS)], "data": {}}).encode()
        nonce = secrets.token_hex(8)
        query = {"signature": sign(SECRET, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        out.append((f"{PATH}?{urlencode(query)}", {"Content-Type": "application/json"}, body))
    return out


SETTINGS = {"weibo__app_key": "1", "weibo__app_secret": SECRET, "weibo__access_token": TOKEN,
            "weibo__brand_uid": BRAND, "weibo__api_base": "http://127.0.0.1:9"}  # no send API call may succeed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    driver.add_common_arguments(parser)
    parser.add_argument("--followers", type=int, default=1000, help="fans pushing in turn (default 1000)")
    args = parser.parse_args()
    driver.check_common_arguments(args)
    # Each run's pushes are dated in seconds no earlier run used (a reused PostgreSQL database dedupes them).
    clock = int(time.time()) - 10
    span = int(args.max_rate * args.seconds) // args.followers + 2  # seconds one run's pushes use
    with tempfile.TemporaryDirectory(prefix="bench-weibo-") as tmp:
        workdir = Path(tmp)
        client = "Python client" if args.python_client or not driver.have_wrk() else f"wrk -t{args.threads}"
        print(f"signed Weibo text pushes, {client}, {args.connections} connections, {args.seconds:g}s per run, "
              f"{args.followers} followers, database {'PostgreSQL' if args.database_url else 'SQLite'}")
        results = driver.Rounds(args.rounds)
        for round_ in results.each():
            port = driver.free_port()
            sample = build_requests(20_000, followers=args.followers, first_second=clock)
            with driver.bare_server(port, path=PATH, body=BARE_REPLY, content_type="application/json",
                                    workdir=workdir) as srv:
                driver.load(srv, sample, seconds=2, connections=args.connections, threads=args.threads, wrap=True,
                            python_client=args.python_client)
                bare: Result = driver.load(srv, sample, seconds=args.seconds, connections=args.connections,
                                           threads=args.threads, expect=EXPECT, wrap=True, python_client=args.python_client)
            print(bare.line("bare aiohttp, fixed reply"), flush=True)
            for workers in driver.worker_counts(args.workers):
                name = f"engagebot, {workers} worker{'s' if workers > 1 else ''}"
                port = driver.free_port()
                url = args.database_url or driver.sqlite_url(workdir, f"weibo-{workers}-r{round_}.db")
                env = driver.engagebot_env(url, **SETTINGS)
                try:
                    with driver.server(driver.engagebot_command(port, workers), env=env, port=port, workdir=workdir,
                                       name=f"engagebot-{workers}-r{round_}") as srv:
                        warm = build_requests(args.followers, followers=args.followers, first_second=clock)
                        driver.load(srv, warm, seconds=60, connections=args.connections, threads=args.threads,
                                    python_client=args.python_client)  # every fan known, caches filled
                        dbsize.analyze(url)
                        load = build_requests(int(args.max_rate * args.seconds), followers=args.followers,
                                              first_second=clock - 1)
                        result = driver.load(srv, load, seconds=args.seconds, connections=args.connections,
                                             threads=args.threads, expect=EXPECT, python_client=args.python_client)
                except driver.ServerFailed as exc:
                    print(f"  {name:<40} did not run: {exc}", flush=True)
                    continue
                clock -= span  # the next run's pushes: earlier seconds still
                results.record(name, result, bare)
                print(result.line(name, bare), flush=True)
        results.print_summary()


if __name__ == "__main__":
    main()
