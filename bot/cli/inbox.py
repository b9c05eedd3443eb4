"""``engagebot inbox list|show|take|reply|release|dismiss``: the agents' inbox from a terminal.

The same service functions as the admin API (``bot.admin.inbox.Inbox``). A reply is written to the
outbox; the running ``engagebot run`` sends it within the platform's window and pace.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from bot.admin import conversations as conversation_service
from bot.admin.inbox import ConversationSummary, Inbox
from bot.channels.registry import installed_channels
from bot.core.capabilities import Capabilities
from bot.core.follower import HandoffState
from bot.delivery.windows import WindowStatus
from bot.i18n import default_catalogs, operator_time
from bot.settings import Settings

from .common import open_database

PREVIEW = 48


def channel_capabilities(settings: Settings) -> dict[str, Capabilities]:
    """What each installed channel declares (its reply window), by channel name."""
    return {p.platform: p.capabilities(settings) for p in installed_channels().plugins if p.capabilities is not None}


def _inbox(settings: Settings, sessions: Any) -> Inbox:
    return Inbox(sessions, default_catalogs(), channel_capabilities(settings), default_locale=settings.default_locale,
                 international_locale=settings.international_locale,
                 timeout=timedelta(seconds=settings.handoff_timeout))


def window_words(window: WindowStatus | None, tz: str) -> str:
    if window is None:
        return "window unknown"
    if not window.open:
        return f"window closed ({window.reason})"
    if window.closes_at is None:
        return "window open"
    left = f", {window.sends_left} send(s) left" if window.sends_left is not None else ""
    return f"window open until {operator_time(window.closes_at, tz)}{left}"


def state_words(c: ConversationSummary, tz: str) -> str:
    if c.state is HandoffState.TAKEN:
        return f"taken by {c.agent} since {operator_time(c.state_since, tz)}"
    if c.state is HandoffState.QUEUED:
        return f"queued since {operator_time(c.state_since, tz)}"
    if c.owed_since is not None:
        return f"{c.state}, owed an answer since {operator_time(c.owed_since, tz)}"
    return str(c.state)


def _one_line(text: str, width: int = PREVIEW) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


async def cmd_inbox_list(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        found = await _inbox(settings, sessions).conversations(
            state=HandoffState(args.state) if args.state else None, channel=args.channel, agent=args.agent,
            owed=True if args.owed else None, limit=args.limit, offset=args.offset)
    if not found:
        print("no conversations")
    tz = settings.timezone
    for c in found:
        name = c.display_name or c.external_id
        last = c.last_inbound if args.owed else c.last_message  # owed: what the follower is waiting on
        said = f"{'<' if last.direction == 'in' else '>'} {_one_line(last.text or f'[{last.kind}]')}" if last else ""
        print(f"{c.follower_id:>6}  {c.channel}/{c.account}  {_one_line(name, 24)}  {c.locale}  "
              f"{state_words(c, tz)}  {window_words(c.window, tz)}  last {operator_time(c.last_action_at, tz)}  {said}")
    return 0


async def cmd_inbox_show(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        conversation = await _inbox(settings, sessions).conversation(args.id, limit=args.limit)
    c, tz = conversation.summary, settings.timezone
    print(f"conversation {c.follower_id}: {c.channel}/{c.account} {c.display_name or c.external_id}, "
          f"locale {c.locale}, {state_words(c, tz)}, {window_words(c.window, tz)}")
    for m in conversation.messages:
        who = "follower" if m.direction == "in" else (f"agent {m.sent_by}" if m.sent_by else "bot")
        status = "" if m.status in ("handled", "passive", "sent") else f"  [{m.status}{': ' + m.reason if m.reason else ''}]"
        print(f"{operator_time(m.created_at, tz)}  {who}: {m.text or f'[{m.kind}]'}{status}")
    return 0


async def cmd_inbox_take(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        actor, agent = await conversation_service.terminal_agent(sessions, args.operator, args.agent)
        change = await conversation_service.take(_inbox(settings, sessions), actor, args.id, agent=agent)
    told = "; the follower is told a person will answer" if change.told else ""
    print(f"conversation {args.id} {'taken by' if change.changed else 'already taken by'} {agent}{told}")
    return 0


async def cmd_inbox_reply(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        actor, agent = await conversation_service.terminal_agent(sessions, args.operator, args.agent)
        queued = await conversation_service.reply(_inbox(settings, sessions), actor, args.id, args.text, agent=agent)
    print(f"reply {queued.message_id} queued to conversation {args.id} "
          f"({window_words(queued.window, settings.timezone)}); the running server sends it")
    return 0


async def cmd_inbox_release(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        actor, agent = await conversation_service.terminal_agent(sessions, args.operator, args.agent)
        change = await conversation_service.release(_inbox(settings, sessions), actor, args.id, force=args.force,
                                                    agent=agent)
    print(f"conversation {args.id} {'handed back to' if change.changed else 'already with'} the bot")
    return 0


async def cmd_inbox_dismiss(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        actor, agent = await conversation_service.terminal_agent(sessions, args.operator, args.agent)
        changed = await conversation_service.dismiss(_inbox(settings, sessions), actor, args.id, agent=agent)
    print(f"conversation {args.id} {'no longer owed an answer' if changed else 'was not owed an answer'}")
    return 0


def _who(command: Any) -> None:
    command.add_argument("--operator", metavar="NAME",
                         help="your operator account (role agent or admin): the audit log names you, your name is "
                              "the agent id")
    command.add_argument("--agent", help="your agent id, without an operator account (the audit log says cli)")


def add_commands(sub: Any) -> None:
    inbox = sub.add_parser("inbox", help="agents' inbox: conversations, take over, reply, hand back") \
        .add_subparsers(dest="inbox_command", required=True)
    listing = inbox.add_parser("list", help="conversations across channels, newest first")
    listing.add_argument("--state", choices=[s.value for s in HandoffState], help="only conversations in this state")
    listing.add_argument("--channel", help="only this channel (wechat, telegram, weibo, mock...)")
    listing.add_argument("--agent", help="only conversations this agent has")
    listing.add_argument("--owed", action="store_true",
                         help="only followers owed an answer (the queue timed out before an agent answered)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (1-200, default 50)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many first")
    listing.set_defaults(func=cmd_inbox_list)
    show = inbox.add_parser("show", help="one conversation's messages")
    show.add_argument("id", type=int, help="the conversation's id (from inbox list)")
    show.add_argument("--limit", type=int, default=50, help="the last this many messages (1-200, default 50)")
    show.set_defaults(func=cmd_inbox_show)
    for name, func, text in (("take", cmd_inbox_take, "take over a conversation: the bot stops answering it"),
                             ("release", cmd_inbox_release, "hand a conversation back to the bot"),
                             ("dismiss", cmd_inbox_dismiss, "let a follower owed an answer go without one")):
        command = inbox.add_parser(name, help=text)
        command.add_argument("id", type=int, help="the conversation's id (from inbox list)")
        _who(command)
        if name == "release":
            command.add_argument("--force", action="store_true", help="release another agent's conversation")
        command.set_defaults(func=func)
    reply = inbox.add_parser("reply", help="reply to a conversation you took (sent within the platform's window)")
    reply.add_argument("id", type=int, help="the conversation's id (from inbox list)")
    reply.add_argument("text", help="what to send")
    _who(reply)
    reply.set_defaults(func=cmd_inbox_reply)
