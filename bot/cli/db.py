"""``engagebot db upgrade``: the database schema."""

from __future__ import annotations

import argparse
from typing import Any

from bot.storage.migrate import current_revision

from .common import open_database


async def cmd_db_upgrade(args: argparse.Namespace) -> int:
    async with open_database(args) as (_settings, sessions):
        print(f"database at revision {await current_revision(sessions.kw['bind'])}")
    return 0


def add_commands(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply all migrations").set_defaults(func=cmd_db_upgrade)
