"""The ``engagebot`` command: every command group is added here (the optional parts add their own)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from bot.errors import ConfigError, EngagebotError
from bot.storage.engine import DatabaseURLError

Command = Callable[[argparse.Namespace], Awaitable[int]]


def fail(message: str) -> int:
    print(f"engagebot: {message}", file=sys.stderr)
    return 2


def warn(source: object, lines: Sequence[str]) -> None:
    """Print what loaded but deserves the operator's eye (a missing language), one line each."""
    for line in lines:
        print(f"engagebot: warning: {source}: {line}", file=sys.stderr)


def _settings(args: argparse.Namespace, **overrides: Any):  # type: ignore[no-untyped-def]
    from bot.settings import load_settings

    return load_settings(getattr(args, "config", None), **overrides)


@asynccontextmanager
async def open_database(args: argparse.Namespace) -> AsyncIterator[tuple[Any, Any]]:
    """Yield (settings, sessionmaker) on the configured database, brought up to date first."""
    from bot.storage.engine import create_engine, make_sessionmaker
    from bot.storage.migrate import upgrade

    settings = _settings(args)
    engine = create_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        await upgrade(engine)
        yield settings, make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def cmd_run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from bot.app import CONNECTION_GUARD, STARTUP_NOTES, create_app
    from bot.connections import GuardedSite, quiet_accept_errors
    from bot.logs import configure_logging

    settings = _settings(args, host=args.host, port=args.port)
    configure_logging(settings)
    app = await create_app(settings)
    guard = app[CONNECTION_GUARD]
    if (warning := guard.fit_file_limit()) is not None:
        app[STARTUP_NOTES].append(f"warning: {warning}")
    accept_errors = quiet_accept_errors(asyncio.get_running_loop())
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
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
        await runner.cleanup()
        guard.close()
        accept_errors.close()
    return 0


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.storage.migrate import current_revision

    async with open_database(args) as (_settings, sessions):
        print(f"database at revision {await current_revision(sessions.kw['bind'])}")
    return 0


async def cmd_prompts_load(args: argparse.Namespace) -> int:
    from bot.files import read_data_file
    from bot.rules import parse_prompt_rules
    from bot.storage.prompts import replace_prompt_rules

    from bot.i18n import locale_warnings

    parsed = parse_prompt_rules(read_data_file(args.file), source=str(args.file))
    warn(args.file, [line for r in parsed.rules for line in locale_warnings(
        f"rule {r.name!r}", {"match": r.match, "reply": r.reply}, keyword_fields=("match",))])
    async with open_database(args) as (_settings, sessions), sessions() as session, session.begin():
        added, replaced = await replace_prompt_rules(session, [r.model_dump() for r in parsed.rules])
    print(f"loaded {len(parsed.rules)} rule(s) from {args.file}: {added} added, {replaced} replaced")
    return 0


async def cmd_prompts_list(args: argparse.Namespace) -> int:
    from bot.storage.prompts import list_prompt_rules

    async with open_database(args) as (_settings, sessions), sessions() as session:
        rules = await list_prompt_rules(session)
    if not rules:
        print("no prompt rules; load some with: engagebot prompts load FILE.yaml")
    for rule in rules:
        words = "; ".join(f"{loc}: {', '.join(ws)}" for loc, ws in rule.match.items())
        kind = "regex" if rule.regex else "contains"
        print(f"{rule.name:<20} priority {rule.priority:>4}  {kind:<8} {words}")
    return 0


async def cmd_i18n_check(args: argparse.Namespace) -> int:
    from bot.i18n_check import check_catalogs

    problems = check_catalogs(Path(args.locales) if args.locales else None)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) in the catalogs", file=sys.stderr)
        return 1
    print("catalogs complete: every string translated in every locale")
    return 0


async def cmd_chat(args: argparse.Namespace) -> int:
    from bot.console import run_console

    return await run_console(args)


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

    run = sub.add_parser("run", help="serve the bot (and the simulators when no platform is configured)")
    run.add_argument("--host", help="interface to listen on (default 127.0.0.1, env ENGAGEBOT_HOST)")
    run.add_argument("--port", type=int, help="port (default 8080, env ENGAGEBOT_PORT)")
    run.set_defaults(func=cmd_run)

    chat = sub.add_parser("chat", help="talk to the bot as a follower, in this terminal",
                          description="Talk to the bot as a follower, in this terminal: through the mock\n"
                                      "channel (no platform, in this process), or through the WeChat or Telegram\n"
                                      "simulator of a running engagebot.",
                          epilog=_console_actions, formatter_class=argparse.RawDescriptionHelpFormatter)
    chat.add_argument("--channel", choices=["mock", "wechat", "telegram"], default="mock")
    chat.add_argument("--as", dest="follower", default="console-user",
                      help="the follower's name: the same name is the same follower on every channel, across runs")
    chat.add_argument("--lang", default=None, help="the platform's language hint, e.g. en or zh-hans")
    chat.add_argument("--host", help="where engagebot run listens (as for run: default 127.0.0.1, env ENGAGEBOT_HOST)")
    chat.add_argument("--port", type=int, help="its port (as for run: default 8080, env ENGAGEBOT_PORT)")
    chat.add_argument("--url", default=None, help="a running engagebot's URL (instead of --host and --port)")
    chat.set_defaults(func=cmd_chat)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply all migrations").set_defaults(func=cmd_db_upgrade)

    prompts = sub.add_parser("prompts", help="prompt-reply rules").add_subparsers(dest="prompts_command", required=True)
    load = prompts.add_parser("load", help="load rules from a YAML file (replacing rules of the same name)")
    load.add_argument("file", type=Path)
    load.set_defaults(func=cmd_prompts_load)
    prompts.add_parser("list", help="list the rules").set_defaults(func=cmd_prompts_list)

    i18n = sub.add_parser("i18n", help="translations").add_subparsers(dest="i18n_command", required=True)
    check = i18n.add_parser("check", help="fail listing untranslated or fuzzy strings")
    check.add_argument("--locales", help="catalog folder (default: the project's locales/)")
    check.set_defaults(func=cmd_i18n_check)

    for extend in _extensions():
        extend(sub)
    _finish_commands(parser)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("engagebot")
    except PackageNotFoundError:  # run from a source tree that was not installed
        return "unknown"


def _console_actions() -> str:
    from bot.channels.telegram.console import HELP as TELEGRAM_HELP
    from bot.console import HELP

    return (f"In the console (mock and wechat channels):\n{_indented(HELP)}\n\n"
            f"On the telegram channel:\n{_indented(TELEGRAM_HELP)}")


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" if line else line for line in text.splitlines())


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


def _extensions() -> list[Callable[[Any], None]]:
    """Subcommands of optional parts (offers, campaigns, broadcasts) register themselves here."""
    found = []
    try:
        from bot.offers.cli import add_commands
    except ImportError:
        pass
    else:
        found.append(add_commands)
    from bot.broadcast.cli import add_commands as add_broadcast_commands

    found.append(add_broadcast_commands)
    return found


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run_command(args))
    except (ConfigError, DatabaseURLError, EngagebotError) as exc:
        return fail(str(exc))
    except DBAPIError as exc:
        return fail(f"database: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return fail(f"{exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
