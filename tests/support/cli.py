"""Run the real ``engagebot`` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def engagebot(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=cwd or ROOT,
                          timeout=timeout)


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single ``engagebot: ...`` line a refused command prints (exit 2, no traceback)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("engagebot: "), done.stderr
    return lines[0]


@contextmanager
def running(tmp_path: Path, env: dict[str, str], *, args: Sequence[str] = (), timeout: float = 30,
            preexec_fn: Callable[[], None] | None = None) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Start ``engagebot run`` on a free loopback port; yield its base URL and process, then stop it.

    The process's stderr goes to ``tmp_path / "stderr.log"`` (read it to check what was logged).
    """
    port = free_port()
    log = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--port", str(port), *args], cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env}, stdout=subprocess.DEVNULL, stderr=log, text=True,
        preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
            assert time.monotonic() < deadline, "engagebot run did not come up"
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
