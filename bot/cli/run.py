"""``engagebot run``: serve the bot (and the simulators when no platform is configured)."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable
from typing import Any, TypeVar

from aiohttp import web

from bot import startsignals
from bot.connections import GuardedSite, quiet_accept_errors
from bot.errors import ConfigError
from bot.logs import configure_logging
from bot.metrics import multiprocess_dir_problem

from .common import settings_of

log = logging.getLogger("engagebot.run")
T = TypeVar("T")

# The collector's generation-0 threshold while serving (Python's default is 700 allocations). Each
# message allocates thousands of short-lived objects, so the default ran a collection every few
# messages and a full one every few hundred, through every object the app holds: under
# bench/wechat.py about a tenth of the CPU per message and most of the p99 (-15% CPU per message,
# p99 322/404 -> 161/143 ms in paired runs). Young cycles are still collected, later; the oldest
# generation keeps Python's ratio (a full collection every 10 of the middle one's).
SERVING_GC_THRESHOLDS = (50_000, 20, 10)

# Past the stop's budget the process is ended even if something will not let go (a database driver's
# thread that never answers a cancelled call, a non-daemon thread): this much more is left for the
# interpreter's own teardown once the budget is spent.
HARD_EXIT_MARGIN = 5.0


async def cmd_run(args: argparse.Namespace) -> int:
    from .workers import READY, WorkersError, supervise, worker_count

    settings = settings_of(args, host=args.host, port=args.port, workers=args.workers)
    if (problem := multiprocess_dir_problem()) is not None:
        raise ConfigError(problem)
    if args.worker is not None:  # one of the processes of `--workers N`: it shares the port
        return await serve(settings, reuse_port=True, announce=args.worker == 0, ready_line=READY)
    try:
        workers = worker_count(settings)
        if workers > 1:
            return await supervise(settings, workers, getattr(args, "config", None))
    except WorkersError as exc:
        raise ConfigError(str(exc)) from None
    return await serve(settings)


async def serve(settings: Any, *, reuse_port: bool = False, announce: bool = True,
                ready_line: bytes | None = None) -> int:
    """Serve in this process until SIGTERM or SIGINT (``announce``: print where, and the startup notes)."""
    # Listened for from the start: a stop asked while starting (a worker restarted just before a SIGTERM)
    # ends the start cleanly instead of killing the process half-way.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if (status := listen_for_stop(stop)) is not None:
        return status
    # Heavy: bot.app loads every channel (PTB), simulator and handler; only the commands that build the app pay.
    from bot.app import CONNECTION_GUARD, STARTUP_NOTES, create_app

    configure_logging(settings)
    app = await unless_stopped(create_app(settings), stop)  # it may upgrade the schema (beside the simulators)
    if app is None:
        return 0
    guard = app[CONNECTION_GUARD]
    if (warning := guard.fit_file_limit()) is not None:
        app[STARTUP_NOTES].append(f"warning: {warning}")
    accept_errors = quiet_accept_errors(loop)
    # SIGTERM: the port closes at once; requests in flight get half the stop's budget to finish,
    # the background duties (outbox, pollers, leases) the rest; past the whole budget the process exits 1.
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.shutdown_timeout / 2)
    if await unless_stopped(runner.setup(), stop, done=True) is None:  # the schema upgrade, the duties' start
        guard.close()
        accept_errors.close()
        exit_if_stop_hangs(settings.shutdown_timeout + HARD_EXIT_MARGIN)
        return 0 if await _stop_within(runner, settings.shutdown_timeout) else 1
    tune_collector()
    site = GuardedSite(runner, guard, settings.host, settings.port, reuse_port=reuse_port)
    try:
        await site.start()
        if ready_line is not None:  # the parent of --workers N: this worker listens
            sys.stdout.buffer.write(ready_line)
            sys.stdout.flush()
        if announce:
            print(f"engagebot serving on http://{settings.host}:{settings.port} (Ctrl-C to stop)", file=sys.stderr)
            for line in app[STARTUP_NOTES]:
                print(line, file=sys.stderr)
        await stop.wait()
        if announce:
            print("engagebot: stopping", file=sys.stderr)
    finally:
        exit_if_stop_hangs(settings.shutdown_timeout + HARD_EXIT_MARGIN)
        stopped = await _stop_within(runner, settings.shutdown_timeout)
        guard.close()
        accept_errors.close()
    return 0 if stopped else 1


def listen_for_stop(stop: asyncio.Event) -> int | None:
    """Let SIGTERM and SIGINT set ``stop`` from now on (the running loop's handlers); the exit status if
    one came before, while the command was starting (``bot/startsignals.py``): nothing started yet."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if (early := startsignals.received()) is not None:
        stop.set()
        return startsignals.exit_status(early)
    return None


async def unless_stopped(step: Awaitable[T], stop: asyncio.Event, *, done: T | None = None) -> T | None:
    """The result of a step of the start (``done`` when it has none), or None once ``stop`` is set before
    it ended: the step is cancelled. A start waiting on a database that does not answer (a firewall
    dropping packets) would otherwise hear SIGTERM only when the driver gives up, a minute later."""
    task = asyncio.ensure_future(step)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    result = task.result()
    return done if result is None else result


def tune_collector() -> None:
    """Once the app is built: what startup made (modules, the app, caches) is moved out of the
    collector's sight (``gc.freeze``, never traversed again), and collections run less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


async def _stop_within(runner: web.AppRunner, timeout: float) -> bool:
    """Stop accepting, let requests in flight finish, stop the duties: True if all of it took under ``timeout``."""
    try:
        await asyncio.wait_for(runner.cleanup(), timeout)
    except TimeoutError:
        log.error("stop took longer than ENGAGEBOT_SHUTDOWN_TIMEOUT; what was left is cancelled",
                  extra={"shutdown_timeout": timeout})
        return False
    return True


def exit_if_stop_hangs(bound: float) -> threading.Timer:
    """End the process with status 1 if it is still alive ``bound`` seconds from now.

    The timer's thread is a daemon and is never cancelled: a clean stop ends the process before it
    fires, and a stop that hangs anywhere (the loop, the executor's shutdown, the interpreter joining
    threads at exit) is cut there, with every thread's stack written to stderr to show what held it.
    """
    def hard_exit() -> None:
        try:
            sys.stderr.write(f"engagebot: the stop did not finish within {bound:g} s; exiting (threads below)\n")
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or without a file descriptor: exit all the same
            pass
        os._exit(1)

    timer = threading.Timer(bound, hard_exit)
    timer.daemon = True
    timer.start()
    return timer


def add_commands(sub: Any) -> None:
    run = sub.add_parser("run", help="serve the bot (and the simulators when no platform is configured)")
    run.add_argument("--host", help="interface to listen on (default 127.0.0.1, env ENGAGEBOT_HOST)")
    run.add_argument("--port", type=int, help="port (default 8080, env ENGAGEBOT_PORT)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="server processes sharing the port (default: one per core; one beside the simulators; "
                          "env ENGAGEBOT_WORKERS)")
    run.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # set by the parent of --workers N
    run.set_defaults(func=cmd_run)
