"""A campaign scene as each channel shows it: a WeChat QR URL, a Telegram deep link..."""

from __future__ import annotations

from typing import Any


async def campaign_links(core: Any, scene: str) -> dict[str, str]:
    """Ask every channel of ``core.channels`` for its link to ``scene``; channels without one are left out.

    Keys are channel names (``wechat``, ``telegram``...); a second account of the same channel
    gets ``<name>-<account>``.
    """
    links: dict[str, str] = {}
    for channel in getattr(core, "channels", []):
        url = await channel.scene_link(scene)
        if not url:
            continue
        name = getattr(channel, "channel_name", None) or channel.name
        key = name if name not in links else f"{name}-{channel.account}"
        links[key] = url
    return links
