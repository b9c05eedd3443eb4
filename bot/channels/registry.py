"""The installed plugins: channels (``engagebot.channels``) and handlers (``engagebot.handlers``) by entry point.

A package adds a channel by declaring, in its ``pyproject.toml``::

    [project.entry-points."engagebot.channels"]
    webchat = "webchat_channel.plugin:plugin"   # a bot.channels.plugin.ChannelPlugin named "webchat"

engagebot's own channels (wechat, telegram, weibo, mock) register the same way. A broken plugin (it
does not import, is not a ``ChannelPlugin``, its name differs from its platform, two packages claim
one name) is reported naming its entry point: it stops startup when it is one of engagebot's own,
is configured (``ENGAGEBOT_CHANNELS__<NAME>__...``) or is a duplicate; otherwise it is skipped with
a warning, since nothing was asked of it. Settings naming a channel no plugin serves stop startup too:
nothing would answer that channel's followers. Handler plugins always stop startup when broken: once
installed they answer followers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from bot.core.router import Router
from bot.errors import ConfigError
from bot.settings import Settings

from .plugin import ChannelPlugin

log = logging.getLogger("engagebot.plugins")

CHANNEL_GROUP = "engagebot.channels"
HANDLER_GROUP = "engagebot.handlers"
# engagebot's own channels, as pyproject.toml registers them. An install whose metadata predates the entry
# points (an editable install not reinstalled) still serves them: they are added from here, with a warning.
BUILTIN_CHANNELS = {
    "wechat": "bot.channels.wechat.plugin:wechat_plugin",
    "telegram": "bot.channels.telegram.plugin:telegram_plugin",
    "weibo": "bot.channels.weibo.plugin:weibo_plugin",
    "mock": "bot.channels.mock_plugin:mock_plugin",
}


class PluginError(ConfigError):
    """An installed plugin cannot be used; the message names its entry point."""


def describe(ep: EntryPoint) -> str:
    """``engagebot.channels: webchat = webchat_channel.plugin:plugin (package webchat-channel)``."""
    dist = getattr(ep, "dist", None)
    package = f" (package {dist.name})" if dist is not None else ""
    return f"{ep.group}: {ep.name} = {ep.value}{package}"


def package_of(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.name if dist is not None else "engagebot"


@dataclass
class InstalledChannels:
    """What the ``engagebot.channels`` group holds: the usable plugins, and the broken ones' reasons."""

    plugins: list[ChannelPlugin] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)  # channel name -> the package that installed it
    problems: dict[str, str] = field(default_factory=dict)  # entry-point name -> what is wrong, naming it
    duplicates: set[str] = field(default_factory=set)

    def unserved(self, settings: Settings | None) -> dict[str, str]:
        """The ``channels`` settings no installed plugin reads, by channel name, each with the reason."""
        plugins = {p.platform: p for p in self.plugins}
        found = {}
        for name in (settings.channels if settings is not None else {}):
            variable = f"ENGAGEBOT_CHANNELS__{name.upper()}__..."
            if name in self.problems:
                continue  # reported as broken
            if name not in plugins:
                found[name] = (f"setting {variable} (channels.{name}): no channel plugin {name!r} is installed "
                               f"(no {CHANNEL_GROUP} entry point named {name})")
            elif plugins[name].settings_model is None and plugins[name].configured is not None:
                found[name] = f"setting {variable} (channels.{name}): channel {name!r} takes no settings there (it reads its own)"
        return found

    def check(self, settings: Settings | None) -> None:
        """Raise PluginError for a broken plugin that must stop startup, or settings no plugin reads; log the rest."""
        configured = settings.channels if settings is not None else {}
        fatal = [reason for name, reason in self.problems.items()
                 if name in BUILTIN_CHANNELS or name in configured or name in self.duplicates]
        fatal += self.unserved(settings).values()
        if fatal:
            raise PluginError("; ".join(fatal))
        for reason in self.problems.values():
            log.warning("channel plugin skipped", extra={"reason": reason})


def _channel_entry_points() -> list[EntryPoint]:
    found = list(entry_points(group=CHANNEL_GROUP))
    missing = [name for name in BUILTIN_CHANNELS if name not in {ep.name for ep in found}]
    if missing:
        log.warning("engagebot's entry points are missing (reinstall it: pip install -e .); built-ins added",
                    extra={"channels": missing})
        found += [EntryPoint(name, BUILTIN_CHANNELS[name], CHANNEL_GROUP) for name in missing]
    return found


def installed_channels() -> InstalledChannels:
    """Load every ``engagebot.channels`` entry point, in ``order`` then name; keep what is wrong apart."""
    out = InstalledChannels()
    seen: dict[str, EntryPoint] = {}
    for ep in _channel_entry_points():
        if ep.name in seen:
            if seen[ep.name].value == ep.value:  # one package seen twice on the path (an editable install)
                continue
            out.duplicates.add(ep.name)
            out.problems[ep.name] = f"{describe(ep)}: the name is taken by {describe(seen[ep.name])}"
            continue
        seen[ep.name] = ep
        try:
            plugin = ep.load()
        except Exception as exc:
            out.problems[ep.name] = f"{describe(ep)}: cannot be imported: {type(exc).__name__}: {exc}"
            continue
        if not isinstance(plugin, ChannelPlugin):
            out.problems[ep.name] = (f"{describe(ep)}: is a {type(plugin).__name__}, "
                                     "not a bot.channels.plugin.ChannelPlugin")
            continue
        if plugin.platform != ep.name:
            out.problems[ep.name] = f"{describe(ep)}: serves platform {plugin.platform!r}; name them alike"
            continue
        out.plugins.append(plugin)
        out.packages[plugin.platform] = package_of(ep)
    out.plugins = [p for p in out.plugins if p.platform not in out.duplicates]
    out.plugins.sort(key=lambda p: (p.order, p.platform))
    return out


def channel_plugins(settings: Settings | None) -> list[ChannelPlugin]:
    """The channel plugins to build the app with; raises PluginError when a broken one must stop startup."""
    found = installed_channels()
    found.check(settings)
    return found.plugins


def handler_routers() -> list[Router]:
    """The ``engagebot.handlers`` routers, ordered by their ``order`` attribute (default 100), then name.

    An entry point names a ``Router`` or a function returning one. They come before the built-in
    handlers (the first match answers), so a brand's handler wins over the generic ones.
    """
    loaded: list[tuple[int, str, Router]] = []
    seen: set[tuple[str, str]] = set()
    for ep in entry_points(group=HANDLER_GROUP):
        if (ep.name, ep.value) in seen:  # one package seen twice on the path (an editable install)
            continue
        seen.add((ep.name, ep.value))
        try:
            obj: Any = ep.load()
            router = obj() if callable(obj) and not isinstance(obj, Router) else obj
        except Exception as exc:
            raise PluginError(f"{describe(ep)}: cannot be loaded: {type(exc).__name__}: {exc}") from None
        if not isinstance(router, Router):
            raise PluginError(f"{describe(ep)}: gives a {type(router).__name__}, not a bot.Router")
        order = getattr(obj, "order", getattr(router, "order", 100))
        if not isinstance(order, int):
            raise PluginError(f"{describe(ep)}: its order must be an int, not {order!r}")
        loaded.append((order, ep.name, router))
    names = [name for _o, name, _r in loaded]
    if len(names) != len(set(names)):
        raise PluginError(f"{HANDLER_GROUP}: two packages register {sorted({n for n in names if names.count(n) > 1})}")
    return [router for _o, _n, router in sorted(loaded, key=lambda t: (t[0], t[1]))]

