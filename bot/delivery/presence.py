"""Which channel accounts have a sender running, and giving up rows nobody can send.

Every process that can send a channel account's outbox (``engagebot run``, ``engagebot broadcast
work``) says so in table ``outbox_sender``, refreshing ``seen_at`` every few seconds while it runs
and removing its rows when it stops. A row waiting for an account that no process has served
within ``wait`` (say the mock channel of an ``engagebot chat`` console, which answers only inline)
would otherwise stay pending forever: :func:`give_up_unserved` reports it ``undeliverable`` with
the reason instead. The wait covers a restart: a sender back within it finds its rows untouched.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.storage.dialect import affected_rows
from bot.storage.models import Message, SenderPresence
from bot.storage.status import UNSENT, DeliveryStatus

log = logging.getLogger("engagebot.outbox")

NO_SENDER_WAIT = timedelta(seconds=30)


def no_sender_reason(channel: str, account: str, *, in_doubt: bool = False) -> str:
    reason = f"no sender running for {channel} account {account!r}"
    if in_doubt:
        reason += "; an earlier try may have reached the platform"
    return reason


def beat_every(wait: timedelta) -> float:
    """How often a sender refreshes its presence: several times within the wait, at most every 5 s."""
    return min(5.0, max(wait.total_seconds() / 4, 0.05))


class Presence:
    """This process's presence as the sender of some channel accounts; call :meth:`start` and :meth:`stop`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], keys: Iterable[tuple[str, str]], *,
                 wait: timedelta = NO_SENDER_WAIT) -> None:
        self.sessions = sessions
        self.keys = sorted(set(keys))
        self.every = beat_every(wait)
        self.instance = uuid.uuid4().hex
        self._started = utcnow()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Say we are here (before anything else looks), then keep saying so in the background."""
        if not self.keys:
            return
        await self.beat()
        if self._task is None:
            self._task = asyncio.create_task(self._beat_forever(), name="outbox-presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.keys:
            try:
                async with self.sessions.begin() as session:
                    await session.execute(delete(SenderPresence).where(SenderPresence.instance == self.instance))
            except Exception:
                log.warning("sender presence not removed", exc_info=True)

    async def beat(self) -> None:
        now = utcnow()
        async with self.sessions.begin() as session:
            seen = await session.execute(update(SenderPresence).where(
                SenderPresence.instance == self.instance).values(seen_at=now))
            if affected_rows(seen) != len(self.keys):
                await session.execute(delete(SenderPresence).where(SenderPresence.instance == self.instance))
                session.add_all(SenderPresence(channel=c, account=a, instance=self.instance, host=socket.gethostname()[:255],
                                               pid=os.getpid(), started_at=self._started, seen_at=now)
                                for c, a in self.keys)
            # Presences of processes that died long ago: nobody needs them any more.
            await session.execute(delete(SenderPresence).where(SenderPresence.seen_at < now - timedelta(days=1)))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("sender presence not refreshed", exc_info=True)


@dataclass(frozen=True, slots=True)
class Unserved:
    channel: str
    account: str
    rows: int  # rows waiting for it
    given_up: int  # of which reported undeliverable now


async def unserved_accounts(session: AsyncSession, *, wait: timedelta = NO_SENDER_WAIT,
                            now: datetime | None = None) -> list[tuple[str, str, int]]:
    """(channel, account, rows) of outbound rows waiting for an account no sender served within ``wait``."""
    now = now or utcnow()
    served = select(SenderPresence.channel, SenderPresence.account).where(SenderPresence.seen_at > now - wait)
    live = {(c, a) for c, a in (await session.execute(served)).all()}
    waiting = (await session.execute(select(Message.channel, Message.account, func.count()).where(
        Message.direction == "out", Message.status.in_(UNSENT)).group_by(Message.channel, Message.account))).all()
    return [(c, a, n) for c, a, n in waiting if (c, a) not in live]


async def give_up_unserved(sessions: async_sessionmaker[AsyncSession], *, wait: timedelta = NO_SENDER_WAIT,
                           ) -> list[Unserved]:
    """Report ``undeliverable`` the rows of accounts nobody served within ``wait``, once they waited that long.

    Returns what was found waiting without a sender (also rows still within their wait).
    """
    now = utcnow()
    found: list[Unserved] = []
    async with sessions.begin() as session:
        unserved = await unserved_accounts(session, wait=wait, now=now)
        for channel, account, rows in unserved:
            mine = and_(Message.channel == channel, Message.account == account, Message.direction == "out",
                        Message.created_at < now - wait)
            given_up = 0
            for statuses, in_doubt in (((DeliveryStatus.PENDING, DeliveryStatus.HELD), False),
                                       ((DeliveryStatus.SENDING,), True)):
                result = await session.execute(update(Message).where(mine, Message.status.in_(statuses)).values(
                    status=DeliveryStatus.UNDELIVERABLE, reason=no_sender_reason(channel, account, in_doubt=in_doubt),
                    next_attempt_at=None), execution_options={"synchronize_session": False})
                given_up += affected_rows(result)
            found.append(Unserved(channel, account, rows, given_up))
            if given_up:
                log.warning("outbound rows given up: no sender", extra={"channel": channel, "account": account,
                                                                        "rows": given_up})
    return found


__all__ = ["NO_SENDER_WAIT", "Presence", "Unserved", "give_up_unserved", "no_sender_reason", "unserved_accounts"]
