"""Dry runs for operators: what a follower would get, per channel and language, with nothing stored.

``try_message`` answers "what does the bot say to this message?": which of the bot's handlers takes it, asked
of the dispatcher's own handlers without running one (``bot.core.router.first_taker``: their filters and
read-only probes, so a promotion's keyword, asking for a person, help and the language words are found by the
handlers' own checks), and for the prompt rules the stored rules matched by the bot's own matcher
(``bot.rules``: the rows the rule cache reads, compiled and ranked as it does); and
``promotion_preview`` shows a promotion's claim reply (``bot.offers.render``, the handler's own words) with
a sample code. Each reply is then rendered by the app's channel adapters (``Channel.degrade``: their limits,
splitting, buttons becoming numbered lists), exactly as they render a reply before sending it.

Both only read: no follower, claim, message or outbox row is written, nothing is sent, nothing audited.
The console, the API and the CLI call these same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.clock import utcnow
from bot.core.context import Context
from bot.core.dispatcher import Dispatcher
from bot.core.follower import FOLLOWER_FIELDS, FollowerRecord
from bot.core.inbound import Inbound, Kind
from bot.core.reply import (
    NOT_UNDERSTOOD,
    ArticlesReply,
    ButtonsReply,
    ImageReply,
    LocationRequestReply,
    QrReply,
    Reply,
    TextReply,
)
from bot.core.router import first_taker
from bot.core.serialize import reply_text
from bot.core.text import sanitize_text
from bot.i18n import N_, SUPPORTED_LOCALES, Catalogs
from bot.offers.claims import ClaimOutcome, ClaimResult, code_valid_until
from bot.offers.models import Claim, Promotion
from bot.offers.render import LocaleText, claim_replies, invite_caption
from bot.offers.spec import REFERRAL_SCENE_PREFIX
from bot.rules import DEFAULT_MAX_CHARS, RuleMatcher, compile_rules
from bot.storage.prompts import list_prompt_rules

from .errors import Invalid, NotFound

# The platforms an operator previews, in this order; another channel the app serves (a plugin's) follows them.
PLATFORMS = ("wechat", "telegram", "weibo")
# The mock channel talks to tests and the terminal, not to followers: it is never previewed.
NOT_PREVIEWED = frozenset({"mock"})
MAX_TRY_TEXT = 4000  # a platform's longest message; the matcher looks at its first ``max_chars`` anyway
SAMPLE_CODE = "K7QW3M9X2P4R"  # shown where a claim would draw a code (no look-alike characters)


@dataclass(frozen=True)
class Shown:
    """One message as the channel sends it: its text, and its buttons (labels) or link when it has them."""

    kind: str  # text, buttons, image, articles, qr, location_request
    text: str
    buttons: tuple[str, ...] = ()
    url: str = ""


@dataclass(frozen=True)
class ChannelReplies:
    channel: str
    messages: tuple[Shown, ...]


@dataclass(frozen=True)
class LocaleReplies:
    """What one language's follower gets: the reply as the handler words it, then as each channel sends it."""

    locale: str
    reply: tuple[Shown, ...]
    channels: tuple[ChannelReplies, ...]


# Who answers, as the try box says it (the handlers' ``answers`` names): the bot's own answers come before the rules.
ANSWERED_BY = {
    "language": N_("A language word: the bot switches the follower's language (the rules are not reached)."),
    "handoff": N_("Asking for a person: the follower is queued for an agent (the rules are not reached)."),
    "help": N_("A help word: the bot answers with its help text (the rules are not reached)."),
    "welcome": N_("A greeting: the bot answers with its welcome (the rules are not reached)."),
    "offers": N_("An offers word: the bot lists the offers the follower can claim (the rules are not reached)."),
    "invite": N_("An invite word: the bot sends the follower's invite code (the rules are not reached)."),
    "offer": N_("A promotion's keyword: the bot answers with the promotion's code (the rules are not reached)."),
    "stores": N_("A question about stores: the bot answers with the nearest stores."),
    "rule": N_("A prompt rule answers."),
    "fallback": N_("Nothing takes it: the bot answers with its fallback."),
}


@dataclass(frozen=True)
class TryResult:
    text: str
    rule: str | None  # the matched rule's name when a rule answers
    rule_id: int | None
    priority: int | None
    locales: tuple[LocaleReplies, ...]  # the rule's or the fallback's reply; empty when another handler answers
    not_served: tuple[str, ...] = ()  # platforms asked for that this process has no channel for
    answered_by: str = "fallback"  # a key of ANSWERED_BY, "rule" or "fallback" (another handler's own name else)
    promotion: str | None = None  # the promotion's slug when a promotion's keyword answers
    promotion_id: int | None = None  # ... and its id (its preview: /admin/promotions/{id})
    elsewhere: tuple[tuple[str, str], ...] = ()  # (channel, answered_by) where another handler answers


@dataclass(frozen=True)
class PreviewResult:
    promotion: str
    sample_code: str | None
    locales: tuple[LocaleReplies, ...]
    not_served: tuple[str, ...] = ()
    refused_on: tuple[str, ...] = field(default=())  # channels the promotion is not offered on


def shown_url(url: str) -> str:
    """An image's address as a viewer may see it: a web address as it is, a file on this server by its name
    only (its directory is the server's business, not a viewer's)."""
    if urlsplit(url).scheme in ("http", "https"):
        return url
    return PurePath(url).name


def shown(reply: Reply) -> Shown:
    """A rendered reply as the console, the API and the CLI list it (buttons as their labels)."""
    match reply:
        case ButtonsReply(text=text, buttons=buttons):
            return Shown("buttons", text, tuple(b.label for b in buttons))
        case ImageReply(url=url, caption=caption):
            return Shown("image", caption, url=shown_url(url))
        case QrReply(scene=scene, caption=caption, url=url):
            return Shown("qr", caption, url=url or scene)
        case ArticlesReply(articles=articles):
            return Shown("articles", "\n\n".join("\n".join(p for p in (a.title, a.description, a.url) if p)
                                                  for a in articles))
        case LocationRequestReply(text=text, button=button):
            return Shown("location_request", text, (button,))
        case _:
            return Shown("text", reply_text(reply))


def preview_channels(channels: Sequence[Any], only: Sequence[str] = ()) -> tuple[list[Any], tuple[str, ...]]:
    """The app's channels to render with (one per platform, the known platforms first), and the platforms
    asked for (``only``, else the three) that this process serves no channel for."""
    by_name: dict[str, Any] = {}
    for channel in channels:
        if channel.name not in NOT_PREVIEWED:
            by_name.setdefault(channel.name, channel)
    wanted = list(only) or [*PLATFORMS, *(n for n in by_name if n not in PLATFORMS)]
    unknown = [n for n in only if n not in by_name and n not in PLATFORMS]
    if unknown:
        offered = ", ".join(sorted({*PLATFORMS, *by_name}))
        raise Invalid("channels", N_("no channel {name!r} (channels: {offered})"), name=unknown[0], offered=offered)
    return [by_name[n] for n in wanted if n in by_name], tuple(n for n in wanted if n not in by_name)


def _locales(only: Sequence[str]) -> tuple[str, ...]:
    for locale in only:
        if locale not in SUPPORTED_LOCALES:
            raise Invalid("locales", N_("no language {name!r} (languages: {offered})"), name=locale,
                          offered=", ".join(SUPPORTED_LOCALES))
    return tuple(only) or SUPPORTED_LOCALES


def _per_locale(locale: str, replies: list[Reply], channels: Sequence[Any],
                per_channel: dict[str, list[Reply]] | None = None) -> LocaleReplies:
    rendered = []
    for channel in channels:
        own = (per_channel or {}).get(channel.name, replies)
        rendered.append(ChannelReplies(channel.name, tuple(shown(r) for r in channel.degrade(own))))
    return LocaleReplies(locale, tuple(shown(r) for r in replies), tuple(rendered))


async def try_message(session: AsyncSession, text: str, *, channels: Sequence[Any], catalogs: Catalogs,
                      dispatcher: Dispatcher | None = None,
                      max_chars: int = DEFAULT_MAX_CHARS, only_channels: Sequence[str] = (),
                      only_locales: Sequence[str] = ()) -> TryResult:
    """The prompt rule ``text`` matches and its reply per language and channel; the fallback when none does.

    The rules are read now (not the running bot's cache, up to ``prompt_rules_ttl`` old) and matched by
    ``RuleMatcher``, the matcher the prompts handler uses. With the bot's ``dispatcher``, the handlers that
    come before the rules (language, asking for a person, help, offers...) are asked first, in the
    dispatcher's order and without running (running them would claim codes and change followers); the
    answer is the first channel's (an offer limited to some channels is listed in ``elsewhere``).
    """
    text = sanitize_text(text)  # as the dispatcher cleans what a follower sends, before any handler sees it
    if not text.strip():
        raise Invalid("text", N_("type a message to try"))
    if len(text) > MAX_TRY_TEXT:
        raise Invalid("text", N_("at most {most} characters"), most=MAX_TRY_TEXT)
    locales = _locales(only_locales)
    rendering, not_served = preview_channels(channels, only_channels)
    rows = await list_prompt_rules(session)
    rule = RuleMatcher(compile_rules(rows), max_chars=max_chars).match(text)
    row = next((r for r in rows if rule is not None and r.name == rule.name), None)
    found: list[tuple[str, str, object | None]] = []
    if dispatcher is not None:
        for channel in rendering or channels[:1]:
            answered, what = await _answered_by(session, text, channel, dispatcher, catalogs, locales[0], rule)
            found.append((channel.name, answered, what))
    answered_by, what = (found[0][1], found[0][2]) if found else ("rule" if rule is not None else "fallback", None)
    elsewhere = tuple((name, other) for name, other, _what in found[1:] if other != answered_by)
    if answered_by not in ("rule", "fallback"):
        return TryResult(text=text, rule=None, rule_id=None, priority=None, locales=(), not_served=not_served,
                         answered_by=answered_by, promotion=getattr(what, "slug", None),
                         promotion_id=getattr(what, "id", None), elsewhere=elsewhere)
    rule = rule if answered_by == "rule" else None
    answers = []
    for locale in locales:
        # The prompts handler's reply, or the fallback handler's when no rule (nor other handler) answers.
        reply = rule.reply_for(locale) if rule is not None else catalogs.gettext(locale, NOT_UNDERSTOOD)
        answers.append(_per_locale(locale, [TextReply(reply)], rendering))
    return TryResult(text=text, rule=rule.name if rule is not None else None, rule_id=row.id if row else None,
                     priority=rule.priority if rule is not None else None, locales=tuple(answers),
                     not_served=not_served, answered_by=answered_by, elsewhere=elsewhere)


async def _answered_by(session: AsyncSession, text: str, channel: Any, dispatcher: Dispatcher, catalogs: Catalogs,
                       locale: str, rule: object | None) -> tuple[str, object | None]:
    """Which handler takes ``text`` on ``channel`` (its ``answers`` name) and what it found, from a new follower
    built in memory (never added: nothing is written), with the rules read now instead of the bot's cache."""
    now = utcnow()
    msg = Inbound(channel=channel.name, account=channel.account, external_id="dry-run", text=text, received_at=now,
                  kind=Kind.COMMAND if text.startswith("/") else Kind.TEXT)
    follower = FollowerRecord({**dict.fromkeys(FOLLOWER_FIELDS), "channel": channel.name, "account": channel.account,
                               "external_id": "dry-run", "following": True, "tags": [], "state_data": {},
                               "window_sends": 0, "created_at": now, "followed_at": now})
    ctx = Context(msg=msg, opened_session=session, follower=follower, locale=locale, catalogs=catalogs,
                  capabilities=channel.capabilities, now=now, services=dispatcher.services)

    async def fresh_rule(msg: Inbound, ctx: Context) -> object | None:
        return rule

    taker = await first_taker(dispatcher.router.handlers(), msg, ctx, probes={"rule": fresh_rule})
    if taker is None:
        return "fallback", None
    handler, what = taker
    return handler.answers or handler.name, what


def sample_code(promo: Promotion) -> str | None:
    """What a claim's code looks like: the shared code, else the prefix and a sample of the code's length."""
    if promo.code_strategy == "shared":
        return promo.shared_code
    length = max(promo.code_length or 8, 8)
    return (promo.code_prefix or "") + (SAMPLE_CODE * 4)[:length]


async def promotion_preview(session: AsyncSession, promotion_id: int, *, channels: Sequence[Any],
                            catalogs: Catalogs, only_channels: Sequence[str] = (), only_locales: Sequence[str] = (),
                            now: datetime | None = None) -> PreviewResult:
    """What a follower claiming the promotion receives, per language and channel, with a sample code.

    The words are the offers handler's (``claim_replies``); a channel the promotion is not offered on gets
    the refusal it would get. A friends' offer is not claimed but earned: asking for it gives the follower
    their invite QR code, as the handler does. Nothing is claimed: the claim shown is built in memory, never added.
    """
    promo = (await session.execute(select(Promotion).where(Promotion.id == promotion_id))).scalar_one_or_none()
    if promo is None:
        raise NotFound(N_("no promotion {id}"), id=promotion_id)
    locales = _locales(only_locales)
    rendering, not_served = preview_channels(channels, only_channels)
    code = sample_code(promo)
    claim = Claim(code=None if promo.code_strategy == "shared" else code,
                  valid_until=code_valid_until(promo, now or utcnow()))
    granted = ClaimResult(ClaimOutcome.CLAIMED, promo, claim)
    refused = ClaimResult(ClaimOutcome.NOT_ON_CHANNEL, promo)
    refused_on = tuple(c.name for c in rendering if promo.channels and c.name not in promo.channels)
    answers = []
    for locale in locales:
        t = LocaleText(catalogs, locale)
        if promo.friends_needed:
            replies: list[Reply] = [QrReply(scene=REFERRAL_SCENE_PREFIX + SAMPLE_CODE,
                                            caption=invite_caption(t, promo, 0))]
        else:
            replies = claim_replies(t, granted)
        per_channel = {name: claim_replies(t, refused) for name in refused_on}
        answers.append(_per_locale(locale, replies, rendering, per_channel))
    return PreviewResult(promotion=promo.slug, sample_code=code, locales=tuple(answers), not_served=not_served,
                         refused_on=refused_on)
