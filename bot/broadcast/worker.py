"""Run broadcasts in this process: expand queued ones, drain each channel's outbox, mass-send, close.

Everything a worker needs to know about a platform comes from the channel's ``Capabilities``: the
send rates pace its ``OutboxSender``, the reply windows decide who can be reached, ``mass_send``
decides whether the others are batched or reported. A new channel needs no change here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.delivery.outbox import CONCURRENCY, LEASE, OutboxSender
from bot.delivery.presence import NO_SENDER_WAIT, Presence, beat_every, give_up_unserved
from bot.delivery.sender import Sender, channel_key
from bot.i18n import INTERNATIONAL_LOCALE, Catalogs
from bot.storage.duties import Duties
from bot.storage.models import Message

from .expand import expand_broadcast
from .mass import run_mass_sends
from .models import EXPANDING, QUEUED, Broadcast
from .status import UNSETTLED, finish_done

log = logging.getLogger("engagebot.broadcast")


def worker_options(settings: Any) -> dict[str, Any]:
    """The ``BroadcastWorker`` keywords for the operator's settings (``ENGAGEBOT_OUTBOX__*``, and the
    international locale that expansion gives followers whose language has no catalog)."""
    outbox = settings.outbox
    return {"batch_size": outbox.batch_size, "lease": timedelta(seconds=outbox.lease_seconds),
            "concurrency": outbox.concurrency, "no_sender_wait": timedelta(seconds=outbox.no_sender_wait_seconds),
            "international_locale": settings.international_locale}


SUPERVISOR_DUTY = "broadcast-supervisor"  # expansion, mass sends, closing: the lease of ``engagebot run``


class BroadcastWorker:
    """One outbox sender per channel plus a supervisor loop; several processes may run one each.

    With ``duties`` (``engagebot run``) the sweeps and the supervisor run only in the process holding
    their lease; without (``engagebot broadcast work``) they run here, beside any others: the rows'
    own leases keep each send once either way.

    A channel that already owns an ``OutboxSender`` as ``channel.outbox`` (the WeChat and Telegram
    adapters do) keeps it, configured with this worker's settings: two senders for one channel in
    one process would each take the full rate. While it runs, the worker says in the database which
    channel accounts this process can send for (``bot.delivery.presence``), and gives up rows of
    accounts nobody serves once they waited ``no_sender_wait``.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], channels: Sequence[Sender], *,
                 poll_every: float = 1.0, batch_size: int | None = None, lease: timedelta | None = None,
                 concurrency: int | None = None, no_sender_wait: timedelta = NO_SENDER_WAIT,
                 catalogs: Catalogs | None = None, international_locale: str = INTERNATIONAL_LOCALE,
                 duties: Duties | None = None) -> None:
        self.sessions = sessions
        self.international_locale = international_locale
        self.channels = list(channels)
        self.poll_every = poll_every
        self.catalogs = catalogs
        self.lease = lease or LEASE
        self.no_sender_wait = no_sender_wait
        self.senders: list[OutboxSender] = []
        self._owned: list[OutboxSender] = []
        for channel in self.channels:
            existing = getattr(channel, "outbox", None)
            if isinstance(existing, OutboxSender):
                existing.configure(batch_size=batch_size, lease=lease, concurrency=concurrency)
                self.senders.append(existing)
            else:
                sender = OutboxSender(channel, sessions, sweep_every=poll_every, batch_size=batch_size,
                                      lease=self.lease, concurrency=concurrency or CONCURRENCY)
                self.senders.append(sender)
                self._owned.append(sender)
        self.presence = Presence(sessions, (channel_key(c) for c in self.channels), wait=no_sender_wait)
        self._give_up_every = beat_every(no_sender_wait)
        self._next_give_up = 0.0
        self._task: asyncio.Task[None] | None = None
        self.duties = duties
        if duties is not None:
            # One process of the deployment sweeps each account's outbox (its rows go out at the account's
            # rate, not at the rate times the processes) and one supervises; each still sends its own replies.
            for sender in self.senders:
                sender.sweeps_by_lease = True
                duties.add("outbox:{}:{}".format(*channel_key(sender.channel)), sender.sweep_while_held)
            duties.add(SUPERVISOR_DUTY, self._supervise)

    async def start(self) -> None:
        await self.presence.start()  # before the first tick looks for accounts nobody serves
        for sender in self.senders:
            sender.start()
        if self._task is None and self.duties is None:
            self._task = asyncio.create_task(self._supervise(), name="broadcast-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for sender in self._owned:
            await sender.stop()
        await self.presence.stop()

    async def tick(self) -> None:
        """Expand broadcasts nobody is expanding, send held rows by mass send, close finished ones."""
        now = utcnow()
        async with self.sessions() as session:
            ids = (await session.execute(select(Broadcast.id).where(
                Broadcast.status.in_((QUEUED, EXPANDING)),
                or_(Broadcast.lease_until.is_(None), Broadcast.lease_until < now)).order_by(Broadcast.id))).scalars().all()
        for broadcast_id in ids:
            await expand_broadcast(self.sessions, broadcast_id, catalogs=self.catalogs,
                                   international_locale=self.international_locale)
        for channel in self.channels:
            await run_mass_sends(channel, self.sessions, lease=self.lease)
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_give_up:
            self._next_give_up = loop.time() + self._give_up_every
            await give_up_unserved(self.sessions, wait=self.no_sender_wait)
        async with self.sessions() as session:
            for broadcast_id in await finish_done(session):
                log.info("broadcast done", extra={"broadcast": broadcast_id})

    async def idle(self) -> bool:
        """Nothing to expand, and nothing this worker's channels could still send."""
        keys = [channel_key(c) for c in self.channels]
        async with self.sessions() as session:
            if (await session.execute(select(Broadcast.id).where(
                    Broadcast.status.in_((QUEUED, EXPANDING))).limit(1))).first():
                return False
            if keys and (await session.execute(select(Message.id).where(
                    Message.direction == "out", Message.status.in_(UNSETTLED),
                    or_(*(and_(Message.channel == n, Message.account == a) for n, a in keys))).limit(1))).first():
                return False
        return True

    async def run_until_idle(self, *, timeout: float | None = None) -> None:
        """Start, work until :meth:`idle`, close what finished, stop (the ``--until-idle`` worker)."""
        await self.start()
        try:
            async with asyncio.timeout(timeout):
                while not await self.idle():
                    await asyncio.sleep(self.poll_every / 4)
                await self.tick()
        finally:
            await self.stop()

    async def _supervise(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep supervising: a DB hiccup must not stop broadcasts for good
                log.exception("broadcast supervisor failed")
            await asyncio.sleep(self.poll_every)
