"""``engagebot chat``: be a follower in this terminal (the consoles are in :mod:`bot.cli.console`)."""

from __future__ import annotations

import argparse
from typing import Any

from .console import HELP, TELEGRAM_HELP, WEIBO_HELP, run_console


async def cmd_chat(args: argparse.Namespace) -> int:
    return await run_console(args)


def _console_actions() -> str:
    return (f"In the console (mock and wechat channels):\n{_indented(HELP)}\n\n"
            f"On the telegram channel:\n{_indented(TELEGRAM_HELP)}\n\n"
            f"On the weibo channel:\n{_indented(WEIBO_HELP)}")


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" if line else line for line in text.splitlines())


def add_commands(sub: Any) -> None:
    chat = sub.add_parser("chat", help="talk to the bot as a follower, in this terminal",
                          description="Talk to the bot as a follower, in this terminal: through the mock\n"
                                      "channel (no platform, in this process), or through the WeChat, Telegram or Weibo\n"
                                      "simulator of a running engagebot.",
                          epilog=_console_actions, formatter_class=argparse.RawDescriptionHelpFormatter)
    chat.add_argument("--channel", choices=["mock", "wechat", "telegram", "weibo"], default="mock")
    chat.add_argument("--as", dest="follower", default="console-user",
                      help="the follower's name: the same name is the same follower on every channel, across runs")
    chat.add_argument("--lang", default=None, help="the platform's language hint, e.g. en or zh-hans")
    chat.add_argument("--host", help="where engagebot run listens (as for run: default 127.0.0.1, env ENGAGEBOT_HOST)")
    chat.add_argument("--port", type=int, help="its port (as for run: default 8080, env ENGAGEBOT_PORT)")
    chat.add_argument("--url", default=None, help="a running engagebot's URL (instead of --host and --port)")
    chat.set_defaults(func=cmd_chat)
