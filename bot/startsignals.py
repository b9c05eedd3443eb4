"""SIGTERM and Ctrl-C while ``engagebot`` starts, before its event loop listens for them.

Importing the command takes a second or more (every channel, SQLAlchemy, Alembic), and the event
loop's handlers (``loop.add_signal_handler`` in ``bot.cli.run``) come only after. Until then SIGTERM's
default action killed the process (status -15, 143 in a shell: a stop by systemd or ``docker stop``
looked like a crash) and Ctrl-C printed a KeyboardInterrupt traceback from whatever import it hit.

:func:`install` is the first thing ``bot/__init__.py`` does when this process is the ``engagebot``
command (:func:`is_engagebot_command`; a program or a test importing ``bot`` keeps its own handlers).
From then on a stop ends the process at once and cleanly: SIGTERM with status 0, Ctrl-C with one line
and status 130, wherever the code is (an import, the parsing of the command line), with ``os._exit``
once the standard streams are flushed. Nothing is running yet to be left behind or finished: no
worker, no connection, no lease, no thread, no file written.

Once the event loop runs, raising inside its machinery would leave it half-done: ``bot.cli`` calls
:func:`defer` just before, and a signal is only recorded, for the loop's handlers to take up when they
are installed (``bot.cli.run.listen_for_stop``, which ends the start there with the same statuses).
Commands other than ``run`` get Python's default handling back (:func:`restore`).

Only the standard library here: this module is imported before anything heavy.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["INTERRUPTED", "after_loop", "defer", "exit_status", "install", "is_engagebot_command", "received", "restore"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED = "engagebot: interrupted while starting; nothing was started"
_OPTIONS_WITH_VALUE = frozenset({"-X", "-W"})  # the interpreter's options that take a separate value

_received: int | None = None
_installed = False  # by the command only: main() called by a test changes nothing of the caller's handling
_raising = False


def is_engagebot_command(argv: Sequence[str] | None = None) -> bool:
    """Whether this process is ``engagebot ...`` (the console script) or ``python -m bot.cli ...``."""
    argv = sys.orig_argv if argv is None else argv
    args = iter(argv[1:])
    for arg in args:
        if arg == "-m":
            return next(args, None) == "bot.cli"
        if arg.startswith("-m"):
            return arg == "-mbot.cli"
        if arg in _OPTIONS_WITH_VALUE:
            next(args, None)
        elif arg == "-c" or arg == "-":
            return False
        elif not arg.startswith("-"):  # the script
            return os.path.basename(arg) == "engagebot"
    return False


def install(*, raising: bool = True) -> None:
    """From now on SIGTERM and SIGINT end the process where it is (see the module's text); ``raising``
    False: they are only recorded (the server's loop closed, the process is about to exit anyway)."""
    global _installed, _raising
    _installed, _raising = True, raising
    for sig in SIGNALS:
        signal.signal(sig, _on_signal)


def defer() -> None:
    """The event loop is about to run: record a signal from now on, for its handlers to take up."""
    global _raising
    _raising = False


def after_loop() -> None:
    """The server's loop is closed (its handlers gone with it): a late signal must not cut the exit short
    (a Ctrl-C's traceback, SIGTERM's default action)."""
    if _installed:
        install(raising=False)


def restore() -> None:
    """Python's own handling back (a command other than ``run``: Ctrl-C is its KeyboardInterrupt)."""
    global _raising
    _raising = False
    if _installed:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def received() -> int | None:
    """The first stop signal received since :func:`install` (None: none)."""
    return _received


def exit_status(signum: int) -> int:
    """The status of a start ended by ``signum``: 0 for SIGTERM (an orderly stop), 130 and a line for Ctrl-C."""
    if signum != signal.SIGINT:
        return 0
    try:
        os.write(2, f"{INTERRUPTED}\n".encode())  # not print: a handler may run in the middle of another write
    except OSError:
        pass
    return 128 + signal.SIGINT


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    global _received
    if _received is not None:  # the first one is being acted on: a second Ctrl-C changes nothing
        return
    _received = signum
    if not _raising:
        return
    # Not SystemExit: a handler may run where an exception is swallowed ("Exception ignored in ...",
    # its traceback printed: seen under a C extension's callback) and the start would go on.
    status = exit_status(signum)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # closed, or interrupted in the middle of its own write
            pass
    os._exit(status)
