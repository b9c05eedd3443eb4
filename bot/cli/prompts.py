"""``engagebot prompts load|list|try``: the prompt-reply rules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.admin.audit import CLI_ACTOR
from bot.admin.services import load_rules
from bot.files import read_data_file
from bot.i18n import locale_warnings
from bot.rules import parse_prompt_rules
from bot.storage.prompts import list_prompt_rules

from .common import open_database, warn
from .previews import add_filters, cmd_prompts_try


async def cmd_prompts_load(args: argparse.Namespace) -> int:
    parsed = parse_prompt_rules(read_data_file(args.file), source=str(args.file))
    warn(args.file, [line for r in parsed.rules for line in locale_warnings(
        f"rule {r.name!r}", {"match": r.match, "reply": r.reply}, keyword_fields=("match",))])
    async with open_database(args) as (_settings, sessions), sessions() as session, session.begin():
        added, replaced = await load_rules(session, CLI_ACTOR, parsed, source=str(args.file))
    print(f"loaded {len(parsed.rules)} rule(s) from {args.file}: {added} added, {replaced} replaced")
    return 0


async def cmd_prompts_list(args: argparse.Namespace) -> int:
    async with open_database(args) as (_settings, sessions), sessions() as session:
        rules = await list_prompt_rules(session)
    if not rules:
        print("no prompt rules; load some with: engagebot prompts load FILE.yaml")
    for rule in rules:
        words = "; ".join(f"{loc}: {', '.join(ws)}" for loc, ws in rule.match.items())
        kind = "regex" if rule.regex else "contains"
        print(f"{rule.name:<20} priority {rule.priority:>4}  {kind:<8} {words}")
    return 0


def add_commands(sub: Any) -> None:
    prompts = sub.add_parser("prompts", help="prompt-reply rules: load, list, try").add_subparsers(dest="prompts_command", required=True)
    load = prompts.add_parser("load", help="load rules from a YAML file (replacing rules of the same name)")
    load.add_argument("file", type=Path)
    load.set_defaults(func=cmd_prompts_load)
    prompts.add_parser("list", help="list the rules").set_defaults(func=cmd_prompts_list)
    attempt = prompts.add_parser("try", help="the rule a message matches and its reply per channel and language "
                                             "(a dry run: nothing stored or sent)")
    attempt.add_argument("text", help="what a follower writes")
    add_filters(attempt)
    attempt.set_defaults(func=cmd_prompts_try)
