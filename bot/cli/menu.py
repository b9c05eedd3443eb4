"""``engagebot menu load|push|show``: the brand's menu per language, stored and pushed to each platform."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.core.menu import Menu, MenuButton
from bot.errors import EngagebotError
from bot.files import read_data_file
from bot.i18n import SUPPORTED_LOCALES, locale_warnings
from bot.menus import parse_menu
from bot.storage.menus import load_menu, record_pushes, save_menu

from .common import fail, open_session, settings_of, warn


async def cmd_menu_load(args: argparse.Namespace) -> int:
    menu = parse_menu(read_data_file(args.file), source=str(args.file))  # nothing is stored or pushed before this
    warn(args.file, [line for path, b in _walk(menu) for line in locale_warnings(f"button {path}", {"label": b.label})])
    return await _store_and_push(args, menu, source=str(args.file), push=not args.no_push)


async def cmd_menu_push(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        stored = await load_menu(session)
    if stored is None:
        return fail("no menu yet; load one with: engagebot menu load menu.yaml")
    return await _store_and_push(args, stored[0], source=None, push=True)


async def _store_and_push(args: argparse.Namespace, menu: Menu, *, source: str | None, push: bool) -> int:
    # Heavy: bot.app loads every channel (PTB), simulator and handler; only the commands that push pay.
    from bot.app import build_core, close_link_channels, open_link_channels
    from bot.simulation import simulators_to_mount

    core = build_core(settings_of(args, host=getattr(args, "host", None), port=getattr(args, "port", None)))
    channels: list[Any] = []
    results: dict[str, dict[str, Any]] = {}
    try:
        await core.open()
        if source is not None:
            async with core.sessions() as session, session.begin():
                await save_menu(session, menu)
            print(f"loaded the menu from {source}: {len(menu.buttons)} top-level button(s), "
                  f"{len(menu.commands)} Telegram command(s), labels read in {menu.default_locale} when missing")
        if not push:
            return 0
        channels = await open_link_channels(core)
        for channel in channels:
            # A second account of a platform (WeChat's named accounts) is told apart by its name.
            name = channel.name if channel.name not in results else f"{channel.name}:{channel.account}"
            try:
                line = await channel.push_menu(menu)
            except EngagebotError as exc:
                results[name] = {"ok": False, "detail": str(exc)}
                print(f"{name}: not pushed: {exc}")
                continue
            if line is not None:
                results[name] = {"ok": True, "detail": line}
                print(f"{name}: {line}")
        async with core.sessions() as session, session.begin():
            await record_pushes(session, results)
    finally:
        await close_link_channels(channels)
        await core.close()
    if not results:
        return fail("no platform to push the menu to: configure WeChat, Telegram or Weibo")
    if not all(r["ok"] for r in results.values()):
        if simulators_to_mount(core.settings):
            where = f"http://{core.settings.host}:{core.settings.port}"
            print(f"(the simulators take a menu only while `engagebot run` serves them at {where}; "
                  "`engagebot menu push --port N` pushes the stored menu again)")
        return 1
    return 0


async def cmd_menu_show(args: argparse.Namespace) -> int:
    async with open_session(args) as session:
        stored = await load_menu(session)
    if stored is None:
        print("no menu; load one with: engagebot menu load menu.yaml")
        return 0
    menu, pushed, loaded_at = stored
    print(f"menu loaded {loaded_at:%Y-%m-%d %H:%M} UTC; a label missing in a locale is read in {menu.default_locale}")
    print(f"labels: {' / '.join(SUPPORTED_LOCALES)}")
    for path, button in _walk(menu):
        indent = "   " * path.count(".")
        labels = " / ".join(menu.label(button.label, locale) for locale in SUPPORTED_LOCALES)
        action = "" if button.buttons else f"  [{button.type} {button.url or button.key}]"
        print(f"{indent}{path}. {labels}{action}")
    for command in menu.commands:
        descriptions = " / ".join(menu.label(command.description, locale) for locale in SUPPORTED_LOCALES)
        print(f"telegram /{command.command}: {descriptions}")
    print(f"telegram menu button: {menu.menu_button.get('type', 'commands')}")
    for name, result in sorted(pushed.items()):
        print(f"pushed to {name}: {'ok' if result.get('ok') else 'FAILED'}: {result.get('detail', '')}")
    if not pushed:
        print("not pushed yet: engagebot menu push")
    return 0


def _walk(menu: Menu) -> list[tuple[str, MenuButton]]:
    """Every button with its position ("2", "2.1"), top-level ones before their sub-menus."""
    out = []
    for i, button in enumerate(menu.buttons, start=1):
        out.append((str(i), button))
        out += [(f"{i}.{j}", sub) for j, sub in enumerate(button.buttons, start=1)]
    return out


def add_commands(sub: Any) -> None:
    """Register ``menu`` on the ``engagebot`` command."""
    menu = sub.add_parser("menu", help="the menu per language, on every platform").add_subparsers(
        dest="menu_command", required=True)
    load = menu.add_parser("load", help="check a menu file whole, store it and push it to every platform")
    load.add_argument("file", type=Path)
    load.add_argument("--no-push", action="store_true", help="store it only (push later with menu push)")
    push = menu.add_parser("push", help="push the stored menu to every platform again")
    for parser in (load, push):
        parser.add_argument("--host", help="where engagebot run listens, for its simulators (as for run: default "
                                           "127.0.0.1, env ENGAGEBOT_HOST)")
        parser.add_argument("--port", type=int, help="its port (as for run: default 8080, env ENGAGEBOT_PORT)")
    load.set_defaults(func=cmd_menu_load)
    push.set_defaults(func=cmd_menu_push)
    menu.add_parser("show", help="the stored menu, per language, and what each platform said").set_defaults(
        func=cmd_menu_show)
