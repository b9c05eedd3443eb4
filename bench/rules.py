"""Prompt-rule matching: one automaton pass vs a loop over the rules, and RE2 vs Python's ``re``.

    python bench/rules.py [--rules 1000] [--messages 20000]

Keywords: the baseline is the matcher engagebot had before (for each rule, best first: is any of
its casefolded keywords in the casefolded text?), run on the same rules and messages in the same
run. Patterns: the shipped example ``\\bwhere\\b.*\\b(shop|store)\\b`` and the attack ``(a+)+$`` on
crafted messages, with RE2 and with ``re`` (the attack under ``re`` is timed on a short input only:
each extra character doubles its time).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.rules import DEFAULT_MAX_CHARS, RuleMatcher, compile_pattern, compile_rules

WORDS = ["hours", "open", "delivery", "price", "menu", "parking", "wifi", "booking", "coupon", "refund"]
HAN = ["营业", "外卖", "价格", "菜单", "停车", "预订", "优惠", "退款", "地址", "会员"]


def make_rules(n: int) -> list[SimpleNamespace]:
    rng = random.Random(7)
    rows = []
    for i in range(n):
        en = [f"{rng.choice(WORDS)}{i}", f"{rng.choice(WORDS)} {rng.choice(WORDS)} {i}"]
        zh = [f"{rng.choice(HAN)}{i}"]
        rows.append(SimpleNamespace(name=f"rule-{i:04d}", priority=rng.randint(-5, 5), regex=False,
                                    match={"en": en, "zh_Hans": zh}, reply={"en": "ok"}))
    return rows


def make_messages(n: int, rules: int) -> list[str]:
    rng = random.Random(11)
    texts = []
    for i in range(n):
        match i % 4:
            case 0:  # no rule matches: the worst case for a loop, which tries every rule
                texts.append("hello, what can you do for me today? " * rng.randint(1, 5))
            case 1:
                texts.append(f"do you have {rng.choice(WORDS)}{rng.randrange(rules)} tonight?")
            case 2:
                texts.append(f"请问{rng.choice(HAN)}{rng.randrange(rules)}怎么样")
            case _:
                texts.append("x" * 1500 + f" {rng.choice(WORDS)}{rng.randrange(rules)}")
    return texts


def loop_matcher(rows: list[SimpleNamespace]):  # type: ignore[no-untyped-def]
    """The matcher before the automaton: a loop over the rules, best first."""
    ordered = sorted(rows, key=lambda r: (-r.priority, r.name))
    compiled = [(r, tuple(k.casefold() for ks in r.match.values() for k in ks)) for r in ordered]

    def match(text: str):  # type: ignore[no-untyped-def]
        folded = text.casefold()
        for rule, keywords in compiled:
            if any(k in folded for k in keywords):
                return rule
        return None

    return match


def per_second(fn, texts: list[str]) -> tuple[float, list[str | None]]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    found = [getattr(fn(t), "name", None) for t in texts]
    return len(texts) / (time.perf_counter() - started), found


def time_once(fn, *args, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn(*args)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()

    rows = make_rules(args.rules)
    texts = make_messages(args.messages, args.rules)
    started = time.perf_counter()
    matcher = RuleMatcher(compile_rules(rows), max_chars=DEFAULT_MAX_CHARS)
    build = time.perf_counter() - started
    baseline, expected = per_second(loop_matcher(rows), texts)
    ours, found = per_second(matcher.match, texts)
    assert found == expected, "the automaton and the loop disagree"
    print(f"keywords: {args.rules} rules ({len(matcher._keywords)} keywords), {args.messages} messages; "
          f"automaton built in {build * 1000:.1f} ms")
    print(f"  loop over rules (baseline)  {baseline:>10,.0f} messages/s")
    print(f"  one automaton pass          {ours:>10,.0f} messages/s   x{ours / baseline:.1f}")

    address = r"\bwhere\b.*\b(shop|store)\b"
    long_text = "where " * 10_000  # 60 KB, no shop: the backtracking worst case for re
    python_re = re.compile(address, re.IGNORECASE)
    rx = compile_pattern(address)
    print(f"pattern {address!r} on a 60 KB message:")
    print(f"  Python re (baseline)        {time_once(python_re.search, long_text, repeat=1) * 1000:>10.1f} ms")
    print(f"  RE2, whole message          {time_once(rx.search, long_text) * 1000:>10.3f} ms")
    capped = time_once(rx.search, long_text[:DEFAULT_MAX_CHARS])
    print(f"  RE2, capped at {DEFAULT_MAX_CHARS} chars    {capped * 1000:>10.3f} ms")

    attack = r"(a+)+$"
    python_re = re.compile(attack)
    rx = compile_pattern(attack)
    short, crafted = "a" * 22 + "!", "a" * 40 + "!"
    slow = time_once(python_re.search, short, repeat=1)
    print(f"pattern {attack!r}:")
    print(f"  Python re, {len(short)} characters   {slow * 1000:>10.1f} ms   "
          f"(x2 per character: about {slow * 2 ** 18 / 3600:,.0f} h at {len(crafted)})")
    print(f"  RE2, {len(crafted)} characters         {time_once(rx.search, crafted) * 1000:>10.3f} ms")


if __name__ == "__main__":
    main()
