"""Run the ``engagebot`` command as a user does: a real subprocess, real ports, real HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cli_env(**env: str) -> dict[str, str]:
    """The test process's environment (ENGAGEBOT_* already cleared by conftest) plus ``env``."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **env}


def engagebot(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, input: str | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one ``engagebot`` command to its end."""
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True, input=input,
                          env=cli_env(**(env or {})), cwd=cwd or ROOT, timeout=timeout)


@dataclass
class Server:
    """A running ``engagebot run``: its URL, and what it printed (to files: a full pipe would block it)."""

    url: str
    proc: subprocess.Popen[str]
    stderr_path: Path
    stdout_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    @property
    def lines(self) -> list[str]:
        """The lines printed for people (not the JSON log lines)."""
        return [line for line in self.stderr.splitlines() if line and not line.startswith("{")]


def http(method: str, url: str, body: Any = None, *, headers: dict[str, str] | None = None,
         data: bytes | None = None, timeout: float = 15) -> tuple[int, dict[str, str], bytes]:
    """One request: (status, headers, body), also for 4xx/5xx answers."""
    if body is not None:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_json(method: str, url: str, body: Any = None, **kwargs: Any) -> Any:
    status, _headers, raw = http(method, url, body, **kwargs)
    assert 200 <= status < 300, (status, raw[:500])
    return json.loads(raw)


@contextmanager
def running(*args: str, env: dict[str, str] | None = None, cwd: Path, port: int, host: str = "127.0.0.1",
            up_timeout: float = 40, ready: str | None = None, name: str = "run") -> Iterator[Server]:
    """Start ``engagebot ARGS`` (e.g. ``run``), wait for /healthz, stop it with SIGTERM on the way out.

    ``cwd`` also holds its output files (``NAME.out``, ``NAME.err``). ``ready``: also wait until this
    path answers 200.
    """
    out, err = cwd / f"{name}.out", cwd / f"{name}.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", *args], env=cli_env(**(env or {})), cwd=cwd,
                                stdout=stdout, stderr=stderr, text=True)
    server = Server(f"http://{host}:{port}", proc, err, out)
    try:
        deadline = time.monotonic() + up_timeout
        for path in ("/healthz", *([ready] if ready else [])):
            while True:
                try:
                    status, _h, _b = http("GET", server.url + path, timeout=2)
                    if status == 200:
                        break
                except OSError:
                    pass
                if proc.poll() is not None:
                    raise AssertionError(f"engagebot exited {proc.returncode}: {server.stderr[-3000:]}")
                assert time.monotonic() < deadline, f"engagebot did not serve {path}: {server.stderr[-3000:]}"
                time.sleep(0.2)
        yield server
    finally:
        stop(server)


def stop(server: Server, sig: int = signal.SIGTERM) -> int:
    """Stop the server (SIGTERM: cleanly; SIGKILL: a crash); return its exit status."""
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


def chat(*args: str, lines: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
         timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """``engagebot chat ARGS`` with ``lines`` typed on its standard input."""
    return engagebot(*args, env=env, cwd=cwd, input="".join(f"{line}\n" for line in lines), timeout=timeout)
