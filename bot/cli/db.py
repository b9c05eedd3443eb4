"""``engagebot db upgrade``: the database schema; ``engagebot db prune``: retention."""

from __future__ import annotations

import argparse
from typing import Any

from bot.core.clock import utcnow
from bot.storage.migrate import current_revision
from bot.storage.retention import count_prunable, prune, retention_cutoff

from .common import open_database


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    async with open_database(args) as (_settings, sessions):
        print(f"database at revision {await current_revision(sessions.kw['bind'])}")
    return 0


async def cmd_db_prune(args: argparse.Namespace) -> int:
    async with open_database(args) as (settings, sessions):
        engine = sessions.kw["bind"]
        now = utcnow()
        cutoff = retention_cutoff(settings.retention_days, now)
        if cutoff is None:
            print("messages: kept forever (ENGAGEBOT_RETENTION_DAYS=0)")
        else:
            print(f"messages: pruning those created before {cutoff:%Y-%m-%d %H:%M} UTC "
                  f"(ENGAGEBOT_RETENTION_DAYS={settings.retention_days}); claims, codes and campaign touches are kept")
        if args.dry_run:
            counts = await count_prunable(engine, cutoff=cutoff, now=now)
            print(f"would delete: {counts.messages} messages and settled outbox rows, "
                  f"{counts.seen_requests} expired replay-cache rows, {counts.notices} platform notices "
                  "(dry run: nothing deleted)")
            return 0
        pruned = await prune(engine, cutoff=cutoff, now=now)
        print(f"deleted: {pruned.messages} messages and settled outbox rows, {pruned.seen_requests} expired "
              f"replay-cache rows, {pruned.notices} platform notices, in {pruned.batches} transactions")
    return 0


def add_commands(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema and retention").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply all migrations").set_defaults(func=cmd_db_upgrade)
    prune_cmd = db.add_parser("prune", help="delete messages older than ENGAGEBOT_RETENTION_DAYS (not claims, codes "
                                            "or campaign touches; never unsent outbox rows)")
    prune_cmd.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    prune_cmd.set_defaults(func=cmd_db_prune)
