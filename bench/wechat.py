"""Signed WeChat text callbacks per second, everything persisted, against a bare aiohttp handler.

    python bench/wechat.py [--modes plain,safe] [--workers 1,2] [--seconds 8] [--connections 64]
                           [--database-url postgresql+asyncpg://...] [--followers 1000]
    python bench/wechat.py --memory 200000        # RSS while that many new followers write once each
    python bench/wechat.py --instances 1,2 --database-url postgresql+asyncpg://...   # behind nginx
    python bench/wechat.py --rounds 3          # bare and engagebot in turn, three times: the median ratio

For each mode, wrk (bench/driver.py) first loads a bare aiohttp handler that returns a fixed reply
(in its own process), then ``engagebot run`` (``--workers N`` for each count) with a WeChat account:
signature check, replay cache, decryption, parsing, dedupe, follower upsert, routing, storing the
message and the reply, rendering, encryption. Every request carries a fresh signature, nonce and
MsgId. Followers have written once before the measured run (a warm-up), as in a running account.

``--instances 1,2``: instead of one server, that many ``engagebot run`` instances (``--workers``' first
count each) on one PostgreSQL, behind deploy/nginx.conf as shipped (nginx must be installed), as a
brand that outgrew one machine runs them; the bare handler is measured behind the same nginx too.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import secrets
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import dbsize, driver
from bench.driver import Request, Result

TOKEN = "benchtoken"
APP_ID = "wxbench000000001"
AES_KEY = "BenchKeyBenchKeyBenchKeyBenchKeyBenchKey123"
PATH = "/wechat"
EXPECT = b"<xml>"
BARE_REPLY = ("<xml><ToUserName><![CDATA[o]]></ToUserName><FromUserName><![CDATA[gh_bench]]></FromUserName>"
              "<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[fixed]]>"
              "</Content></xml>")
TEXTS = ["你好", "hello", "营业时间", "what are your hours?", "/help", "优惠"]


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


def build_requests(n: int, *, followers: int, safe: bool, first_follower: int = 0) -> list[Request]:
    """``n`` callbacks, each with its own nonce and MsgId, from ``followers`` followers in turn."""
    out = []
    msg_base = time.time_ns() // 1000 * 10  # distinct from every earlier run's, on a reused database too
    now = str(int(time.time()))
    for i in range(n):
        openid = f"oBench{first_follower + i % followers:07d}{'x' * 15}"
        xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
               f"</FromUserName><CreateTime>{now}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
               f"<Content><![CDATA[{TEXTS[i % len(TEXTS)]}]]></Content><MsgId>{msg_base + i}</MsgId>"
               "</xml>").encode()
        nonce = secrets.token_hex(8)
        query = {"signature": sign(TOKEN, now, nonce), "timestamp": now, "nonce": nonce, "openid": openid}
        if safe:
            ciphertext = encrypt(xml)
            query.update(encrypt_type="aes", msg_signature=sign(TOKEN, now, nonce, ciphertext))
            xml = (f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{ciphertext}]]>"
                   "</Encrypt></xml>").encode()
        out.append((f"{PATH}?{urlencode(query)}", {"Content-Type": "text/xml"}, xml))
    return out


def settings(safe: bool, api_base: str = "http://127.0.0.1:9") -> dict[str, str]:
    values = {"wechat__token": TOKEN, "wechat__app_id": APP_ID, "wechat__app_secret": "bench-secret",
              "wechat__api_base": api_base}
    if safe:
        values["wechat__aes_key"] = AES_KEY
    return values


def serve_api(port: int) -> None:
    """A stand-in for WeChat's API that answers at once: a new follower's language (``user/info``,
    asked on first contact) costs its real round trip, not a timeout against a port nobody serves."""
    from aiohttp import web

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "bench-access-token", "expires_in": 7200})

    async def user_info(_request: web.Request) -> web.Response:
        return web.json_response({"subscribe": 1, "language": "zh_CN"})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/cgi-bin/token", token)
    app.router.add_get("/cgi-bin/user/info", user_info)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def api_server(workdir: Path) -> tuple[int, contextlib.AbstractContextManager[driver.Server]]:
    port = driver.free_port()
    return port, driver.server([sys.executable, str(Path(__file__).resolve()), "--serve-api", str(port)],
                               port=port, workdir=workdir, name="wechat-api")


def measure_bare(args: argparse.Namespace, safe: bool, workdir: Path, *, behind_nginx: bool = False) -> Result:
    port = driver.free_port()
    sample = build_requests(20_000, followers=args.followers, safe=safe)
    with contextlib.ExitStack() as stack:
        srv = stack.enter_context(driver.bare_server(port, path=PATH, body=BARE_REPLY,
                                                     content_type="application/xml", workdir=workdir))
        target: str | driver.Server = srv
        if behind_nginx:
            target = stack.enter_context(driver.nginx_front([srv], workdir=workdir, name="nginx-bare")).url
        driver.load(target, sample, seconds=2, connections=args.connections, threads=args.threads, wrap=True,
                    python_client=args.python_client)  # warm up
        return driver.load(target, sample, seconds=args.seconds, connections=args.connections,
                           threads=args.threads, expect=EXPECT, wrap=True, python_client=args.python_client)


def measure_engagebot(args: argparse.Namespace, safe: bool, workers: int, workdir: Path, tag: str) -> Result:
    port = driver.free_port()
    api_port, api = api_server(workdir)
    url = args.database_url or driver.sqlite_url(workdir, f"{tag}.db")
    env = driver.engagebot_env(url, **settings(safe, f"http://127.0.0.1:{api_port}"))
    with api, driver.server(driver.engagebot_command(port, workers), env=env, port=port, workdir=workdir,
                            name=f"engagebot-{tag}") as srv:
        # Warm up: every follower writes once (created, caches filled), as in an account that runs.
        driver.load(srv, build_requests(args.followers, followers=args.followers, safe=safe), seconds=60,
                    connections=args.connections, threads=args.threads, python_client=args.python_client)
        dbsize.analyze(url)
        load = build_requests(int(args.max_rate * args.seconds), followers=args.followers, safe=safe)
        return driver.load(srv, load, seconds=args.seconds, connections=args.connections, threads=args.threads,
                           expect=EXPECT, python_client=args.python_client)


def measure_instances(args: argparse.Namespace, safe: bool, count: int, workers: int, workdir: Path,
                      tag: str) -> Result:
    """``count`` instances of ``workers`` each on the PostgreSQL of ``--database-url``, behind nginx; their
    CPU together."""
    api_port, api = api_server(workdir)
    env = driver.engagebot_env(args.database_url, **settings(safe, f"http://127.0.0.1:{api_port}"))
    with contextlib.ExitStack() as stack:
        stack.enter_context(api)
        instances = []
        for index in range(count):
            port = driver.free_port()
            instances.append(stack.enter_context(driver.server(
                driver.engagebot_command(port, workers), env=env, port=port, workdir=workdir,
                name=f"engagebot-{tag}-{index}")))
        front = stack.enter_context(driver.nginx_front(instances, workdir=workdir, name=f"nginx-{tag}"))
        driver.load(front.url, build_requests(args.followers, followers=args.followers, safe=safe), seconds=60,
                    connections=args.connections, threads=args.threads, python_client=args.python_client)
        dbsize.analyze(args.database_url)
        load = build_requests(int(args.max_rate * args.seconds), followers=args.followers, safe=safe)
        started = sum(instance.cpu_seconds() for instance in instances)
        before = driver.writer_samples(*(instance.url for instance in instances))
        result = driver.load(front.url, load, seconds=args.seconds, connections=args.connections,
                             threads=args.threads, expect=EXPECT, python_client=args.python_client)
        result.batches = driver.writer_batches(before, driver.writer_samples(*(instance.url for instance in instances)),
                                               result.requests)
        if result.requests:
            result.cpu_ms = (sum(instance.cpu_seconds() for instance in instances) - started) / result.requests * 1000
        return result


def run_instances(args: argparse.Namespace, modes: list[str], workdir: Path, rounds: driver.Rounds, tag: str) -> None:
    counts = driver.worker_counts(args.instances, "--instances")
    if not (args.database_url or "").startswith("postgresql"):
        raise SystemExit("--instances: instances share a PostgreSQL: give --database-url postgresql+asyncpg://...")
    if driver.nginx_binary() is None:
        raise SystemExit("--instances: nginx not found: install it (Debian/Ubuntu: apt-get install nginx-light)")
    workers = driver.worker_counts(args.workers)[0]
    for mode in modes:
        safe = mode == "safe"
        bare = measure_bare(args, safe, workdir)
        print(f"{mode} mode:\n{bare.line('bare aiohttp, fixed reply')}", flush=True)
        print(measure_bare(args, safe, workdir, behind_nginx=True).line("bare aiohttp behind nginx", bare), flush=True)
        for count in counts:
            name = f"engagebot, {count} x {workers} worker{'s' if workers > 1 else ''}, nginx"
            print_run(name, bare, functools.partial(measure_instances, args, safe, count, workers, workdir,
                                                    f"{mode}-{count}i{tag}"), rounds, f"{mode}: {name}")


def print_run(name: str, bare: Result, measure: Callable[[], Result], rounds: driver.Rounds, key: str) -> None:
    """One measured run's line, against the bare handler's (recorded in ``rounds`` under ``key``); or
    why it did not run."""
    try:
        result = measure()
    except driver.ServerFailed as exc:
        print(f"  {name:<40} did not run: {exc}", flush=True)
        return
    rounds.record(key, result, bare)
    print(result.line(name, bare), flush=True)


def measure_memory(args: argparse.Namespace, workdir: Path) -> None:
    """New followers write once each, in slices; the server's RSS after each slice must stay flat."""
    port = driver.free_port()
    workers = driver.worker_counts(args.workers)[0]
    url = args.database_url or driver.sqlite_url(workdir, "memory.db")
    api_port, api = api_server(workdir)
    env = driver.engagebot_env(url, **settings(False, f"http://127.0.0.1:{api_port}"))
    checkpoints = sorted({min(c, args.memory) for c in (10_000, 50_000, 100_000, args.memory)})
    print(f"memory: {args.memory:,} distinct followers, one message each, {args.connections} connections, "
          f"{workers} worker(s)")
    with api, driver.server(driver.engagebot_command(port, workers), env=env, port=port, workdir=workdir,
                            name="engagebot-memory") as srv:
        print(f"  at start: RSS {srv.rss_mb():7.1f} MiB")
        sent = 0
        for checkpoint in checkpoints:
            while sent < checkpoint:
                # Slices of at most 20,000: generated just before they are sent (the timestamp window).
                size = min(20_000, checkpoint - sent)
                batch = build_requests(size, followers=size, safe=False, first_follower=sent)
                result = driver.load(srv, batch, seconds=300, connections=args.connections,
                                     threads=args.threads, expect=EXPECT, python_client=args.python_client)
                sent += size
            print(f"  after {sent:>9,} followers: RSS {srv.rss_mb():7.1f} MiB   last slice {result.rps:,.0f} req/s,"
                  f" errors {result.errors}", flush=True)
    print(f"database ({'PostgreSQL' if args.database_url else 'SQLite'}):\n{dbsize.report(url)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    driver.add_common_arguments(parser)
    parser.add_argument("--modes", default="plain,safe", help="plain, safe or both (default plain,safe)")
    parser.add_argument("--followers", type=int, default=1000, help="followers writing in turn (default 1000)")
    parser.add_argument("--memory", type=int, default=0, metavar="FOLLOWERS",
                        help="instead: this many new followers write once each; print RSS along the way")
    parser.add_argument("--instances", default="", metavar="COUNTS",
                        help="instead: this many instances (e.g. 1,2) on the PostgreSQL of --database-url, behind"
                             " deploy/nginx.conf")
    parser.add_argument("--serve-api", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_api:
        serve_api(args.serve_api)
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"plain", "safe"}:
        raise SystemExit("--modes: plain, safe or plain,safe")
    driver.check_common_arguments(args)
    with tempfile.TemporaryDirectory(prefix="bench-wechat-") as tmp:
        workdir = Path(tmp)
        if args.memory:
            measure_memory(args, workdir)
            return
        client = "Python client" if args.python_client or not driver.have_wrk() else f"wrk -t{args.threads}"
        print(f"signed WeChat text callbacks, {client}, {args.connections} connections, {args.seconds:g}s per run, "
              f"{args.followers} followers, database {'PostgreSQL' if args.database_url else 'SQLite'}")
        rounds = driver.Rounds(args.rounds)
        for round_ in rounds.each():
            tag = f"-r{round_}" if args.rounds > 1 else ""
            if args.instances:
                run_instances(args, modes, workdir, rounds, tag)
                continue
            for mode in modes:
                safe = mode == "safe"
                bare = measure_bare(args, safe, workdir)
                print(f"{mode} mode:\n{bare.line('bare aiohttp, fixed reply')}", flush=True)
                for workers in driver.worker_counts(args.workers):
                    name = f"engagebot, {workers} worker{'s' if workers > 1 else ''}"
                    print_run(name, bare, functools.partial(measure_engagebot, args, safe, workers, workdir,
                                                            f"{mode}-{workers}{tag}"), rounds, f"{mode}: {name}")
        rounds.print_summary()


if __name__ == "__main__":
    main()
