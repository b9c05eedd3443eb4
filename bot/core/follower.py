"""The follower as a handler sees it: ``Context.follower``.

Core owns the type; storage fills it from the follower row and writes ``changes`` back with the
message's exchange (``bot.storage.store``). Storage checks at import that the fields here are the
table's columns, so the two never drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from bot.i18n import N_

FOLLOWER_FIELDS = (
    "id", "channel", "account", "external_id", "display_name", "locale", "locale_hint", "following",
    "followed_at", "unfollowed_at", "first_source", "first_touch_at", "tags", "state", "state_data",
    "last_action_at", "last_action_kind", "window_sends", "created_at", "paused_by", "paused_at",
    "handoff_told_at", "last_latitude", "last_longitude", "last_located_at", "owed_since",
)
# ``paused_by`` says who answers instead of the bot. The platform's own customer-service desk (WeChat kf):
PLATFORM_DESK = "platform"
# The follower asked for a person and waits for one of our agents (the bot is silent meanwhile):
AGENT_QUEUE = "queue"
# One of our agents has the conversation: ``agent:<agent id>`` (bot/admin/handoff.py takes and releases).
AGENT_PREFIX = "agent:"
MAX_AGENT_ID = 64
# Told once per queue or agent pause (the dispatcher's notice, or an agent's take).
PERSON_WILL_ANSWER = N_("A person from our team will answer you here soon. Thank you for waiting.")
# A desk session whose close never came (a lost callback) ends by itself after this.
PLATFORM_PAUSE_LAPSES = timedelta(hours=12)
_FIELD_SET = frozenset(FOLLOWER_FIELDS)
# Who answers the follower: changed by a message (asking for a person), an agent (take, release), the
# timeout sweeper and the platform's desk, each from its own read. A message's write of these is
# conditional on the value it read, so it never undoes an agent's take committed meanwhile.
HANDOFF_COLUMNS = frozenset({"paused_by", "paused_at", "handoff_told_at"})


class FollowerRecord:
    """One person on one channel account: the stored columns as attributes, and what was changed.

    Lighter than an ORM instance (no identity map, no attribute instrumentation) and detached by
    nature: setting an attribute records it in ``changes``; nothing else is written.
    """

    __slots__ = (*FOLLOWER_FIELDS, "changes", "pause_was")

    id: int
    channel: str
    account: str
    external_id: str
    display_name: str | None
    locale: str | None  # the follower's explicit choice
    locale_hint: str | None  # the platform's hint, as given
    following: bool
    followed_at: datetime | None
    unfollowed_at: datetime | None
    first_source: str | None  # first-touch campaign scene
    first_touch_at: datetime | None
    tags: list[str]
    state: str | None
    state_data: dict[str, Any]
    last_action_at: datetime | None  # the platform's reply window: opened by the last action
    last_action_kind: str | None
    window_sends: int
    created_at: datetime
    paused_by: str | None  # who answers instead of the bot ("platform": the platform's own service desk)
    paused_at: datetime | None  # when the pause last changed (set or ended): older events change nothing
    handoff_told_at: datetime | None  # when told "a person will answer", during this queue or agent pause
    last_latitude: float | None  # the last location the platform reported (WGS-84 or the platform's)
    last_longitude: float | None
    last_located_at: datetime | None
    owed_since: datetime | None  # timed out of the queue, still owed a person's answer (bot/admin/handoff.py)
    changes: dict[str, Any]
    pause_was: str | None  # ``paused_by`` as loaded: the handoff columns are written only if still so

    def __init__(self, values: Mapping[Any, Any]) -> None:
        """``values``: every field by name (a row's mapping); lists and dicts are copied."""
        for name in FOLLOWER_FIELDS:
            object.__setattr__(self, name, _own(values[name]))
        object.__setattr__(self, "changes", {})
        object.__setattr__(self, "pause_was", values["paused_by"])

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _FIELD_SET:
            raise AttributeError(f"a follower has no column {name!r}")
        if getattr(self, name) != value or name in self.changes:
            self.changes[name] = value
        object.__setattr__(self, name, value)

    def paused(self, now: datetime) -> bool:
        """Whether someone else answers this follower now (the bot stores, and runs no handler)."""
        if not self.paused_by:
            return False
        if self.paused_by == PLATFORM_DESK and self.paused_at is not None:
            return now - self.paused_at < PLATFORM_PAUSE_LAPSES
        return True

    @property
    def handoff(self) -> HandoffState:
        """Who has the conversation: the bot, the queue for agents, an agent, or the platform's desk."""
        return handoff_state(self.paused_by)

    @property
    def agent(self) -> str | None:
        """The agent who has the conversation, if one has."""
        return agent_of(self.paused_by)

    def queue_for_agent(self, now: datetime, *, told: bool) -> bool:
        """Ask for a person: the bot stops answering until an agent takes and releases it (or a timeout).

        False (nothing changed) when someone answers instead of the bot already.
        """
        if self.paused(now):
            return False
        self.paused_by = AGENT_QUEUE
        self.paused_at = now
        self.handoff_told_at = now if told else None
        return True

    def __repr__(self) -> str:
        return f"<FollowerRecord {self.id} {self.channel}:{self.external_id}>"


class HandoffState(StrEnum):
    """Who answers a follower now (``paused_by`` read)."""

    BOT = "bot"
    QUEUED = "queued"  # asked for a person; waiting for an agent (back to the bot after handoff_timeout)
    TAKEN = "taken"  # an agent has the conversation
    PLATFORM = "platform"  # the platform's own customer-service desk (WeChat kf)


def handoff_state(paused_by: str | None) -> HandoffState:
    if not paused_by:
        return HandoffState.BOT
    if paused_by == AGENT_QUEUE:
        return HandoffState.QUEUED
    if paused_by.startswith(AGENT_PREFIX):
        return HandoffState.TAKEN
    return HandoffState.PLATFORM


def agent_of(paused_by: str | None) -> str | None:
    if paused_by and paused_by.startswith(AGENT_PREFIX):
        return paused_by[len(AGENT_PREFIX):]
    return None


def _own(value: object) -> object:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value
