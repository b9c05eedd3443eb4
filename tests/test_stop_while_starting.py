"""SIGTERM or Ctrl-C at any moment of ``engagebot run``'s start ends it cleanly and promptly.

The first second or more of a start is imports, before the event loop listens for signals: SIGTERM's
default action killed the process there (status -15, no clean exit: a ``docker stop`` or a systemd stop
looked like a crash) and Ctrl-C printed a KeyboardInterrupt traceback. Real processes, signalled at
several points of the start: as soon as the process can hear a signal at all (its SIGTERM handler shows in
/proc: the imports have barely begun), a little later, later still, and once /healthz answers (the
orderly stop). With ``--workers 2`` the parent's workers must be gone too, and no lease left held.

The interpreter's own start (some 50 ms before any of engagebot's code runs) stays uncovered: a SIGTERM
there ends the process by the default action (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.startsignals import INTERRUPTED, is_engagebot_command
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.leases import holders
from tests.support.process import cli_env
from tests.support.servers import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="watches the processes in /proc")

BOUND = 10.0  # seconds from the signal to the exit, on a loaded 2-core machine (it takes well under 1 s idle)


def _catches_sigterm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            caught = next(line for line in status if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def _processes_on(port: int) -> list[int]:
    """The processes of ``engagebot run --port PORT`` (the parent and its workers) still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"bot.cli" in command and f"--port\0{port}\0".encode() in b"\0".join(command) + b"\0":
            found.append(int(entry.name))
    return found


def _healthz(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


async def _held_leases(database_url: str) -> dict[str, str]:
    engine = create_engine(database_url)
    try:
        return await holders(make_sessionmaker(engine))
    except Exception:  # no lease table: the start never reached the database
        return {}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("when", ["as-soon-as-it-listens", "0.3s", "1s", "serving"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_at_any_moment_of_the_start_ends_it_cleanly(
        tmp_path: Path, database_url: str, sig: int, when: str, workers: str) -> None:
    port = free_port()
    stderr_path = tmp_path / "stderr.log"
    env = cli_env(ENGAGEBOT_DATABASE_URL=database_url, ENGAGEBOT_SIMULATORS="false")
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--port", str(port), "--workers", workers],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        if when == "as-soon-as-it-listens":
            while not _catches_sigterm(proc.pid):
                assert proc.poll() is None and time.monotonic() < deadline, stderr_path.read_text()
        elif when == "serving":  # every worker (the kernel may send /healthz to the first one up)
            while not (_healthz(port) and stderr_path.read_text().count("database ready") == int(workers)):
                assert proc.poll() is None and time.monotonic() < deadline, stderr_path.read_text()
                time.sleep(0.1)
            # No wait for their duties' first lease round: a SIGTERM within it, on SQLite with two workers,
            # cancelled a lease's take between its statement and its commit, and the invalidated connection
            # kept the write lock: the releases waited 10 s for it (bot.storage.leases._to_its_end).
        else:
            time.sleep(float(when.removesuffix("s")))
        assert proc.poll() is None, stderr_path.read_text()
        signalled = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=BOUND + 20)
        took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr_path.read_text()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert took < BOUND, (took, err)
    lines = [line for line in err.splitlines() if line and not line.startswith("{")]
    if sig == signal.SIGTERM:
        assert code == 0, err  # nothing was in flight, nothing half-written
    elif when == "as-soon-as-it-listens":
        assert code == 130 and lines == [INTERRUPTED], err
    elif when == "serving":
        assert code == 0, err  # Ctrl-C of a serving process: the orderly stop
    else:  # still importing (130, one line), or already in the loop's hands (the orderly stop)
        assert (code, lines[-1:]) == (130, [INTERRUPTED]) or (code == 0 and INTERRUPTED not in err), err
    left = time.monotonic() + 5  # a worker of a parent gone is killed by the kernel (its parent-death signal)
    while (alive := _processes_on(port)) and time.monotonic() < left:
        time.sleep(0.1)
    assert alive == [], err
    assert asyncio.run(_held_leases(database_url)) == {}, err


def test_only_the_engagebot_command_takes_the_signals_over() -> None:
    """A program or a test importing ``bot`` keeps its own handling of SIGTERM and Ctrl-C."""
    assert is_engagebot_command(["/usr/bin/python3", "/venv/bin/engagebot", "run"])
    assert is_engagebot_command(["python", "-m", "bot.cli", "run", "--worker", "0"])
    assert is_engagebot_command(["python", "-X", "importtime", "-u", "-m", "bot.cli", "run"])
    assert not is_engagebot_command(["python", "-m", "pytest", "tests"])
    assert not is_engagebot_command(["python", "-c", "import bot"])
    assert not is_engagebot_command(["python", "bench/wechat.py"])
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # this test process imported bot: untouched


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_recorded_as_the_loop_starts_ends_the_start_where_the_loop_takes_it_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], sig: int) -> None:
    """Between the event loop's start and its handlers a signal is only recorded (raising inside the loop's
    machinery would leave it half-done): the server and the parent of --workers end there, nothing started."""
    from bot import startsignals
    from bot.cli.run import serve
    from bot.cli.workers import supervise
    from bot.settings import Settings

    monkeypatch.setattr(startsignals, "_received", sig)
    database = tmp_path / "bot.db"
    settings = Settings(database_url=f"sqlite+aiosqlite:///{database}", simulators=False, port=free_port())
    expected = 0 if sig == signal.SIGTERM else 130
    loop = asyncio.get_running_loop()
    try:
        assert await asyncio.wait_for(serve(settings), 20) == expected  # not served until a stop that came
        assert await asyncio.wait_for(supervise(settings, 2, None), 20) == expected
    finally:
        for each in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(each)
    assert not database.exists()  # neither touched the database
    assert capfd.readouterr().err == ("" if sig == signal.SIGTERM else f"{INTERRUPTED}\n" * 2)
