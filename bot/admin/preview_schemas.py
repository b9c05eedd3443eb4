"""The admin API's bodies and answers for the dry runs (``bot.admin.previews``): try a message, preview a
promotion. Kept apart from ``schemas.py`` because they describe no stored resource, only what a follower
would read."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .previews import MAX_TRY_TEXT, LocaleReplies, PreviewResult, TryResult
from .schemas import Answer, Body

Locale = Literal["en", "zh_Hans", "zh_Hant"]
Channel = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]


class TryMessage(Body):
    text: str = Field(min_length=1, max_length=MAX_TRY_TEXT, description="what a follower writes")
    channels: list[Channel] = Field(default_factory=list, max_length=16,
                                    description="only these channels (default: wechat, telegram, weibo and any "
                                                "other the server has)")
    locales: list[Locale] = Field(default_factory=list, max_length=3, description="only these languages (default: all)")


class PreviewQuery(Body):
    channel: Channel | None = Field(default=None, description="only this channel")
    locale: Locale | None = Field(default=None, description="only this language")


class ShownView(Answer):
    kind: str = Field(description="text, buttons, image, articles, qr, location_request")
    text: str
    buttons: list[str] = Field(description="the buttons' labels (where the channel shows buttons)")
    url: str


class ChannelRepliesView(Answer):
    channel: str
    messages: list[ShownView] = Field(description="the messages the channel sends, after its own rendering")


class LocaleRepliesView(Answer):
    locale: str
    reply: list[ShownView] = Field(description="the reply as the handler words it, before any channel")
    channels: list[ChannelRepliesView]


class ElsewhereView(Answer):
    channel: str
    answered_by: str


class TryView(Answer):
    text: str
    answered_by: str = Field(description="which of the bot's handlers takes the message: language, handoff, help, "
                                         "welcome, offers, invite, offer (a promotion's keyword), rule, stores, "
                                         "fallback; the first previewed channel's")
    rule: str | None = Field(description="the prompt rule that answers; null when another handler does")
    rule_id: int | None
    priority: int | None
    fallback: bool = Field(description="true when nothing else takes the message and the fallback answers")
    promotion: str | None = Field(description="the promotion whose keyword answers (answered_by: offer)")
    promotion_preview: str | None = Field(description="where that promotion's claim reply is previewed "
                                                      "(GET, this API)")
    locales: list[LocaleRepliesView] = Field(description="the rule's or the fallback's reply; empty when another "
                                                         "handler answers")
    not_served: list[str] = Field(description="channels asked for that this server has no account for")
    elsewhere: list[ElsewhereView] = Field(description="channels where another handler answers (an offer on some "
                                                       "channels only)")


class PreviewView(Answer):
    promotion: str
    sample_code: str | None = Field(description="stands for the code a claim would draw")
    locales: list[LocaleRepliesView]
    not_served: list[str]
    refused_on: list[str] = Field(description="channels the promotion is not offered on (their refusal is shown)")


def _locales(found: tuple[LocaleReplies, ...]) -> list[LocaleRepliesView]:
    return [LocaleRepliesView.model_validate(
        {"locale": r.locale, "reply": [vars(m) for m in r.reply],
         "channels": [{"channel": c.channel, "messages": [vars(m) for m in c.messages]} for c in r.channels]})
        for r in found]


def try_view(result: TryResult) -> TryView:
    return TryView(text=result.text, answered_by=result.answered_by, rule=result.rule, rule_id=result.rule_id,
                   priority=result.priority, fallback=result.answered_by == "fallback", promotion=result.promotion,
                   promotion_preview=f"/admin/api/v1/promotions/{result.promotion_id}/preview"
                   if result.promotion_id is not None else None,
                   locales=_locales(result.locales), not_served=list(result.not_served),
                   elsewhere=[ElsewhereView(channel=c, answered_by=a) for c, a in result.elsewhere])


def preview_view(result: PreviewResult) -> PreviewView:
    return PreviewView(promotion=result.promotion, sample_code=result.sample_code, locales=_locales(result.locales),
                       not_served=list(result.not_served), refused_on=list(result.refused_on))
