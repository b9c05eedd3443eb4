"""What localization costs per message: negotiation, keyword folding, operator text in zh_Hant.

    python bench/i18n.py [--rounds 20000]

The baseline is the negotiation before zh_Hant (a regex for any Han character), in the same run: the
ratio says what judging the script (hanzidentifier) and folding (OpenCC t2s) add to a message.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.chinese import _convert
from bot.i18n import fold, negotiation, pick_text

TEXTS = ["hello", "你好", "what are your hours?", "請問營業時間是幾點？", "营业时间", "👍", "こんにちは",
         "我要优惠 coupon", "olá, frete?", "12345"]
HINTS = [None, "zh-HK", "pt-br", "en-US", None, "zh_CN", None, "ja", None, "fr"]
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def baseline(hint: str | None, text: str, default: str = "en") -> str:
    """The old rule: a catalog hint, else any Han character means zh_Hans, else the default."""
    if hint and hint.lower().startswith("zh"):
        return "zh_Hans"
    if hint and hint.lower().startswith("en"):
        return "en"
    return "zh_Hans" if HAN.search(text) else default


def per_call_us(rounds: int, fn: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for i in range(rounds):
        fn(i)
    return (time.perf_counter() - started) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20000)
    rounds = parser.parse_args().rounds
    n = len(TEXTS)
    texts = {"en": "Spring sale! Every store.", "zh_Hans": "春季促销，软件会员专享，所有门店适用。"}

    base = per_call_us(rounds, lambda i: baseline(HINTS[i % n], TEXTS[i % n]))
    nego = per_call_us(rounds, lambda i: negotiation(chosen=None, hint=HINTS[i % n], text=TEXTS[i % n],
                                                     default="zh_Hans"))
    folded = per_call_us(rounds, lambda i: fold(TEXTS[i % n]))
    cached = per_call_us(rounds, lambda i: pick_text(texts, "zh_Hant"))
    uncached = per_call_us(min(rounds, 5000), lambda i: _convert.__wrapped__("s2hk", texts["zh_Hans"] + str(i)))
    print(f"old negotiation (baseline)       {base:8.2f} us/message")
    print(f"negotiation (script, hints)      {nego:8.2f} us/message  ({nego / base:.1f}x the baseline)")
    print(f"fold (casefold + OpenCC t2s)     {folded:8.2f} us/message")
    print(f"zh_Hant text, conversion cached  {cached:8.2f} us")
    print(f"zh_Hant text, OpenCC s2hk        {uncached:8.2f} us (a 20-character text, uncached)")


if __name__ == "__main__":
    main()
