"""Pace a channel account's sends: at most so many per second overall and to one chat, evenly spaced.

The only rate limiter between the outbox and a platform: its rates are what the channel declares in
its ``Capabilities`` (``max_sends_per_second``, ``max_sends_per_chat_per_second``), and the pauses
the platform asks for (``retry after``) stop everyone or, for a chat's own limit, that chat only.

Several instances on one PostgreSQL (or worker processes) each send their own replies: the account's
overall rate is then held in the database too (:class:`SharedPace`), so together they keep to it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from sqlalchemy import case
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.dialect import is_postgresql, upsert
from bot.storage.models import SendPace


class Clock(Protocol):
    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    """The running event loop's clock, what the limiter measures and waits by (a test may give a fake one)."""

    def time(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class RateLimiter:
    """Pace sends: at most ``per_second`` overall and ``per_chat`` to one chat, evenly spaced.

    Two steps per send: :meth:`acquire` waits for the send's turn (it may then spend a moment
    recording that the send starts), :meth:`depart` is called right before the request leaves and
    keeps the spacing between real departures, so sends whose bookkeeping finished together never
    leave in a burst. In-process: several processes sending for one account each get the full rate
    (run one worker per account, or declare a proportionally lower rate).
    """

    def __init__(self, per_second: float | None = None, per_chat: float | None = None, *,
                 shared: SharedPace | None = None, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or LoopClock()
        self.shared = shared  # the account's pace across instances, after this process's own
        self.interval = 1.0 / per_second if per_second else 0.0
        self.chat_interval = 1.0 / per_chat if per_chat else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._departed = float("-inf")
        self._chat_next: dict[str, float] = {}
        self._chat_departed: dict[str, float] = {}
        self._chat_paused: dict[str, float] = {}  # chat -> until when the platform asked it to wait
        self._lock = asyncio.Lock()
        self._depart_lock = asyncio.Lock()

    def pause(self, seconds: float, *, chat: str | None = None) -> None:
        """Stop everyone for a while (the platform said 429 / retry after), or only ``chat``."""
        now = self.clock.time()
        if chat is None:
            self._paused_until = max(self._paused_until, now + seconds)
            return
        if len(self._chat_paused) > 10_000:  # forget pauses that are over: memory stays flat
            self._chat_paused = {c: t for c, t in self._chat_paused.items() if t > now}
        self._chat_paused[chat] = max(self._chat_paused.get(chat, 0.0), now + seconds)

    def paused_for(self, chat: str | None = None) -> float:
        """Seconds left of the current pause of everyone, or of ``chat`` (0: not paused)."""
        until = self._paused_until if chat is None else max(self._paused_until, self._chat_paused.get(chat, 0.0))
        return max(until - self.clock.time(), 0.0)

    async def acquire(self, chat: str) -> None:
        """Wait for this chat's and the overall turn; spacing counts from when a send really went.

        Slots are handed out one at a time under a lock, measured from the actual wake-up time, so a
        late wake-up (a busy loop) never lets several sends catch up in a burst.
        """
        clock = self.clock
        if self.chat_interval or self._chat_paused:
            while (wait := max(self._chat_next.get(chat, 0.0), self._chat_paused.get(chat, 0.0)) - clock.time()) > 0:
                await clock.sleep(wait)
        async with self._lock:
            while (wait := max(self._paused_until, self._next) - clock.time()) > 0:
                await clock.sleep(wait)
            now = clock.time()
            self._next = now + self.interval
        if self.chat_interval:
            self._chat_next[chat] = now + self.chat_interval
            if len(self._chat_next) > 10_000:  # forget chats whose gap has passed: memory stays flat
                self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}

    async def depart(self, chat: str) -> None:
        """Hold the request until it is at least one interval after the previous real departure."""
        if not (self.interval or self.chat_interval or self._chat_paused):
            return
        clock = self.clock
        if self.chat_interval or self._chat_paused:
            while (wait := max(self._chat_departed.get(chat, float("-inf")) + self.chat_interval,
                               self._chat_paused.get(chat, 0.0)) - clock.time()) > 0:
                await clock.sleep(wait)
        async with self._depart_lock:
            # With a shared pace its slots space every process's departures, this one's included: spacing
            # here as well would add the database's round trip to every interval.
            spacing = 0.0 if self.shared is not None and self.shared.active else self.interval
            while (wait := max(self._paused_until, self._departed + spacing) - clock.time()) > 0:
                await clock.sleep(wait)
            if self.shared is not None:  # the turn across instances, taken right before the request leaves
                await self.shared.wait_turn()
            now = self._departed = clock.time()
        if self.chat_interval:
            self._chat_departed[chat] = now
            if len(self._chat_departed) > 10_000:
                self._chat_departed = {c: t for c, t in self._chat_departed.items()
                                       if t > now - self.chat_interval}


class SharedPace:
    """One channel account's overall pace across every process on a PostgreSQL database.

    The account's row holds its next free send slot; taking a turn is one atomic upsert that moves it
    one interval on and returns the slot taken, which the sender waits for. Times are wall-clock
    seconds: the instances' clocks must agree (NTP) to well under one interval. On SQLite (one machine,
    whose sweeps are already one process's duty) nothing is shared and no turn waits.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], name: str, per_second: float) -> None:
        self.sessions = sessions
        self.name = name
        self.interval = 1.0 / per_second
        self._shared: bool | None = None  # known at the first turn: is the database PostgreSQL?

    @property
    def active(self) -> bool:
        """Whether turns are taken in the database (PostgreSQL, once the first turn found out)."""
        return bool(self._shared)

    async def wait_turn(self) -> None:
        if self._shared is False:
            return
        now = time.time()
        async with self.sessions() as session:
            if self._shared is None:
                self._shared = is_postgresql(session)
                if not self._shared:
                    return
            stmt = upsert(session, SendPace, index_elements=[SendPace.name], set_={
                "next_at": case((SendPace.next_at > now, SendPace.next_at), else_=now) + self.interval,
            }).values(name=self.name, next_at=now + self.interval).returning(SendPace.next_at)
            taken = (await session.execute(stmt)).scalar_one() - self.interval
            await session.commit()
        if (wait := taken - time.time()) > 0:
            await asyncio.sleep(wait)
