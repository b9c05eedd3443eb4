"""Signed Weibo text pushes per second, everything persisted, against a bare aiohttp handler.

    python bench/weibo.py [--requests 4000] [--warmup 1000] [--concurrency 64] [--database-url URL]

The same client (a separate process: concurrent senders over keep-alive connections, pushes signed
beforehand with millisecond timestamps, each from another fan: a push's dedupe key is sender,
created_at (seconds) and type) first hits a bare aiohttp handler that returns a fixed JSON
reply, then engagebot's Weibo channel (signature check, replay cache, JSON validation, dedupe,
follower upsert, routing, storing the message and the reply, the passive JSON reply). The ratio of
the two requests/s is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECRET = "bench-app-secret"
TOKEN = "2.00bench"
BRAND = "5000000001"


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def build_requests(n: int, seed: int) -> list[tuple[dict[str, str], bytes]]:
    out = []
    texts = ["你好", "hello", "营业时间", "what are your hours?", "/help", "优惠"]
    created = time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime())
    for i in range(n):
        # One push per (fan, second, type): the dedupe key; distinct fans keep every push distinct.
        fan = str(6_000_000_000 + seed * 10_000_000 + i)
        body = json.dumps({"type": "text", "receiver_id": int(BRAND), "sender_id": int(fan), "created_at": created,
                           "text": texts[i % len(texts)], "data": {}}).encode()
        timestamp, nonce = str(int(time.time() * 1000)), secrets.token_hex(5)
        out.append(({"signature": sign(SECRET, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}, body))
    return out


def client_process(url: str, requests: list[tuple[dict[str, str], bytes]], concurrency: int, conn) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    async def run() -> tuple[float, list[float], int]:
        latencies: list[float] = []
        errors = 0
        queue = list(reversed(requests))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            async def sender() -> None:
                nonlocal errors
                while queue:
                    query, body = queue.pop()
                    started = time.perf_counter()
                    try:
                        async with http.post(url, params=query, data=body) as resp:
                            payload = await resp.read()
                            if resp.status != 200 or not payload.startswith(b'{"result":true'):
                                errors += 1
                    except aiohttp.ClientError:
                        errors += 1
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(concurrency)))
            return time.perf_counter() - started, latencies, errors

    conn.send(asyncio.run(run()))


def measure(url: str, requests: list[tuple[dict[str, str], bytes]], concurrency: int) -> tuple[float, list[float], int]:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=client_process, args=(url, requests, concurrency, child))
    proc.start()
    result = parent.recv()
    proc.join()
    return result


async def serve(app, port: int):  # type: ignore[no-untyped-def]
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def bare_app():  # type: ignore[no-untyped-def]
    from aiohttp import web

    reply = json.dumps({"result": True, "sender_id": int(BRAND), "receiver_id": 1, "type": "text",
                        "data": "%7B%22text%22%3A%22fixed%22%7D"}, separators=(",", ":"))

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=reply, content_type="application/json")

    app = web.Application()
    app.router.add_post("/weibo", handler)
    return app


def bot_app(database_url: str):  # type: ignore[no-untyped-def]
    from aiohttp import web
    from pydantic import SecretStr

    from bot.app import build_core
    from bot.channels.weibo.adapter import WeiboChannel
    from bot.settings import Settings, WeiboSettings
    from bot.web import error_middleware

    core = build_core(Settings(database_url=database_url, log_level="WARNING"))
    config = WeiboSettings(app_key="1", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN), brand_uid=BRAND,
                           api_base="http://127.0.0.1:9")
    channel = WeiboChannel(dispatch=core.dispatcher.dispatch, account="bench", config=config, sessions=core.sessions)
    app = web.Application(middlewares=[error_middleware])
    app.router.add_routes(channel.routes())

    async def lifetime(_app: web.Application):  # type: ignore[no-untyped-def]
        await core.open()
        yield
        await core.close()

    app.cleanup_ctx.append(lifetime)
    return app


def describe(name: str, seconds: float, lat: list[float], errors: int) -> tuple[float, str]:
    q = statistics.quantiles(lat, n=100)
    rps = len(lat) / seconds
    return rps, (f"  {name:<34} {rps:>8,.0f} req/s   p50 {q[49] * 1000:6.1f} ms   p99 {q[98] * 1000:6.1f} ms"
                 f"   errors {errors}")


async def main() -> None:
    import logging

    from tests.support.servers import free_port

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{args.requests} signed text pushes, {args.concurrency} concurrent senders (client in its own process)")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{os.path.join(tmp, 'bench.db')}"
        port = free_port()
        runner = await serve(bare_app(), port)
        await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/weibo", build_requests(200, 1),
                                args.concurrency)
        base = await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/weibo",
                                       build_requests(args.requests, 2), args.concurrency)
        await runner.cleanup()
        port = free_port()
        runner = await serve(bot_app(url), port)
        await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/weibo",
                                build_requests(args.warmup, 3), args.concurrency)  # warm up
        bot = await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/weibo",
                                      build_requests(args.requests, 4), args.concurrency)
        await runner.cleanup()
    base_rps, base_line = describe("bare aiohttp, fixed reply", *base)
    bot_rps, bot_line = describe("engagebot, everything persisted", *bot)
    print(f"{base_line}\n{bot_line}\n  ratio: {bot_rps / base_rps:.1%} of the bare handler")


if __name__ == "__main__":
    asyncio.run(main())
