"""``engagebot broadcast start|status|cancel|work``: the operator's side of broadcasts."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.admin import broadcasts as broadcast_service
from bot.admin.audit import CLI_ACTOR
from bot.admin.errors import Conflict, NotFound
from bot.admin.schemas import BroadcastStart
from bot.broadcast.audience import Audience
from bot.broadcast.expand import expand_broadcast
from bot.broadcast.models import CANCELLED, DONE, Broadcast
from bot.broadcast.status import (
    finish_done,
    mass_reports,
    progress,
    recent_broadcasts,
    render_progress,
)
from bot.broadcast.worker import BroadcastWorker, worker_options
from bot.delivery.presence import beat_every, give_up_unserved, unserved_accounts
from bot.i18n import locale_warnings, operator_time
from bot.logs import configure_logging

from .common import fail, open_database, settings_of, warn

WATCH_EVERY = 1.0


async def cmd_start(args: argparse.Namespace) -> int:
    texts = {locale: text for locale, text in (("en", args.text_en), ("zh_Hans", args.text_zh),
                                                ("zh_Hant", args.text_zh_hant)) if text and text.strip()}
    if not texts:
        return fail("a broadcast needs a text in at least one locale (--text-en, --text-zh, --text-zh-hant)")
    try:  # the API's body: the options are checked one way
        body = BroadcastStart(name=args.name, texts=texts, channels=args.channel, locales=args.locale, tags=args.tag,
                              sources=args.source, since=args.since, promotion=args.promotion)
    except ValidationError as exc:
        err = exc.errors()[0]
        return fail(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
    async with open_database(args) as (settings, sessions):
        audience = broadcast_service.audience_of(body, settings.timezone)
        async with sessions() as session:
            broadcast = await broadcast_service.start_broadcast(session, CLI_ACTOR, body,
                                                                default_locale=settings.default_locale,
                                                                timezone=settings.timezone)
            await session.commit()
            broadcast_id = broadcast.id
        warn("broadcast", locale_warnings(f"#{broadcast_id} {args.name!r}", {"text": broadcast.texts}))
        print(f"broadcast #{broadcast_id} {args.name!r} to {audience.describe(settings.timezone)}: writing the outbox...")
        await expand_broadcast(sessions, broadcast_id, international_locale=settings.international_locale)
        async with sessions() as session:
            p = await progress(session, broadcast_id, reasons=0)
        assert p is not None
        print(f"broadcast #{broadcast_id}: {p.total} follower(s) queued; "
              "`engagebot run` or `engagebot broadcast work` sends them")
        if not args.wait:  # the watcher says it itself, and then gives them up
            wait = settings.outbox.no_sender_wait_seconds
            async with sessions() as session:
                for channel, account, rows in await unserved_accounts(session, wait=timedelta(seconds=wait)):
                    print(_no_sender_note(channel, account, rows, wait))
        if args.wait:
            return await _watch(sessions, broadcast_id, settings)
    return 0


def _no_sender_note(channel: str, account: str, rows: int, wait: float) -> str:
    return (f"no sender is running for {channel} account {account!r}: its {rows} message(s) become undeliverable "
            f"after {wait:g} s unless `engagebot run` or `engagebot broadcast work` sends for it")


async def _watch(sessions: async_sessionmaker[AsyncSession], broadcast_id: int, settings: Any) -> int:
    """Redraw the progress bar until the broadcast is done or cancelled (Ctrl-C stops watching only).

    The watcher also gives up the rows of accounts no process sends for, once they waited
    ``ENGAGEBOT_OUTBOX__NO_SENDER_WAIT_SECONDS``, and closes the broadcast when nothing is left:
    with no worker running at all, it still ends.
    """
    wait = timedelta(seconds=settings.outbox.no_sender_wait_seconds)
    tty = sys.stdout.isatty()
    last = ""
    warned: set[tuple[str, str]] = set()
    loop = asyncio.get_running_loop()
    next_check = loop.time()
    while True:
        if loop.time() >= next_check:
            next_check = loop.time() + beat_every(wait)
            for unserved in await give_up_unserved(sessions, wait=wait):
                if (unserved.channel, unserved.account) not in warned:
                    warned.add((unserved.channel, unserved.account))
                    note = _no_sender_note(unserved.channel, unserved.account, unserved.rows, wait.total_seconds())
                    print(f"\r\033[K{note}" if tty else note, flush=True)
            async with sessions() as session:
                await finish_done(session)
        async with sessions() as session:
            p = await progress(session, broadcast_id, reasons=0)
        if p is None:
            print(f"no broadcast #{broadcast_id}", file=sys.stderr)
            return 1
        line = render_progress(p)
        if tty:
            print(f"\r{line}\033[K", end="", flush=True)
        elif line != last:
            print(line, flush=True)
        last = line
        if p.status in (DONE, CANCELLED):
            if tty:
                print()
            return 0
        await asyncio.sleep(WATCH_EVERY)


async def cmd_status(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        if args.id is not None:
            if args.watch:
                return await _watch(sessions, args.id, settings)
            async with sessions() as session:
                p = await progress(session, args.id)
                if p is None:
                    print(f"engagebot: no broadcast #{args.id}", file=sys.stderr)
                    return 1
                b = await session.get(Broadcast, args.id)
                masses = await mass_reports(session, args.id)
            assert b is not None
            print(render_progress(p))
            print(f"  audience: {Audience.from_json(b.audience).describe(settings.timezone)}"
                  + (f"; promotion {b.promotion}" if b.promotion else ""))
            print(f"  created {operator_time(b.created_at, settings.timezone)}"
                  + (f", finished {operator_time(b.finished_at, settings.timezone)}" if b.finished_at else ""))
            for status, reason, n in p.reasons:
                print(f"  {n:>7} {status}: {reason or '(no reason given)'}")
            for mass in masses:
                print(f"  {mass.describe()}")
            if p.possibly_twice:
                print(f"  possibly sent twice: {p.possibly_twice} (sent again after a crash cut their first try "
                      "short; the platform cannot say whether that one arrived)")
            return 0
        async with sessions() as session:
            broadcasts = await recent_broadcasts(session, limit=args.limit)
            if not broadcasts:
                print("no broadcasts yet; start one with: engagebot broadcast start --name N --text-en ... --text-zh ...")
            for b in broadcasts:
                p = await progress(session, b.id, reasons=0)
                assert p is not None
                print(render_progress(p))
    return 0


async def cmd_cancel(args: argparse.Namespace) -> int:
    async with open_database(args) as (_settings, sessions):
        async with sessions() as session:
            try:
                stopped = await broadcast_service.cancel(session, CLI_ACTOR, args.id)
            except (NotFound, Conflict):
                print(f"engagebot: broadcast #{args.id} does not exist or is already over", file=sys.stderr)
                return 1
    print(f"broadcast #{args.id} cancelled: {stopped} unsent message(s) will not be sent")
    return 0


async def cmd_work(args: argparse.Namespace) -> int:
    """Run only the workers: a dedicated sender process beside the web instances (or a test's)."""
    # Heavy: bot.app loads every channel (PTB), simulator and handler; only the commands that build the app pay.
    from bot.app import build_core, open_send_channels

    settings = settings_of(args)
    core = build_core(settings)
    await core.open()  # before logging is set up: the schema upgrade's INFO lines would bury the command's answer
    configure_logging(settings)
    try:
        opened = await open_send_channels(core, only=args.channel, mock_sink=args.mock_sink,
                                          mock_account=args.mock_account, mock_rate=args.mock_rate,
                                          mock_chat_rate=args.mock_chat_rate)
        try:
            if not opened.channels:
                return fail("no channels to send through: configure WeChat or Telegram, or pass --mock-sink URL")
            options = worker_options(settings)
            if args.batch:
                options["batch_size"] = args.batch
            if args.lease:
                options["lease"] = timedelta(seconds=args.lease)
            worker = BroadcastWorker(core.sessions, opened.channels, poll_every=args.poll, catalogs=core.catalogs,
                                     **options)
            if args.until_idle:
                await worker.run_until_idle()
                return 0
            await worker.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            names = ", ".join(f"{c.name}/{c.account}" for c in opened.channels)
            print(f"engagebot: broadcast workers sending through {names} (Ctrl-C to stop)", file=sys.stderr)
            await stop.wait()
            await worker.stop()
        finally:
            await opened.close()
    finally:
        await core.close()
    return 0


def add_commands(sub: Any) -> None:
    """Register ``engagebot broadcast ...``."""
    broadcast = sub.add_parser("broadcast", help="announce something to an audience, in each follower's language")
    cmds = broadcast.add_subparsers(dest="broadcast_command", required=True)

    start = cmds.add_parser("start", help="queue a broadcast (writes one outbox row per follower)")
    start.add_argument("--name", required=True)
    start.add_argument("--text-en", help="the text for followers reading English")
    start.add_argument("--text-zh", help="the text for followers reading Chinese (zh_Hans; zh_Hant readers get it "
                       "converted to Traditional unless --text-zh-hant is given)")
    start.add_argument("--text-zh-hant", help="the text for followers reading Traditional Chinese (zh_Hant)")
    start.add_argument("--channel", action="append", default=[], help="only this channel (repeatable)")
    start.add_argument("--locale", action="append", default=[], help="only followers reading this locale (repeatable)")
    start.add_argument("--tag", action="append", default=[], help="only followers with this tag (repeatable: any)")
    start.add_argument("--source", action="append", default=[], help="only followers who first came through "
                       "this campaign scene (repeatable)")
    start.add_argument("--since", metavar="YYYY-MM-DD", help="only followers who followed on or after this day "
                       "(in the configured time zone)")
    start.add_argument("--promotion", metavar="SLUG", help="add a button claiming this promotion")
    start.add_argument("--wait", action="store_true", help="show progress until it is done")
    start.set_defaults(func=cmd_start)

    status = cmds.add_parser("status", help="progress of one broadcast, or of the recent ones")
    status.add_argument("id", nargs="?", type=int)
    status.add_argument("--watch", action="store_true", help="redraw until the broadcast is over")
    status.add_argument("--limit", type=int, default=10)
    status.set_defaults(func=cmd_status)

    cancel = cmds.add_parser("cancel", help="stop a broadcast: nothing more is sent")
    cancel.add_argument("id", type=int)
    cancel.set_defaults(func=cmd_cancel)

    work = cmds.add_parser("work", help="run only the broadcast workers (no HTTP server): a dedicated sender "
                           "process beside the web instances")
    work.add_argument("--channel", action="append", default=[], choices=["wechat", "telegram", "weibo", "mock"],
                      help="send only through this channel (repeatable; default: every configured one)")
    work.add_argument("--mock-sink", metavar="URL", help="also send through a mock channel into this database "
                      "(table mock_delivery; default ENGAGEBOT_MOCK_SINK)")
    work.add_argument("--mock-account", default="mock")
    work.add_argument("--mock-rate", type=float, default=0, help="the mock channel's sends per second (0: no limit)")
    work.add_argument("--mock-chat-rate", type=float, default=0, help="the mock channel's sends per second per chat")
    work.add_argument("--batch", type=int, default=None, help="rows claimed per batch (default "
                      "ENGAGEBOT_OUTBOX__BATCH_SIZE)")
    work.add_argument("--lease", type=float, default=None, help="seconds before a crashed worker's rows are "
                      "taken by another (default ENGAGEBOT_OUTBOX__LEASE_SECONDS)")
    work.add_argument("--poll", type=float, default=1.0, help="seconds between looks for new work")
    work.add_argument("--until-idle", action="store_true", help="exit when nothing is left to send")
    work.set_defaults(func=cmd_work)
