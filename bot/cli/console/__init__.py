"""``engagebot chat``: talk to the bot as a follower in the terminal.

With ``--channel mock`` (the default) the bot runs in this process on the configured database, so
an operator can try prompt rules at once (:mod:`.local`). With ``--channel wechat``, ``telegram`` or ``weibo``
the console drives the platform simulator of a running ``engagebot run`` over HTTP, like a phone
would (:mod:`.wechat`, :mod:`.telegram`, :mod:`.weibo`). Each is a thin variant of the one read loop in :mod:`.common`.
"""

from __future__ import annotations

import argparse

from .common import HELP, NO_REPLY, NOT_YET, UNFOLLOWED, as_bot_lines, kept_language_note, parse_action, server_url
from .local import run_local_console
from .telegram import HELP as TELEGRAM_HELP
from .telegram import run_telegram_console
from .wechat import run_wechat_console
from .weibo import HELP as WEIBO_HELP
from .weibo import run_weibo_console

__all__ = ["HELP", "NOT_YET", "NO_REPLY", "TELEGRAM_HELP", "UNFOLLOWED", "WEIBO_HELP", "as_bot_lines", "kept_language_note",
           "parse_action", "run_console", "server_url"]


async def run_console(args: argparse.Namespace) -> int:
    if args.channel == "telegram":
        return await run_telegram_console(args)
    if args.channel == "wechat":
        return await run_wechat_console(args)
    if args.channel == "weibo":
        return await run_weibo_console(args)
    return await run_local_console(args)
