"""``engagebot chat`` (``--channel mock``, the default): the bot in this process, on the configured database.

An operator can try prompt rules at once: no server, no platform, the mock channel.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot.channels.mock import MockChannel
from bot.core.capabilities import Capabilities
from bot.core.inbound import Kind
from bot.core.reply import ArticlesReply, ButtonsReply, ImageReply, QrReply, Reply, TextReply
from bot.settings import load_settings

from .common import Answer, Console, ConsoleError, as_bot_lines, chat_loop, parse_action, print_line, read_stdin

CONSOLE_CAPABILITIES = Capabilities(max_text_length=4096, buttons=False, max_articles=10, images=False)


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


class LocalConsole(Console):
    """The follower ``follower`` on the mock channel, answered by the bot in this process."""

    skips_blank_lines = False
    refusal_indent = "  "

    def __init__(self, channel: MockChannel, follower: str, language_hint: str | None) -> None:
        self.channel = channel
        self.follower = follower
        self.language_hint = language_hint

    async def act(self, line: str) -> Answer:
        try:
            action = parse_action(line)
        except ValueError as exc:
            raise ConsoleError(str(exc)) from None
        assert action is not None  # the loop took :quit
        kind, text, payload = action
        replies = await self.channel.receive(self.follower, kind, text, payload=payload,
                                             language_hint=self.language_hint)
        if kind is Kind.UNFOLLOW:
            return Answer(unfollowed=True)
        if replies:
            print_line(render(replies))
        return Answer(shown=len(replies))


async def run_local_console(args: argparse.Namespace) -> int:
    # Heavy: bot.app loads every channel (PTB), simulator and handler; only the commands that build the app pay.
    from bot.app import build_core

    settings = load_settings(args.config)
    core = build_core(settings)
    await core.open()
    channel = MockChannel(dispatch=core.dispatcher.dispatch, capabilities=CONSOLE_CAPABILITIES,
                          account="console")
    try:
        await chat_loop(LocalConsole(channel, args.follower, args.lang), read_line=read_stdin, write=print_line,
                        interactive=sys.stdin.isatty())
    finally:
        await core.close()
    return 0
