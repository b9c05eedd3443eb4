"""A campaign scene as each channel shows it: a WeChat QR URL, a Telegram deep link..."""

from __future__ import annotations

import logging
from typing import Any

from bot.errors import EngagebotError

log = logging.getLogger("engagebot.offers.links")


def link_channels(channels: Any) -> dict[str, Any]:
    """The channels that may give a scene link, by the key their link goes under: the channel's name, and
    ``<name>-<account>`` for a second account of the same channel. Asks no platform anything.

    A channel whose class keeps the base ``scene_link`` (it always answers None) is left out."""
    keyed: dict[str, Any] = {}
    for channel in channels:
        if getattr(type(channel).scene_link, "_no_scene_links", False):
            continue
        name = getattr(channel, "channel_name", None) or channel.name
        keyed[name if name not in keyed else f"{name}-{channel.account}"] = channel
    return keyed


async def campaign_links(core: Any, scene: str) -> dict[str, str]:
    """Ask every channel of ``core.channels`` for its link to ``scene``; channels without one are left out.

    Keys are those of ``link_channels`` (``wechat``, ``telegram``..., ``<name>-<account>`` for a second account).
    """
    links: dict[str, str] = {}
    for key, channel in link_channels(getattr(core, "channels", [])).items():
        try:
            url = await channel.scene_link(scene)
        except EngagebotError as exc:  # one platform down must not cost the others' codes
            log.warning("no scene link", extra={"channel": channel.name, "reason": str(exc)})
            continue
        if url:
            links[key] = url
    return links
