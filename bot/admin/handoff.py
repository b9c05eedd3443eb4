"""Handoff between the bot and our agents: take, release, and the queue's timeout back to the bot.

Who answers a follower is ``follower.paused_by`` (``bot.core.follower``): nobody but the bot (NULL),
the platform's own desk (``platform``), the queue for agents (``queue``: the follower asked for a
person, ``handlers/handoff.py``), or an agent (``agent:<id>``). ``paused_at`` is when that last
changed. Every change here is one conditional UPDATE, so two agents (or an agent and the sweeper)
never both win. While the queue or an agent has a follower the dispatcher runs no handler: the
follower's messages are stored, and they are told once that a person will answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.capabilities import Capabilities
from bot.core.clock import utcnow
from bot.core.follower import (
    AGENT_PREFIX,
    AGENT_QUEUE,
    MAX_AGENT_ID,
    PERSON_WILL_ANSWER,
    PLATFORM_DESK,
    PLATFORM_PAUSE_LAPSES,
    HandoffState,
    agent_of,
    handoff_state,
)
from bot.core.reply import TextReply
from bot.delivery.windows import WindowStatus, window_status
from bot.errors import OutsideReplyWindow
from bot.i18n import INTERNATIONAL_LOCALE, N_, Catalogs, negotiate
from bot.offers.notify import enqueue_reply
from bot.storage.engine import hold_write_gate
from bot.storage.models import Follower, Message

from .errors import Conflict, Invalid, NotFound

log = logging.getLogger("engagebot.handoff")

DEFAULT_TIMEOUT = timedelta(minutes=15)
SWEEP_BATCH = 100
# Sent when the queue's timeout passes with no agent: the follower is not left talking to nobody.
BACK_TO_BOT = N_("Sorry, nobody from our team is free yet. We will answer you here as soon as we can; "
                 "meanwhile I am back to help. Send /help to see what I can do.")


PLATFORM_HAS_IT = N_("conversation {id} is with the platform's own customer-service desk")
CHANGED_HANDS = N_("conversation {id} changed hands meanwhile; look again")


# Adds the caller's own rows (an audit entry) to a change's transaction: they commit with it, or not at all.
Record = Callable[[AsyncSession], Awaitable[None]]


class ConversationNotFound(NotFound):
    """No follower with that id."""


class HandoffRefused(Conflict):
    """The conversation is not in a state that allows this (another agent has it, the platform's desk...)."""


class ReplyWindowClosed(Conflict, OutsideReplyWindow):
    """The platform would refuse an agent's reply now: a refusal of ours and the delivery engine's own kind."""


class InboxInputError(Invalid):
    """An agent id, a limit or a reply text that cannot be used."""


def check_agent(agent: str) -> str:
    """Return ``agent`` if it is a usable agent id: 1 to 64 printable ASCII characters, no spaces."""
    if not isinstance(agent, str) or not 1 <= len(agent) <= MAX_AGENT_ID \
            or not all("\x21" <= ch <= "\x7e" for ch in agent):
        raise InboxInputError("agent id", N_("1 to {most} printable ASCII characters without spaces expected"),
                              most=MAX_AGENT_ID)
    return agent


def follower_locale(row: Any, last_text: str | None, *, catalogs: Catalogs, default_locale: str,
                    international_locale: str = INTERNATIONAL_LOCALE) -> str:
    """The locale the bot would answer ``row`` (a follower) in: as the dispatcher picks it, with the
    follower's last message as the script clue (there is no message now)."""
    return negotiate(chosen=row.locale, hint=row.locale_hint, text=last_text, default=default_locale,
                     international=international_locale, available=catalogs.locales)


def follower_window(caps: Capabilities | None, row: Any, now: datetime) -> WindowStatus | None:
    """The follower's reply window on its channel now; None when the channel is not known here."""
    if caps is None:
        return None
    return window_status(caps, following=bool(row.following), kind=row.last_action_kind, at=row.last_action_at,
                         sends=row.window_sends or 0, now=now)


async def last_inbound_texts(session: AsyncSession, follower_ids: list[int]) -> dict[int, str]:
    """The text of each follower's last inbound message (the script clue of its locale)."""
    if not follower_ids:
        return {}
    last = (select(func.max(Message.id)).where(Message.follower_id.in_(follower_ids), Message.direction == "in")
            .group_by(Message.follower_id))
    rows = (await session.execute(select(Message.follower_id, Message.text).where(Message.id.in_(last)))).all()
    return {r.follower_id: r.text for r in rows}


@dataclass(frozen=True, slots=True)
class HandoffChange:
    """What a take or release did: the state now, and whether it changed anything."""

    follower_id: int
    state: HandoffState
    agent: str | None
    changed: bool
    told_message_id: int | None = None  # the outbox row telling the follower "a person will answer"

    @property
    def told(self) -> bool:
        return self.told_message_id is not None


MAX_ROW_ID = 2**63 - 1  # the largest id (or offset) either database stores: larger is a 4xx, not a driver error


def check_row_id(name: str, value: int, *, least: int = 1) -> int:
    """Return ``value`` if it can name a row (or an offset) in both databases; else InboxInputError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= MAX_ROW_ID:
        raise InboxInputError(name, N_("a whole number from {least} to {most} expected"), least=least, most=MAX_ROW_ID)
    return value


async def load_follower(session: AsyncSession, follower_id: int, *, for_update: bool = False) -> Follower:
    """The follower of a conversation; ``for_update``: locked until the transaction ends (PostgreSQL)."""
    query = select(Follower).where(Follower.id == check_row_id("conversation", follower_id))
    row = (await session.execute(query.with_for_update() if for_update else query)).scalar_one_or_none()
    if row is None:
        raise ConversationNotFound(N_("no conversation {id}"), id=follower_id)
    return row


def _platform_has_it(row: Any, now: datetime) -> bool:
    return row.paused_by == PLATFORM_DESK and (row.paused_at is None or now - row.paused_at < PLATFORM_PAUSE_LAPSES)


async def take(sessions: async_sessionmaker[AsyncSession], follower_id: int, agent: str, *, catalogs: Catalogs,
               capabilities: Capabilities | None, default_locale: str,
               international_locale: str = INTERNATIONAL_LOCALE, now: datetime | None = None,
               record: Record | None = None) -> HandoffChange:
    """Let ``agent`` have the conversation: the bot (or the queue) gives it up.

    A follower not told yet (they did not ask for a person) is told now, in their language, through the
    outbox when their reply window is open; else the dispatcher tells them with their next message.
    Refused while another agent or the platform's own desk has it.
    """
    check_agent(agent)
    now = now or utcnow()
    mine = AGENT_PREFIX + agent
    async with sessions() as session:
        await hold_write_gate(session)
        row = await load_follower(session, follower_id)
        if row.paused_by == mine:
            return HandoffChange(follower_id, HandoffState.TAKEN, agent, changed=False)
        if handoff_state(row.paused_by) is HandoffState.TAKEN:
            raise HandoffRefused(N_("conversation {id} is taken by agent {agent!r}; they release it first"),
                                 id=follower_id, agent=agent_of(row.paused_by))
        if _platform_has_it(row, now):
            raise HandoffRefused(PLATFORM_HAS_IT, id=follower_id)
        told_at = row.handoff_told_at if row.paused_by == AGENT_QUEUE else None
        notice = None
        window = follower_window(capabilities, row, now)
        if told_at is None and window is not None and window.open:
            texts = await last_inbound_texts(session, [follower_id])
            locale = follower_locale(row, texts.get(follower_id), catalogs=catalogs, default_locale=default_locale,
                                     international_locale=international_locale)
            notice = enqueue_reply(session, row, TextReply(catalogs.gettext(locale, PERSON_WILL_ANSWER)))
            told_at = now
        was = row.paused_by
        result = await session.execute(
            update(Follower).where(Follower.id == follower_id, _same(Follower.paused_by, was))
            .values(paused_by=mine, paused_at=now, handoff_told_at=told_at).returning(Follower.id),
            execution_options={"synchronize_session": False})
        if result.scalar_one_or_none() is None:  # changed since it was read: by another agent, say
            await session.rollback()
            raise HandoffRefused(CHANGED_HANDS, id=follower_id)
        if record is not None:
            await record(session)
        await session.commit()
    log.info("conversation taken", extra={"follower_id": follower_id, "agent": agent, "told": notice is not None})
    return HandoffChange(follower_id, HandoffState.TAKEN, agent, changed=True,
                         told_message_id=notice.id if notice is not None else None)


async def release(sessions: async_sessionmaker[AsyncSession], follower_id: int, agent: str, *,
                  force: bool = False, now: datetime | None = None, record: Record | None = None) -> HandoffChange:
    """Hand the conversation back to the bot, which answers the follower's next message again.

    ``agent`` releases what they hold, or a queued follower; ``force`` releases another agent's (an
    agent gone home). The platform's own desk is the platform's to end.
    """
    check_agent(agent)
    now = now or utcnow()
    async with sessions() as session:
        await hold_write_gate(session)
        row = await load_follower(session, follower_id)
        state = handoff_state(row.paused_by)
        if state is HandoffState.BOT:
            return HandoffChange(follower_id, state, None, changed=False)
        if state is HandoffState.PLATFORM:
            raise HandoffRefused(PLATFORM_HAS_IT, id=follower_id)
        if state is HandoffState.TAKEN and row.paused_by != AGENT_PREFIX + agent and not force:
            raise HandoffRefused(N_("conversation {id} is taken by agent {agent!r}"), id=follower_id,
                                 agent=agent_of(row.paused_by))
        result = await session.execute(
            update(Follower).where(Follower.id == follower_id, Follower.paused_by == row.paused_by)
            .values(paused_by=None, paused_at=now, handoff_told_at=None).returning(Follower.id),
            execution_options={"synchronize_session": False})
        if result.scalar_one_or_none() is None:
            await session.rollback()
            raise HandoffRefused(CHANGED_HANDS, id=follower_id)
        if record is not None:
            await record(session)
        await session.commit()
    log.info("conversation released", extra={"follower_id": follower_id, "agent": agent, "was": str(state)})
    return HandoffChange(follower_id, HandoffState.BOT, None, changed=True)


async def dismiss(sessions: async_sessionmaker[AsyncSession], follower_id: int, agent: str, *,
                  record: Record | None = None) -> bool:
    """Let a follower owed an answer (``owed_since``) go without one; False when nothing was owed."""
    check_agent(agent)
    async with sessions() as session:
        await hold_write_gate(session)
        await load_follower(session, follower_id)
        result = await session.execute(
            update(Follower).where(Follower.id == follower_id, Follower.owed_since.is_not(None))
            .values(owed_since=None).returning(Follower.id), execution_options={"synchronize_session": False})
        if result.scalar_one_or_none() is None:
            return False
        if record is not None:
            await record(session)
        await session.commit()
    log.info("owed answer dismissed", extra={"follower_id": follower_id, "agent": agent})
    return True


def _same(column: Any, value: str | None) -> Any:
    return column.is_(None) if value is None else column == value


async def sweep_queue_timeouts(sessions: async_sessionmaker[AsyncSession], *, catalogs: Catalogs,
                               timeout: timedelta, default_locale: str,
                               international_locale: str = INTERNATIONAL_LOCALE, now: datetime | None = None,
                               batch: int = SWEEP_BATCH) -> int:
    """Give queued followers no agent took within ``timeout`` back to the bot, each told so in their
    language (an outbox row), and marked owed an answer since they asked (``owed_since``); return how many."""
    now = now or utcnow()
    cutoff = now - timeout
    async with sessions() as session:
        await hold_write_gate(session)
        rows = list((await session.execute(
            select(Follower).where(Follower.paused_by == AGENT_QUEUE, Follower.paused_at <= cutoff)
            .order_by(Follower.paused_at).limit(batch))).scalars())
        texts = await last_inbound_texts(session, [r.id for r in rows])
        back = 0
        for row in rows:
            result = await session.execute(
                update(Follower).where(Follower.id == row.id, Follower.paused_by == AGENT_QUEUE,
                                       or_(Follower.paused_at.is_(None), Follower.paused_at <= cutoff))
                # Still owed a person's answer: the inbox keeps showing them until an agent answers or dismisses.
                .values(paused_by=None, paused_at=now, handoff_told_at=None,
                        owed_since=func.coalesce(Follower.owed_since, Follower.paused_at))
                .returning(Follower.id),
                execution_options={"synchronize_session": False})
            if result.scalar_one_or_none() is None:
                continue  # taken meanwhile
            locale = follower_locale(row, texts.get(row.id), catalogs=catalogs, default_locale=default_locale,
                                     international_locale=international_locale)
            enqueue_reply(session, row, TextReply(catalogs.gettext(locale, BACK_TO_BOT)))
            back += 1
        await session.commit()
    if back:
        log.info("queued followers back to the bot", extra={"followers": back})
    return back


class QueueTimeoutSweeper:
    """The queue's timeout as a duty (``bot.storage.duties``): one process of the deployment sweeps."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, catalogs: Catalogs, timeout: timedelta,
                 default_locale: str, international_locale: str = INTERNATIONAL_LOCALE,
                 every: float | None = None) -> None:
        self.sessions = sessions
        self.catalogs = catalogs
        self.timeout = timeout
        self.default_locale = default_locale
        self.international_locale = international_locale
        # Often enough that a follower waits little past the timeout; never more than every 30 s.
        self.every = every if every is not None else min(30.0, max(1.0, timeout.total_seconds() / 10))
        self._task: asyncio.Task[None] | None = None

    async def sweep_once(self) -> int:
        total = 0
        while True:
            back = await sweep_queue_timeouts(self.sessions, catalogs=self.catalogs, timeout=self.timeout,
                                              default_locale=self.default_locale,
                                              international_locale=self.international_locale)
            total += back
            if back < SWEEP_BATCH:
                return total

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep sweeping: a database hiccup must not end the duty
                log.exception("handoff sweep failed")
            await asyncio.sleep(self.every)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="handoff-timeout")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
