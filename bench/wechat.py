"""Signed WeChat text callbacks per second, everything persisted, against a bare aiohttp handler.

    python bench/wechat.py [--requests 4000] [--concurrency 64] [--modes plain,safe] [--database-url URL]
                           [--replay-cost]

For each mode, the same client (a separate process: 64 concurrent senders over keep-alive
connections, bodies signed and, in safe mode, encrypted beforehand) first hits a bare aiohttp
handler that returns a fixed reply, then engagebot's WeChat channel (signature check, decryption,
parsing, dedupe, follower upsert, routing, storing the message and the reply, rendering,
encryption). The ratio of the two requests/s is the figure. With ``--replay-cost``, engagebot runs
once more with the replay cache's database check off (the timestamp window stays), on a fresh
database, and the bench prints what the cache costs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import multiprocessing
import os
import secrets
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOKEN = "benchtoken"
APP_ID = "wxbench000000001"
AES_KEY = "BenchKeyBenchKeyBenchKeyBenchKeyBenchKey123"


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def encrypt(xml: bytes) -> str:
    # The client's own safe-mode code (like the platform, it shares nothing with the adapter).
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode(AES_KEY + "=")
    plain = secrets.token_bytes(16) + struct.pack(">I", len(xml)) + xml + APP_ID.encode()
    pad = 32 - len(plain) % 32
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain + bytes([pad]) * pad) + enc.finalize()).decode()


def build_requests(n: int, followers: int, safe: bool, seed: int) -> list[tuple[dict[str, str], bytes]]:
    out = []
    texts = ["你好", "hello", "营业时间", "what are your hours?", "/help", "优惠"]
    for i in range(n):
        openid = f"oBench{i % followers:06d}{'x' * 16}"
        xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
               f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[{texts[i % len(texts)]}]]></Content><MsgId>{seed * 10_000_000 + i}</MsgId>"
               "</xml>").encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(5)
        query = {"signature": sign(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
                 "openid": openid}
        if safe:
            ciphertext = encrypt(xml)
            query.update(encrypt_type="aes", msg_signature=sign(TOKEN, timestamp, nonce, ciphertext))
            xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{ciphertext}]]>"
                   "</Encrypt></xml>").encode()
        out.append((query, xml))
    return out


def client_process(url: str, requests: list[tuple[dict[str, str], bytes]], concurrency: int, conn) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    async def run() -> tuple[float, list[float], int]:
        latencies: list[float] = []
        errors = 0
        queue = list(reversed(requests))
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as http:
            async def sender() -> None:
                nonlocal errors
                while queue:
                    query, body = queue.pop()
                    started = time.perf_counter()
                    try:
                        async with http.post(url, params=query, data=body) as resp:
                            payload = await resp.read()
                            if resp.status != 200 or not payload.startswith(b"<xml>"):
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

    reply = ("<xml><ToUserName><![CDATA[o]]></ToUserName><FromUserName><![CDATA[gh_bench]]></FromUserName>"
             "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[fixed]]>"
             "</Content></xml>")

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=reply, content_type="application/xml")

    app = web.Application()
    app.router.add_post("/wechat", handler)
    return app


def bot_app(database_url: str, safe: bool, replay: bool = True):  # type: ignore[no-untyped-def]
    from aiohttp import web
    from pydantic import SecretStr

    from bot.app import build_core
    from bot.channels.wechat.adapter import WeChatChannel
    from bot.settings import Settings, WeChatAccount
    from bot.web import error_middleware

    settings = Settings(database_url=database_url, log_level="WARNING")
    core = build_core(settings)
    config = WeChatAccount(token=SecretStr(TOKEN), app_id=APP_ID,
                           aes_key=SecretStr(AES_KEY) if safe else None)
    channel = WeChatChannel(dispatch=core.dispatcher.dispatch, account="bench", config=config, sessions=core.sessions)
    if not replay:
        async def window_only(*, timestamp: str, **_kw: object) -> None:
            channel.replay.check_window(timestamp)

        channel.replay.admit = window_only  # type: ignore[method-assign]
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
    parser.add_argument("--followers", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--modes", default="plain,safe")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--replay-cost", action="store_true", help="also measure with the replay cache off")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{args.requests} signed text callbacks from {args.followers} followers, "
          f"{args.concurrency} concurrent senders (client in its own process)")
    for seed, mode in enumerate(args.modes.split(","), start=1):
        safe = mode == "safe"
        with tempfile.TemporaryDirectory() as tmp:
            url = args.database_url or f"sqlite+aiosqlite:///{os.path.join(tmp, 'bench.db')}"
            port = free_port()
            runner = await serve(bare_app(), port)
            warm = build_requests(200, 200, safe, seed * 3)
            await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/wechat", warm, args.concurrency)
            base = await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/wechat",
                                           build_requests(args.requests, args.followers, safe, seed * 3 + 1),
                                           args.concurrency)
            await runner.cleanup()
            bot = await run_bot(url, safe, args, seed)
            if args.replay_cost:
                # A fresh SQLite file; on a given database, other message ids (seeds) so nothing is a duplicate.
                other = os.path.join(tmp, "no-replay.db") if not args.database_url else None
                no_replay = await run_bot(f"sqlite+aiosqlite:///{other}" if other else url, safe, args,
                                          seed + 1000, replay=False)
        base_rps, base_line = describe("bare aiohttp, fixed reply", *base)
        bot_rps, bot_line = describe("engagebot, everything persisted", *bot)
        print(f"{mode} mode:\n{base_line}\n{bot_line}\n  ratio: {bot_rps / base_rps:.1%} of the bare handler")
        if args.replay_cost:
            off_rps, off_line = describe("engagebot, replay cache off", *no_replay)
            print(f"{off_line}\n  the replay cache costs {1 - bot_rps / off_rps:.1%} of the throughput")


async def run_bot(url: str, safe: bool, args: argparse.Namespace, seed: int, *,
                  replay: bool = True) -> tuple[float, list[float], int]:
    from tests.support.servers import free_port

    port = free_port()
    runner = await serve(bot_app(url, safe, replay), port)
    await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/wechat",
                            build_requests(args.followers, args.followers, safe, seed * 3 + 2),
                            args.concurrency)  # warm up: followers exist, caches filled
    bot = await asyncio.to_thread(measure, f"http://127.0.0.1:{port}/wechat",
                                  build_requests(args.requests, args.followers, safe, seed * 3 + 3),
                                  args.concurrency)
    await runner.cleanup()
    return bot


if __name__ == "__main__":
    asyncio.run(main())
