"""``engagebot stores load|list``: the brand's stores, for "stores near me"."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.files import read_data_file
from bot.i18n import locale_warnings, pick_text
from bot.stores import list_stores, parse_stores, replace_stores

from .common import open_database, warn


async def cmd_stores_load(args: argparse.Namespace) -> int:
    parsed = parse_stores(read_data_file(args.file), source=str(args.file))
    warn(args.file, [line for s in parsed.stores for line in locale_warnings(
        f"store {s.id!r}", {"name": s.name, "address": s.address or None})])
    async with open_database(args) as (_settings, sessions), sessions() as session, session.begin():
        stored, removed = await replace_stores(session, parsed)
    print(f"loaded {stored} store(s) from {args.file} (coordinates in {parsed.datum}); {removed} removed")
    return 0


async def cmd_stores_list(args: argparse.Namespace) -> int:
    async with open_database(args) as (_settings, sessions), sessions() as session:
        stores = await list_stores(session)
    if not stores:
        print("no stores; load them with: engagebot stores load stores.yaml")
    for store in stores:
        print(f"{store.slug:<24} {pick_text(store.details['name'], 'en'):<28} "
              f"{store.latitude:.5f},{store.longitude:.5f} (WGS-84)  {store.timezone}")
    return 0


def add_commands(sub: Any) -> None:
    stores = sub.add_parser("stores", help="the brand's stores (nearest stores for a shared location)") \
        .add_subparsers(dest="stores_command", required=True)
    load = stores.add_parser("load", help="load stores from a YAML file (replacing every store)")
    load.add_argument("file", type=Path)
    load.set_defaults(func=cmd_stores_load)
    stores.add_parser("list", help="list the stores").set_defaults(func=cmd_stores_list)
