"""``engagebot chat``: talk to the bot as a follower in the terminal.

With ``--channel mock`` (the default) the bot runs in this process on the configured database, so
an operator can try prompt rules at once. With ``--channel wechat`` or ``telegram`` the console
drives the platform simulator of a running ``engagebot run`` over HTTP, like a phone would.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from bot.core.capabilities import Capabilities
from bot.core.inbound import Kind
from bot.core.reply import ArticlesReply, ButtonsReply, ImageReply, QrReply, Reply, TextReply

CONSOLE_CAPABILITIES = Capabilities(max_text_length=4096, buttons=False, max_articles=10, images=False)

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
    from bot.app import own_base_url
    from bot.settings import load_settings

    settings = load_settings(getattr(args, "config", None), host=getattr(args, "host", None),
                             port=getattr(args, "port", None))
    return own_base_url(settings)


def render(replies: Sequence[Reply]) -> str:
    lines = []
    for reply in replies:
        match reply:
            case TextReply(text=text):
                lines.append(text)
            case ButtonsReply(text=text, buttons=buttons):
                lines.append(text)
                lines += [f"  [{b.label}]" for b in buttons]
            case ArticlesReply(articles=articles):
                for a in articles:
                    lines.append(f"[card] {a.title}\n       {a.description}\n       {a.url}".rstrip())
            case ImageReply(url=url, caption=caption):
                lines.append(f"[image] {caption} {url}".strip())
            case QrReply(scene=scene, caption=caption, url=url):
                lines.append(f"[QR {scene}] {caption} {url}".strip())
    return "\n".join(as_bot_lines(block.splitlines()) for block in lines)


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


async def _read_line(prompt: str) -> str | None:
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


async def run_console(args: argparse.Namespace) -> int:
    if args.channel != "mock":
        from bot.console_remote import run_remote_console

        return await run_remote_console(args)
    from bot.app import build_core
    from bot.channels.mock import MockChannel
    from bot.settings import load_settings

    settings = load_settings(args.config)
    core = build_core(settings)
    await core.open()
    channel = MockChannel(dispatch=core.dispatcher.dispatch, capabilities=CONSOLE_CAPABILITIES,
                          account="console")
    interactive = sys.stdin.isatty()
    if interactive:
        print(HELP)
    try:
        while (line := await _read_line("you> " if interactive else "")) is not None:
            line = line.strip()
            if line in (":help", ":?"):
                print(HELP)
                continue
            try:
                action = parse_action(line)
            except ValueError as exc:
                print(f"  ({exc})")
                continue
            if action is None:
                break
            kind, text, payload = action
            replies = await channel.receive(args.follower, kind, text, payload=payload, language_hint=args.lang)
            if kind is Kind.UNFOLLOW:
                print(UNFOLLOWED, flush=True)
            else:
                print(render(replies) if replies else NO_REPLY, flush=True)
    finally:
        await core.close()
    return 0

