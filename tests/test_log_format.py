"""Issue 9, point 17: logs for people on a terminal, JSON lines for a collector, the startup summary readable.

``engagebot run`` is started the way a newcomer does (stderr a terminal: a pseudo-terminal here)
and the way a service manager does (stderr a pipe), then stopped with SIGTERM.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
TEXT_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+  \S")


def _run(tmp_path: Path, *, terminal: bool, env: dict[str, str] | None = None) -> list[str]:
    """Start ``engagebot run``, wait for /healthz, stop it; return its stderr lines."""
    port = free_port()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "ENGAGEBOT_PORT": str(port),
                "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", **(env or {})}
    if terminal:
        reader, writer = pty.openpty()
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], env=full_env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=writer)
        os.close(writer)
    else:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run"], env=full_env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        reader = proc.stderr.fileno()  # type: ignore[union-attr]
    chunks: list[bytes] = []

    def drain(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([reader], [], [], 0.05)
            if ready:
                try:
                    data = os.read(reader, 65536)
                except OSError:  # the pty's other side closed
                    return
                if not data:
                    return
                chunks.append(data)

    try:
        deadline = time.monotonic() + 40
        while True:
            drain(0.2)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                assert proc.poll() is None, b"".join(chunks).decode()
                assert time.monotonic() < deadline, "engagebot run did not come up"
        drain(1.0)  # the background connections log their first lines
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        drain(1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
        if terminal:
            os.close(reader)
    assert proc.returncode == 0
    return [line.rstrip("\r") for line in b"".join(chunks).decode().splitlines() if line.strip()]


SUMMARY = ("engagebot serving on", "home page:", "simulators mounted:", "  WeChat:", "  Telegram:", "  Weibo:")


def _summary(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(SUMMARY)]


def test_on_a_terminal_logs_are_lines_for_people(tmp_path: Path) -> None:
    lines = _run(tmp_path, terminal=True)
    assert not [line for line in lines if line.startswith("{")]
    assert any(TEXT_LINE.match(line) and "database ready" in line and "backend=sqlite" in line for line in lines)
    assert len(_summary(lines)) == len(SUMMARY)


def test_a_fresh_start_with_the_simulators_warns_of_nothing(tmp_path: Path) -> None:
    # The embedded Telegram simulator is served by the same process, a moment after the channel first
    # tries it: that first miss is expected and must not greet a newcomer as a WARNING.
    lines = _run(tmp_path, terminal=True)
    assert any("telegram connected" in line for line in lines), lines
    assert [line for line in lines if re.match(r"^\S+ (WARNING|ERROR|CRITICAL) ", line)] == [], lines


def test_through_a_pipe_logs_are_json_lines_and_the_summary_stays_readable(tmp_path: Path) -> None:
    lines = _run(tmp_path, terminal=False)
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(e["event"] == "database ready" and e["backend"] == "sqlite" for e in events)
    summary = _summary(lines)
    assert len(summary) == len(SUMMARY) and not any(line.startswith("{") for line in summary)
    # Nothing else: every line is either a JSON event or a line of the summary (or the stop notice).
    assert len(events) + len(summary) + lines.count("engagebot: stopping") == len(lines)


@pytest.mark.parametrize(("terminal", "fmt"), [(False, "text"), (True, "json")])
def test_the_format_is_a_setting(tmp_path: Path, terminal: bool, fmt: str) -> None:
    lines = _run(tmp_path, terminal=terminal, env={"ENGAGEBOT_LOG_FORMAT": fmt})
    logged = [line for line in lines if line not in _summary(lines) and line != "engagebot: stopping"]
    assert logged
    if fmt == "text":
        assert all(TEXT_LINE.match(line) or line.startswith((" ", "Traceback")) for line in logged), logged
    else:
        assert all(json.loads(line) for line in logged)
    assert len(_summary(lines)) == len(SUMMARY)
