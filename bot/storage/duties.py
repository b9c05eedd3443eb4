"""Duties that must run once in the deployment, each run only while this process holds its lease.

Every worker process (and every instance on a shared PostgreSQL) registers the same duties: Telegram
polling, the Weibo megaphone, each channel account's outbox sweeper, the broadcast supervisor. For
each, :class:`Duties` tries the lease (``bot.storage.leases``) every third of its time to live: the
holder renews it and runs the duty; the others wait. When the holder dies its lease runs out and a
standby takes the duty within ``ttl`` and a third. A holder that cannot renew in time (the database
gone, the process paused) stops the duty before its lease can have passed to another, so two never
run it together for longer than one renewal round. A process restarted after a crash takes back at
once what a dead process of the same host held (its pid no longer runs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .leases import acquire, holder_of, release, renew, take_from, writes_left_running

log = logging.getLogger("engagebot.duties")

# How long a stopping process tries to give a lease up (it runs out within its ttl anyway).
RELEASE_WAIT = 3.0

Work = Callable[[], Coroutine[Any, Any, None]]  # runs the duty until cancelled


def process_holder() -> str:
    """This process's name in the lease table: host and pid (what an operator looks for), and a nonce
    (a restarted process with a reused pid is another holder)."""
    return f"{_host()}:{os.getpid()}:{secrets.token_hex(3)}"


def _host() -> str:
    return socket.gethostname()[:40]


def gone_from_this_host(holder: str) -> bool:
    """Whether ``holder`` (another process's name) was a process of this host that no longer runs.

    A process restarted after a crash then takes its duties back at once rather than after their
    lease ran out. Hosts sharing a deployment need distinct names (a pod's, a container's are).
    """
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # our pid, another nonce: an earlier process that had this pid (a container's pid 1)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, under another user
        return False
    return False


async def run_while(start: Callable[[], Awaitable[None] | None], stop: Callable[[], Awaitable[None]]) -> None:
    """A duty made of a start and a stop: started when the lease is taken, stopped when it is lost."""
    started = start()
    if started is not None:
        await started
    try:
        await asyncio.Event().wait()
    finally:
        await stop()


class Duties:
    """The duties of this process; :meth:`start` after what they use has started, :meth:`stop` first."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, ttl: timedelta,
                 holder: str | None = None) -> None:
        self.sessions = sessions
        self.ttl = ttl
        self.holder = holder or process_holder()
        self._work: dict[str, Work] = {}
        self._keepers: list[asyncio.Task[None]] = []
        self._held: set[str] = set()

    def add(self, name: str, work: Work) -> None:
        """Run ``work`` whenever this process holds lease ``name`` (names are unique in the deployment)."""
        if name in self._work:
            raise ValueError(f"duty {name!r} added twice")
        self._work[name] = work
        if self._keepers:  # added after start: keep it too
            self._keepers.append(asyncio.create_task(self._keep(name, work), name=f"duty-{name}"))

    @property
    def held(self) -> frozenset[str]:
        """The duties this process runs now."""
        return frozenset(self._held)

    async def start(self) -> None:
        if not self._keepers:
            self._keepers = [asyncio.create_task(self._keep(name, work), name=f"duty-{name}")
                             for name, work in self._work.items()]

    async def stop(self) -> None:
        """Stop every duty this process runs and give its lease up, so a standby takes it at once."""
        for keeper in self._keepers:
            keeper.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
        self._keepers = []

    async def _keep(self, name: str, work: Work) -> None:
        loop = asyncio.get_running_loop()
        every = self.ttl.total_seconds() / 3
        generation: int | None = None
        valid_until = 0.0  # loop time: past it, the lease may be another's (its last renewal plus ttl)
        task: asyncio.Task[None] | None = None
        taking = False  # asking for the lease: a stop meanwhile may cancel the answer of a take that committed
        try:
            while True:
                asked = loop.time()
                # A database that stops answering (no error: a path dropping packets) must not hold the
                # check past the point where the duty is to stop: the lease may be another's after it.
                limit = valid_until - every - asked if generation is not None else self.ttl.total_seconds()
                try:
                    taking = generation is None
                    async with asyncio.timeout(max(limit, 0.0)):
                        generation, valid_until = await self._check(name, generation, valid_until, asked)
                    taking = False
                except asyncio.CancelledError:
                    raise
                except Exception:  # the database unreachable: keep the duty while the lease surely is ours
                    log.warning("duty lease not checked", extra={"duty": name}, exc_info=True)
                if generation is not None and loop.time() >= valid_until - every:
                    generation = None  # lost, or soon maybe another's: stop before anyone else starts
                    await _cancel(task)
                    task = None
                    self._held.discard(name)
                if generation is not None and (task is None or task.done()):
                    if task is not None:
                        _report_end(name, task)
                    task = asyncio.create_task(work(), name=f"duty-{name}-work")
                    self._held.add(name)
                await asyncio.sleep(every)
        finally:
            self._held.discard(name)
            await _cancel(task)
            # A stop that came while the lease was being taken: it may be ours without our knowing its
            # generation (seen at a SIGTERM right after the start), and would be held until it ran out.
            if generation is not None or taking:
                try:
                    # Bounded: the stop must end within its budget even when the database's write lock is
                    # not to be had (SQLite's busy wait is 10 s); a lease not given up runs out within ttl.
                    async with asyncio.timeout(RELEASE_WAIT):
                        await writes_left_running()  # a take the stop cancelled ends first, then is given up
                        await release(self.sessions, name, self.holder, generation)
                except Exception:  # it runs out by itself within ttl
                    log.warning("duty lease not released", extra={"duty": name}, exc_info=True)


    async def _check(self, name: str, generation: int | None, valid_until: float,
                     asked: float) -> tuple[int | None, float]:
        """Take lease ``name`` (``generation`` None) or renew it: the generation held and until when (loop time)."""
        if generation is None:
            generation = await acquire(self.sessions, name, self.holder, self.ttl)
            if generation is None and (dead := await holder_of(self.sessions, name)) is not None \
                    and dead != self.holder and gone_from_this_host(dead):
                generation = await take_from(self.sessions, name, dead, self.holder, self.ttl)
            if generation is not None:
                valid_until = asked + self.ttl.total_seconds()
                log.info("duty taken", extra={"duty": name, "holder": self.holder, "generation": generation})
        elif await renew(self.sessions, name, self.holder, generation, self.ttl):
            valid_until = asked + self.ttl.total_seconds()
        else:
            log.warning("duty lost to another process", extra={"duty": name, "holder": self.holder})
            valid_until = 0.0
        return generation, valid_until


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _report_end(name: str, task: asyncio.Task[None]) -> None:
    """A duty's work ended by itself while its lease is held: said once, then run again."""
    exc = None if task.cancelled() else task.exception()
    if exc is not None:
        log.error("duty failed, running it again", extra={"duty": name}, exc_info=exc)
    else:
        log.warning("duty ended by itself, running it again", extra={"duty": name})
