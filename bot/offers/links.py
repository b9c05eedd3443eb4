"""A campaign scene as each channel shows it: a WeChat QR URL, a Telegram deep link..."""

from __future__ import annotations

import logging
from typing import Any

from bot.errors import EngagebotError

log = logging.getLogger("engagebot.offers.links")


async def campaign_links(core: Any, scene: str) -> dict[str, str]:
    """Ask every channel of ``core.channels`` for its link to ``scene``; channels without one are left out.

    Keys are channel names (``wechat``, ``telegram``...); a second account of the same channel
    gets ``<name>-<account>``.
    """
    links: dict[str, str] = {}
    for channel in getattr(core, "channels", []):
        try:
            url = await channel.scene_link(scene)
        except EngagebotError as exc:  # one platform down must not cost the others' codes
            log.warning("no scene link", extra={"channel": channel.name, "reason": str(exc)})
            continue
        if not url:
            continue
        name = getattr(channel, "channel_name", None) or channel.name
        key = name if name not in links else f"{name}-{channel.account}"
        links[key] = url
    return links
