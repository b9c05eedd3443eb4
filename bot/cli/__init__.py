"""The ``engagebot`` command: the parser and the entry point; each command group lives in its own module."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bot import startsignals
from bot.errors import ConfigError, EngagebotError
from bot.settings import DatabaseURLError

from . import broadcast, campaign, channels, chat, db, i18n, inbox, menu, operator, promo, prompts, run, stores
from .common import fail

__all__ = ["build_parser", "main"]

# The command groups, in the order ``engagebot --help`` lists them.
GROUPS = (run, chat, channels, db, prompts, i18n, promo, campaign, broadcast, stores, menu, inbox, operator)


DESCRIPTION = """\
Talk with a brand's followers on WeChat and Telegram, in Mandarin and English: serve the bot, be a
follower in this terminal, load prompt-reply rules and promotions, send broadcasts."""

EPILOG = """\
Every command also takes --config FILE, before or after its name. Settings come from command-line
flags, then ENGAGEBOT_* environment variables, then the config file. For more on one command:
engagebot COMMAND --help"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose epilog may be a function, called only when the help is shown."""

    def format_help(self) -> str:
        if callable(self.epilog):
            self.epilog = self.epilog()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="engagebot", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"engagebot {_version()}")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="YAML or TOML settings file (environment variables win over it)")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    for group in GROUPS:
        group.add_commands(sub)
    _finish_commands(parser)
    return parser


def _version() -> str:
    try:
        return version("engagebot")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"


def _finish_commands(parser: argparse.ArgumentParser) -> None:
    """Give every command ``--config`` (so it may follow the command's name) and name each group's commands.

    A command's ``--config`` defaults to SUPPRESS, so it does not hide one given before the command.
    argparse keeps its subcommands in private attributes; they have been stable for a decade.
    """
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for choice_action in action._choices_actions:
            command = action.choices[choice_action.dest]
            names = _subcommand_names(command)
            if names and not all(name in (choice_action.help or "") for name in names):
                choice_action.help = f"{choice_action.help} ({', '.join(names)})"
        for command in set(action.choices.values()):
            if "--config" not in command._option_string_actions:
                command.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
                                     help="YAML or TOML settings file (also accepted before the command)")
            _finish_commands(command)


def _subcommand_names(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


async def _finish_sqlite_workers(seconds: float = 1.0) -> None:
    """Let aiosqlite's worker threads deliver their last results while the loop still runs.

    A connection that failed to open (or closed late) leaves its worker thread finishing after the
    command returns; once ``asyncio.run`` has closed the loop, the thread's delivery fails and prints a
    traceback under the command's one-line error (an aiosqlite bug). Joining them first, bounded, avoids it.
    """
    workers = [t for t in threading.enumerate() if "_connection_worker_thread" in t.name and t.is_alive()]
    if not workers:
        return
    deadline = time.monotonic() + seconds

    def join() -> None:
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    await asyncio.to_thread(join)


async def _run_command(args: argparse.Namespace) -> int:
    try:
        return await args.func(args)
    finally:
        await _finish_sqlite_workers()


def loop_factory(args: argparse.Namespace) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for the server when it is installed (``pip install engagebot[speed]``): its event loop
    costs the hot path less CPU per request than asyncio's. Other commands keep asyncio's loop."""
    if getattr(args, "func", None) is not run.cmd_run:
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serving = getattr(args, "func", None) is run.cmd_run
    factory = loop_factory(args)
    # Until here a stop while starting ended the process where it was (bot/startsignals.py); from here
    # the server's loop takes it up (bot.cli.run.listen_for_stop), other commands get Python's default.
    if serving:
        startsignals.defer()
    else:
        startsignals.restore()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(_run_command(args))
    except (ConfigError, DatabaseURLError, EngagebotError) as exc:
        return fail(str(exc))
    except DBAPIError as exc:
        return fail(f"database: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return fail(f"{exc.strerror or exc}")
    finally:
        if serving:
            startsignals.after_loop()
