"""What every console of ``engagebot chat`` shares: its words, its actions, and the one read loop.

A console variant (local mock, WeChat simulator, Telegram simulator) only knows how to do one typed
line on its platform and print the bot's answer; :func:`chat_loop` reads the lines, answers
``:help`` and ``:quit``, and says the same thing on every console when nothing came back.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.core.inbound import Kind
from bot.settings import load_settings, own_base_url

HELP = """Type a message and press Enter. A number picks that choice of the bot's latest answer;
when that answer had no choices, the number is sent as text. Actions:
  :follow [scene]   follow the account (through a campaign scene)
  :scan SCENE       scan a scene QR / open a deep link
  :click KEY        tap a menu item or button with this key
  :unfollow         unfollow (on Telegram: block the bot)
  :help             this help
  :quit             leave (or Ctrl-D)"""

# What every console prints, whichever channel it plays.
NO_REPLY = "     (no reply)"
UNFOLLOWED = "     (unfollowed: the bot cannot write to you until you :follow again)"
NOT_YET = "     (no reply yet: the bot is still busy; its answer will show after your next line)"

ReadLine = Callable[[str], Awaitable[str | None]]
Write = Callable[[str], None]


def kept_language_note(name: str, kept: str | None) -> str:
    """What the console says when ``--lang`` names another language than the existing follower's phone has."""
    return (f"     ({name} already exists, with its phone in {kept or 'no language'}: --lang sets the language "
            f"of a new follower only. Use another --as NAME, or say English / 中文 / 繁體 to switch.)")


def server_url(args: argparse.Namespace) -> str:
    """The running ``engagebot run`` to talk to, found the way ``run`` finds its own address.

    ``--url`` wins; else ``--host``/``--port``, ``ENGAGEBOT_HOST``/``ENGAGEBOT_PORT`` and the
    ``--config`` file, with run's defaults (127.0.0.1:8080).
    """
    url = getattr(args, "url", None)
    if url:
        return str(url).rstrip("/")
    settings = load_settings(getattr(args, "config", None), host=getattr(args, "host", None),
                             port=getattr(args, "port", None))
    return own_base_url(settings)


def as_bot_lines(lines: Sequence[str]) -> str:
    """One bot message as the consoles show it: "bot> " on the first line, aligned below."""
    return "\n".join(f"bot> {line}" if i == 0 else f"     {line}" for i, line in enumerate(lines or [""]))


def parse_action(line: str) -> tuple[Kind, str, str | None] | None:
    """Turn a console line into an action; None for :quit."""
    if line.startswith(":"):
        word, _sep, arg = line[1:].partition(" ")
        arg = arg.strip()
        match word:
            case "quit" | "exit" | "q":
                return None
            case "follow":
                return Kind.FOLLOW, "", arg or None
            case "scan":
                return Kind.SCAN, "", arg
            case "click":
                return Kind.CLICK, "", arg
            case "unfollow":
                return Kind.UNFOLLOW, "", None
        raise ValueError(f"unknown action :{word}; type :help")
    return (Kind.COMMAND if line.startswith("/") else Kind.TEXT), line, None


async def read_stdin(prompt: str) -> str | None:
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


class ConsoleError(Exception):
    """A line the console cannot do (an unknown action), or a platform that refused it: said, not fatal."""


@dataclass(frozen=True)
class Answer:
    """What came of one line: did it unfollow, how many bot messages were printed, is the bot done."""

    unfollowed: bool = False
    shown: int = 0
    done: bool = True


class Console:
    """One console variant: does a line on its platform, printing the bot's answer with ``write``."""

    help: str = HELP
    # Kept as each console always did: the local one sends a blank line and indents its refusals less.
    skips_blank_lines: bool = True
    refusal_indent: str = "     "

    async def begin(self) -> Answer | None:
        """An action done before the first line (the WeChat console follows a new follower)."""
        return None

    async def act(self, line: str) -> Answer:
        raise NotImplementedError


QUIT_WORDS = ("quit", "exit", "q")
HELP_WORDS = ("help", "?")


async def chat_loop(console: Console, *, read_line: ReadLine, write: Write, interactive: bool) -> None:
    """Read lines until :quit or the end of input, doing each through ``console``."""
    if interactive:
        write(console.help)
    try:
        answer = await console.begin()
    except ConsoleError as exc:
        write(f"{console.refusal_indent}({exc})")
    else:
        if answer is not None:
            _say(answer, write)
    while (line := await read_line("you> " if interactive else "")) is not None:
        line = line.strip()
        if not line and console.skips_blank_lines:
            continue
        word = line[1:].partition(" ")[0] if line.startswith(":") else None
        if word in QUIT_WORDS:
            break
        if word in HELP_WORDS:
            write(console.help)
            continue
        try:
            answer = await console.act(line)
        except ConsoleError as exc:
            write(f"{console.refusal_indent}({exc})")
            continue
        _say(answer, write)


def _say(answer: Answer, write: Write) -> None:
    if answer.unfollowed:
        write(UNFOLLOWED)
    elif not answer.shown:
        write(NO_REPLY if answer.done else NOT_YET)


def print_line(line: str) -> None:
    print(line, flush=True)


async def simulator_json(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    """A platform simulator's JSON answer; RuntimeError with its error (or the status) when it refused."""
    async with http.request(method, url, **kwargs) as resp:
        try:
            data = await resp.json(content_type=None)
        except ValueError:
            data = None
        if resp.status >= 400 or not isinstance(data, dict):
            raise RuntimeError(data.get("error") if isinstance(data, dict) else f"HTTP {resp.status}")
        return data


JoinSimulator = Callable[[aiohttp.ClientSession, str, str, "str | None"], Awaitable[dict[str, Any]]]


async def run_simulator_console(
    args: argparse.Namespace, *, platform: str, join: JoinSimulator, introduce: Callable[[dict[str, Any], str], str],
    language_setting: Callable[[str | None], str],
    console: Callable[[aiohttp.ClientSession, str, dict[str, Any]], Console],
) -> int:
    """Be a user of a running engagebot's ``platform`` simulator: ``join`` finds or makes the user named
    ``--follower``, ``introduce`` says who that is (the user, the name), then the chat loop runs until :quit or end of input."""
    base = server_url(args)  # a bad setting is one line (ConfigError, printed by the CLI)
    name = args.follower or "console-user"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            user = await join(http, base, name, args.lang)
        except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
            print(f"engagebot: cannot reach the {platform} simulator at {base} ({exc}); is `engagebot run` running "
                  "there without a real platform? (`engagebot chat --port N` if it runs on another port)",
                  file=sys.stderr)
            return 2
        print(introduce(user, name), flush=True)
        if args.lang and language_setting(args.lang) != (user.get("language") or "none"):
            print(kept_language_note(name, user.get("language")), flush=True)
        await chat_loop(console(http, base, user), read_line=read_stdin, write=print_line,
                        interactive=sys.stdin.isatty())
    return 0
