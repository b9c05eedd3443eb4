"""Replies a handler returns; adapters render them in their platform's own form."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import N_

# What the bot answers a text nothing else took (handlers/fallback.py); the console's "try a message" box
# shows it when no prompt rule matches.
NOT_UNDERSTOOD = N_("Sorry, I did not understand that. Send /help to see what I can do.")


@dataclass(frozen=True, slots=True)
class TextReply:
    text: str


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    description: str = ""
    url: str = ""
    picture_url: str = ""


@dataclass(frozen=True, slots=True)
class ArticlesReply:
    """A card (WeChat "news", a Telegram message with a link)."""

    articles: tuple[Article, ...]


@dataclass(frozen=True, slots=True)
class ImageReply:
    url: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Button:
    label: str
    payload: str  # what comes back as Inbound(kind=CLICK, payload=...) when pressed


@dataclass(frozen=True, slots=True)
class ButtonsReply:
    """Text with choices; channels without buttons show a numbered list instead."""

    text: str
    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class QrReply:
    """A scene the follower can share: a QR on WeChat, a deep link on Telegram."""

    scene: str
    caption: str = ""
    url: str = ""  # filled in by the channel when it knows the link


@dataclass(frozen=True, slots=True)
class LocationRequestReply:
    """Ask for the follower's location with the platform's own button (Telegram's "share location").

    A channel without such a button sends ``fallback``: how to share a location there by hand.
    """

    text: str
    button: str
    fallback: str


Reply = TextReply | ArticlesReply | ImageReply | ButtonsReply | QrReply | LocationRequestReply
