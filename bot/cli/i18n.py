"""``engagebot i18n check``: the translations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.i18n_check import check_catalogs


async def cmd_i18n_check(args: argparse.Namespace) -> int:
    problems = check_catalogs(Path(args.locales) if args.locales else None)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) in the catalogs", file=sys.stderr)
        return 1
    print("catalogs complete: every string translated in every locale")
    return 0


def add_commands(sub: Any) -> None:
    i18n = sub.add_parser("i18n", help="translations").add_subparsers(dest="i18n_command", required=True)
    check = i18n.add_parser("check", help="fail listing untranslated or fuzzy strings")
    check.add_argument("--locales", help="catalog folder (default: the project's locales/)")
    check.set_defaults(func=cmd_i18n_check)
