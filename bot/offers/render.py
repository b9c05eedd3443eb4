"""What the follower reads about an offer, in their language; money and dates through Babel.

Every function takes ``t``: the handler's Context, or a :class:`LocaleText` for a follower who is
not the one writing (an inviter told through the outbox). Times are shown in the promotion's time zone.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from bot.core.reply import Button, ButtonsReply, ImageReply, Reply, TextReply
from bot.i18n import Catalogs, Formatter, pick_text

from .claims import ClaimOutcome, ClaimResult, FollowerOffers
from .models import Promotion


class Texts(Protocol):
    locale: str

    def _(self, message: str) -> str: ...

    def ngettext(self, singular: str, plural: str, n: int) -> str: ...


class LocaleText:
    """Translations in a given locale (for messages to someone other than the current follower)."""

    def __init__(self, catalogs: Catalogs, locale: str) -> None:
        self.catalogs = catalogs
        self.locale = locale

    def _(self, message: str) -> str:
        return self.catalogs.gettext(self.locale, message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogs.ngettext(self.locale, singular, plural, n)


def localized(texts: dict[str, str] | None, locale: str) -> str:
    """The operator's text in this locale (Chinese converted from the other script), else English."""
    return pick_text(texts, locale)


def formatter(t: Texts, promotion: Promotion) -> Formatter:
    return Formatter(t.locale, ZoneInfo(promotion.timezone))


def title_of(t: Texts, promotion: Promotion) -> str:
    return localized(promotion.title, t.locale)


def value_text(t: Texts, promotion: Promotion) -> str | None:
    if not promotion.value_amount or not promotion.value_currency:
        return None
    amount = formatter(t, promotion).money(Decimal(promotion.value_amount), promotion.value_currency)
    if promotion.value_kind == "price":
        return t._("Only {amount}").format(amount=amount)
    return t._("{amount} off").format(amount=amount)


def claim_text(t: Texts, result: ClaimResult, *, header: str | None = None) -> str:
    """The code, what it is worth, until when, and the terms."""
    promo = result.promotion
    title = title_of(t, promo)
    if header is None:
        header = (t._("You already have a code for “{title}”. Here it is again:")
                  if result.outcome is ClaimOutcome.ALREADY_CLAIMED
                  else t._("Here is your code for “{title}”:")).format(title=title)
    lines = [header, result.code or ""]
    worth = value_text(t, promo)
    if worth:
        lines.append(worth)
    description = localized(promo.description, t.locale)
    if description:
        lines.append(description)
    until = result.claim.valid_until if result.claim is not None else None
    if until is not None:
        lines.append(t._("Valid until {date}.").format(date=formatter(t, promo).date(until)))
    else:
        lines.append(t._("No expiry date."))
    terms = localized(promo.terms, t.locale)
    if terms:
        lines.append(t._("Terms: {terms}").format(terms=terms))
    return "\n".join(lines)


def refusal_text(t: Texts, result: ClaimResult) -> str:
    """A friendly sentence for each reason a claim was refused."""
    promo = result.promotion
    title = title_of(t, promo)
    fmt = formatter(t, promo)
    match result.outcome:
        case ClaimOutcome.SOLD_OUT:
            return t._("Sorry, “{title}” is all gone. Stay tuned for the next offer!").format(title=title)
        case ClaimOutcome.NOT_STARTED:
            starts = promo.starts_at
            assert starts is not None
            return t._("“{title}” starts on {date} at {time}. See you then!").format(
                title=title, date=fmt.date(starts), time=fmt.datetime(starts, "HH:mm"))
        case ClaimOutcome.ENDED:
            ends = promo.ends_at
            assert ends is not None
            return t._("Sorry, “{title}” ended on {date}.").format(title=title, date=fmt.date(ends))
        case ClaimOutcome.LIMIT_REACHED:
            return t._("You have already claimed “{title}” as many times as allowed.").format(title=title)
        case ClaimOutcome.NOT_FOLLOWING:
            return t._("“{title}” is just for our followers. Follow us first, then ask again!").format(title=title)
        case ClaimOutcome.NOT_ON_CHANNEL:
            return t._("Sorry, “{title}” cannot be claimed on this platform.").format(title=title)
        case _:
            return t._("Sorry, “{title}” is reserved for selected followers.").format(title=title)


def claim_replies(t: Texts, result: ClaimResult, *, header: str | None = None) -> list[Reply]:
    """The code (or why not), then the promotion's poster: the code first, so it arrives first (WeChat
    answers it inline while the image is uploaded) and still arrives if the image cannot be sent."""
    if result.ok:
        poster = [ImageReply(result.promotion.poster)] if result.promotion.poster else []
        return [TextReply(claim_text(t, result, header=header)), *poster]
    return [TextReply(refusal_text(t, result))]


def offer_list(t: Texts, offers: FollowerOffers) -> list[Reply]:
    """The codes the follower holds ("your code: ..."), then what they can claim now as buttons
    (a numbered list where a channel has no buttons)."""
    lines = [t._("“{title}”, your code: {code}").format(title=title_of(t, p), code=code) for p, code in offers.held]
    if not offers.claimable:
        if not lines:
            return [TextReply(t._("There are no offers right now. Please check back soon!"))]
        return [TextReply("\n".join([*lines, "", t._("There are no other offers right now. Please check back soon!")]))]
    header = t._("Here are the offers you can claim now:")
    return [ButtonsReply("\n".join([*lines, "", header]) if lines else header,
                         tuple(Button(title_of(t, p), f"offer:{p.slug}") for p in offers.claimable))]


def invite_caption(t: Texts, promotion: Promotion | None, joined: int) -> str:
    if promotion is None or not promotion.friends_needed:
        text = t._("Here is your personal invite. Share it with friends and family!")
    else:
        text = t.ngettext(
            "Here is your personal invite. When {n} friend follows us through it, you both get “{title}”.",
            "Here is your personal invite. When {n} friends follow us through it, you and each of them get “{title}”.",
            promotion.friends_needed,
        ).format(n=promotion.friends_needed, title=title_of(t, promotion))
    if joined:
        text += "\n" + t.ngettext("So far {count} friend has joined through your invite.",
                                  "So far {count} friends have joined through your invite.", joined).format(count=joined)
    return text


def own_invite_text(t: Texts) -> str:
    return t._("This is your own invite. Share it with your friends!")


def friend_grant_header(t: Texts, promotion: Promotion) -> str:
    return t._("Thanks for joining through a friend's invite! Here is your code for “{title}”:").format(
        title=title_of(t, promotion))


def earlier_friend_grant_header(t: Texts, promotion: Promotion) -> str:
    return t._("The friends' invite you joined is complete! Here is your code for “{title}”:").format(
        title=title_of(t, promotion))


def inviter_grant_header(t: Texts, promotion: Promotion, joined: int) -> str:
    return t.ngettext(
        "{count} friend has followed us through your invite. Here is your code for “{title}”:",
        "{count} friends have followed us through your invite. Here is your code for “{title}”:",
        joined,
    ).format(count=joined, title=title_of(t, promotion))
