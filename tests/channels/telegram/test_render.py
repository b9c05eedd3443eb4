"""Splitting, cutting and keyboards in Telegram's terms (UTF-16 lengths, 64-byte callback data)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot import Button
from bot.channels.telegram.render import (
    callback_data_for,
    cut_to,
    deep_link,
    keyboard,
    split_message,
    utf16_len,
)


def test_split_prefers_paragraphs_and_keeps_every_word():
    text = "a" * 3000 + "\n\n" + "b" * 3000
    assert split_message(text) == ["a" * 3000, "b" * 3000]
    assert split_message("short") == ["short"]


def test_split_counts_utf16_and_never_halves_an_emoji_or_a_flag():
    emoji = "\U0001F600"  # two UTF-16 units
    parts = split_message(emoji * 3000)
    assert [utf16_len(p) for p in parts] == [4096, 1904]
    flags = "\U0001F1E8\U0001F1F3" * 1500  # 🇨🇳: two regional indicators, four units
    parts = split_message(flags)
    assert all(utf16_len(p) <= 4096 and len(p) % 2 == 0 for p in parts) and "".join(parts) == flags
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # one ZWJ sequence, 8 units
    parts = split_message("x" + family * 600)
    assert "".join(parts) == "x" + family * 600
    assert all(not p.startswith("\u200d") and not p.endswith("\u200d") for p in parts)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12000),
       st.integers(min_value=50, max_value=4096))
def test_split_parts_fit_and_lose_only_whitespace(text, limit):
    parts = split_message(text, limit)
    assert all(utf16_len(p) <= limit for p in parts)
    assert "".join("".join(p.split()) for p in parts) == "".join(text.split())


def test_cut_to_counts_utf16_and_adds_an_ellipsis():
    assert cut_to("abc", 1024) == "abc"
    cut = cut_to("\U0001F600" * 600, 1024)
    assert utf16_len(cut) <= 1024 and cut.endswith("…") and "\ud83d" not in cut


def test_callback_data_over_64_bytes_becomes_a_stable_token():
    assert callback_data_for("help") == "help"
    long = "claim:" + "中" * 30  # 96 bytes
    token = callback_data_for(long)
    assert token == callback_data_for(long) != callback_data_for(long + "x")
    assert token.startswith("#~") and len(token.encode()) <= 64
    assert callback_data_for("") .startswith("#~")  # Telegram needs at least one byte


def test_keyboard_puts_short_labels_side_by_side():
    markup = keyboard([Button("Help", "help"), Button("中文 / English", "lang"),
                       Button("A rather long label for one button", "x")])
    assert [[b.text for b in row] for row in markup.inline_keyboard] == [
        ["Help", "中文 / English"], ["A rather long label for one button"]]


def test_deep_link_only_for_valid_payloads():
    assert deep_link("brand_bot", "spring-2025_A") == "https://t.me/brand_bot?start=spring-2025_A"
    assert deep_link("brand_bot", "no spaces") is None and deep_link("brand_bot", "x" * 65) is None
