"""The one text cutter (``bot.core.text``), tested once for every channel: in each platform's measure
(code points, UTF-8 bytes, UTF-16 units) and markup rule (none, HTML, WeChat's links).

Texts are built from tokens whose edges are the only clean places to cut: single characters (Latin,
CJK, spaces, line breaks, CJK punctuation), grapheme clusters (emoji ZWJ sequences, flags, keycaps,
variation selectors, skin tones, combining marks, Hangul jamo, CR LF) and markup (tags, entities,
links). So the tests know where a cut may land without asking the code under test.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.wechat.protocol import wechat_markup
from bot.core.text import BREAKS, characters, cut_text, html, plain, sanitize_text, split_text, utf8_bytes, utf16_units

MEASURES = {"characters": characters, "utf8": utf8_bytes, "utf16": utf16_units}

CLUSTERS = [
    "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466",  # family: a ZWJ sequence
    "\U0001F3F3\ufe0f\u200d\U0001F308",  # rainbow flag: variation selector and ZWJ
    "\U0001F1E8\U0001F1F3", "\U0001F1EF\U0001F1F5",  # flags: pairs of regional indicators
    "1\ufe0f\u20e3", "#\ufe0f\u20e3",  # keycaps
    "\u2764\ufe0f",  # heart with the emoji variation selector
    "\U0001F44D\U0001F3FD",  # thumbs up, skin tone
    "e\u0301", "a\u0308\u0301", "\u0915\u093f",  # combining marks, a Devanagari vowel sign
    "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F",  # Scotland: tag sequence
    "\u1100\u1161\u11a8",  # a Hangul syllable in conjoining jamo
    "\r\n",
]
BREAK_TOKENS = [" ", "\n", "。", "！", "？", "，", "、"]
MARKUP = {
    "plain": (plain, []),
    "html": (html, ["&amp;", "&#20320;", "&#x4F60;", "<b>", "</b>", '<a href="https://ex.example/a b?x=1&amp;y=2">']),
    "wechat": (wechat_markup, ["&amp;", "&lt;", "&#20320;", "<a href='weixin://x'>go</a>",
                               '<a href="https://mp.weixin.qq.com/s?a=1&amp;b=2">阅读 全文</a>']),
}
PLAIN_CHARS = st.sampled_from("abcXYZ019.-_éß") | st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)


def tokens_for(markup_tokens: list[str]) -> st.SearchStrategy[list[str]]:
    choices = [PLAIN_CHARS, st.sampled_from(CLUSTERS), st.sampled_from(BREAK_TOKENS)]
    if markup_tokens:
        choices.append(st.sampled_from(markup_tokens))
    return st.lists(st.one_of(*choices), max_size=400)


def edges(tokens: list[str]) -> set[int]:
    offsets, at = {0}, 0
    for token in tokens:
        at += len(token)
        offsets.add(at)
    return offsets


def break_ends(tokens: list[str]) -> set[int]:
    """Offsets right after a break token (a clean break: breaks inside markup tokens do not count)."""
    found, at = set(), 0
    for token in tokens:
        at += len(token)
        if token in BREAK_TOKENS or token == "\r\n":  # CR LF is one cluster, and a line break
            found.add(at)
    return found


CASES = [(m, k) for m in MEASURES for k in MARKUP]


@pytest.mark.parametrize(("measure_name", "markup_name"), CASES)
@settings(max_examples=120, deadline=None)
@given(data=st.data(), limit=st.integers(min_value=4, max_value=300))
def test_split_parts_fit_join_back_and_cut_only_between_tokens(measure_name: str, markup_name: str,
                                                                data: st.DataObject, limit: int) -> None:
    measure = MEASURES[measure_name]
    markup, markup_tokens = MARKUP[markup_name]
    tokens = data.draw(tokens_for(markup_tokens))
    text = "".join(tokens)

    parts = split_text(text, limit, measure=measure, markup=markup)

    assert "".join(parts) == text  # lossless
    assert all(measure(p) <= limit for p in parts)  # never over the limit
    if all(measure(t) <= limit for t in tokens):  # every token fits: none is ever split
        assert all(parts) or parts == [""]
        cuts, at = [], 0
        for part in parts[:-1]:
            at += len(part)
            cuts.append(at)
        assert set(cuts) <= edges(tokens)
        # A clean break is preferred: a part not ending at one has none in its second half.
        breaks = break_ends(tokens)
        start = 0
        for part, end in zip(parts, cuts, strict=False):
            if end not in breaks:
                half = start + (end - start) // 2
                assert not any(max(half, start + 1) <= b <= end for b in breaks), (part, end)
            start = end


@pytest.mark.parametrize(("measure_name", "markup_name"), CASES)
@settings(max_examples=120, deadline=None)
@given(data=st.data(), limit=st.integers(min_value=0, max_value=300))
def test_cut_fits_keeps_a_prefix_and_never_splits_a_token(measure_name: str, markup_name: str,
                                                          data: st.DataObject, limit: int) -> None:
    measure = MEASURES[measure_name]
    markup, markup_tokens = MARKUP[markup_name]
    tokens = data.draw(tokens_for(markup_tokens))
    text = "".join(tokens)

    result = cut_text(text, limit, measure=measure, markup=markup)

    assert measure(result) <= limit
    if result == text:
        assert measure(text) <= limit
        return
    kept = result.removesuffix("…")
    assert text.startswith(kept) and len(kept) in edges(tokens)
    assert result.endswith("…") or measure("…") > limit


@pytest.mark.parametrize("measure_name", MEASURES)
@settings(max_examples=100, deadline=None)
@given(data=st.data(), limit=st.integers(min_value=4, max_value=200))
def test_any_text_splits_losslessly_within_the_limit(measure_name: str, data: st.DataObject, limit: int) -> None:
    measure = MEASURES[measure_name]
    text = sanitize_text(data.draw(st.text(max_size=600)))

    parts = split_text(text, limit, measure=measure)

    assert "".join(parts) == text and all(measure(p) <= limit for p in parts)


def test_split_prefers_a_paragraph_then_a_line_then_a_space_then_cjk_punctuation() -> None:
    assert split_text("a" * 6 + "\n\n" + "b" * 2 + "\n" + "c" * 4, 14) == ["a" * 6 + "\n\n", "bb\ncccc"]
    assert split_text("aaaa bbbb\ncc dd", 12) == ["aaaa bbbb\n", "cc dd"]
    assert split_text("我们每天营业。欢迎光临本店铺", 10) == ["我们每天营业。", "欢迎光临本店铺"]
    assert split_text("x" * 30, 10) == ["x" * 10] * 3  # no break at all: cut where the limit is
    assert BREAKS[:3] == ("\n\n", "\n", " ")


def test_measures_count_as_their_platforms_do() -> None:
    family = CLUSTERS[0]
    assert (characters(family), utf8_bytes(family), utf16_units(family)) == (7, 25, 11)
    assert (characters("你好"), utf8_bytes("你好"), utf16_units("你好")) == (2, 6, 2)


def test_a_cluster_longer_than_the_limit_is_cut_between_code_points_only_in_split() -> None:
    family = CLUSTERS[0]
    assert "".join(split_text(family, 4, measure=utf16_units)) == family
    assert cut_text("ab" + family, 6, measure=utf16_units, markup=plain) == "ab…"
    with pytest.raises(ValueError):
        split_text("\U0001F600", 1, measure=utf16_units)


def test_cut_leaves_markup_whole() -> None:
    assert cut_text("go <b>now</b>", 6) == "go …"
    assert cut_text("fish &amp; chips", 8) == "fish …"
    assert cut_text("1 < 2 and more", 8) == "1 < 2 a…"  # a bare "<" is prose, not a tag
