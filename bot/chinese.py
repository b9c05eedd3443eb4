"""Chinese scripts: which one a text is written in, converting between them, folding for matching.

Simplified (zh_Hans) and Traditional (zh_Hant) Chinese are one language in two scripts. The
operator may write a text in one of them only; a reader of the other sees it converted with OpenCC
(Simplified to Hong Kong Traditional, ``s2hk``, since Hong Kong is where most of our Traditional
readers are; Hong Kong Traditional back to Simplified, ``hk2s``). Keywords are compared folded to
Simplified (``t2s``, character by character), so 優惠 matches a rule written 优惠 and the reverse.
Which script a text uses comes from ``hanzidentifier`` (CC-CEDICT's character lists).

This module is a leaf of ``bot.i18n`` and imports nothing of ours.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

import hanzidentifier
import opencc

HANS = "zh_Hans"
HANT = "zh_Hant"

# CJK Unified Ideographs with extensions A to H, and the compatibility block.
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# Longer texts are judged by their first characters: enough to tell, bounded in cost.
_JUDGED_CHARACTERS = 400


@lru_cache(maxsize=4)
def _converter(config: str) -> opencc.OpenCC:
    return opencc.OpenCC(config)


@lru_cache(maxsize=4096)
def _convert(config: str, text: str) -> str:
    return _converter(config).convert(text)


def to_traditional(text: str) -> str:
    """Simplified Chinese written as Hong Kong Traditional (other text passes unchanged)."""
    return _convert("s2hk", text) if HAN.search(text) else text


def to_simplified(text: str) -> str:
    """Traditional Chinese (Hong Kong or Taiwan) written as Simplified."""
    return _convert("hk2s", text) if HAN.search(text) else text


def convert_to(text: str, script_locale: str) -> str:
    """Write ``text`` in the script of ``script_locale`` (``zh_Hans`` or ``zh_Hant``)."""
    return to_traditional(text) if script_locale == HANT else to_simplified(text)


def simplified_characters(text: str) -> str:
    """Each Traditional character replaced by its Simplified one (``t2s``), with no phrase
    substitution: a keyword matches inside a longer message exactly where its characters appear.
    Regular expressions survive it (only Han characters change)."""
    return _convert("t2s", text) if HAN.search(text) else text


def fold(text: str) -> str:
    """The form keywords and messages are compared in: case-folded, Chinese in Simplified."""
    return simplified_characters(text.casefold())


def han_script(text: str) -> str | None:
    """``zh_Hant`` or ``zh_Hans`` when the Han characters of ``text`` show which; None when they
    are written the same in both (你好, 中文) or there are none.

    A text mixing both is judged by its characters found in one script only (the majority).
    """
    sample = "".join(HAN.findall(text[: _JUDGED_CHARACTERS * 4]))[:_JUDGED_CHARACTERS]
    if not sample:
        return None
    kind = hanzidentifier.identify(sample)
    if kind == hanzidentifier.TRADITIONAL:
        return HANT
    if kind == hanzidentifier.SIMPLIFIED:
        return HANS
    if kind == hanzidentifier.MIXED:
        traditional = simplified = 0
        for ch, n in Counter(sample).items():
            is_t, is_s = hanzidentifier.is_traditional(ch), hanzidentifier.is_simplified(ch)
            traditional += n if is_t and not is_s else 0
            simplified += n if is_s and not is_t else 0
        if traditional != simplified:
            return HANT if traditional > simplified else HANS
    return None
