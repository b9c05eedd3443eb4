"""Text hygiene shared by the router and adapters, and the one text cutter every channel uses.

Platforms measure length differently (code points, UTF-8 bytes, UTF-16 code units) and some carry
markup. :func:`split_text` and :func:`cut_text` take both as arguments and never cut inside a
grapheme cluster (Unicode's extended clusters, the ``regex`` module's ``\\X``: combining marks,
emoji ZWJ sequences, flags, keycaps, variation selectors, skin tones, Hangul syllables, CR LF)
nor inside a markup span the platform's rule names (an HTML tag or entity, a WeChat ``<a>`` link).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import regex

_SURROGATES = re.compile(r"[\ud800-\udfff]")
_GRAPHEME = regex.compile(r"\X", regex.DOTALL)

# How a platform counts length. Each is additive: the measure of a concatenation is the sum.
Measure = Callable[[str], int]
# A platform's markup rule: the spans (start, end) of ``text`` that must not be cut inside.
Markup = Callable[[str], Iterable[tuple[int, int]]]


def characters(text: str) -> int:
    """Length in code points (Python's ``len``)."""
    return len(text)


def utf8_bytes(text: str) -> int:
    """Length in UTF-8 bytes (WeChat)."""
    return len(text.encode("utf-8", "surrogatepass"))


def utf16_units(text: str) -> int:
    """Length in UTF-16 code units (Telegram): a code point outside the BMP counts two."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def plain(text: str) -> Iterable[tuple[int, int]]:
    """No markup: every grapheme boundary is a place to cut."""
    return ()


_HTML_SPANS = re.compile(r"<[^<>]*>|&#?[A-Za-z0-9]{1,31};")


def html(text: str) -> Iterable[tuple[int, int]]:
    """HTML-ish text: never inside a tag (``<a href=...>``) or an entity (``&amp;``)."""
    return (m.span() for m in _HTML_SPANS.finditer(text))


# Clean places to break a long text, best first; each is cut after (parts keep every character).
BREAKS = ("\n\n", "\n", " ", "。", "！", "？", "；", "，", "、")


def sanitize_text(text: str) -> str:
    """Make text storable everywhere: join valid surrogate pairs, replace lone ones and NULs with U+FFFD."""
    if _SURROGATES.search(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where ``text`` may be cut: grapheme boundaries outside markup, and the measure up to each."""

    bounds: list[int]  # code-point offsets of the grapheme boundaries, 0 and len(text) included
    sizes: list[int]  # sizes[k]: the measure of text[:bounds[k]]
    clean: list[bool]  # clean[k]: bounds[k] is outside every markup span

    @classmethod
    def of(cls, text: str, measure: Measure, markup: Markup) -> _Layout:
        bounds, sizes = [0], [0]
        for match in _GRAPHEME.finditer(text):
            bounds.append(match.end())
            sizes.append(sizes[-1] + measure(match.group()))
        clean = [True] * len(bounds)
        spans = sorted(s for s in markup(text) if s[1] - s[0] > 1)
        if spans:
            k = 0
            for start, end in spans:
                while k < len(bounds) and bounds[k] <= start:
                    k += 1
                j = k
                while j < len(bounds) and bounds[j] < end:
                    clean[j] = False
                    j += 1
        return cls(bounds, sizes, clean)

    def fits(self, first: int, limit: int) -> int:
        """The last boundary index whose text from ``bounds[first]`` measures at most ``limit``."""
        lo, hi = first, len(self.bounds) - 1
        budget = self.sizes[first] + limit
        while lo < hi:  # the sizes grow with k
            mid = (lo + hi + 1) // 2
            if self.sizes[mid] <= budget:
                lo = mid
            else:
                hi = mid - 1
        return lo


def _next_cut(text: str, layout: _Layout, first: int, limit: int, breaks: Sequence[str],
              measure: Measure) -> tuple[int, int]:
    """Where the part starting at boundary ``first`` ends: (boundary index, code-point offset).

    The last clean boundary that fits, preferring one after a break in the second half of the part;
    when no clean boundary fits (one cluster or markup span longer than ``limit``), the last
    grapheme boundary, else the last code point that fits: the limit always holds.
    """
    last = layout.fits(first, limit)
    start = layout.bounds[first]
    clean = [k for k in range(last, first, -1) if layout.clean[k]] if last > first else []
    if clean:
        if breaks and last < len(layout.bounds) - 1:
            end = layout.bounds[clean[0]]
            half = start + (end - start) // 2
            positions = {layout.bounds[k]: k for k in clean if layout.bounds[k] >= half}
            for sep in breaks:
                hi = end
                while (found := text.rfind(sep, max(start, half - len(sep)), hi)) != -1:
                    k = positions.get(found + len(sep))
                    if k is not None:
                        return k, layout.bounds[k]
                    hi = found + len(sep) - 1
        return clean[0], layout.bounds[clean[0]]
    if last > first:  # no clean boundary fits: cut through markup, never through a cluster
        return last, layout.bounds[last]
    # A single cluster longer than the limit: cut it between code points (never inside one).
    cluster_end = layout.bounds[first + 1]
    end = start
    while end < cluster_end and measure(text[start:end + 1]) <= limit:
        end += 1
    if end == start:
        raise ValueError(f"limit {limit} is too small for the character {text[start]!r}")
    return first, end


def split_text(text: str, limit: int, *, measure: Measure = characters, markup: Markup = plain,
               breaks: Sequence[str] = BREAKS) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` (in ``measure``); joined, they give ``text`` back.

    Each cut is at a grapheme boundary outside markup, after the best break (``breaks``, best first)
    in the second half of the part when there is one. A cluster or span longer than the limit is
    cut through, as little as possible, so that the limit always holds.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    if measure(text) <= limit:
        return [text]
    layout = _Layout.of(text, measure, markup)
    parts: list[str] = []
    first, start = 0, 0
    while start < len(text):
        if layout.sizes[-1] - layout.sizes[first] <= limit and start == layout.bounds[first]:
            parts.append(text[start:])
            break
        if start != layout.bounds[first]:  # inside a cluster cut through: finish it first
            end = start
            cluster_end = layout.bounds[first + 1]
            while end < cluster_end and measure(text[start:end + 1]) <= limit:
                end += 1
            if end == start:
                raise ValueError(f"limit {limit} is too small for the character {text[start]!r}")
            parts.append(text[start:end])
            start = end
            if start == cluster_end:
                first += 1
            continue
        k, end = _next_cut(text, layout, first, limit, breaks, measure)
        parts.append(text[start:end])
        first, start = k, end
    return parts


def cut_text(text: str, limit: int, *, measure: Measure = characters, markup: Markup = html,
             ellipsis: str = "…") -> str:
    """Cut ``text`` to at most ``limit`` (in ``measure``), ending with ``ellipsis`` when cut.

    The cut is the longest prefix that ends at a grapheme boundary outside markup, and the ellipsis
    counts toward the limit (left out when the limit cannot hold it). When no such prefix fits, the
    result is the ellipsis alone: a cluster or a markup span is never split.
    """
    if limit < 0:
        raise ValueError("limit must not be negative")
    if measure(text) <= limit:
        return text
    if measure(ellipsis) > limit:
        ellipsis = ""
    budget = limit - measure(ellipsis)
    layout = _Layout.of(text, measure, markup)
    last = layout.fits(0, budget)
    while last > 0 and not layout.clean[last]:
        last -= 1
    return text[:layout.bounds[last]] + ellipsis
