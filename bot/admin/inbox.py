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
from bot.core.text import sanitize_text
from bot.delivery.windows import OUTSIDE_WINDOW, WindowStatus, window_status
from bot.i18n import INTERNATIONAL_LOCALE, N_, Catalogs
from bot.offers.notify import enqueue_reply
from bot.storage.engine import hold_write_gate
from bot.storage.models import Follower, Message
from bot.storage.status import DeliveryStatus

from .errors import Term
from .handoff import (
    DEFAULT_TIMEOUT,
    HandoffChange,
    HandoffRefused,
    InboxInputError,
    Record,
    ReplyWindowClosed,
    check_agent,
    check_row_id,
    dismiss,
    follower_locale,
    follower_window,
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
    owed_since: datetime | None = None  # asked for a person, timed out of the queue, not answered yet
    last_inbound: LastMessage | None = None  # the follower's own last message (what an owed answer answers)


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
                            agent: str | None = None, owed: bool | None = None, limit: int = 50, offset: int = 0,
                            now: datetime | None = None) -> list[ConversationSummary]:
        """Conversations across channels, the follower's latest action first; ``owed``: only those (not)
        owed a person's answer after the queue's timeout, and with ``owed=True`` the longest owed first (so a
        page never leaves out the most overdue)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InboxInputError("limit", N_("1 to {most}"), most=MAX_PAGE)
        check_row_id("offset", offset, least=0)
        if channel is not None and not _printable_name(channel):
            raise InboxInputError("channel", N_("1 to {most} printable ASCII characters expected"),
                                  most=MAX_CHANNEL_NAME)
        query = select(Follower).where(Follower.last_action_at.is_not(None))
        if state is not None:
            query = query.where(_state_filter(state))
        if agent is not None:
            query = query.where(Follower.paused_by == AGENT_PREFIX + check_agent(agent))
        if channel is not None:
            query = query.where(Follower.channel == channel)
        if owed is not None:
            query = query.where(Follower.owed_since.is_not(None) if owed else Follower.owed_since.is_(None))
        if owed:
            query = query.order_by(Follower.owed_since.asc(), Follower.id.asc())
        else:
            query = query.order_by(Follower.last_action_at.desc(), Follower.id.desc())
        query = query.limit(limit).offset(offset)
        async with self.sessions() as session:
            rows = list((await session.execute(query)).scalars())
            return await self._summaries(session, rows, now or utcnow())

    async def conversation(self, follower_id: int, *, limit: int = 100, before: int | None = None,
                           now: datetime | None = None) -> Conversation:
        """One conversation: its summary and its last ``limit`` messages (before message ``before``), oldest first."""
        if not 1 <= limit <= MAX_PAGE:
            raise InboxInputError("limit", N_("1 to {most}"), most=MAX_PAGE)
        query = select(Message).where(Message.follower_id == check_row_id("conversation", follower_id))
        if before is not None:
            query = query.where(Message.id < check_row_id("before", before))
        async with self.sessions() as session:
            row = await load_follower(session, follower_id)
            messages = list((await session.execute(query.order_by(Message.id.desc()).limit(limit))).scalars())
            summary = (await self._summaries(session, [row], now or utcnow()))[0]
        return Conversation(summary, [
            ConversationMessage(id=m.id, direction=m.direction, kind=m.kind, text=m.text, status=m.status,
                                reason=m.reason, created_at=m.created_at, sent_at=m.sent_at, sent_by=m.sent_by)
            for m in reversed(messages)])

    async def take(self, follower_id: int, agent: str, *, record: Record | None = None) -> HandoffChange:
        """``agent`` takes the conversation (see :func:`bot.admin.handoff.take`)."""
        async with self.sessions() as session:
            row = await load_follower(session, follower_id)
            channel, account = row.channel, row.account
        change = await take(self.sessions, follower_id, agent, catalogs=self.catalogs,
                            capabilities=self.capabilities.get(channel), default_locale=self.default_locale,
                            international_locale=self.international_locale, record=record)
        if change.told_message_id is not None and self.deliver is not None:
            await self.deliver(channel, account, [change.told_message_id])
        return change

    async def release(self, follower_id: int, agent: str, *, force: bool = False,
                      record: Record | None = None) -> HandoffChange:
        """Hand the conversation back to the bot (see :func:`bot.admin.handoff.release`)."""
        return await release(self.sessions, follower_id, agent, force=force, record=record)

    async def reply(self, follower_id: int, agent: str, text: str, *, now: datetime | None = None,
                    record: Record | None = None) -> QueuedReply:
        """Write ``agent``'s reply to the outbox, if the conversation is theirs and its window is open.

        Raises HandoffRefused (not taken by this agent), ReplyWindowClosed (an ``OutsideReplyWindow``: the
        platform would refuse it now, the reason says why) or InboxInputError (empty or too long).
        """
        check_agent(agent)
        if not isinstance(text, str) or not text.strip():
            raise InboxInputError("text", N_("the reply is empty"))
        text = sanitize_text(text)  # lone surrogates and NULs: storable in both databases
        if len(text) > MAX_REPLY_CHARS:
            raise InboxInputError("text", N_("at most {most} characters"), most=MAX_REPLY_CHARS)
        now = now or utcnow()
        async with self.sessions() as session:
            await hold_write_gate(session)
            # Locked until the reply is written: a release (or another agent's take) between the check
            # and the write would otherwise let this reply out to a follower the bot answers again.
            row = await load_follower(session, follower_id, for_update=True)
            if row.paused_by != AGENT_PREFIX + agent:
                holder = agent_of(row.paused_by)
                if holder:
                    raise HandoffRefused(N_("conversation {id} is not agent {agent!r}'s: it is taken by agent "
                                            "{holder!r}"), id=follower_id, agent=agent, holder=holder)
                raise HandoffRefused(N_("conversation {id} is not agent {agent!r}'s: take it first"),
                                     id=follower_id, agent=agent)
            caps = self.capabilities.get(row.channel)
            if caps is None:
                raise HandoffRefused(N_("channel {channel!r} is not served here: its reply window is unknown"),
                                     channel=row.channel)
            _check_fits(caps, text)
            # Replies still waiting in the outbox count against the window's sends as the ones sent do.
            waiting = await session.scalar(select(func.count()).select_from(Message).where(
                Message.follower_id == row.id, Message.direction == "out",
                Message.status.in_((DeliveryStatus.PENDING, DeliveryStatus.SENDING))))
            window = window_status(caps, following=bool(row.following), kind=row.last_action_kind,
                                   at=row.last_action_at, sends=(row.window_sends or 0) + (waiting or 0), now=now)
            if not window.open:
                raise ReplyWindowClosed(N_("conversation {id}: {reason}; the follower must write first"),
                                        id=follower_id, reason=window.reason or Term(OUTSIDE_WINDOW))
            message = enqueue_reply(session, row, TextReply(text))
            message.sent_by = agent
            row.owed_since = None  # a person answered
            if record is not None:
                await record(session)
            await session.commit()
            queued = QueuedReply(message.id, follower_id, window)
            channel, account = row.channel, row.account
        if self.deliver is not None:
            await self.deliver(channel, account, [queued.message_id])
        return queued

    async def dismiss(self, follower_id: int, agent: str, *, record: Record | None = None) -> bool:
        """Let a follower owed an answer go without one (see :func:`bot.admin.handoff.dismiss`)."""
        return await dismiss(self.sessions, follower_id, agent, record=record)

    async def sweep_timeouts(self, *, now: datetime | None = None) -> int:
        """Queued followers past the timeout go back to the bot, told so (see :class:`QueueTimeoutSweeper`)."""
        return await sweep_queue_timeouts(self.sessions, catalogs=self.catalogs, timeout=self.timeout,
                                          default_locale=self.default_locale,
                                          international_locale=self.international_locale, now=now)

    async def _summaries(self, session: AsyncSession, rows: list[Follower], now: datetime) -> list[ConversationSummary]:
        ids = [r.id for r in rows]
        last = await _last_messages(session, ids)
        last_in = await _last_messages(session, ids, inbound=True)
        texts = {follower_id: m.text for follower_id, m in last_in.items()}
        return [ConversationSummary(
            follower_id=r.id, channel=r.channel, account=r.account, external_id=r.external_id,
            display_name=r.display_name,
            locale=follower_locale(r, texts.get(r.id), catalogs=self.catalogs, default_locale=self.default_locale,
                                   international_locale=self.international_locale),
            state=handoff_state(r.paused_by), agent=agent_of(r.paused_by), state_since=r.paused_at,
            told_at=r.handoff_told_at, last_action_at=r.last_action_at, last_message=last.get(r.id),
            window=follower_window(self.capabilities.get(r.channel), r, now), owed_since=r.owed_since,
            last_inbound=last_in.get(r.id))
            for r in rows]


async def _last_messages(session: AsyncSession, follower_ids: list[int], *,
                         inbound: bool = False) -> dict[int, LastMessage]:
    """Each follower's last message (``inbound``: the last the follower sent), by follower id."""
    if not follower_ids:
        return {}
    newest = select(func.max(Message.id)).where(Message.follower_id.in_(follower_ids))
    if inbound:
        newest = newest.where(Message.direction == "in")
    query = (select(Message.follower_id, Message.direction, Message.kind, Message.text, Message.created_at)
             .where(Message.id.in_(newest.group_by(Message.follower_id))))
    return {m.follower_id: LastMessage(m.direction, m.kind, m.text, m.created_at)
            for m in (await session.execute(query)).all()}


MAX_CHANNEL_NAME = 64


def _printable_name(name: str) -> bool:
    return isinstance(name, str) and 1 <= len(name) <= MAX_CHANNEL_NAME and all("\x21" <= ch <= "\x7e" for ch in name)


def _check_fits(caps: Capabilities, text: str) -> None:
    """Refuse a reply the channel would cut: an agent's answer arrives whole or not at all."""
    size = len(text.encode("utf-8")) if caps.text_length_in_bytes else len(text)
    if size > caps.max_text_length:
        if caps.text_length_in_bytes:
            raise InboxInputError("text", N_("{size} bytes in UTF-8; this channel shows at most {most}"), size=size,
                                  most=caps.max_text_length)
        raise InboxInputError("text", N_("{size} characters; this channel shows at most {most}"), size=size,
                              most=caps.max_text_length)


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
           "Inbox", "InboxInputError", "LastMessage", "QueuedReply", "Record"]
