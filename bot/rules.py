"""Prompt-reply rules: the operator's YAML format, validation, and fast matching.

A rules file is validated as a whole before anything is written; a rule matched in one language
answers in the follower's locale.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.errors import RulesFileError
from bot.i18n import fold, locale_keys, pick_text, simplified_characters

log = logging.getLogger("engagebot.rules")

MAX_FILE_BYTES = 1024 * 1024
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class PromptRuleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(pattern=NAME_PATTERN)
    match: dict[str, list[str]]
    reply: dict[str, str]
    priority: int = Field(default=0, ge=-1000, le=1000)
    regex: bool = False

    @field_validator("match", "reply")
    @classmethod
    def _known_locales(cls, value: dict[str, Any]) -> dict[str, Any]:
        value = locale_keys(value)  # zh-hans, zh-HK... name catalogs too
        if not value:
            raise ValueError("must name at least one locale")
        return value

    @field_validator("match")
    @classmethod
    def _non_empty_patterns(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for locale, patterns in value.items():
            if not patterns or any(not p or not p.strip() for p in patterns):
                raise ValueError(f"{locale}: every match entry must be a non-empty string")
            if any(len(p) > 200 for p in patterns):
                raise ValueError(f"{locale}: a match entry is longer than 200 characters")
        return value

    @field_validator("reply")
    @classmethod
    def _non_empty_replies(cls, value: dict[str, str]) -> dict[str, str]:
        for locale, text in value.items():
            if not text.strip():
                raise ValueError(f"{locale}: the reply is empty")
            if len(text) > 4000:
                raise ValueError(f"{locale}: the reply is longer than 4000 characters")
        return value

    @model_validator(mode="after")
    def _regexes_compile(self) -> PromptRuleSpec:
        if self.regex:
            for locale, patterns in self.match.items():
                for p in patterns:
                    try:
                        re.compile(p)
                    except re.error as exc:
                        raise ValueError(f"match.{locale}: bad regular expression {p!r}: {exc}") from None
        return self


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


def describe_validation_error(exc: ValidationError, data: Any, list_key: str) -> str:
    """Name the item (by its name when it has one) and the field of the first few errors."""
    items = data.get(list_key) if isinstance(data, dict) else None
    lines = []
    for err in exc.errors()[:5]:
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int) and isinstance(items, list):
            item = items[loc[1]] if loc[1] < len(items) else None
            label = item.get("name") or item.get("slug") if isinstance(item, dict) else None
            field = ".".join(str(p) for p in loc[2:]) or "(item)"
            where = f"{list_key}[{loc[1]}]" + (f" ({label!r})" if label else "") + f" field {field}"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def read_yaml_file(path: str | Path) -> Any:
    """Read a small YAML file safely, or raise RulesFileError saying why."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise RulesFileError(f"{p}: larger than {MAX_FILE_BYTES} bytes")
        raw = p.read_bytes()
        return yaml.safe_load(raw.decode("utf-8"))
    except OSError as exc:
        raise RulesFileError(f"{p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise RulesFileError(f"{p}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise RulesFileError(f"{p}: not valid YAML: {exc}") from None


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
    keywords: tuple[str, ...]  # folded (bot.chinese.fold), all locales
    patterns: tuple[re.Pattern[str], ...]  # searched in the folded text too

    def matches(self, folded: str, text: str) -> bool:
        if any(k in folded for k in self.keywords):
            return True
        return any(p.search(text) or p.search(folded) for p in self.patterns)

    def reply_for(self, locale: str) -> str:
        """The reply in ``locale``; Chinese converted from the other script; else English, else any."""
        return pick_text(self.replies, locale)


def compile_rules(rows: Sequence[Any]) -> list[CompiledRule]:
    compiled = []
    for row in rows:
        entries = [p for patterns in row.match.values() for p in patterns]
        if row.regex:
            compiled.append(CompiledRule(row.name, row.priority, dict(row.reply), (),
                                         tuple(re.compile(simplified_characters(p), re.IGNORECASE) for p in entries)))
        else:
            compiled.append(CompiledRule(row.name, row.priority, dict(row.reply),
                                         tuple(fold(p) for p in entries), ()))
    compiled.sort(key=lambda r: (-r.priority, r.name))
    return compiled


class PromptRuleCache:
    """The rules in memory, refreshed from the database in the background every ``ttl`` seconds.

    Rules change rarely (an operator loads a file); reading them per message would cost a query on
    the hot path, and a second connection per message. ``ttl=0`` reads on every match (tests).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: float = 2.0) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self._rules: list[CompiledRule] | None = None
        self._refresher: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        from bot.storage.prompts import list_prompt_rules

        async with self.sessions() as session:
            self._rules = compile_rules(await list_prompt_rules(session))

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

    async def rules(self) -> list[CompiledRule]:
        if self._rules is None or self.ttl == 0:
            await self.refresh()
        assert self._rules is not None
        return self._rules

    async def match(self, text: str) -> CompiledRule | None:
        folded = fold(text)  # either Chinese script matches the other's keywords
        for rule in await self.rules():
            if rule.matches(folded, text):
                return rule
        return None
