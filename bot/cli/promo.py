"""``engagebot promo load|list|show|preview|redeem``: the promotions (bot.offers)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.admin.audit import CLI_ACTOR
from bot.admin.services import load_promotions, redeem_code
from bot.i18n import locale_warnings, operator_time
from bot.offers.loader import get_promotion, list_promotions, pool_free_count, redeemed_count
from bot.offers.redeem import RedeemOutcome
from bot.offers.spec import read_promo_file

from .common import fail, open_session, settings_of, warn
from .previews import add_filters, cmd_promo_preview


def operator_zone(args: argparse.Namespace) -> str:
    """ENGAGEBOT_TIMEZONE: every time shown to the operator is in it (a promotion's own zone only
    reads its file's dates)."""
    return settings_of(args).timezone


async def cmd_promo_load(args: argparse.Namespace) -> int:
    parsed = read_promo_file(args.file)
    warn(args.file, [line for p in parsed.promotions for line in locale_warnings(
        f"promotion {p.slug!r}", {"title": p.title, "description": p.description, "terms": p.terms,
                                  "keywords": p.keywords}, keyword_fields=("keywords",))])
    async with open_session(args) as session:
        async with session.begin():
            summary = await load_promotions(session, CLI_ACTOR, parsed, source=str(args.file))
    print(f"loaded {args.file}: promotions {summary.promotions_added} added, {summary.promotions_replaced} replaced; "
          f"campaigns {summary.campaigns_added} added, {summary.campaigns_replaced} replaced; "
          f"{summary.pool_codes_added} pool code(s) added")
    return 0


async def cmd_promo_list(args: argparse.Namespace) -> int:
    tz = operator_zone(args)
    async with open_session(args) as session:
        promos = await list_promotions(session)
    if not promos:
        print("no promotions; load some with: engagebot promo load FILE.yaml")
    for p in promos:
        quota = f"{p.claimed}/{p.quota}" if p.quota is not None else f"{p.claimed}/unlimited"
        family = f"  family: {p.friends_needed} friends" if p.friends_needed else ""
        print(f"{p.slug:<24} {p.code_strategy:<7} claimed {quota:<16} "
              f"{operator_time(p.starts_at, tz)} -> {operator_time(p.ends_at, tz)}{family}")
    return 0


async def cmd_promo_show(args: argparse.Namespace) -> int:
    tz = operator_zone(args)
    async with open_session(args) as session:
        p = await get_promotion(session, args.slug)
        if p is None:
            return fail(f"no promotion {args.slug!r}")
        redeemed = await redeemed_count(session, p.id)
        free = await pool_free_count(session, p.id) if p.code_strategy == "pool" else None
    fields: list[tuple[str, str]] = [
        ("slug", p.slug),
        *((f"title.{loc}", text) for loc, text in p.title.items()),
        ("time zone", f"{p.timezone} (its dates; shown here in {tz})"),
        ("runs", f"{operator_time(p.starts_at, tz)} -> {operator_time(p.ends_at, tz)}"),
        ("channels", ", ".join(p.channels) or "all"),
        ("audience", ("followers only" if p.followers_only else "anyone")
         + (f", followed since {operator_time(p.followed_since, tz)}" if p.followed_since else "")
         + (f", tags {p.audience_tags}" if p.audience_tags else "")
         + (f", locales {p.audience_locales}" if p.audience_locales else "")),
        ("codes", _codes_line(p, free)),
        ("validity", f"{p.valid_days} day(s) after the claim" if p.valid_days
         else operator_time(p.valid_until, tz) if p.valid_until else "until the promotion ends"),
        ("claimed", f"{p.claimed}" + (f" of {p.quota}" if p.quota is not None else "")
         + f", {redeemed} redeemed; at most {p.per_follower_limit} per follower"),
        ("keywords", "; ".join(f"{loc}: {', '.join(ws)}" for loc, ws in p.keywords.items()) or "-"),
        ("menu key", p.menu_key or "-"),
        ("value", f"{p.value_amount} {p.value_currency} ({p.value_kind})" if p.value_amount else "-"),
    ]
    if p.poster:
        fields.append(("poster", p.poster))
    if p.friends_needed:
        fields.append(("family offer", f"after {p.friends_needed} friend(s) follow through an invite"))
    width = max(len(label) for label, _value in fields) + 2  # every value starts in the same column
    lines = [f"{label + ':':<{width}}{value}" for label, value in fields]
    print("\n".join(lines))
    return 0


def _codes_line(p: Any, free: int | None) -> str:
    """How the promotion's codes are made, in words (with an example for unique codes)."""
    if p.code_strategy == "unique":
        prefix = f"the prefix {p.code_prefix} then " if p.code_prefix else ""
        return (f"unique: each claim gets its own code, {prefix}{p.code_length} random characters "
                f"(shaped {p.code_prefix}{'X' * p.code_length})")
    if p.code_strategy == "shared":
        return f"shared: everyone gets the same code {p.shared_code}"
    if p.code_strategy == "pool":
        return f"pool: codes loaded from the file, one per claim ({free} unassigned)"
    return p.code_strategy


async def cmd_promo_redeem(args: argparse.Namespace) -> int:
    tz = operator_zone(args)
    async with open_session(args) as session:
        result = await redeem_code(session, CLI_ACTOR, args.code, by=args.by, promotion=args.promotion)
        await session.commit()
    print(result.describe(tz))
    return 0 if result.outcome is RedeemOutcome.REDEEMED else 1


def add_commands(sub: Any) -> None:
    """Register ``promo`` on the ``engagebot`` command."""
    promo = sub.add_parser("promo", help="promotions: load, list, show, redeem, preview").add_subparsers(
        dest="promo_command", required=True)
    load = promo.add_parser("load", help="load promotions (and campaigns) from YAML, replacing those of the same slug")
    load.add_argument("file", type=Path)
    load.set_defaults(func=cmd_promo_load)
    promo.add_parser("list", help="list promotions").set_defaults(func=cmd_promo_list)
    show = promo.add_parser("show", help="show one promotion")
    show.add_argument("slug")
    show.set_defaults(func=cmd_promo_show)
    preview = promo.add_parser("preview", help="what a follower claiming it receives per channel and language "
                                               "(a sample code: nothing claimed or sent)")
    preview.add_argument("slug")
    add_filters(preview)
    preview.set_defaults(func=cmd_promo_preview)
    red = promo.add_parser("redeem", help="mark a code used (once)")
    red.add_argument("code")
    red.add_argument("--promotion", help="the promotion's slug, when a code exists in several")
    red.add_argument("--by", help="who redeems (a shop, a till), for the record")
    red.set_defaults(func=cmd_promo_redeem)
