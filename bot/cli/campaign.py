"""``engagebot campaign qr|stats``: campaign QR codes (through the channels' links) and the funnel."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.admin.services import campaign_funnel
from bot.offers.campaigns import get_campaign, write_qr_files
from bot.offers.links import campaign_links

from .common import fail, open_session, settings_of


async def cmd_campaign_qr(args: argparse.Namespace) -> int:
    # Heavy: bot.app loads every channel (PTB), simulator and handler; only the commands that build the app pay.
    from bot.app import build_core, close_link_channels, open_link_channels
    from bot.simulation import simulators_to_mount

    core = build_core(settings_of(args, host=getattr(args, "host", None), port=getattr(args, "port", None)))
    channels: list[Any] = []
    try:
        await core.open()
        async with core.sessions() as session:
            campaign = await get_campaign(session, args.slug)
        if campaign is None:
            return fail(f"no campaign {args.slug!r}")
        channels = await open_link_channels(core)
        core.channels.extend(channels)
        links = await campaign_links(core, campaign.scene)
    finally:
        await close_link_channels(channels)
        await core.close()
    if not links:
        if simulators_to_mount(core.settings):
            where = f"http://{core.settings.host}:{core.settings.port}"
            return fail(f"no link for the scene: the simulators give links only while `engagebot run` serves them; "
                        f"none answered at {where} (`engagebot campaign qr {args.slug} --port N` if it runs "
                        "on another port)")
        return fail("no channel can give a link for a scene: configure WeChat, Telegram or Weibo first")
    out = Path(args.out)
    for path in await write_qr_files(links, campaign.slug, out):
        print(path)
    for channel, url in sorted(links.items()):
        print(f"{channel}: {url}")
    return 0


async def cmd_campaign_stats(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        rows = await campaign_funnel(session, args.slug, per_channel=args.per_channel)
    if not rows:
        return fail(f"no campaign {args.slug!r}") if args.slug and not args.per_channel else (
            print("no campaigns" if not args.per_channel else "no scans or claims yet") or 0)
    first = ("campaign", "channel") if args.per_channel else ("campaign", "source")
    header = (*first, "scans", "people", "follows", "claims", "redeemed", "follow%", "redeem%")
    table = [header]
    for r in rows:
        table.append((r.slug, (r.channel or "") if args.per_channel else r.source[:28], str(r.scans), str(r.people),
                      str(r.follows), str(r.claims), str(r.redemptions), _percent(r.follows, r.scans),
                      _percent(r.redemptions, r.claims)))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    return 0


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def add_commands(sub: Any) -> None:
    """Register ``campaign`` on the ``engagebot`` command."""
    campaign = sub.add_parser("campaign", help="campaigns: QR codes and funnel").add_subparsers(
        dest="campaign_command", required=True)
    qr = campaign.add_parser("qr", help="write <slug>-<channel>.png and .svg for each channel with a link")
    qr.add_argument("slug")
    qr.add_argument("--out", default=".", help="folder for the files (default: here)")
    qr.add_argument("--host", help="where engagebot run listens, for its simulators' links (as for run: default "
                                   "127.0.0.1, env ENGAGEBOT_HOST)")
    qr.add_argument("--port", type=int, help="its port (as for run: default 8080, env ENGAGEBOT_PORT)")
    qr.set_defaults(func=cmd_campaign_qr)
    stats = campaign.add_parser("stats", help="scans -> follows -> claims -> redemptions")
    stats.add_argument("slug", nargs="?")
    stats.add_argument("--per-channel", action="store_true", help="one row per campaign and channel")
    stats.set_defaults(func=cmd_campaign_stats)
