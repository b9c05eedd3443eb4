"""What the app plugs in for handlers: ``Context.services``.

Built-in services are typed fields; an extension adds its own keyed by its type and finds it the
same way (``services.add(MyCatalog(...))``, then ``services.get(MyCatalog)``). Core names only
protocols here: the implementations live above it (``bot.rules``, ``bot.offers``...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")


class PromptRule(Protocol):
    """An operator's prompt-reply rule that matched (``bot.rules.CompiledRule``)."""

    def reply_for(self, locale: str) -> str: ...


class PromptRules(Protocol):
    """The operator's prompt-reply rules (``bot.rules.PromptRuleCache``)."""

    async def match(self, text: str) -> PromptRule | None: ...


class OfferKeywords(Protocol):
    """Whether a text names a running offer's keyword on a channel (``bot.offers.index.OfferKeywordMatcher``).

    For answers outside a conversation (a public comment): they invite to a DM rather than claim.
    """

    async def matches(self, text: str, channel: str) -> bool: ...


@dataclass(slots=True)
class Services:
    """Typed fields for the built-in services; ``add``/``get`` keyed by type for anyone else's."""

    prompt_rules: PromptRules | None = None
    offer_keywords: OfferKeywords | None = None
    _by_type: dict[type, object] = field(default_factory=dict, repr=False)

    def add(self, service: object, *, as_type: type | None = None) -> None:
        """Register ``service`` under its own type (or ``as_type``, a base or protocol it fulfils)."""
        kind = as_type if as_type is not None else type(service)
        if not isinstance(service, kind) and not getattr(kind, "_is_protocol", False):
            raise TypeError(f"{service!r} is not a {kind.__name__}")
        self._by_type[kind] = service

    def get(self, kind: type[T]) -> T | None:
        """The service registered under ``kind``, or None."""
        return self._by_type.get(kind)  # type: ignore[return-value]  # add() checked the type

    def require(self, kind: type[T]) -> T:
        """The service registered under ``kind``; LookupError if there is none."""
        found = self.get(kind)
        if found is None:
            raise LookupError(f"no {kind.__name__} service: add one with services.add(...)")
        return found

    def get_or_add(self, kind: type[T], factory: Callable[[], T]) -> T:
        """The service registered under ``kind``, made by ``factory`` and added on first use."""
        found = self.get(kind)
        if found is None:
            found = factory()
            self.add(found, as_type=kind)
        return found
