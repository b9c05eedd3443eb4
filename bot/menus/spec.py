"""The menu file (``engagebot menu load menu.yaml``), validated whole before anything is stored or pushed.

    default_locale: zh_Hans            # labels missing in a locale are read in this one
    buttons:                           # 1..3 top-level entries; a top-level label fits 16 bytes (UTF-8)
      - label: {zh_Hans: 优惠, en: Offers, zh_Hant: 優惠}
        key: offers                    # a click: the bot answers the key (see docs/menus.md)
      - label: {zh_Hans: 门店, en: Stores}
        buttons:                       # a sub-menu: 1..5 buttons, labels up to 60 bytes
          - {label: {zh_Hans: 附近门店, en: Stores near me}, type: location_select, key: stores}
          - {label: {zh_Hans: 官网, en: Website}, url: "https://example.com/"}
    telegram:
      commands:                        # Telegram's command list, per language
        - {command: offers, description: {zh_Hans: 今日优惠, en: "Today's offers"}}
      menu_button: commands            # or {label: {...}, url: "https://..."} for a web app

The limits are WeChat's (the strictest of the three platforms); every label is checked in every
language a follower may read it in.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from bot.core.menu import (
    BUTTON_TYPES,
    CLICK,
    MAX_SUB_BUTTONS,
    MAX_TOP_BUTTONS,
    VIEW,
    Menu,
    MenuButton,
    MenuCommand,
)
from bot.errors import EngagebotError
from bot.files import describe_validation_error
from bot.i18n import SUPPORTED_LOCALES, locale_keys, normalize_locale, pick_text

TOP_LABEL_BYTES = 16  # WeChat: a top-level name at most 16 bytes, a sub-menu's 60
SUB_LABEL_BYTES = 60
MAX_KEY_BYTES = 128
MAX_URL_BYTES = 1024
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
MAX_COMMANDS = 100


class MenuFileError(EngagebotError):
    """The menu file is not valid; the message names the button and the field."""


def _texts(value: dict[str, str], *, max_chars: int) -> dict[str, str]:
    value = locale_keys(value)
    if not value:
        raise ValueError("needs a text in at least one locale")
    for locale, text in value.items():
        if not isinstance(text, str) or not text.strip() or len(text) > max_chars:
            raise ValueError(f"{locale}: each text is 1..{max_chars} characters")
    return value


def _bytes(text: str) -> int:
    return len(text.encode("utf-8"))


class ButtonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    LABEL_BYTES: ClassVar[int] = SUB_LABEL_BYTES
    WHERE: ClassVar[str] = "sub-menu"

    label: dict[str, str]
    type: str | None = None
    key: str | None = None
    url: str | None = None
    buttons: list[ButtonSpec] | None = None

    @field_validator("label")
    @classmethod
    def _label(cls, value: dict[str, str]) -> dict[str, str]:
        return _texts(value, max_chars=60)

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> ButtonSpec:
        """Refuse a label too long for WeChat in any language a follower may read it in."""
        default = (info.context or {}).get("default_locale", "zh_Hans")
        if not self.label.get(default):
            raise ValueError(f"label has no text in the default locale {default}")
        for locale in dict.fromkeys((default, *SUPPORTED_LOCALES)):
            text = pick_text(self.label, locale, default=default)
            if _bytes(text) > self.LABEL_BYTES:
                raise ValueError(f"label {text!r} ({locale}) is {_bytes(text)} bytes in UTF-8; a {self.WHERE} "
                                 f"label fits {self.LABEL_BYTES} (WeChat)")
        return self

    @model_validator(mode="after")
    def _action(self) -> ButtonSpec:
        if self.buttons is not None:
            if self.type or self.key or self.url:
                raise ValueError("a button with a sub-menu (buttons) has no type, key or url of its own")
            if not 1 <= len(self.buttons) <= MAX_SUB_BUTTONS:
                raise ValueError(f"a sub-menu has 1..{MAX_SUB_BUTTONS} buttons, not {len(self.buttons)}")
            if any(b.buttons is not None for b in self.buttons):
                raise ValueError("a sub-menu's buttons cannot open another sub-menu")
            return self
        kind = self.type or (VIEW if self.url else CLICK)
        if kind not in BUTTON_TYPES:
            raise ValueError(f"type {kind!r} is not one of {', '.join(BUTTON_TYPES)}")
        if kind == VIEW:
            if not self.url or not self.url.startswith(("https://", "http://")) or _bytes(self.url) > MAX_URL_BYTES:
                raise ValueError(f"a view button needs a url (http:// or https://, at most {MAX_URL_BYTES} bytes)")
        elif not self.key or not self.key.strip() or _bytes(self.key) > MAX_KEY_BYTES:
            raise ValueError(f"a {kind} button needs a key (1..{MAX_KEY_BYTES} bytes)")
        elif self.url:
            raise ValueError(f"a {kind} button has a key, not a url")
        self.type = kind
        return self

    def built(self) -> MenuButton:
        if self.buttons is not None:
            return MenuButton(label=self.label, buttons=tuple(b.built() for b in self.buttons))
        return MenuButton(label=self.label, type=self.type or CLICK, key=self.key, url=self.url)


class TopButtonSpec(ButtonSpec):
    LABEL_BYTES: ClassVar[int] = TOP_LABEL_BYTES
    WHERE: ClassVar[str] = "top-level"


class CommandSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    command: str = Field(pattern=f"^{_COMMAND.pattern}$")
    description: dict[str, str]

    @field_validator("description")
    @classmethod
    def _description(cls, value: dict[str, str]) -> dict[str, str]:
        return _texts(value, max_chars=256)


class MenuButtonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: dict[str, str]
    url: str = Field(pattern=r"^https://", max_length=MAX_URL_BYTES)

    @field_validator("label")
    @classmethod
    def _label(cls, value: dict[str, str]) -> dict[str, str]:
        return _texts(value, max_chars=64)


class TelegramSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commands: list[CommandSpec] = Field(default_factory=list, max_length=MAX_COMMANDS)
    menu_button: MenuButtonSpec | str = "commands"

    @field_validator("menu_button")
    @classmethod
    def _menu_button(cls, value: MenuButtonSpec | str) -> MenuButtonSpec | str:
        if isinstance(value, str) and value not in ("commands", "default"):
            raise ValueError("menu_button is commands, default, or {label, url} (a web app)")
        return value

    @model_validator(mode="after")
    def _unique(self) -> TelegramSpec:
        names = [c.command for c in self.commands]
        if len(set(names)) != len(names):
            raise ValueError("a command is given twice")
        return self


class MenuFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_locale: str = "zh_Hans"
    buttons: list[TopButtonSpec] = Field(min_length=1, max_length=MAX_TOP_BUTTONS)
    telegram: TelegramSpec = Field(default_factory=TelegramSpec)

    @field_validator("default_locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        locale = normalize_locale(value, SUPPORTED_LOCALES)
        if locale is None:
            raise ValueError(f"unknown locale {value!r}; use one of {list(SUPPORTED_LOCALES)}")
        return locale

    def menu(self) -> Menu:
        tg = self.telegram
        button: dict[str, Any] = ({"type": tg.menu_button} if isinstance(tg.menu_button, str)
                                  else {"type": "web_app", "label": tg.menu_button.label, "url": tg.menu_button.url})
        return Menu(default_locale=self.default_locale, buttons=tuple(b.built() for b in self.buttons),
                    commands=tuple(MenuCommand(c.command, c.description) for c in tg.commands), menu_button=button)


def parse_menu(data: Any, *, source: str = "menu file") -> Menu:
    """The menu a file describes; ``MenuFileError`` naming the button and the field if anything is wrong."""
    if not isinstance(data, dict):
        raise MenuFileError(f"{source}: expected a mapping with a 'buttons' list")
    if isinstance(data.get("buttons"), list) and len(data["buttons"]) > MAX_TOP_BUTTONS:
        raise MenuFileError(f"{source}: buttons: {len(data['buttons'])} top-level buttons; "
                            f"WeChat and Weibo show at most {MAX_TOP_BUTTONS}")
    default = normalize_locale(str(data.get("default_locale", "zh_Hans")), SUPPORTED_LOCALES)
    try:
        return MenuFile.model_validate(data, context={"default_locale": default}).menu()
    except ValidationError as exc:
        raise MenuFileError(f"{source}: {describe_validation_error(exc, data, 'buttons')}") from None
