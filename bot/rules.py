"""Prompt-reply rules: the operator's YAML format, validation, and fast matching.

A rules file is validated as a whole before anything is written; a rule matched in one language
answers in the follower's locale. Regular expressions are RE2 (google-re2), which runs in time
linear in the text: a rule like ``(a+)+$`` cannot stall the server on a crafted message. Keywords
of all rules are found in one pass over the text (an Aho-Corasick automaton), and the text is cut
to ``max_chars`` before matching.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.keywords import KeywordIndex, normalize_keyword
from bot.errors import RulesFileError, ValueRefusal
from bot.files import describe_validation_error
from bot.i18n import N_, locale_keys, pick_text, simplified_characters
from bot.storage.prompts import list_prompt_rules

log = logging.getLogger("engagebot.rules")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# How much of a message the rules look at: a keyword or pattern is meant for a question, not a book.
DEFAULT_MAX_CHARS = 2000


# RE2 runs in linear time, but the constant is the compiled program's size once its DFA cache
# overflows: a bounded repeat of '.' or of a Unicode class (``(.{0,100}){0,10}``, ``.{0,1000}``)
# makes thousands of instructions, and a message of 2,000 Chinese characters then took 0.1 to 0.5 s
# of the event loop per rule. Below this size the worst measured was a few ms; everyday patterns
# are well under it (``\bwhere\b.*\b(shop|store)\b``: 33, ``[\p{Han}]{2,20}``: 1,622).
MAX_PROGRAM_SIZE = 2000


def compile_pattern(pattern: str) -> Any:
    """Compile an operator's pattern with RE2, case-insensitive; raise ValueError saying why it cannot.

    RE2 has no backreferences or lookaround, and its ``\\b``, ``\\w`` and ``\\d`` are ASCII. A
    pattern whose program is larger than ``MAX_PROGRAM_SIZE`` is refused too (slow on every message).
    """
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the reason goes into our one-line error, not to stderr
    try:
        compiled = re2.compile(pattern, options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
        # The frame is translated for the console; the pattern and RE2's own words stay as they are.
        raise ValueRefusal(N_("bad regular expression {pattern} (RE2: {reason})"), pattern=repr(pattern),
                           reason=reason) from None
    size = max(compiled.programsize, compiled.reverseprogramsize)
    if size > MAX_PROGRAM_SIZE:
        raise ValueRefusal(N_("bad regular expression {pattern} (too complex: RE2 program size {size}, at most "
                              "{most}; a bounded repeat such as .{{0,1000}} is slow on every message, write .* or "
                              "a smaller bound)"), pattern=repr(pattern), size=size, most=MAX_PROGRAM_SIZE)
    return compiled


class PromptRuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=NAME_PATTERN)
    regex: bool = False  # before match: its validator needs it
    match: dict[str, list[str]]
    reply: dict[str, str]
    priority: int = Field(default=0, ge=-1000, le=1000)

    @field_validator("match", "reply")
    @classmethod
    def _known_locales(cls, value: dict[str, Any]) -> dict[str, Any]:
        value = locale_keys(value)  # zh-hans, zh-HK... name catalogs too
        if not value:
            raise ValueRefusal(N_("must name at least one locale"))  # the console translates it
        return value

    @field_validator("match")
    @classmethod
    def _non_empty_patterns(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        for locale, patterns in value.items():
            if not patterns or any(not p or not p.strip() for p in patterns):
                raise ValueRefusal(N_("{locale}: every match entry must be a non-empty string"), locale=locale)
            if any(len(p) > 200 for p in patterns):
                raise ValueRefusal(N_("{locale}: a match entry is longer than 200 characters"), locale=locale)
            if info.data.get("regex"):
                for p in patterns:
                    try:
                        compile_pattern(p)
                    except ValueError as exc:
                        raise ValueRefusal(N_("{locale}: {problem}"), locale=locale, problem=exc) from None
        return value

    @field_validator("reply")
    @classmethod
    def _non_empty_replies(cls, value: dict[str, str]) -> dict[str, str]:
        for locale, text in value.items():
            if not text.strip():
                raise ValueRefusal(N_("{locale}: the reply is empty"), locale=locale)
            if len(text) > 4000:
                raise ValueRefusal(N_("{locale}: the reply is longer than 4000 characters"), locale=locale)
        return value


class PromptRulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[PromptRuleSpec]

    @model_validator(mode="after")
    def _unique_names(self) -> PromptRulesFile:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} appears twice")
            seen.add(rule.name)
        return self


def parse_prompt_rules(data: Any, *, source: str = "rules file") -> PromptRulesFile:
    if not isinstance(data, dict):
        raise RulesFileError(f"{source}: expected a mapping with a 'rules' list")
    try:
        return PromptRulesFile.model_validate(data)
    except ValidationError as exc:
        raise RulesFileError(f"{source}: {describe_validation_error(exc, data, 'rules')}") from None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    priority: int
    replies: dict[str, str]
    keywords: tuple[str, ...]  # as written, all locales
    patterns: tuple[Any, ...]  # RE2, case-insensitive, Chinese in Simplified (searched in the folded text too)

    def reply_for(self, locale: str) -> str:
        """The reply in ``locale``; Chinese converted from the other script; else English, else any."""
        return pick_text(self.replies, locale)


def compile_rules(rows: Sequence[Any], *, refused: set[tuple[str, str]] | None = None) -> list[CompiledRule]:
    """Compile stored rules, best first (priority, then name).

    A stored pattern RE2 cannot take (saved before engagebot used RE2) is left out and logged once
    per rule and pattern (``refused`` remembers them); the rule's other patterns still work.
    """
    compiled = []
    for row in rows:
        entries = [p for patterns in row.match.values() for p in patterns]
        if row.regex:
            patterns = []
            for entry in entries:
                try:
                    patterns.append(compile_pattern(simplified_characters(entry)))
                except ValueError as exc:
                    if refused is None or (row.name, entry) not in refused:
                        log.warning("prompt rule pattern refused", extra={"rule": row.name, "reason": str(exc)})
                        if refused is not None:
                            refused.add((row.name, entry))
            compiled.append(CompiledRule(row.name, row.priority, dict(row.reply), (), tuple(patterns)))
        else:
            compiled.append(CompiledRule(row.name, row.priority, dict(row.reply), tuple(entries), ()))
    compiled.sort(key=lambda r: (-r.priority, r.name))
    return compiled


class RuleMatcher:
    """The rules, ready to match: one automaton for every keyword, RE2 patterns tried in rank order."""

    def __init__(self, rules: Sequence[CompiledRule], *, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.rules = list(rules)
        self.max_chars = max_chars
        self._keywords: KeywordIndex[CompiledRule] = KeywordIndex(
            (keyword, rank, rule) for rank, rule in enumerate(self.rules) for keyword in rule.keywords)
        self._regex_rules = [(rank, rule) for rank, rule in enumerate(self.rules) if rule.patterns]

    def match(self, text: str) -> CompiledRule | None:
        """The best-ranked rule matching the first ``max_chars`` characters of ``text``, or None."""
        text = text[:self.max_chars]
        folded = normalize_keyword(text)  # either Chinese script matches the other's keywords and patterns
        found = self._keywords.best(folded, normalized=True)
        best_rank = found[0] if found is not None else len(self.rules)
        for rank, rule in self._regex_rules:
            if rank >= best_rank:
                break
            if any(p.search(text) or p.search(folded) for p in rule.patterns):
                return rule
        return found[1] if found is not None else None


class PromptRuleCache:
    """The rules in memory, refreshed from the database in the background every ``ttl`` seconds.

    Rules change rarely (an operator loads a file); reading them per message would cost a query on
    the hot path, and a second connection per message. ``ttl=0`` reads on every match (tests). The
    matcher is rebuilt only when the stored rules changed.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 2.0,
                 max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.max_chars = max_chars
        self._matcher: RuleMatcher | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._refused: set[tuple[str, str]] = set()
        self._refresher: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        async with self.sessions() as session:
            rows = await list_prompt_rules(session)
        fingerprint = tuple((r.name, r.updated_at) for r in rows)
        if self._matcher is None or fingerprint != self._fingerprint:
            self._matcher = RuleMatcher(compile_rules(rows, refused=self._refused), max_chars=self.max_chars)
            self._fingerprint = fingerprint

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            try:
                await self.refresh()
            except Exception:  # keep serving the last good rules through a database hiccup
                log.exception("prompt rules refresh failed")

    async def start(self) -> None:
        await self.refresh()
        if self.ttl > 0 and self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_forever(), name="prompt-rules-refresh")

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            await asyncio.gather(self._refresher, return_exceptions=True)
            self._refresher = None

    async def matcher(self) -> RuleMatcher:
        if self._matcher is None or self.ttl == 0:
            await self.refresh()
        assert self._matcher is not None
        return self._matcher

    async def match(self, text: str) -> CompiledRule | None:
        return (await self.matcher()).match(text)
