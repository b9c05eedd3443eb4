"""``engagebot prompts try`` and ``engagebot promo preview``: the console's dry runs in the terminal.

Both call ``bot.admin.previews`` (as the console and the API do) with the configured channels built but not
started, the way ``engagebot campaign qr`` builds them: they render replies and reach no platform.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select

from bot.admin.errors import AdminError
from bot.admin.previews import ANSWERED_BY, LocaleReplies, promotion_preview, try_message
from bot.offers.models import Promotion

from .common import fail, settings_of


@asynccontextmanager
async def render_core(args: argparse.Namespace) -> AsyncIterator[tuple[Any, list[Any]]]:
    """The app's core (open) and its WeChat, Telegram and Weibo channels, built to render only."""
    # Heavy: bot.app loads every channel (PTB); only the commands that build the app pay for it.
    from bot.app import build_core, plugin_context, render_only_simulated
    from bot.channels.telegram.adapter import TelegramChannel
    from bot.channels.telegram.plugin import telegram_config
    from bot.channels.wechat.plugin import wechat_link_channels
    from bot.channels.weibo.plugin import weibo_link_channels

    core = build_core(settings_of(args))
    await core.open()
    try:
        ctx = plugin_context(core, render_only_simulated(core))  # no credentials stored: a dry run writes nothing
        channels: list[Any] = list(wechat_link_channels(ctx))
        if (config := telegram_config(ctx.settings, ctx.simulated.get("telegram"))) is not None:
            channels.append(TelegramChannel(dispatch=core.dispatcher.dispatch, sessions=core.sessions, config=config,
                                            receive=False))
        channels += weibo_link_channels(ctx)
        yield core, channels
    finally:
        await core.close()


def print_locales(locales: tuple[LocaleReplies, ...], not_served: tuple[str, ...]) -> None:
    for answer in locales:
        print(f"[{answer.locale}]")
        for channel in answer.channels:
            print(f"  {channel.channel}:")
            for n, message in enumerate(channel.messages, start=1):
                if len(channel.messages) > 1:
                    print(f"    ({n}/{len(channel.messages)}, {message.kind})")
                if message.url:
                    print(f"    <{message.kind}: {message.url}>")
                for line in message.text.splitlines() or [""]:
                    print(f"    {line}")
                for label in message.buttons:
                    print(f"    [button] {label}")
    if not_served:
        print(f"not served here (no account configured): {', '.join(not_served)}")


async def cmd_prompts_try(args: argparse.Namespace) -> int:
    async with render_core(args) as (core, channels), core.sessions() as session:
        try:
            result = await try_message(session, args.text, channels=channels, catalogs=core.catalogs,
                                       dispatcher=core.dispatcher,
                                       max_chars=core.settings.prompt_rules_max_chars,
                                       only_channels=args.channel or (), only_locales=args.lang or ())
        except AdminError as exc:
            return fail(str(exc))
    if result.answered_by == "rule":
        print(f"rule: {result.rule} (priority {result.priority})")
    elif result.answered_by == "fallback":
        print("no rule matched: the fallback answers")
    else:  # one of the bot's own answers, before the rules
        said = ANSWERED_BY.get(result.answered_by, result.answered_by)
        print(f"answered by: {result.answered_by}: {said}")
        if result.promotion is not None:
            print(f"promotion: {result.promotion} (engagebot promo preview {result.promotion})")
    for channel, other in result.elsewhere:
        print(f"on {channel}: answered by {other}")
    print_locales(result.locales, result.not_served)
    return 0


async def cmd_promo_preview(args: argparse.Namespace) -> int:
    async with render_core(args) as (core, channels), core.sessions() as session:
        found = await session.scalar(select(Promotion.id).where(Promotion.slug == args.slug))
        if found is None:
            return fail(f"no promotion {args.slug!r}")
        try:
            result = await promotion_preview(session, found, channels=channels, catalogs=core.catalogs,
                                             only_channels=args.channel or (), only_locales=args.lang or ())
        except AdminError as exc:
            return fail(str(exc))
    print(f"promotion: {result.promotion} (a sample code: {result.sample_code}; nothing is claimed)")
    if result.refused_on:
        print(f"not offered on: {', '.join(result.refused_on)}")
    print_locales(result.locales, result.not_served)
    return 0


def add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--channel", action="append", metavar="NAME",
                        help="only this channel (wechat, telegram, weibo); repeat for several")
    parser.add_argument("--lang", action="append", choices=["en", "zh_Hans", "zh_Hant"],
                        help="only this language; repeat for several")
