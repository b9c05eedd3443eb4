"""Telegram webhook updates per second, everything persisted, against a bare aiohttp handler.

    python bench/telegram.py [--workers 1,2] [--seconds 8] [--connections 64] [--database-url URL] [--followers 1000]

wrk (bench/driver.py) first loads a bare aiohttp handler that answers 200, then ``engagebot run``
in webhook mode: secret check, JSON and Update validation, the chat's queue, dedupe, follower
upsert, routing, storing the update and the reply; the 200 leaves once the update is stored. The
replies go out through the send API to the Bot API simulator (``python -m bot.simulators.telegram``,
its own process on the same machine: its CPU is part of the cost measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dbsize, driver
from bench.driver import Request, Result

TOKEN = "123456:bench-token"
SECRET = "bench-webhook-secret"
PATH = "/telegram"
HEADERS = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
TEXTS = ["你好", "hello", "营业时间", "what are your hours?", "/help", "优惠"]


def build_requests(n: int, *, followers: int, first_update: int) -> list[Request]:
    """``n`` text updates from ``followers`` private chats in turn, update and message ids never used before."""
    out = []
    now = int(time.time())
    for i in range(n):
        chat = 700_000_000 + i % followers
        update = {"update_id": first_update + i, "message": {
            "message_id": first_update + i, "date": now, "chat": {"id": chat, "type": "private", "first_name": "Fan"},
            "from": {"id": chat, "is_bot": False, "first_name": "Fan", "language_code": "en"},
            "text": TEXTS[i % len(TEXTS)]}}
        out.append((PATH, HEADERS, json.dumps(update).encode()))
    return out


def wait_for_webhook(url: str, first_update: int, timeout: float = 60) -> None:
    """The webhook answers 503 until the bot has connected to the Bot API: wait for a 200."""
    deadline = time.monotonic() + timeout
    _target, headers, body = build_requests(1, followers=1, first_update=first_update)[0]
    while True:
        request = urllib.request.Request(url + PATH, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise driver.ServerFailed(f"the Telegram webhook did not answer 200 within {timeout:.0f}s")
        time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    driver.add_common_arguments(parser)
    parser.add_argument("--followers", type=int, default=1000, help="chats writing in turn (default 1000)")
    args = parser.parse_args()
    driver.check_common_arguments(args)
    # Update ids from the clock: a reused PostgreSQL database has seen the earlier runs' ones.
    next_update = time.time_ns() // 1000
    with tempfile.TemporaryDirectory(prefix="bench-telegram-") as tmp:
        workdir = Path(tmp)
        client = "Python client" if args.python_client or not driver.have_wrk() else f"wrk -t{args.threads}"
        print(f"Telegram webhook updates, {client}, {args.connections} connections, {args.seconds:g}s per run, "
              f"{args.followers} followers, database {'PostgreSQL' if args.database_url else 'SQLite'}")
        results = driver.Rounds(args.rounds)
        for round_ in results.each():
            port = driver.free_port()
            sample = build_requests(20_000, followers=args.followers, first_update=1)
            with driver.bare_server(port, path=PATH, body="", content_type="text/plain", workdir=workdir) as srv:
                driver.load(srv, sample, seconds=2, connections=args.connections, threads=args.threads, wrap=True,
                            python_client=args.python_client)
                bare: Result = driver.load(srv, sample, seconds=args.seconds, connections=args.connections,
                                           threads=args.threads, wrap=True, python_client=args.python_client)
            print(bare.line("bare aiohttp, empty 200"), flush=True)
            api_port = driver.free_port()
            with driver.server([sys.executable, "-m", "bot.simulators.telegram", "--port", str(api_port),
                                "--token", TOKEN], port=api_port, ready="/simulator/telegram", workdir=workdir,
                               name=f"telegram-api-r{round_}"):
                for workers in driver.worker_counts(args.workers):
                    name = f"engagebot, {workers} worker{'s' if workers > 1 else ''}"
                    port = driver.free_port()
                    url = args.database_url or driver.sqlite_url(workdir, f"telegram-{workers}-r{round_}.db")
                    env = driver.engagebot_env(
                        url,
                        telegram__token=TOKEN, telegram__mode="webhook", telegram__webhook_secret=SECRET,
                        telegram__webhook_url=f"http://127.0.0.1:{port}{PATH}",
                        telegram__api_base=f"http://127.0.0.1:{api_port}/bot")
                    try:
                        with driver.server(driver.engagebot_command(port, workers), env=env, port=port, workdir=workdir,
                                           name=f"engagebot-{workers}-r{round_}") as srv:
                            wait_for_webhook(srv.url, next_update)
                            next_update += 1
                            warm = build_requests(args.followers, followers=args.followers, first_update=next_update)
                            next_update += len(warm)
                            driver.load(srv, warm, seconds=60, connections=args.connections, threads=args.threads,
                                        python_client=args.python_client)  # every chat known, caches filled
                            dbsize.analyze(url)
                            load = build_requests(int(args.max_rate * args.seconds), followers=args.followers,
                                                  first_update=next_update)
                            next_update += len(load)
                            result = driver.load(srv, load, seconds=args.seconds, connections=args.connections,
                                                 threads=args.threads, python_client=args.python_client)
                    except driver.ServerFailed as exc:
                        print(f"  {name:<40} did not run: {exc}", flush=True)
                        continue
                    results.record(name, result, bare)
                    print(result.line(name, bare), flush=True)

        results.print_summary()

if __name__ == "__main__":
    main()
