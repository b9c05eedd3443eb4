"""``engagebot channels``: the installed channel plugins, whether each is configured, and what it declares."""

from __future__ import annotations

import argparse
from typing import Any

from bot.channels.registry import installed_channels
from bot.core.capabilities import Capabilities
from bot.simulation import PLATFORMS, simulator_wanted

from .common import settings_of


def capability_words(caps: Capabilities) -> str:
    """A short reading of a channel's declared capabilities, for one line of the table."""
    unit = "bytes" if caps.text_length_in_bytes else "chars"
    words = [f"text {caps.max_text_length} {unit}"]
    words += [name for name, on in (("buttons", caps.buttons), ("images", caps.images),
                                    ("location", caps.location_request), ("idempotent", caps.idempotent_sends)) if on]
    if caps.max_articles:
        words.append(f"articles {caps.max_articles}")
    if caps.passive_reply_deadline is not None:
        words.append(f"passive {caps.passive_reply_deadline:g}s")
    if caps.window_after_message is not None:
        words.append(f"window {caps.window_after_message.duration.total_seconds() / 3600:g}h")
    if caps.max_sends_per_second is not None:
        words.append(f"{caps.max_sends_per_second:g}/s")
    return ", ".join(words)


async def cmd_channels(args: argparse.Namespace) -> int:
    """List each installed channel: name, package, configured / simulated / off, capabilities."""
    settings = settings_of(args)
    found = installed_channels()
    rows = []
    for plugin in found.plugins:
        if plugin.is_configured(settings):
            state = "configured"
        elif (plugin.platform in PLATFORMS or plugin.simulator is not None) and simulator_wanted(settings,
                                                                                                 plugin.platform):
            state = "simulated"
        else:
            state = "off"
        caps = capability_words(plugin.capabilities(settings)) if plugin.capabilities is not None else "-"
        rows.append((plugin.platform, found.packages[plugin.platform], state, caps))
    rows += [(name, "-", "broken", reason) for name, reason in found.problems.items()]
    unserved = found.unserved(settings)
    rows += [(name, "-", "missing", reason) for name, reason in unserved.items()]
    widths = [max(len(r[i]) for r in [("channel", "package", "state", ""), *rows]) for i in range(3)]
    print(f"{'channel':<{widths[0]}}  {'package':<{widths[1]}}  {'state':<{widths[2]}}  capabilities")
    for name, package, state, caps in rows:
        print(f"{name:<{widths[0]}}  {package:<{widths[1]}}  {state:<{widths[2]}}  {caps}")
    return 1 if found.problems or unserved else 0


def add_commands(sub: Any) -> None:
    channels = sub.add_parser("channels", help="list the installed channels: configured, simulated or off")
    channels.set_defaults(func=cmd_channels)
