"""``engagebot run --workers N``: N server processes sharing one port, supervised by this one.

Each worker is an ``engagebot run`` of its own (its event loop, engine, channels) listening with
``SO_REUSEPORT``, so the kernel spreads connections over them. What must run once in the deployment
(polling, outbox sweeps, broadcast expansion) is held by one of them through a lease in the database
(``bot.storage.duties``); the rest (each message's handling and its replies) runs where it arrives.

The parent upgrades the database first (the workers would race on the migrations), then starts the
workers and watches them: a worker that dies is started again; SIGTERM or SIGINT is passed to every
worker, and the parent exits 0 once they all stopped cleanly. A worker that ends before it listened
(a port taken, a bad setting: it says why itself) stops the whole command, since a restart would
fail the same way. The workers die with the parent (Linux's parent-death signal), even on SIGKILL.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path

from bot.metrics import multiprocess_dir
from bot.settings import Settings
from bot.simulation import simulators_to_mount

from .run import listen_for_stop, unless_stopped

READY = b"engagebot-worker-ready\n"  # what a worker writes on its stdout once it listens
RESTART_PAUSE = 1.0  # between a worker's death and its restart (a crash loop stays slow)
STOP_GRACE = 5.0  # beyond a worker's own stop budget (ENGAGEBOT_SHUTDOWN_TIMEOUT) before it is killed
# The workers' shared metrics directory when the operator set none: under the temporary directory,
# named with the parent's pid, so that a later start can tell a dead run's (a SIGKILLed parent cannot
# remove its own) from a live one's.
METRICS_DIR_PREFIX = "engagebot-metrics-"
_METRICS_DIR_NAME = re.compile(rf"{re.escape(METRICS_DIR_PREFIX)}(\d+)-[^/]+")


class WorkersError(ValueError):
    """``--workers`` cannot be honoured with these settings (a one-line reason for the operator)."""


def worker_count(settings: Settings, cpu_count: int | None = None) -> int:
    """How many worker processes to run: ``settings.workers``, else one per core.

    The embedded simulators keep their sessions (long polls, chat pages) in the process that serves
    them: beside them the server runs one process, and asking for more is refused.
    """
    simulated = simulators_to_mount(settings)
    if settings.workers is not None:
        if settings.workers > 1 and simulated:
            raise WorkersError(
                f"--workers {settings.workers}: the simulators ({', '.join(simulated)}) run in one process; "
                "configure the real platforms (or set ENGAGEBOT_SIMULATORS=false) to run several workers")
        if settings.workers > 1 and settings.port == 0:
            raise WorkersError("--workers needs a fixed --port: the workers share it")
        return settings.workers
    if simulated or settings.port == 0:
        return 1
    return max(1, cpu_count or os.cpu_count() or 1)


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, even another ``engagebot run --workers``.

    The workers listen with ``SO_REUSEPORT``, and the kernel lets any process of the same user that
    does so join them: a second ``run --workers`` (a forgotten one, another deployment's on another
    database) would silently take a share of the first one's connections. A socket bound without it
    is refused by every listener, which is what is tested here before any worker starts.
    """
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise WorkersError(f"--host {host}: {exc.strerror}") from None
    for family, kind, proto, _name, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the workers: TIME_WAIT is no conflict
            try:
                probe.bind(address)
            except OSError as exc:
                where = f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"
                raise WorkersError(f"{where}: {(exc.strerror or str(exc)).lower()} (by another program, or another "
                                   "engagebot run whose workers these would join)") from None


def _die_with_parent() -> None:
    """In the worker, before exec: receive SIGKILL when the parent dies (Linux; elsewhere nothing)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


async def supervise(settings: Settings, workers: int, config: Path | None) -> int:
    """Run ``workers`` worker processes until SIGTERM or SIGINT; 0 when they all stopped cleanly."""
    stopping = asyncio.Event()
    if (status := listen_for_stop(stopping)) is not None:  # asked to stop while the command started
        return status
    from bot.storage.engine import create_engine
    from bot.storage.migrate import upgrade

    check_port_free(settings.host, settings.port)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        upgraded = await unless_stopped(upgrade(engine), stopping, done=True)  # a silent database: SIGTERM still heard
    finally:
        await engine.dispose()
    if upgraded is None or stopping.is_set():  # asked to stop while upgrading: no worker to start
        return 0

    command = [sys.executable, "-m", "bot.cli", "run", "--host", settings.host, "--port", str(settings.port)]
    if config is not None:
        command += ["--config", str(config)]
    # /metrics of any worker must count every worker's messages (the kernel picks the worker a scrape
    # reaches): without a directory of the operator's, the workers share one of ours, removed at the end.
    metrics_dir = None
    if not multiprocess_dir():
        remove_dead_runs_metrics_dirs()
        metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
    env = None if metrics_dir is None else {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    codes: list[int] = [0] * workers
    failed_start: int | None = None

    async def watch(i: int) -> None:
        """Keep worker ``i`` running until the stop; then stop it and keep its exit status."""
        nonlocal failed_start
        first = True
        while True:
            proc = await asyncio.create_subprocess_exec(*command, "--worker", str(i), stdout=asyncio.subprocess.PIPE,
                                                        preexec_fn=_die_with_parent, env=env,
                                                        # Out of the terminal's process group: Ctrl-C reaches
                                                        # the parent alone, which passes the stop on (SIGTERM).
                                                        # A worker still importing died of KeyboardInterrupt,
                                                        # printing its traceback (uvloop resets an ignored SIGINT).
                                                        start_new_session=True)
            waiting, stop_asked = asyncio.ensure_future(_run(proc)), asyncio.ensure_future(stopping.wait())
            await asyncio.wait({waiting, stop_asked}, return_when=asyncio.FIRST_COMPLETED)
            stop_asked.cancel()
            if stopping.is_set():
                code = await _stop(proc, settings.shutdown_timeout)
                _code, was_ready = await waiting
                # Stopped before it could listen for the signal (still importing): it had nothing to clean up.
                codes[i] = 0 if code == -signal.SIGTERM and not was_ready else code
                return
            code, was_ready = waiting.result()
            if first and not was_ready:
                failed_start = code or 1  # a taken port, a bad setting: the worker said why; restarting cannot help
                stopping.set()
                return
            first = False
            print(f"engagebot: worker {i + 1} (pid {proc.pid}) exited ({_describe(code)}); starting it again",
                  file=sys.stderr)
            try:
                await asyncio.wait_for(stopping.wait(), RESTART_PAUSE)
                return
            except TimeoutError:
                pass

    print(f"engagebot: {workers} worker processes sharing http://{settings.host}:{settings.port}", file=sys.stderr)
    try:
        await asyncio.gather(*(watch(i) for i in range(workers)))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    if failed_start is not None:
        return failed_start
    return 0 if all(code == 0 for code in codes) else 1


def remove_dead_runs_metrics_dirs(root: str | None = None) -> list[Path]:
    """Remove the metrics directories that runs now dead left under ``root`` (the temporary directory).

    A parent that stops removes its own; one killed with SIGKILL (or by the OOM killer, a power cut
    of a machine whose /tmp persists) cannot. Only what is provably such a run's goes: a directory of
    ours (named ``engagebot-metrics-<pid>-...``, owned by this user) whose pid is no longer alive, or
    is now another program's. A live engagebot's is kept, whoever's run it is.
    """
    removed: list[Path] = []
    try:
        entries = list(Path(root or tempfile.gettempdir()).iterdir())
    except OSError:
        return removed
    for path in entries:
        if (match := _METRICS_DIR_NAME.fullmatch(path.name)) is None:
            continue
        try:
            stat = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or stat.st_uid != os.getuid():
            continue
        if _engagebot_alive(int(match.group(1))):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _engagebot_alive(pid: int) -> bool:
    """Whether ``pid`` may be a live ``engagebot`` (True whenever that cannot be ruled out)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # alive, another user's: not provably dead
        return True
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # no /proc (not Linux), or it ended meanwhile: keep it (the next start looks again)
        return True
    return b"bot.cli" in command or any(Path(os.fsdecode(arg)).name == "engagebot" for arg in command[:2])


async def _run(proc: asyncio.subprocess.Process) -> tuple[int, bool]:
    """Wait for a worker to end: its exit status, and whether it was listening first (said on its stdout)."""
    assert proc.stdout is not None
    ready = False
    while line := await proc.stdout.readline():  # read to the end, so a worker never blocks on a full pipe
        if line == READY:
            ready = True
        else:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
    return await proc.wait(), ready


async def _stop(proc: asyncio.subprocess.Process, timeout: float) -> int:
    """SIGTERM (the worker's orderly stop, within ``timeout``), then SIGKILL a little later; its exit status."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), timeout + STOP_GRACE)
    except TimeoutError:
        proc.kill()
        return await proc.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"
