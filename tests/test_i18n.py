"""Locale negotiation, the language switch, formatting, and the catalog check."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.i18n import CatalogError, Catalogs, Formatter, normalize_locale
from bot.i18n_check import check_catalogs
from bot.testing import BotHarness

LOCALES = Path(__file__).resolve().parent.parent / "locales"

# The negotiation table lives in docs/localization.md; tests/test_localization.py runs it.


def test_normalize_rejects_garbage() -> None:
    assert normalize_locale("../../etc") is None
    assert normalize_locale("zh-hans") == "zh_Hans"


@pytest.mark.parametrize(("words", "expected"), [
    ("English", "OK, I will speak English from now on."),
    ("/lang en", "OK, I will speak English from now on."),
    ("中文", "好的，接下来我会用中文和您交流。"),
    ("/lang zh", "好的，接下来我会用中文和您交流。"),
])
async def test_language_switch(harness: BotHarness, words: str, expected: str) -> None:
    f = harness.follower("switcher", language="en" if "中" in words or "zh" in words else "zh-hans")
    await f.say(words)
    assert f.texts == [expected]


async def test_switched_language_sticks_over_the_platform_hint(harness: BotHarness) -> None:
    f = harness.follower("sticky", language="zh-hans")
    await f.say("English")
    await f.say("/help")
    assert f.last_text.startswith("Here is what I can do")
    await f.say("中文")
    await f.say("/help")
    assert f.last_text.startswith("我可以为您做这些")


async def test_sentence_mentioning_a_language_does_not_switch(harness: BotHarness) -> None:
    f = harness.follower("chatty", language="zh-hans")
    await f.say("I like English tea")
    assert f.last_text.startswith("抱歉")


def test_formatting_follows_the_locale() -> None:
    moment = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)
    tz = ZoneInfo("Asia/Shanghai")
    assert Formatter("en", tz).date(moment) == "Nov 22, 2026"
    assert Formatter("zh_Hans", tz).date(moment) == "2026年11月22日"
    assert Formatter("en").money(Decimal("1234.5"), "CNY") == "CN¥1,234.50"
    assert Formatter("zh_Hans").money(Decimal("1234.5"), "CNY") == "¥1,234.50"
    assert Formatter("en").number(1234567) == "1,234,567"


def test_catalogs_are_complete() -> None:
    assert check_catalogs() == []


def _copy_catalogs(tmp_path: Path) -> Path:
    target = tmp_path / "locales"
    shutil.copytree(LOCALES, target)
    return target


def test_check_fails_on_a_missing_translation(tmp_path: Path) -> None:
    target = _copy_catalogs(tmp_path)
    po = target / "zh_Hans" / "LC_MESSAGES" / "messages.po"
    text = po.read_text("utf-8")
    po.write_text(text.replace('msgstr "帮助"', 'msgstr ""'), "utf-8")
    assert check_catalogs(target) == ["zh_Hans: untranslated: 'Help'"]


def test_check_fails_on_a_fuzzy_or_absent_string(tmp_path: Path) -> None:
    target = _copy_catalogs(tmp_path)
    po = target / "en" / "LC_MESSAGES" / "messages.po"
    text = po.read_text("utf-8")
    text = text.replace('msgid "Help"', '#, fuzzy\nmsgid "Help"')
    text = text.replace('msgid "Which language do you prefer?"\nmsgstr "Which language do you prefer?"\n', "")
    po.write_text(text, "utf-8")
    problems = check_catalogs(target)
    assert "en: fuzzy: 'Help'" in problems
    assert any(p.startswith("en: missing: 'Which language do you prefer?'") for p in problems)


def test_i18n_check_command_fails_listing_the_string(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    target = _copy_catalogs(tmp_path)
    po = target / "zh_Hans" / "LC_MESSAGES" / "messages.po"
    po.write_text(po.read_text("utf-8").replace('msgstr "帮助"', 'msgstr ""'), "utf-8")
    assert main(["i18n", "check", "--locales", str(target)]) == 1
    assert "zh_Hans: untranslated: 'Help'" in capsys.readouterr().out
    assert main(["i18n", "check"]) == 0


def test_a_broken_catalog_stops_the_start(tmp_path: Path) -> None:
    target = _copy_catalogs(tmp_path)
    (target / "en" / "LC_MESSAGES" / "messages.po").write_text('garbage line\n', "utf-8")
    with pytest.raises(CatalogError):
        Catalogs(target)


@pytest.mark.parametrize(("words", "language", "expected"), [
    ("hello!", "en", "Hello! How can I help you today?"),
    ("你好", "zh-hans", "您好！今天有什么可以帮您？"),
    ("您好呀～", "en", "Hello! How can I help you today?"),  # the platform hint says English
])
async def test_greetings_are_answered_in_the_followers_language(
        harness: BotHarness, words: str, language: str, expected: str) -> None:
    f = harness.follower(f"greeter-{language}", language=language)
    await f.say(words)
    assert f.texts == [expected]
