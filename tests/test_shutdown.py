"""Issue 13: SIGTERM stops ``engagebot run`` gracefully: the port closes, the request in flight is
answered, the process exits 0 within ENGAGEBOT_SHUTDOWN_TIMEOUT."""

from __future__ import annotations

import json
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import engagebot, one_error_line, running
from tests.support.process import cli_env
from tests.support.servers import free_port

SHUTDOWN_TIMEOUT = 6


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_sigterm_refuses_new_connections_answers_the_request_in_flight_and_exits_0(tmp_path: Path) -> None:
    env = {"ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "ENGAGEBOT_SIMULATORS": "false",
           "ENGAGEBOT_MOCK_SINK": f"sqlite+aiosqlite:///{tmp_path / 'sink.db'}",
           "ENGAGEBOT_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT)}
    with running(tmp_path, env) as (url, proc):
        host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
        body = json.dumps({"from": "slow-sender", "text": "hello", "message_id": "in-flight-1"}).encode()
        # A request in flight: another process holds the database's write lock, so the message waits
        # to be stored (as behind a slow disk or a busy database) when SIGTERM comes.
        blocker = sqlite3.connect(tmp_path / "bot.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        sock = socket.create_connection((host, port), timeout=15)
        sock.sendall(b"POST /mock HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.5)
        assert not select.select([sock], [], [], 0)[0], "answered before SIGTERM: not in flight"
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        refused = False
        for _ in range(50):
            try:
                socket.create_connection((host, port), timeout=1).close()
            except (ConnectionRefusedError, ConnectionResetError):
                # Reset: the handshake landed in the listen queue just as the server closed the
                # listener, and the kernel resets what the server never accepted: refused too.
                refused = True
                break
            time.sleep(0.05)
        assert refused, "the port still accepts connections after SIGTERM"
        time.sleep(0.5)
        assert proc.poll() is None  # still finishing the request
        blocker.execute("ROLLBACK")
        blocker.close()
        status, answer = _read_response(sock)
        sock.close()
        assert status == 200 and answer["replies"] and answer["duplicate"] is False
        assert proc.wait(timeout=SHUTDOWN_TIMEOUT + 5) == 0
        assert time.monotonic() - signalled < SHUTDOWN_TIMEOUT
    log = (tmp_path / "stderr.log").read_text()
    assert "engagebot: stopping" in log and "Traceback" not in log


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_while_the_start_waits_for_a_database_that_does_not_answer_ends_it(
        tmp_path: Path, workers: str) -> None:
    """The start's schema check waits on a database that accepted the connection and says nothing (a
    firewall dropping packets, a server stuck): SIGTERM was not heard until the driver gave up, a
    minute later. It ends the start at once, cleanly."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(60)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--workers", workers, "--port", str(free_port())], cwd=tmp_path,
            env=cli_env(ENGAGEBOT_DATABASE_URL=f"postgresql+asyncpg://bot@127.0.0.1:{silent.getsockname()[1]}/bot",
                        ENGAGEBOT_SIMULATORS="false", ENGAGEBOT_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT)),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            connection, _ = silent.accept()  # the start is waiting for the database now
            with connection:
                signalled = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                _out, err = proc.communicate(timeout=SHUTDOWN_TIMEOUT + 15)
                took = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert took < SHUTDOWN_TIMEOUT, err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("value", ["0", "-3", "601", "soon"])
def test_the_shutdown_timeout_is_validated(tmp_path: Path, value: str) -> None:
    done = engagebot("run", env={"ENGAGEBOT_SHUTDOWN_TIMEOUT": value,
                                 "ENGAGEBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"}, cwd=tmp_path)
    assert "ENGAGEBOT_SHUTDOWN_TIMEOUT" in one_error_line(done)
