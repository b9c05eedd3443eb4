"""The inbox: conversations across channels, one conversation's messages, and an agent's replies.

One service layer for the CLI (``engagebot inbox``) and the admin API: :class:`Inbox` holds what the
answers need (the database, the catalogs, each channel's declared capabilities for its reply window)
and returns plain dataclasses. An agent's reply is an outbox row: the delivery engine sends it within
the platform's window and pace, like every other send; a reply the window would refuse is refused
here, at once, with the reason.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities
from bot.core.clock import utcnow
from bot.core.follower import AGENT_PREFIX, AGENT_QUEUE, PLATFORM_DESK, HandoffState, agent_of, handoff_state
from bot.core.reply import TextReply
from bot.delivery.windows import WindowStatus
from bot.errors import OutsideReplyWindow
from bot.i18n import INTERNATIONAL_LOCALE, Catalogs
from bot.offers.notify import enqueue_reply
from bot.storage.engine import hold_write_gate
from bot.storage.models import Follower, Message

from .handoff import (
    DEFAULT_TIMEOUT,
    HandoffChange,
    HandoffRefused,
    InboxInputError,
    check_agent,
    follower_locale,
    follower_window,
    last_inbound_texts,
    load_follower,
    release,
    sweep_queue_timeouts,
    take,
)

MAX_PAGE = 200
MAX_REPLY_CHARS = 4000  # what an outbound row keeps of a text (``Message.text``)
# Sends the rows now when the caller runs the channel's sender in this process (the API inside
# ``engagebot run``); without it the account's outbox sweeper sends them within its sweep interval.
Deliver = Callable[[str, str, Sequence[int]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class LastMessage:
    direction: str  # "in" | "out"
    kind: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """One follower's conversation as the inbox lists it."""

    follower_id: int
    channel: str
    account: str
    external_id: str
    display_name: str | None
    locale: str  # the language the bot answers this follower in
    state: HandoffState
    agent: str | None  # who has it, when taken
    state_since: datetime | None  # when the state last changed (queued at, taken at)
    told_at: datetime | None  # when the follower was told a person will answer (queued or taken)
    last_action_at: datetime | None  # the follower's last action (message or event)
    last_message: LastMessage | None
    window: WindowStatus | None  # None: the channel is not known here


@dataclass(frozen=True, slots=True)
class ConversationMessage:
    id: int
    direction: str  # "in" | "out"
    kind: str
    text: str
    status: str  # a ``DeliveryStatus``: handled (inbound), passive, pending, sent, failed, undeliverable...
    reason: str | None  # why an outbound row was not sent
    created_at: datetime
    sent_at: datetime | None
    sent_by: str | None  # the agent who wrote it; None: the bot (or the follower, inbound)


@dataclass(frozen=True, slots=True)
class Conversation:
    summary: ConversationSummary
    messages: list[ConversationMessage] = field(default_factory=list)  # oldest first


@dataclass(frozen=True, slots=True)
class QueuedReply:
    """An agent's reply, written to the outbox (``pending``) for the delivery engine to send."""

    message_id: int
    follower_id: int
    window: WindowStatus


@dataclass
class Inbox:
    """The inbox's service functions. ``capabilities``: each channel's declared capabilities, by name."""

    sessions: async_sessionmaker[AsyncSession]
    catalogs: Catalogs
    capabilities: Mapping[str, Capabilities]
    default_locale: str = "zh_Hans"
    international_locale: str = INTERNATIONAL_LOCALE
    timeout: timedelta = DEFAULT_TIMEOUT
    deliver: Deliver | None = None

    async def conversations(self, *, state: HandoffState | None = None, channel: str | None = None,
                            agent: str | None = None, limit: int = 50, offset: int = 0,
                            now: datetime | None = None) -> list[ConversationSummary]:
        """Conversations across channels, the follower's latest action first."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InboxInputError(f"limit: 1 to {MAX_PAGE}; offset: 0 or more")
        query = select(Follower).where(Follower.last_action_at.is_not(None))
        if state is not None:
            query = query.where(_state_filter(state))
        if agent is not None:
            query = query.where(Follower.paused_by == AGENT_PREFIX + check_agent(agent))
        if channel is not None:
            query = query.where(Follower.channel == channel)
        query = query.order_by(Follower.last_action_at.desc(), Follower.id.desc()).limit(limit).offset(offset)
        async with self.sessions() as session:
            rows = list((await session.execute(query)).scalars())
            return await self._summaries(session, rows, now or utcnow())

    async def conversation(self, follower_id: int, *, limit: int = 100, before: int | None = None,
                           now: datetime | None = None) -> Conversation:
        """One conversation: its summary and its last ``limit`` messages (before message ``before``), oldest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise InboxInputError(f"limit: 1 to {MAX_PAGE}")
        query = select(Message).where(Message.follower_id == follower_id)
        if before is not None:
            query = query.where(Message.id < before)
        async with self.sessions() as session:
            row = await load_follower(session, follower_id)
            messages = list((await session.execute(query.order_by(Message.id.desc()).limit(limit))).scalars())
            summary = (await self._summaries(session, [row], now or utcnow()))[0]
        return Conversation(summary, [
            ConversationMessage(id=m.id, direction=m.direction, kind=m.kind, text=m.text, status=m.status,
                                reason=m.reason, created_at=m.created_at, sent_at=m.sent_at, sent_by=m.sent_by)
            for m in reversed(messages)])

    async def take(self, follower_id: int, agent: str) -> HandoffChange:
        """``agent`` takes the conversation (see :func:`bot.admin.handoff.take`)."""
        async with self.sessions() as session:
            row = await load_follower(session, follower_id)
            channel, account = row.channel, row.account
        change = await take(self.sessions, follower_id, agent, catalogs=self.catalogs,
                            capabilities=self.capabilities.get(channel), default_locale=self.default_locale,
                            international_locale=self.international_locale)
        if change.told_message_id is not None and self.deliver is not None:
            await self.deliver(channel, account, [change.told_message_id])
        return change

    async def release(self, follower_id: int, agent: str, *, force: bool = False) -> HandoffChange:
        """Hand the conversation back to the bot (see :func:`bot.admin.handoff.release`)."""
        return await release(self.sessions, follower_id, agent, force=force)

    async def reply(self, follower_id: int, agent: str, text: str, *, now: datetime | None = None) -> QueuedReply:
        """Write ``agent``'s reply to the outbox, if the conversation is theirs and its window is open.

        Raises HandoffRefused (not taken by this agent), OutsideReplyWindow (the platform would refuse
        it now: the reason says why) or InboxInputError (empty or too long).
        """
        check_agent(agent)
        if not isinstance(text, str) or not text.strip():
            raise InboxInputError("text: the reply is empty")
        if len(text) > MAX_REPLY_CHARS:
            raise InboxInputError(f"text: at most {MAX_REPLY_CHARS} characters")
        now = now or utcnow()
        async with self.sessions() as session:
            await hold_write_gate(session)
            row = await load_follower(session, follower_id)
            if row.paused_by != AGENT_PREFIX + agent:
                holder = agent_of(row.paused_by)
                why = f"it is taken by agent {holder!r}" if holder else "take it first"
                raise HandoffRefused(f"conversation {follower_id} is not agent {agent!r}'s: {why}")
            caps = self.capabilities.get(row.channel)
            if caps is None:
                raise HandoffRefused(f"channel {row.channel!r} is not served here: its reply window is unknown")
            window = follower_window(caps, row, now)
            assert window is not None
            if not window.open:
                raise OutsideReplyWindow(f"conversation {follower_id}: {window.reason}; "
                                         "the follower must write first")
            message = enqueue_reply(session, row, TextReply(text))
            message.sent_by = agent
            await session.commit()
            queued = QueuedReply(message.id, follower_id, window)
            channel, account = row.channel, row.account
        if self.deliver is not None:
            await self.deliver(channel, account, [queued.message_id])
        return queued

    async def sweep_timeouts(self, *, now: datetime | None = None) -> int:
        """Queued followers past the timeout go back to the bot, told so (see :class:`QueueTimeoutSweeper`)."""
        return await sweep_queue_timeouts(self.sessions, catalogs=self.catalogs, timeout=self.timeout,
                                          default_locale=self.default_locale,
                                          international_locale=self.international_locale, now=now)

    async def _summaries(self, session: AsyncSession, rows: list[Follower], now: datetime) -> list[ConversationSummary]:
        ids = [r.id for r in rows]
        texts = await last_inbound_texts(session, ids)
        last: dict[int, LastMessage] = {}
        if ids:
            newest = select(func.max(Message.id)).where(Message.follower_id.in_(ids)).group_by(Message.follower_id)
            for m in (await session.execute(select(Message.follower_id, Message.direction, Message.kind, Message.text,
                                                   Message.created_at).where(Message.id.in_(newest)))).all():
                last[m.follower_id] = LastMessage(m.direction, m.kind, m.text, m.created_at)
        return [ConversationSummary(
            follower_id=r.id, channel=r.channel, account=r.account, external_id=r.external_id,
            display_name=r.display_name,
            locale=follower_locale(r, texts.get(r.id), catalogs=self.catalogs, default_locale=self.default_locale,
                                   international_locale=self.international_locale),
            state=handoff_state(r.paused_by), agent=agent_of(r.paused_by), state_since=r.paused_at,
            told_at=r.handoff_told_at, last_action_at=r.last_action_at, last_message=last.get(r.id),
            window=follower_window(self.capabilities.get(r.channel), r, now)) for r in rows]


def _state_filter(state: HandoffState) -> Any:
    match state:
        case HandoffState.BOT:
            return Follower.paused_by.is_(None)
        case HandoffState.QUEUED:
            return Follower.paused_by == AGENT_QUEUE
        case HandoffState.TAKEN:
            return Follower.paused_by.startswith(AGENT_PREFIX, autoescape=True)
        case HandoffState.PLATFORM:
            return Follower.paused_by == PLATFORM_DESK


__all__ = ["Conversation", "ConversationMessage", "ConversationSummary", "HandoffChange", "HandoffRefused",
           "Inbox", "InboxInputError", "LastMessage", "QueuedReply"]
