"""Handler registration and matching: by kind, command, per-locale keywords, regex, state, priority."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from types import EllipsisType

from .context import Context
from .inbound import Inbound, Kind
from .keywords import normalize_keyword
from .reply import Reply

HandlerResult = Sequence[Reply] | Reply | None
Handler = Callable[[Inbound, Context], Awaitable[HandlerResult]]
Predicate = Callable[[Inbound, Context], bool]
# A read-only stand-in for a handler's own decision, for dry runs: what the handler would answer about
# (a promotion, a rule), or None when it would pass the message on. It writes nothing.
Probe = Callable[[Inbound, Context], Awaitable[object | None]]

_order = count()


@dataclass(slots=True)
class HandlerObject:
    """A handler with what it answers to. A handler returning None passes the message on."""

    callback: Handler
    kinds: frozenset[Kind]
    commands: frozenset[str] = frozenset()
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pattern: re.Pattern[str] | None = None
    states: frozenset[str | None] | None = None
    priority: int = 0
    when: Predicate | None = None
    answers: str | None = None  # what a dry run reports as answering (offer, handoff, help, rule...)
    probe: Probe | None = None
    # Everything it changes goes through ``ctx`` (its replies, ``ctx.follower``, ``ctx.session``): it may
    # run before the request's replay check is settled (bot/core/replay_check.py). Else it runs after.
    ctx_only: bool = False
    order: int = field(default_factory=lambda: next(_order))

    @property
    def name(self) -> str:
        return getattr(self.callback, "__qualname__", repr(self.callback))

    def matches(self, msg: Inbound, ctx: Context) -> bool:
        if msg.kind not in self.kinds:
            return False
        if self.states is not None and ctx.state not in self.states:
            return False
        if self.commands and msg.command not in self.commands:
            return False
        if self.keywords:
            folded = normalize_keyword(msg.text)
            # Any locale's keyword matches; the reply still comes in the follower's own locale.
            if not any(k in folded for words in self.keywords.values() for k in words):
                return False
        if self.pattern is not None and not self.pattern.search(msg.text):
            return False
        return self.when is None or self.when(msg, ctx)


class Router:
    """A named group of handlers; routers include others, and the dispatcher flattens them.

    Register with the decorator, which returns the function unchanged::

        router = Router("welcome")

        @router.on(Kind.FOLLOW)
        async def greet(msg: Inbound, ctx: Context) -> list[Reply]: ...
    """

    def __init__(self, name: str, *, ctx_only: bool = False) -> None:
        self.name = name
        self.ctx_only = ctx_only
        self._handlers: list[HandlerObject] = []
        self._children: list[Router] = []

    def on(
        self,
        *kinds: Kind,
        command: str | Iterable[str] | None = None,
        keywords: Mapping[str, Iterable[str]] | None = None,
        regex: str | re.Pattern[str] | None = None,
        state: str | None | Iterable[str | None] | EllipsisType = ...,
        priority: int = 0,
        when: Predicate | None = None,
        answers: str | None = None,
        probe: Probe | None = None,
        ctx_only: bool | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register a handler. Without ``kinds``, commands match COMMAND and keywords/regex match TEXT.

        ``state=None`` matches only followers with no conversation state; leaving it out matches any.
        ``answers`` names the handler for dry runs (``first_taker``); a handler that may pass a matched
        message on (returning None) gives a ``probe`` deciding the same way without writing anything.
        ``ctx_only`` (default: the router's): the handler changes nothing but through ``ctx`` (no HTTP
        call of its own, no database but ``ctx.session``), so it may run before a signed request's replay
        check is settled; a refused request then stores and sends none of it. Else it runs after.
        """
        commands = frozenset([command] if isinstance(command, str) else (command or ()))
        commands = frozenset(c.lstrip("/").lower() for c in commands)
        if not kinds:
            if commands:
                kinds = (Kind.COMMAND,)
            elif keywords or regex:
                kinds = (Kind.TEXT,)
            else:
                kinds = tuple(Kind)
        folded = {loc: tuple(normalize_keyword(w) for w in words) for loc, words in (keywords or {}).items()}
        pattern = re.compile(regex, re.IGNORECASE) if isinstance(regex, str) else regex
        if state is ...:
            states = None
        elif state is None or isinstance(state, str):
            states = frozenset([state])
        else:
            states = frozenset(state)

        def decorator(callback: Handler) -> Handler:
            self._handlers.append(HandlerObject(
                callback=callback, kinds=frozenset(kinds), commands=commands, keywords=folded,
                pattern=pattern, states=states, priority=priority, when=when, answers=answers, probe=probe,
                ctx_only=self.ctx_only if ctx_only is None else ctx_only,
            ))
            return callback

        return decorator

    def fallback(self, *, priority: int = -1000) -> Callable[[Handler], Handler]:
        """Register a handler for anything no other handler took."""
        return self.on(*Kind, priority=priority, answers="fallback")

    def include(self, *routers: Router) -> None:
        self._children.extend(routers)

    def handlers(self) -> list[HandlerObject]:
        """All handlers of this router and its children, highest priority first, then in order of registration."""
        found = list(self._handlers)
        for child in self._children:
            found.extend(child.handlers())
        return sorted(found, key=lambda h: (-h.priority, h.order))


async def first_taker(handlers: Sequence[HandlerObject], msg: Inbound, ctx: Context, *,
                      probes: Mapping[str, Probe] | None = None) -> tuple[HandlerObject, object | None] | None:
    """The handler that would answer ``msg``, found without running one (a dry run: the console's try box).

    In the dispatcher's order: the first that matches and, when it has a probe, whose probe finds something
    (returned with it). A handler without a probe takes what it matches, as its filters say it does.
    ``probes`` stand in for the handlers' own, by ``answers`` (a caller reading fresher data than a cache)."""
    for handler in handlers:
        if not handler.matches(msg, ctx):
            continue
        probe = (probes or {}).get(handler.answers or "", handler.probe)
        if probe is None:
            return handler, None
        found = await probe(msg, ctx)
        if found is not None:
            return handler, found
    return None
