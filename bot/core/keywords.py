"""Keyword matching: one normalization for keywords and text, and one pass over the text for many keywords.

A keyword matches when it appears anywhere in the message ("contains"), whatever the case or the
width of the characters (full-width Ｈｏｕｒｓ is hours) or the Chinese script (優惠 is 优惠). :func:`normalize_keyword` is the only place
that says what "the same text" means; everything that compares keywords (handlers' ``keywords=``,
prompt rules, promotions) goes through it, so a new equivalence (another script of the same
language, say) is added there once.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Generic, TypeVar

import ahocorasick

from bot.i18n import fold

T = TypeVar("T")


def normalize_keyword(text: str) -> str:
    """The form in which keywords and messages are compared: NFKC (full width to ASCII), casefolded,
    Chinese in Simplified characters (a follower typing 優惠 matches a keyword written 优惠)."""
    return fold(unicodedata.normalize("NFKC", text))


class KeywordIndex(Generic[T]):
    """Many keywords, each standing for a value with a rank; find the best-ranked one present in a text.

    An Aho-Corasick automaton (pyahocorasick) finds every keyword in one pass over the text, so
    matching costs the length of the text, not the number of keywords times it.
    """

    def __init__(self, entries: Iterable[tuple[str, int, T]]) -> None:
        """Index ``(keyword, rank, value)`` entries; a lower rank wins when several keywords are present."""
        self._automaton = ahocorasick.Automaton()
        by_key: dict[str, list[tuple[int, T]]] = {}
        for keyword, rank, value in entries:
            key = normalize_keyword(keyword)
            if key:
                by_key.setdefault(key, []).append((rank, value))
        for key, ranked in by_key.items():
            # Every value of a keyword, best first (several rules or promotions may share one).
            self._automaton.add_word(key, tuple(sorted(ranked, key=lambda r: r[0])))
        self._empty = not by_key
        if by_key:
            self._automaton.make_automaton()

    def __len__(self) -> int:
        return len(self._automaton)

    def best(self, text: str, *, normalized: bool = False) -> tuple[int, T] | None:
        """The lowest-ranked ``(rank, value)`` whose keyword appears in ``text``, or None."""
        if self._empty:
            return None
        haystack = text if normalized else normalize_keyword(text)
        found: tuple[int, T] | None = None
        for _end, ranked in self._automaton.iter(haystack):
            if found is None or ranked[0][0] < found[0]:
                found = ranked[0]
        return found

    def all(self, text: str, *, normalized: bool = False) -> list[T]:
        """Every value with a keyword present in ``text``, in rank order, each once."""
        if self._empty:
            return []
        haystack = text if normalized else normalize_keyword(text)
        hits: dict[int, T] = {}
        for _end, ranked in self._automaton.iter(haystack):
            for rank, value in ranked:
                hits.setdefault(rank, value)
        return [hits[rank] for rank in sorted(hits)]
