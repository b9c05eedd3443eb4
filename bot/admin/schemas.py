"""The admin API's bodies and answers (pydantic): validated in, serialized out, and described in OpenAPI
from these same classes. The CLI builds the same bodies, so both check input one way."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.core.dates import Day, Moment
from bot.core.follower import HandoffState
from bot.errors import ValueRefusal
from bot.i18n import N_, SUPPORTED_LOCALES, locale_keys, normalize_locale
from bot.offers.spec import SLUG_PATTERN
from bot.rules import NAME_PATTERN

from .inbox import MAX_REPLY_CHARS
from .roles import Role

OPERATOR_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.@-]{1,63}$"
TAG_PATTERN = r"^[^\x00-\x1f\x7f,]{1,32}$"
Tag = Annotated[str, Field(pattern=TAG_PATTERN)]
# Ids in paths and cursors stay within what every backend's key column holds.
MAX_ID = 2**53


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Answer(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorView(Answer):
    error: str = Field(description="what went wrong, in a few words")
    reason: str | None = Field(default=None, description="why, for a person")
    field: str | None = Field(default=None, description="the input at fault (body field or parameter)")


# --- operators -----------------------------------------------------------------------------------------
class OperatorCreate(Body):
    name: str = Field(pattern=OPERATOR_NAME_PATTERN, description="login name: lowercase letters, digits, _.@-")
    role: Role
    password: str = Field(min_length=10, max_length=256)
    display_name: str | None = Field(default=None, max_length=128)


class OperatorUpdate(Body):
    role: Role | None = None
    display_name: str | None = Field(default=None, max_length=128)
    disabled: bool | None = None


class PasswordReset(Body):
    password: str = Field(min_length=10, max_length=256)
    revoke_tokens: bool = Field(default=False, strict=True, description="also revoke the operator's API tokens")


class OperatorView(Answer):
    id: int
    name: str
    display_name: str | None
    role: Role
    disabled: bool
    created_at: datetime
    updated_at: datetime
    version: int


class OperatorPage(Answer):
    items: list[OperatorView]
    next_cursor: str | None


class TokenCreate(Body):
    label: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")


class TokenView(Answer):
    id: int
    operator_id: int
    label: str
    prefix: str = Field(description="the token's first characters, to tell tokens apart")
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenView):
    token: str = Field(description="the token itself: shown this once, stored only as a hash")


class TokenList(Answer):
    items: list[TokenView]


class MeView(Answer):
    name: str
    role: Role
    operator_id: int | None
    permissions: list[str]


# --- prompt rules --------------------------------------------------------------------------------------
class RuleUpdate(Body):
    regex: bool | None = None
    match: dict[str, list[str]] | None = None
    reply: dict[str, str] | None = None
    priority: int | None = Field(default=None, ge=-1000, le=1000)


class RuleView(Answer):
    id: int
    name: str = Field(pattern=NAME_PATTERN)
    regex: bool
    match: dict[str, list[str]]
    reply: dict[str, str]
    priority: int
    updated_at: datetime
    version: int


class RulePage(Answer):
    items: list[RuleView]
    next_cursor: str | None


# --- promotions and codes ------------------------------------------------------------------------------
class PromotionUpdate(Body):
    """The fields an operator may change while a promotion runs (the rest come from its file)."""

    quota: int | None = Field(default=None, ge=0, le=10_000_000, description="null: unlimited")
    starts_at: Moment | None = Field(default=None, description="with its offset; years 2000 to 9998")
    ends_at: Moment | None = Field(default=None, description="with its offset; years 2000 to 9998")
    title: dict[str, str] | None = None
    keywords: dict[str, list[str]] | None = Field(
        default=None, description="per locale; replaces them all ({} leaves the promotion to buttons, menus, QR codes)")


class PromotionView(Answer):
    id: int
    slug: str
    title: dict[str, str]
    channels: list[str]
    starts_at: datetime | None
    ends_at: datetime | None
    quota: int | None
    claimed: int = Field(description="codes handed out so far (live)")
    remaining: int | None = Field(description="quota - claimed; null when unlimited")
    redeemed: int
    per_follower_limit: int
    code_strategy: str
    updated_at: datetime
    version: int


class PromotionPage(Answer):
    items: list[PromotionView]
    next_cursor: str | None


class RedeemView(Answer):
    outcome: str
    code: str
    promotion: str | None
    message: str
    redeemed_at: datetime | None
    valid_until: datetime | None


# --- campaigns -----------------------------------------------------------------------------------------
class CampaignView(Answer):
    id: int
    slug: str
    scene: str
    source: str
    promotion: str | None


class CampaignPage(Answer):
    items: list[CampaignView]
    next_cursor: str | None


# --- followers -----------------------------------------------------------------------------------------
class FollowerView(Answer):
    id: int
    channel: str
    account: str
    external_id: str
    display_name: str | None
    locale: str | None
    following: bool
    followed_at: datetime | None
    first_source: str | None
    tags: list[str]


class FollowerPage(Answer):
    items: list[FollowerView]
    next_cursor: str | None


class TagsUpdate(Body):
    add: list[Tag] = Field(default_factory=list, max_length=20)
    remove: list[Tag] = Field(default_factory=list, max_length=20)


# --- stats and audit -----------------------------------------------------------------------------------
class FunnelView(Answer):
    campaign: str
    source: str
    scene: str
    promotion: str | None
    channel: str | None = Field(description="null: every channel together")
    scans: int
    people: int
    follows: int
    claims: int
    redemptions: int


class FunnelList(Answer):
    items: list[FunnelView]


class DayCountView(Answer):
    day: date = Field(description="a day in the operator's time zone (ENGAGEBOT_TIMEZONE)")
    channel: str
    inbound: int = Field(description="messages and events from followers")
    outbound: int = Field(description="messages sent, broadcasts included")


class ReplyRoutesView(Answer):
    channel: str
    passive: int = Field(description="replies in the HTTP answer to the platform's request")
    deferred: int = Field(description="replies sent later through the outbox and the platform's send API")
    pending: int = Field(description="replies in the outbox not sent yet (pending, sending)")
    failed: int = Field(description="replies the outbox gave up on")
    undeliverable: int = Field(description="replies refused before sending (window closed, follower gone)")


class AnswerTimeView(Answer):
    channel: str | None = Field(description="null: every channel together")
    answered: int = Field(description="followers' messages that got an answer")
    median_seconds: float | None = Field(description="from a follower's message to the answer; null: none answered")


class ActivityView(Answer):
    days: list[date] = Field(description="the period, oldest first")
    since: datetime
    messages: list[DayCountView] = Field(description="per day and channel (days without messages left out)")
    replies: list[ReplyRoutesView]
    answer_times: list[AnswerTimeView] = Field(description="every channel first, then each channel")


class AuditView(Answer):
    id: int
    at: datetime
    actor: str
    operator_id: int | None
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditPage(Answer):
    items: list[AuditView]
    next_cursor: str | None


# --- conversations (the inbox) -------------------------------------------------------------------------
class WindowView(Answer):
    open: bool
    closes_at: datetime | None = Field(description="null while open: the channel has no window (pacing only)")
    sends_left: int | None
    reason: str | None = Field(description="why it is closed")


class LastMessageView(Answer):
    direction: str = Field(description="in (the follower) or out (the bot or an agent)")
    kind: str
    text: str
    at: datetime


class ConversationView(Answer):
    follower_id: int = Field(description="the conversation's id")
    channel: str
    account: str
    external_id: str
    display_name: str | None
    locale: str = Field(description="the language the bot answers this follower in")
    state: HandoffState
    agent: str | None = Field(description="the operator who took it")
    state_since: datetime | None
    told_at: datetime | None = Field(description="when the follower was told a person will answer")
    last_action_at: datetime | None
    last_message: LastMessageView | None
    last_inbound: LastMessageView | None = Field(default=None, description="the follower's own last message")
    window: WindowView | None = Field(description="the channel's reply window now; null: channel not served here")
    owed_since: datetime | None = Field(default=None, description="asked for a person and timed out of the queue: "
                                        "owed an answer since then, until an agent replies or dismisses it")


class ConversationPage(Answer):
    items: list[ConversationView]
    next_cursor: str | None


class MessageView(Answer):
    id: int
    direction: str
    kind: str
    text: str
    status: str
    reason: str | None
    created_at: datetime
    sent_at: datetime | None
    sent_by: str | None = Field(description="the agent who wrote it; null: the bot (or the follower)")


class MessagePage(Answer):
    conversation: ConversationView
    items: list[MessageView] = Field(description="oldest first")
    next_cursor: str | None = Field(description="older messages: pass as cursor")


class ReplyBody(Body):
    text: str = Field(min_length=1, max_length=MAX_REPLY_CHARS, description="what to send the follower")


class HandoffView(Answer):
    follower_id: int
    state: HandoffState
    agent: str | None
    changed: bool = Field(description="false: it was already so")
    told: bool = Field(default=False, description="the follower was just told a person will answer")


class DismissView(Answer):
    follower_id: int
    changed: bool = Field(description="false: nothing was owed")


class ReplyView(Answer):
    message_id: int
    follower_id: int
    window: WindowView


# --- broadcasts ----------------------------------------------------------------------------------------
class BroadcastStart(Body):
    """``engagebot broadcast start``'s options: a text per locale, and who gets it (an empty filter: anyone)."""

    name: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
    texts: dict[str, str] = Field(min_length=1, max_length=3, description="locale -> text (en, zh_Hans, zh_Hant); "
                                  "a follower reading none of them gets the default locale's")
    channels: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]] = Field(default_factory=list, max_length=10)
    locales: list[str] = Field(default_factory=list, max_length=3, description="only followers reading these")
    tags: list[Tag] = Field(default_factory=list, max_length=20, description="followers with any of these")
    sources: list[Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")]] = Field(
        default_factory=list, max_length=20, description="first-touch campaign scenes")
    since: Day | None = Field(default=None, description="followed on or after this day (ENGAGEBOT_TIMEZONE); "
                              "years 2000 to 9998")
    promotion: str | None = Field(default=None, pattern=SLUG_PATTERN, description="add a button claiming it")

    @field_validator("texts")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        value = locale_keys(value)
        for locale, text in value.items():
            if not text.strip() or len(text) > MAX_REPLY_CHARS:
                raise ValueRefusal(N_("{locale}: 1 to {most} characters, not blank"), locale=locale, most=MAX_REPLY_CHARS)
        return value

    @field_validator("locales")
    @classmethod
    def _locales(cls, value: list[str]) -> list[str]:
        found = [normalize_locale(v) for v in value]
        if None in found:
            raise ValueError(f"unknown locale(s); use {list(SUPPORTED_LOCALES)}")
        return list(dict.fromkeys(v for v in found if v))


class BroadcastView(Answer):
    id: int
    name: str
    status: str = Field(description="queued, expanding, sending, done, cancelled")
    texts: dict[str, str]
    audience: dict[str, Any]
    promotion: str | None
    created_at: datetime
    finished_at: datetime | None
    total: int = Field(description="outbox rows written (one per follower)")
    sent: int
    pending: int
    failed: int
    undeliverable: int
    cancelled: int
    by_status: dict[str, int]


class BroadcastPage(Answer):
    items: list[BroadcastView]
    next_cursor: str | None
