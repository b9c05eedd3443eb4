"""``engagebot run``: serve the bot (and the simulators when no platform is configured)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from aiohttp import web

from bot.connections import GuardedSite, quiet_accept_errors
from bot.logs import configure_logging

from .common import settings_of

log = logging.getLogger("engagebot.run")


async def cmd_run(args: argparse.Namespace) -> int:
    # Heavy: bot.app loads every channel (PTB), simulator and handler; only the commands that build the app pay.
    from bot.app import CONNECTION_GUARD, STARTUP_NOTES, create_app

    settings = settings_of(args, host=args.host, port=args.port)
    configure_logging(settings)
    app = await create_app(settings)
    guard = app[CONNECTION_GUARD]
    if (warning := guard.fit_file_limit()) is not None:
        app[STARTUP_NOTES].append(f"warning: {warning}")
    accept_errors = quiet_accept_errors(asyncio.get_running_loop())
    # SIGTERM: the port closes at once; requests in flight get half the stop's budget to finish,
    # the background duties (outbox, pollers, leases) the rest; past the whole budget the process exits 1.
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=settings.shutdown_timeout / 2)
    await runner.setup()
    site = GuardedSite(runner, guard, settings.host, settings.port)
    try:
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(f"engagebot serving on http://{settings.host}:{settings.port} (Ctrl-C to stop)", file=sys.stderr)
        for line in app[STARTUP_NOTES]:
            print(line, file=sys.stderr)
        await stop.wait()
        print("engagebot: stopping", file=sys.stderr)
    finally:
        stopped = await _stop_within(runner, settings.shutdown_timeout)
        guard.close()
        accept_errors.close()
    return 0 if stopped else 1


async def _stop_within(runner: web.AppRunner, timeout: float) -> bool:
    """Stop accepting, let requests in flight finish, stop the duties: True if all of it took under ``timeout``."""
    try:
        await asyncio.wait_for(runner.cleanup(), timeout)
    except TimeoutError:
        log.error("stop took longer than ENGAGEBOT_SHUTDOWN_TIMEOUT; what was left is cancelled",
                  extra={"shutdown_timeout": timeout})
        return False
    return True


def add_commands(sub: Any) -> None:
    run = sub.add_parser("run", help="serve the bot (and the simulators when no platform is configured)")
    run.add_argument("--host", help="interface to listen on (default 127.0.0.1, env ENGAGEBOT_HOST)")
    run.add_argument("--port", type=int, help="port (default 8080, env ENGAGEBOT_PORT)")
    run.set_defaults(func=cmd_run)
