"""The dispatcher: one entry point for every channel, a middleware chain, the handlers.

Write path of one message (one transaction, one commit): look up the platform message id
(dedupe), load or create the follower, pick the locale, run the first matching handler, then
store the inbound message, the replies (as outbox rows when they go through a send API) and the
follower's changes together. The replies are handed to the channel only after that commit.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import tzinfo
from typing import Any

from bot.errors import ReplayError
from bot.i18n import INTERNATIONAL_LOCALE, Catalogs, current_locale, negotiate
from bot.metrics import HANDLER_SECONDS, MESSAGES, counter, histogram

from .capabilities import Capabilities
from .clock import utcnow
from .context import Context
from .follower import PERSON_WILL_ANSWER, FollowerRecord, HandoffState
from .inbound import Inbound, Kind
from .replay_check import settle_replay_check
from .reply import ArticlesReply, ButtonsReply, ImageReply, QrReply, Reply, TextReply
from .router import HandlerObject, Router
from .services import Services
from .single_flight import LeaderCancelled, follow, lead
from .store import DuplicateExchange, Exchange, Store
from .text import sanitize_text

log = logging.getLogger("engagebot.dispatch")

Next = Callable[[Inbound, Context], Awaitable[list[Reply]]]
Middleware = Callable[[Inbound, Context, Next], Awaitable[list[Reply]]]
ErrorHandler = Callable[[Inbound, Context, BaseException], Awaitable[list[Reply] | None]]
# A channel's way to ask its platform for a follower's language (WeChat's user/info); None: not known now.
LanguageLookup = Callable[[Inbound], Awaitable[str | None]]

# Where a channel without buttons showed numbered choices, "reply 1" works as the first button.
CHOICES_KEY = "_choices"
EVENT_KINDS = frozenset({Kind.FOLLOW, Kind.CLICK, Kind.VIEW, Kind.SCAN})
# What a follower says to the conversation (a paused bot tells them once that a person will answer).
SPOKEN_KINDS = frozenset({Kind.TEXT, Kind.COMMAND, Kind.CLICK, Kind.IMAGE, Kind.VOICE, Kind.LOCATION, Kind.LINK,
                          Kind.UNKNOWN})
# The ``kind`` label of an outbound message in the metrics (a bounded set).
REPLY_KINDS: dict[type, str] = {TextReply: "text", ArticlesReply: "articles", ImageReply: "image",
                                ButtonsReply: "buttons", QrReply: "qr"}


class PassiveSlot:
    """The HTTP answer a channel holds open for a passive reply, and who won it.

    The dispatcher takes it just before it commits; a channel whose deadline passes first takes it
    back and delivers through the send API instead. Both run on one event loop, so no lock.
    """

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = "open"

    def take_for_passive(self) -> bool:
        if self.state == "open":
            self.state = "passive"
        return self.state == "passive"

    def give_up(self) -> bool:
        """Called by the channel at its deadline; False if the reply is already committed as passive."""
        if self.state == "open":
            self.state = "async"
        return self.state == "async"


@dataclass(slots=True)
class Dispatched:
    exchange: Exchange
    duplicate: bool = False

    @property
    def replies(self) -> list[Reply]:
        return self.exchange.replies


def _short_hash(value: str) -> str:
    return hashlib.blake2s(value.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def follower_hash(msg: Inbound) -> str:
    """A short stable id for logs: never log a follower's platform id."""
    return _short_hash(f"{msg.channel}:{msg.account}:{msg.external_id}")


def message_hash(msg: Inbound) -> str | None:
    """A short stable id of the platform's message for logs (a retry logs the same one).

    Platform message ids can hold the follower's id (Telegram's ``chat:message``), so they are
    hashed like followers are.
    """
    return _short_hash(f"{msg.channel}:{msg.account}:{msg.message_id}") if msg.message_id is not None else None


def passive_replies(replies: Sequence[Reply], capabilities: Capabilities) -> int:
    """How many leading replies go in the passive answer: up to the channel's limit, and none from the
    first image on where the passive answer cannot carry one in time (WeChat's upload happens before
    the send, and WeChat's 5 s would not wait for it): those go through the send API, in order."""
    limit = len(replies) if capabilities.max_passive_replies is None else capabilities.max_passive_replies
    count = 0
    for reply in replies[:limit]:
        if not capabilities.passive_images and isinstance(reply, ImageReply | QrReply) and capabilities.images:
            break
        count += 1
    return count


def as_reply_list(result: Sequence[Reply] | Reply | None) -> list[Reply] | None:
    if result is None:
        return None
    if isinstance(result, (list, tuple)):
        return list(result)
    return [result]  # type: ignore[list-item]  # a single Reply: the union's last case


def _its_exchange(result: Dispatched) -> Exchange:
    return result.exchange


class Dispatcher:
    """Turns an Inbound into stored replies. Channels call :meth:`dispatch`."""

    def __init__(
        self,
        *,
        store: Store,
        router: Router,
        catalogs: Catalogs,
        default_locale: str = "zh_Hans",
        international_locale: str = INTERNATIONAL_LOCALE,
        tz: tzinfo | None = None,
        middlewares: Sequence[Middleware] = (),
        services: Services | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.catalogs = catalogs
        self.default_locale = default_locale
        self.international_locale = international_locale
        self.tz = tz
        self.services = services if services is not None else Services()
        self._middlewares = list(middlewares)
        self._error_handlers: list[ErrorHandler] = []
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[Exchange]] = {}
        self._handlers: list[HandlerObject] | None = None
        self._chain: Next | None = None

    def add_middleware(self, middleware: Middleware) -> None:
        """Add a middleware around the handler (after the built-in ones); before the first message."""
        self._middlewares.append(middleware)
        self._chain = None

    def error_handler(self, callback: ErrorHandler) -> ErrorHandler:
        self._error_handlers.append(callback)
        return callback

    def _build_chain(self) -> Next:
        self._handlers = self.router.handlers()
        chain: Next = self._run_handlers
        # Ours change nothing but ctx; anyone else's may (bot/core/replay_check.py): they run once the
        # request's replay check is settled.
        added = [_after_replay_check(mw) for mw in self._middlewares]
        for mw in reversed([pick_locale_middleware, numbered_choice_middleware, *added]):
            chain = (lambda m, nxt: (lambda msg, ctx: m(msg, ctx, nxt)))(mw, chain)
        return chain

    async def dispatch(self, msg: Inbound, *, capabilities: Capabilities, passive: PassiveSlot | None = None,
                       language_lookup: LanguageLookup | None = None) -> Dispatched:
        """Handle one inbound message exactly once and return its stored replies.

        A platform retry of a message already stored gets the stored replies; one that arrives while
        the first try is still running here waits for it. ``language_lookup`` is asked for the
        follower's language when the platform's message carries none and none is stored yet (a
        follower new to the database, or a follow); it must keep within the channel's deadline.
        """
        msg = _clean(msg)
        if msg.kind is Kind.NOTIFICATION:
            return await self._record_notice(msg)
        if msg.message_id is None:
            return await self._dispatch_once(msg, capabilities, passive, language_lookup)
        key = (msg.channel, msg.account, msg.message_id)
        while (running := self._in_flight.get(key)) is not None:
            try:
                return Dispatched(await follow(running), duplicate=True)
            except ReplayError:
                continue  # the first "try" was a forged body under a replayed signature: not this one's answer
            except LeaderCancelled:
                continue  # the first try was cancelled (its request went away), not this one: handle it here
        future: asyncio.Future[Exchange] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            return await lead(future, self._dispatch_once(msg, capabilities, passive, language_lookup),
                              share=_its_exchange)
        finally:
            del self._in_flight[key]

    async def _dispatch_once(self, msg: Inbound, capabilities: Capabilities, passive: PassiveSlot | None,
                             language_lookup: LanguageLookup | None = None) -> Dispatched:
        started = time.perf_counter()
        follower, stored = await self.store.load(msg)
        if stored is not None:
            log.info("duplicate dropped", extra=_log_fields(msg, started))
            return Dispatched(stored, duplicate=True)
        if language_lookup is not None and _wants_language(msg, follower):
            # No session is open yet (the follower reader has its own): waiting on the platform here
            # keeps nothing of the database's. Not asked for a request that may be a replay.
            await settle_replay_check(msg)
            found = await language_lookup(msg)
            if found:
                msg = replace(msg, language_hint=found[:35])
        was_following = bool(follower.following)
        self.store.apply_action(follower, msg, reply_window_kind=_window_kind(msg))
        # A check to settle before the session's first statement, if any (a store that checks nothing needs no argument).
        open_session = self.store.session if msg.replay_check is None else \
            functools.partial(self.store.session, replay_check=msg.replay_check)
        ctx = Context(
            msg=msg, open_session=open_session, follower=follower, locale=self.default_locale,
            catalogs=self.catalogs, capabilities=capabilities, now=utcnow(),
            default_locale=self.default_locale, international_locale=self.international_locale,
            tz=self.tz, services=self.services,
            was_following=was_following,
        )
        try:
            if follower.paused(ctx.now):
                # Someone else answers this follower now: store the message, run no handler.
                replies = _while_paused(msg, ctx)
            else:
                token = current_locale.set(ctx.locale)
                try:
                    replies = await self._handle(msg, ctx)
                finally:
                    current_locale.reset(token)
            if not capabilities.buttons:
                _remember_choices(ctx, replies)
            passive_count = 0
            if replies and passive is not None and passive.take_for_passive():
                passive_count = passive_replies(replies, capabilities)
            try:
                exchange = await self.store.record_exchange(ctx.opened_session, msg, follower, replies,
                                                            passive_count=passive_count)
            except DuplicateExchange:
                if ctx.opened_session is not None:
                    await ctx.opened_session.rollback()
                stored = await self.store.find_exchange(msg)
                if stored is None:
                    raise
                log.info("duplicate lost the race", extra=_log_fields(msg, started))
                return Dispatched(stored, duplicate=True)
        finally:
            await _close_session(ctx)
        if log.isEnabledFor(logging.INFO):  # the fields cost two hashes: not for a line nobody reads
            log.info("handled", extra=_log_fields(msg, started, replies=len(replies), passive=passive_count))
        _count(msg, replies, started)
        return Dispatched(exchange)

    async def _record_notice(self, msg: Inbound) -> Dispatched:
        """Record a platform notification; it is never answered, and a repeat is recorded once."""
        started = time.perf_counter()
        await settle_replay_check(msg)
        notice_id = await self.store.record_notice(msg)
        event = msg.notice.event if msg.notice is not None else None
        log.info("notice recorded" if notice_id is not None else "duplicate notice dropped",
                 extra=_log_fields(msg, started, notice=event))
        return Dispatched(Exchange(notice_id or 0, [], [], 0, 0), duplicate=notice_id is None)

    async def _handle(self, msg: Inbound, ctx: Context) -> list[Reply]:
        if self._chain is None:
            self._chain = self._build_chain()
        try:
            replies = await self._chain(msg, ctx)
        except ReplayError:
            raise  # a replayed request (found at a handler session's first statement): refused, nothing stored
        except Exception as exc:  # a handler bug must not lose the message nor make the platform retry forever
            replies = await self._on_error(msg, ctx, exc)
        return [*ctx.extra_replies, *replies]

    async def _on_error(self, msg: Inbound, ctx: Context, exc: Exception) -> list[Reply]:
        if self._error_handlers:  # the app's own code, which may act: not for a replayed request
            await settle_replay_check(msg)
        for handler in self._error_handlers:
            result = await handler(msg, ctx, exc)
            if result is not None:
                return result
        log.error("handler failed", exc_info=exc, extra={"channel": msg.channel, "follower": follower_hash(msg)})
        return [TextReply(ctx._("Sorry, something went wrong on our side. Please try again in a moment."))]

    async def _run_handlers(self, msg: Inbound, ctx: Context) -> list[Reply]:
        assert self._handlers is not None
        for handler in self._handlers:
            if handler.matches(msg, ctx):
                if not handler.ctx_only:
                    await settle_replay_check(msg)
                result = as_reply_list(await handler.callback(msg, ctx))
                if result is not None:
                    return result
        return []


def _after_replay_check(middleware: Middleware) -> Middleware:
    async def checked_first(msg: Inbound, ctx: Context, call_next: Next) -> list[Reply]:
        await settle_replay_check(msg)
        return await middleware(msg, ctx, call_next)

    return checked_first


async def _close_session(ctx: Context) -> None:
    """Close the message's session if a handler opened one, to the end even if this task is cancelled
    meanwhile (as the session's ``async with`` does); a late use of ``ctx.session`` then fails loudly."""
    session, ctx.opened_session, ctx.open_session = ctx.opened_session, None, None
    if session is not None:
        await session.__aexit__(None, None, None)


def _while_paused(msg: Inbound, ctx: Context) -> list[Reply]:
    """Tell a follower waiting for (or talking with) one of our agents, once, that a person will answer.

    Nothing else: no rule, offer or fallback runs. The platform's own desk (WeChat kf) speaks for itself.
    """
    follower = ctx.follower
    if follower.handoff not in (HandoffState.QUEUED, HandoffState.TAKEN) or follower.handoff_told_at is not None \
            or msg.kind not in SPOKEN_KINDS:
        return []
    choose_locale(msg, ctx)
    follower.handoff_told_at = ctx.now
    return [TextReply(ctx._(PERSON_WILL_ANSWER))]


def _count(msg: Inbound, replies: list[Reply], started: float) -> None:
    """The metrics of a handled message: counters and one histogram observation, no I/O."""
    histogram(HANDLER_SECONDS, msg.channel).observe(time.perf_counter() - started)
    counter(MESSAGES, msg.channel, "in", msg.kind).inc()
    for reply in replies:
        counter(MESSAGES, msg.channel, "out", REPLY_KINDS.get(type(reply), "other")).inc()


def _wants_language(msg: Inbound, follower: FollowerRecord) -> bool:
    """Ask the platform for the language when the message has none and none is stored (a new
    follower), or on a follow (the language may have changed since the last one)."""
    if msg.language_hint or follower.locale:
        return False
    return msg.kind is Kind.FOLLOW or not follower.locale_hint


def _window_kind(msg: Inbound) -> str | None:
    """Which reply window the follower's action opens: platforms give less after an event."""
    if msg.kind is Kind.UNFOLLOW:
        return None
    if msg.window is not None:
        return msg.window
    return "event" if msg.kind in EVENT_KINDS else "message"


def _clean(msg: Inbound) -> Inbound:
    """Make free text storable (adapters check their fields at the edge; this is the last line)."""
    text = sanitize_text(msg.text) if msg.text else ""
    payload = sanitize_text(msg.payload)[:512] if msg.payload else msg.payload
    name = sanitize_text(msg.display_name)[:128] if msg.display_name else msg.display_name
    if text is msg.text and payload is msg.payload and name is msg.display_name:
        return msg
    return replace(msg, text=text, payload=payload, display_name=name)


def _remember_choices(ctx: Context, replies: list[Reply]) -> None:
    buttons = [b for r in replies if isinstance(r, ButtonsReply) for b in r.buttons]
    data = dict(ctx.follower.state_data or {})
    if buttons:
        data[CHOICES_KEY] = [b.payload for b in buttons]
    elif CHOICES_KEY in data and replies:
        del data[CHOICES_KEY]
    else:
        return
    ctx.follower.state_data = data


async def numbered_choice_middleware(msg: Inbound, ctx: Context, call_next: Next) -> list[Reply]:
    """Turn "1" into a press of the first button the follower was shown as a numbered list."""
    choices = (ctx.follower.state_data or {}).get(CHOICES_KEY)
    if choices and msg.kind is Kind.TEXT and msg.text.strip().isdigit():
        index = int(msg.text.strip()) - 1
        if 0 <= index < len(choices):
            msg = replace(msg, kind=Kind.CLICK, payload=choices[index])
            ctx.msg = msg
    return await call_next(msg, ctx)


async def pick_locale_middleware(msg: Inbound, ctx: Context, call_next: Next) -> list[Reply]:
    """Choose the follower's locale: stored choice > platform hint > script of the message > default.

    The platform's hint is kept on the follower (a channel that asked the platform once need not
    ask again). Only what the follower wrote counts as script: not a command, a payload, a button.
    """
    choose_locale(msg, ctx)
    current_locale.set(ctx.locale)
    return await call_next(msg, ctx)


def choose_locale(msg: Inbound, ctx: Context) -> None:
    """Set ``ctx.locale`` as :func:`pick_locale_middleware` explains, keeping the platform's hint."""
    follower = ctx.follower
    if msg.language_hint and follower.locale_hint != msg.language_hint:
        follower.locale_hint = msg.language_hint[:35]
    ctx.locale = negotiate(chosen=follower.locale, hint=follower.locale_hint,
                           text=msg.text if msg.kind is Kind.TEXT else None, default=ctx.default_locale,
                           international=ctx.international_locale, available=ctx.catalogs.locales)


def _log_fields(msg: Inbound, started: float, **more: Any) -> dict[str, Any]:
    return {"channel": msg.channel, "follower": follower_hash(msg), "message_id": message_hash(msg),
            "kind": str(msg.kind), "ms": round((time.perf_counter() - started) * 1000, 2), **more}

