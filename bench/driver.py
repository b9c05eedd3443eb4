"""The shared load driver of the channel benches (bench/wechat.py, bench/weibo.py, bench/telegram.py).

A bench pre-generates its requests (each with a fresh signature, nonce and platform message id:
engagebot refuses a replayed one), writes them to a file, and ``wrk`` (a C load generator: it costs
the server's machine almost no CPU, unlike a Python client) sends each exactly once through
bench/requests.lua. Servers run as subprocesses: the bare aiohttp handler (``python bench/driver.py
bare``) and ``engagebot run`` as an operator starts it. Without wrk the driver says how to install
it and falls back to a Python client in its own process (slower: it competes with the server for CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "requests.lua"

# (path with query, headers, body)
Request = tuple[str, dict[str, str], bytes]


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    unexpected: int  # 200 answers whose body is not the expected reply
    # The server's CPU time per request (all its processes), when measured: unlike requests/s, it
    # hardly moves when other work shares the machine, so it compares runs of different hours.
    cpu_ms: float | None = None
    # Where the group writer's batches spent their time during the run (``writer_batches``), if scraped.
    batches: str | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors + self.unexpected

    def line(self, name: str, bare: Result | None = None) -> str:
        ratio = f"   {self.rps / bare.rps:6.1%} of bare" if bare is not None and bare.rps else ""
        if bare is not None and bare.cpu_ms and self.cpu_ms:
            ratio += f" (by CPU per request: {bare.cpu_ms / self.cpu_ms:6.1%})"
        cpu = f"   CPU {self.cpu_ms:5.3f} ms/req" if self.cpu_ms is not None else ""
        return (f"  {name:<40} {self.rps:>8,.0f} req/s   p50 {self.p50_ms:6.1f} ms   p99 {self.p99_ms:6.1f} ms"
                f"   non-2xx {self.non2xx}  socket errors {self.socket_errors}  bad body {self.unexpected}"
                f"   ({self.requests} in {self.seconds:.1f}s){cpu}{ratio}"
                + (f"\n  {'':<40} {self.batches}" if self.batches else ""))


class Rounds:
    """Each run's ratio to the bare handler measured in the same round, and their spread over the rounds.

    On a shared machine one run's requests/s moves by a quarter from one minute to the next (the bare
    handler's too); a ratio taken from one bare run and one engagebot run a minute apart carries that
    noise. Rounds alternate the two, each engagebot run is compared with its round's bare run, and the
    median of those ratios is the figure to quote, with its range beside it.
    """

    def __init__(self, count: int = 1) -> None:
        self.count = count
        self.runs: dict[str, list[tuple[Result, Result]]] = {}

    def each(self) -> Iterator[int]:
        """The rounds' numbers, 1 to ``count``, each announced when there are several."""
        for number in range(1, self.count + 1):
            if self.count > 1:
                print(f"round {number} of {self.count}:", flush=True)
            yield number

    def print_summary(self) -> None:
        """After several rounds: :meth:`summary`, under a heading."""
        if self.count > 1:
            print(f"over {self.count} rounds, each run against its round's bare handler:")
            print("\n".join(self.summary()), flush=True)

    def record(self, name: str, result: Result, bare: Result) -> None:
        self.runs.setdefault(name, []).append((result, bare))

    def summary(self) -> list[str]:
        """One line per measured configuration: the median ratio (by requests/s and by CPU per
        request), its range, the median p99 and every round's errors added up."""
        lines = []
        for name, runs in self.runs.items():
            ratios = [result.rps / bare.rps for result, bare in runs if bare.rps]
            cpu = [bare.cpu_ms / result.cpu_ms for result, bare in runs if bare.cpu_ms and result.cpu_ms]
            by_cpu = f" (by CPU per request: {statistics.median(cpu):6.1%})" if cpu else ""
            spread = f"range {min(ratios):.1%} to {max(ratios):.1%}" if ratios else "no ratio"
            median = f"{statistics.median(ratios):6.1%}" if ratios else "   n/a"
            lines.append(
                f"  {name:<40} median {median} of bare{by_cpu} over {len(runs)} round{'s' if len(runs) > 1 else ''}"
                f" ({spread}), req/s {statistics.median(r.rps for r, _ in runs):,.0f}, p99"
                f" {statistics.median(r.p99_ms for r, _ in runs):.1f} ms, errors {sum(r.errors for r, _ in runs)}")
        return lines


GROUP_WRITER = "group-writer"
THREAD_CPU = "engagebot_batch_thread_cpu_seconds_total"


def writer_samples(*base_urls: str) -> dict[str, float]:
    """The group writer's histogram sums and counts from the servers' ``/metrics`` (each server's workers
    added up already, the servers added up here), by sample name (and phase); a server that does not
    answer adds nothing."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, float] = {}
    for base_url in base_urls:
        try:
            with urllib.request.urlopen(base_url + "/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            continue
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == THREAD_CPU and "batcher" in sample.labels:  # every batcher's thread
                    key = f"{THREAD_CPU}/{sample.labels['batcher']}"
                    samples[key] = samples.get(key, 0.0) + sample.value
                elif sample.name.endswith(("_sum", "_count")) and GROUP_WRITER in (
                        sample.labels.get("batcher"), sample.labels.get("writer")):
                    phase = sample.labels.get("phase")
                    key = f"{sample.name}/{phase}" if phase else sample.name
                    samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def writer_batches(before: dict[str, float], after: dict[str, float], requests: int = 0) -> str | None:
    """The group writer's batches between two ``writer_samples``: how many, how big, and where each one's
    time went (the thread's phases on a SQLite file; the commit on both engines); and, per request of the
    run (``requests``), the CPU each batcher's thread used (the rest of the server's CPU is the event loop's)."""
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}
    batches = delta.get("engagebot_batch_requests_count", 0.0)
    if not batches:
        return None

    def mean_ms(name: str) -> float:
        count = delta.get(name.replace("_sum", "_count"), 0.0)
        return delta.get(name, 0.0) / count * 1e3 if count else 0.0

    text = (f"group writer: {batches:,.0f} batches of {delta['engagebot_batch_requests_sum'] / batches:.1f} "
            f"requests, {mean_ms('engagebot_batch_seconds_sum'):.1f} ms each:")
    if delta.get("engagebot_write_gate_wait_seconds_count"):  # SQLite: the other writers of this process
        text += f" write gate {mean_ms('engagebot_write_gate_wait_seconds_sum'):.1f} ms,"
    if delta.get("engagebot_batch_phase_seconds_count/in thread"):
        turn = mean_ms("engagebot_batch_phase_seconds_sum/writers' turn")
        text += (f" to thread {mean_ms('engagebot_batch_phase_seconds_sum/to thread'):.1f} ms,"
                 f" writers' turn {turn:.1f} ms,"
                 f" in thread {mean_ms('engagebot_batch_phase_seconds_sum/in thread'):.1f} ms,"
                 f" to loop {mean_ms('engagebot_batch_phase_seconds_sum/to loop'):.1f} ms;")
    text += f" commit {mean_ms('engagebot_commit_seconds_sum'):.1f} ms"
    threads = {key.partition("/")[2]: value for key, value in delta.items() if key.startswith(THREAD_CPU + "/")}
    if requests and any(threads.values()):
        text += "; batch threads' CPU per request: " + ", ".join(
            f"{name} {seconds / requests * 1e3:.3f} ms" for name, seconds in sorted(threads.items()) if seconds)
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def explain_missing_wrk() -> None:
    print("wrk not found: install it (Debian/Ubuntu: apt-get install wrk) for figures that mean something;"
          " falling back to a Python client, which takes CPU from the server it measures.", file=sys.stderr)


def write_requests(path: Path, requests: Sequence[Request]) -> None:
    with path.open("wb") as f:
        for target, headers, body in requests:
            raw_target = target.encode()
            raw_headers = "".join(f"{k}: {v}\n" for k, v in headers.items()).encode()
            f.write(f"{len(raw_target)} {len(raw_headers)} {len(body)}\n".encode())
            f.write(raw_target + raw_headers + body)


def load(target: str | Server, requests: Sequence[Request], *, seconds: float, connections: int = 64,
         threads: int = 1, expect: bytes = b"", wrap: bool = False, python_client: bool = False) -> Result:
    """Send ``requests`` to ``target`` with ``connections`` concurrent keep-alive connections.

    With wrk: for ``seconds`` or until every request was sent once (``wrap``: over and over again).
    Without: every request once, by the Python client. A Server target has its CPU time measured, and
    (engagebot) its group writer's batches read from its ``/metrics`` before and after.
    """
    if isinstance(target, Server):
        samples = writer_samples(target.url)
        started = target.cpu_seconds()
        result = load(target.url, requests, seconds=seconds, connections=connections, threads=threads,
                      expect=expect, wrap=wrap, python_client=python_client)
        if result.requests:
            result.cpu_ms = (target.cpu_seconds() - started) / result.requests * 1000
        result.batches = writer_batches(samples, writer_samples(target.url), result.requests)
        return result
    base_url = target
    if python_client or not have_wrk():
        return python_load(base_url, requests, connections, expect)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        file = Path(tmp) / "requests.bin"
        write_requests(file, requests)
        marker = Path(tmp) / "done"
        env = {**os.environ, "BENCH_REQUESTS": str(file), "BENCH_THREADS": str(threads), "BENCH_DONE": str(marker),
               "BENCH_WRAP": "1" if wrap else "0", "BENCH_EXPECT": expect.decode()}
        with subprocess.Popen(
                ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
                 "-s", str(LUA), base_url], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            # Every thread out of requests: end the run now (SIGINT makes wrk print its summary), not at -d.
            while proc.poll() is None:
                if all(Path(f"{marker}.{index}").exists() for index in range(threads)):
                    proc.send_signal(signal.SIGINT)
                    break
                time.sleep(0.05)
            stdout, stderr = proc.communicate(timeout=seconds + 120)
    found = [line for line in stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {stderr.strip() or stdout.strip()}")
    r = json.loads(found[-1].removeprefix("BENCH_RESULT "))
    # The probes sent once the file ran out are not part of the load.
    return Result(requests=r["requests"] - r["probes"], seconds=r["duration_us"] / 1e6, p50_ms=r["p50_us"] / 1000,
                  p99_ms=r["p99_us"] / 1000, non2xx=r["non2xx"],
                  socket_errors=r["connect"] + r["read"] + r["write"] + r["timeout"], unexpected=r["unexpected"])


# -- the fallback client ---------------------------------------------------------------------------------

def _client_process(base_url: str, requests: Sequence[Request], concurrency: int, expect: bytes, conn) -> None:  # type: ignore[no-untyped-def]
    import aiohttp

    async def run() -> tuple[float, list[float], int, int, int]:
        latencies: list[float] = []
        non2xx = socket_errors = unexpected = 0
        queue = list(reversed(requests))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
            async def sender() -> None:
                nonlocal non2xx, socket_errors, unexpected
                while queue:
                    target, headers, body = queue.pop()
                    started = time.perf_counter()
                    try:
                        async with http.post(base_url + target, headers=headers, data=body) as resp:
                            payload = await resp.read()
                            if not 200 <= resp.status < 300:
                                non2xx += 1
                            elif expect and not payload.startswith(expect):
                                unexpected += 1
                    except aiohttp.ClientError:
                        socket_errors += 1
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(concurrency)))
            return time.perf_counter() - started, latencies, non2xx, socket_errors, unexpected

    conn.send(asyncio.run(run()))


def python_load(base_url: str, requests: Sequence[Request], concurrency: int, expect: bytes) -> Result:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_client_process, args=(base_url, list(requests), concurrency, expect, child))
    proc.start()
    seconds, latencies, non2xx, socket_errors, unexpected = parent.recv()
    proc.join()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Result(len(latencies), seconds, q[49] * 1000, q[98] * 1000, non2xx, socket_errors, unexpected)


# -- servers --------------------------------------------------------------------------------------------

@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server and its worker processes so far."""
        return sum(_cpu_seconds(pid) for pid in [self.proc.pid, *_children(self.proc.pid)])

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker processes, in MiB."""
        return sum(_rss_kb(pid) for pid in [self.proc.pid, *_children(self.proc.pid)]) / 1024


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found + [g for c in found for g in _children(c)]


class ServerFailed(RuntimeError):
    """The server did not come up; the message holds the end of what it printed."""


@contextlib.contextmanager
def server(args: Sequence[str], *, env: dict[str, str] | None = None, port: int, ready: str = "/healthz",
           ready_status: int = 200, workdir: Path, name: str, timeout: float = 60) -> Iterator[Server]:
    """Start ``args`` (listening on ``port``), wait until ``ready`` answers, stop it with SIGTERM after."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(list(args), env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise ServerFailed(f"{name} exited with {proc.returncode}: {' | '.join(tail)}")
            try:
                with urllib.request.urlopen(url + ready, timeout=2) as resp:
                    if resp.status == ready_status:
                        break
            except urllib.error.HTTPError as exc:
                if exc.code == ready_status:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"{name} did not answer {ready} within {timeout:.0f}s")
            time.sleep(0.2)
        yield Server(url, proc, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def engagebot_command(port: int, workers: int) -> list[str]:
    # Always named: without it, engagebot run starts one worker per core.
    return [sys.executable, "-m", "bot.cli", "run", "--port", str(port), "--workers", str(workers)]


def engagebot_env(database_url: str, **settings: str) -> dict[str, str]:
    """``engagebot run``'s environment: quiet logs, no simulators, the given ENGAGEBOT_* settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEBOT_")}
    return {**clean, "ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_LOG_LEVEL": "WARNING",
            "ENGAGEBOT_SIMULATORS": "false", **{f"ENGAGEBOT_{k.upper()}": v for k, v in settings.items()}}


def bare_server(port: int, *, path: str, body: str, content_type: str, workdir: Path) -> contextlib.AbstractContextManager[Server]:
    return server([sys.executable, str(Path(__file__).resolve()), "bare", "--port", str(port), "--path", path,
                   "--body", body, "--content-type", content_type], port=port, workdir=workdir, name="bare")


def nginx_front(upstreams: Sequence[Server], *, workdir: Path, name: str = "nginx") -> contextlib.AbstractContextManager[Server]:
    """deploy/nginx.conf as shipped, in front of ``upstreams`` (bot.testing.nginx.loopback_config)."""
    from bot.testing.nginx import loopback_config, nginx_binary  # here: the bare server's process imports no bot

    binary = nginx_binary()
    if binary is None:
        raise ServerFailed("nginx not found: install it (Debian/Ubuntu: apt-get install nginx-light)")
    port = free_port()
    try:
        text = loopback_config([s.url.removeprefix("http://") for s in upstreams], port=port)
    except ValueError as exc:
        raise ServerFailed(f"the bench cannot render the shipped nginx config: {exc}") from None
    config = workdir / f"{name}.conf"
    config.write_text(text, "utf-8")
    return server([binary, "-p", str(workdir), "-c", str(config), "-g", f"pid {workdir / name}.pid; daemon off;"],
                  port=port, workdir=workdir, name=name)


def sqlite_url(workdir: Path, name: str = "bench.db") -> str:
    return f"sqlite+aiosqlite:///{workdir / name}"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=8, help="length of each measured run (default 8)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--workers", default="1", help="engagebot worker counts to measure, e.g. 1,2 (default 1)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL URL (postgresql+asyncpg://...; its tables are used as they are);"
                             " default: a fresh SQLite file per run")
    parser.add_argument("--max-rate", type=int, default=8000,
                        help="requests generated per second of run for engagebot (default 8000): it can send no more")
    parser.add_argument("--python-client", action="store_true", help="use the Python client even if wrk is installed")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure the bare handler and engagebot in turn this many times; print each run and"
                             " then the median ratio over the rounds (default 1)")


def check_common_arguments(args: argparse.Namespace) -> None:
    """Refuse counts that make no run, and say how to get wrk when it is missing (the Python client then)."""
    if args.followers < 1 or args.seconds <= 0 or args.connections < 1 or args.max_rate < 1 or args.rounds < 1:
        raise SystemExit("--followers, --seconds, --connections, --max-rate and --rounds must be positive")
    if not have_wrk():
        explain_missing_wrk()


def worker_counts(text: str, option: str = "--workers") -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"{option}: {text!r} is not a list of numbers like 1,2") from None
    if not counts or any(n < 1 for n in counts):
        raise SystemExit(f"{option}: each count must be 1 or more")
    return counts


def serve_bare(port: int, path: str, body: str, content_type: str) -> None:
    """The yardstick: an aiohttp handler that reads the body and returns a fixed answer."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=body, content_type=content_type)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(path, handler)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="run the bare aiohttp handler the benches compare against")
    sub = parser.add_subparsers(dest="command", required=True)
    bare = sub.add_parser("bare")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--path", required=True)
    bare.add_argument("--body", required=True)
    bare.add_argument("--content-type", required=True)
    options = parser.parse_args()
    serve_bare(options.port, options.path, options.body, options.content_type)
