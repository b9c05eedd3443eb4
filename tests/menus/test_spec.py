"""The menu file is checked whole, with WeChat's limits, before anything is stored or pushed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.menu import Menu
from bot.files import read_data_file
from bot.menus import MenuFileError, parse_menu

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "menu.yaml"


def test_the_example_menu_loads_with_labels_in_every_language() -> None:
    menu = parse_menu(read_data_file(EXAMPLE))
    assert [menu.label(b.label, "en") for b in menu.buttons] == ["Offers", "Stores", "More"]
    assert [(b.type, b.key or b.url) for b in menu.buttons[1].buttons] == [
        ("location_select", "stores-pick"), ("click", "hours"), ("view", "https://example.com/")]
    assert [c.command for c in menu.commands] == ["offers", "invite", "lang", "help"]
    assert Menu.from_json(menu.to_json()) == menu  # as stored


def test_a_missing_locale_reads_the_default_one_and_traditional_is_converted() -> None:
    menu = parse_menu({"buttons": [{"label": {"zh_Hans": "优惠"}, "key": "offers"}]})
    assert [menu.label(menu.buttons[0].label, locale) for locale in ("zh_Hans", "zh_Hant", "en")] == [
        "优惠", "優惠", "优惠"]


def _menu(*buttons: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"buttons": list(buttons), **top}


def _click(label: str = "帮助", **extra: Any) -> dict[str, Any]:
    return {"label": {"zh_Hans": label}, "key": "help", **extra}


@pytest.mark.parametrize(("data", "message"), [
    (_menu(_click(), _click(), _click(), _click()),
     "buttons: 4 top-level buttons; WeChat and Weibo show at most 3"),
    (_menu({"label": {"zh_Hans": "更多"}, "buttons": [_click()] * 6}),
     "buttons[0]: a sub-menu has 1..5 buttons, not 6"),
    (_menu(_click("一二三四五六")),
     "buttons[0]: label '一二三四五六' (zh_Hans) is 18 bytes in UTF-8; a top-level label fits 16 (WeChat)"),
    (_menu({"label": {"zh_Hans": "帮助", "en": "Everything about us"}, "key": "help"}),
     "buttons[0]: label 'Everything about us' (en) is 19 bytes in UTF-8; a top-level label fits 16 (WeChat)"),
    (_menu({"label": {"zh_Hans": "更多"}, "buttons": [{"label": {"zh_Hans": "扫码"}, "type": "scancode_waitmsg"}]}),
     "buttons[0] field buttons.0: a scancode_waitmsg button needs a key (1..128 bytes)"),
    (_menu({"label": {"zh_Hans": "官网"}, "type": "view"}),
     "buttons[0]: a view button needs a url (http:// or https://, at most 1024 bytes)"),
    (_menu(_click(type="tap")), "buttons[0]: type 'tap' is not one of click, view, scancode_push"),
    (_menu({"label": {"en": "Help"}, "key": "help"}), "buttons[0]: label has no text in the default locale zh_Hans"),
    (_menu({"label": {"fr": "Aide"}, "key": "help"}), "buttons[0] field label: unknown locale(s) ['fr']"),
    (_menu(_click(colour="red")), "buttons[0] field colour: Extra inputs are not permitted"),
    (_menu(_click(), telegram={"commands": [{"command": "Offers!", "description": {"en": "x"}}]}),
     "telegram.commands.0.command: String should match pattern"),
    ({"menu": []}, "buttons: Field required"),
])
def test_a_bad_menu_file_is_refused_naming_the_button_and_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(MenuFileError) as refused:
        parse_menu(data, source="menu.yaml")
    assert str(refused.value).startswith(f"menu.yaml: {message}"), str(refused.value)


def test_the_yaml_of_the_docs_loads() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "menus.md").read_text("utf-8")
    block = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert parse_menu(yaml.safe_load(block)).buttons
