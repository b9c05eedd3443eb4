"""The brand's menu, one definition for every platform: buttons with labels per locale, Telegram commands.

``engagebot menu load`` builds it from a file (``bot.menus``), the database keeps it, and each channel
renders it in its platform's form (WeChat's default and per-language menus, Telegram's commands per
language, Weibo's menu). Button types are WeChat's names, the richest of the three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.i18n import pick_text

# What a tap does (WeChat's names): send a key, open a URL, scan a code, send a picture, pick a place.
CLICK, VIEW = "click", "view"
SCAN_TYPES = ("scancode_push", "scancode_waitmsg")
PICTURE_TYPES = ("pic_sysphoto", "pic_photo_or_album", "pic_weixin")
LOCATION_TYPE = "location_select"
BUTTON_TYPES = (CLICK, VIEW, *SCAN_TYPES, *PICTURE_TYPES, LOCATION_TYPE)
MAX_TOP_BUTTONS = 3
MAX_SUB_BUTTONS = 5


@dataclass(frozen=True)
class MenuButton:
    """A button, or (with ``buttons``) a top-level entry opening a sub-menu; labels per locale."""

    label: Mapping[str, str]
    type: str = CLICK
    key: str | None = None  # every type but view: comes back as the event's key
    url: str | None = None  # view
    buttons: tuple[MenuButton, ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.buttons:
            return {"label": dict(self.label), "buttons": [b.to_json() for b in self.buttons]}
        out: dict[str, Any] = {"label": dict(self.label), "type": self.type}
        if self.key is not None:
            out["key"] = self.key
        if self.url is not None:
            out["url"] = self.url
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MenuButton:
        return cls(label=dict(data["label"]), type=data.get("type", CLICK), key=data.get("key"), url=data.get("url"),
                   buttons=tuple(cls.from_json(b) for b in data.get("buttons", ())))


@dataclass(frozen=True)
class MenuCommand:
    """A Telegram command (``/offers``) with its description per locale."""

    command: str
    description: Mapping[str, str]


@dataclass(frozen=True)
class Menu:
    """The whole menu; a label missing in a locale is read in ``default_locale`` (see :meth:`label`)."""

    default_locale: str
    buttons: tuple[MenuButton, ...]
    commands: tuple[MenuCommand, ...] = ()
    # Telegram's menu button: "commands" (the command list), or a web app with a label and URL.
    menu_button: Mapping[str, Any] = field(default_factory=lambda: {"type": "commands"})

    def label(self, texts: Mapping[str, str], locale: str) -> str:
        """The text for a reader of ``locale``: theirs, the other Chinese script converted, else the default's."""
        return pick_text(texts, locale, default=self.default_locale)

    def to_json(self) -> dict[str, Any]:
        return {"default_locale": self.default_locale, "buttons": [b.to_json() for b in self.buttons],
                "commands": [{"command": c.command, "description": dict(c.description)} for c in self.commands],
                "menu_button": dict(self.menu_button)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Menu:
        return cls(default_locale=data["default_locale"],
                   buttons=tuple(MenuButton.from_json(b) for b in data["buttons"]),
                   commands=tuple(MenuCommand(c["command"], dict(c["description"])) for c in data.get("commands", ())),
                   menu_button=dict(data.get("menu_button") or {"type": "commands"}))
