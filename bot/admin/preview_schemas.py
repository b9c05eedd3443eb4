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


class TryView(Answer):
    text: str
    rule: str | None = Field(description="the prompt rule that matched; null: none, the fallback answers")
    rule_id: int | None
    priority: int | None
    fallback: bool
    locales: list[LocaleRepliesView]
    not_served: list[str] = Field(description="channels asked for that this server has no account for")


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
    return TryView(text=result.text, rule=result.rule, rule_id=result.rule_id, priority=result.priority,
                   fallback=result.rule is None, locales=_locales(result.locales), not_served=list(result.not_served))


def preview_view(result: PreviewResult) -> PreviewView:
    return PreviewView(promotion=result.promotion, sample_code=result.sample_code, locales=_locales(result.locales),
                       not_served=list(result.not_served), refused_on=list(result.refused_on))
