"""Leases: one holder at a time, taken over only once expired, fenced by a generation; and the duty
runner built on them. On SQLite, and on PostgreSQL with ENGAGEBOT_TEST_DATABASE_URL."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from bot.core.clock import utcnow
from bot.storage.duties import Duties
from bot.storage.leases import acquire, holders, release, renew
from bot.testing import BotHarness

TTL = timedelta(seconds=30)


async def test_a_lease_has_one_holder_until_it_expires(harness: BotHarness) -> None:
    sessions, now = harness.sessions, utcnow()
    first = await acquire(sessions, "poll", "a", TTL, now=now)
    assert first is not None
    assert await acquire(sessions, "poll", "b", TTL, now=now + TTL / 2) is None
    assert await acquire(sessions, "poll", "a", TTL, now=now + TTL / 2) == first  # ours: kept, same generation
    assert await holders(sessions, now=now) == {"poll": "a"}
    taken = await acquire(sessions, "poll", "b", TTL, now=now + TTL * 2)  # a's lease ran out
    assert taken is not None and taken > first
    assert await holders(sessions, now=now + TTL * 2) == {"poll": "b"}


async def test_a_holder_that_lost_its_lease_cannot_renew_or_release_it(harness: BotHarness) -> None:
    sessions, now = harness.sessions, utcnow()
    old = await acquire(sessions, "sweep", "a", TTL, now=now - TTL * 3)
    assert old is not None
    new = await acquire(sessions, "sweep", "b", TTL, now=now)
    assert new is not None
    assert not await renew(sessions, "sweep", "a", old, TTL, now=now)
    assert not await release(sessions, "sweep", "a", old)
    assert await holders(sessions, now=now) == {"sweep": "b"}
    # Even the same holder name at an older generation is fenced off.
    assert not await renew(sessions, "sweep", "b", old, TTL, now=now)
    assert await renew(sessions, "sweep", "b", new, TTL, now=now + TTL / 2)
    assert await acquire(sessions, "sweep", "a", TTL, now=now + TTL) is None  # renewed: not expired at now + TTL


async def test_a_released_lease_is_taken_at_once(harness: BotHarness) -> None:
    sessions = harness.sessions
    generation = await acquire(sessions, "expand", "a", TTL)
    assert generation is not None
    assert await release(sessions, "expand", "a", generation)
    assert await holders(sessions) == {}
    assert await acquire(sessions, "expand", "b", TTL) is not None


async def test_concurrent_acquires_elect_exactly_one(harness: BotHarness) -> None:
    won = await asyncio.gather(*(acquire(harness.sessions, "race", f"h{i}", TTL) for i in range(8)))
    assert sum(g is not None for g in won) == 1


async def test_a_duty_runs_in_one_process_and_passes_to_a_standby(harness: BotHarness) -> None:
    """Two runners (two processes) share a duty: one runs it; when it stops, the other takes it over."""
    ttl = timedelta(seconds=1.5)
    running: list[str] = []

    def work_of(who: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            running.append(who)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(who)
        return work

    first, second = (Duties(harness.sessions, ttl=ttl, holder=h) for h in ("first", "second"))
    first.add("sweep", work_of("first"))
    second.add("sweep", work_of("second"))
    await first.start()
    await _until(lambda: running == ["first"])
    await second.start()
    await asyncio.sleep(ttl.total_seconds())  # several renewal rounds: the standby stays a standby
    assert running == ["first"] and second.held == frozenset()
    await first.stop()  # releases: the standby takes over at its next try
    assert running == []
    await _until(lambda: running == ["second"])
    assert await holders(harness.sessions) == {"sweep": "second"}
    await second.stop()
    assert await holders(harness.sessions) == {}


async def test_a_stop_while_the_lease_is_being_taken_gives_it_up(harness: BotHarness, monkeypatch: Any) -> None:
    """A stop (SIGTERM right after the start) that cancels a take after its commit, before its answer
    came back: the lease was ours without the duty knowing its generation, and stayed held until it ran
    out (a standby waited that long). The stop gives it up all the same."""
    import bot.storage.duties as duties_module

    taken = asyncio.Event()

    async def answer_lost(*args: Any, **kwargs: Any) -> int | None:
        generation = await acquire(*args, **kwargs)  # committed
        taken.set()
        await asyncio.Event().wait()  # the stop cancels it here, before the generation is returned
        return generation

    monkeypatch.setattr(duties_module, "acquire", answer_lost)
    duties = Duties(harness.sessions, ttl=TTL, holder="first")
    duties.add("poll", lambda: asyncio.Event().wait())
    await duties.start()
    await asyncio.wait_for(taken.wait(), 10)
    assert await holders(harness.sessions) == {"poll": "first"}
    await duties.stop()
    assert await holders(harness.sessions) == {}
    assert await acquire(harness.sessions, "poll", "second", TTL) is not None  # a standby takes it at once


async def test_a_stop_whose_lease_cannot_be_given_up_still_ends_within_its_bound(
        harness: BotHarness, monkeypatch: Any) -> None:
    """A release that cannot get the database's write lock (SQLite's busy wait is 10 s; a SIGTERM right after
    two workers started once met one) must not hold the stop past its budget: the lease runs out by itself."""
    import time

    import bot.storage.duties as duties_module

    async def lock_not_to_be_had(*args: Any, **kwargs: Any) -> bool:
        await asyncio.Event().wait()
        return True

    monkeypatch.setattr(duties_module, "RELEASE_WAIT", 0.3)
    monkeypatch.setattr(duties_module, "release", lock_not_to_be_had)
    duties, stopped = await _holding_poll(Duties(harness.sessions, ttl=TTL, holder="stuck"))
    began = time.monotonic()
    await asyncio.wait_for(duties.stop(), 5)
    assert 0.25 <= time.monotonic() - began < 2 and stopped.is_set()
    assert await holders(harness.sessions) == {"poll": "stuck"}  # not given up: it runs out within its ttl


async def test_a_lease_write_whose_caller_is_cancelled_ends_by_itself_and_the_caller_goes_at_once() -> None:
    """A stop cancelling a lease's take between its statement and its commit invalidated the session's
    connection, which on SQLite kept the write lock: the write is not cancelled with its caller."""
    from bot.storage.leases import _to_its_end

    statement_done, commit = asyncio.Event(), asyncio.Event()
    committed: list[int] = []

    async def write() -> int:
        statement_done.set()
        await commit.wait()  # between the statement and the commit
        committed.append(7)
        return 7

    caller = asyncio.create_task(_to_its_end(write))
    await statement_done.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(caller, 1)  # at once: a database that stopped answering holds no stop
    commit.set()
    await _until(lambda: committed == [7])  # the write went on to its commit, untouched


async def _holding_poll(duties: Duties) -> tuple[Duties, asyncio.Event]:
    """``duties`` started with one duty, "poll", held by it; the event is set when the duty stops."""
    stopped = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    duties.add("poll", work)
    await duties.start()
    await _until(lambda: "poll" in duties.held)
    return duties, stopped


async def test_a_duty_stops_when_its_lease_is_taken_from_it(harness: BotHarness) -> None:
    """A holder paused past its lease (here: its row handed to another) stops at its next renewal."""
    ttl = timedelta(seconds=1.5)
    duties, stopped = await _holding_poll(Duties(harness.sessions, ttl=ttl, holder="paused"))
    assert await acquire(harness.sessions, "poll", "thief", ttl, now=utcnow() + ttl * 2) is not None
    await asyncio.wait_for(stopped.wait(), ttl.total_seconds() * 2)
    assert duties.held == frozenset()
    await duties.stop()
    assert (await holders(harness.sessions, now=utcnow() + ttl * 2))["poll"] == "thief"  # not released by the loser


class _Unanswering:
    """A sessionmaker whose database stops answering on demand (a network path dropping packets: no
    error, no answer), as one instance cut off from a shared PostgreSQL sees it."""

    def __init__(self, sessions: Any) -> None:
        self.sessions = sessions
        self.silent = False

    def __call__(self) -> Any:
        return self.sessions()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[Any]:
        if self.silent:
            await asyncio.Event().wait()
        async with self.sessions.begin() as session:
            yield session


async def test_a_duty_stops_before_its_lease_can_pass_when_the_database_stops_answering(harness: BotHarness) -> None:
    """The renewal hangs rather than fails: the holder must still stop the duty before its lease runs
    out, since a standby on a healthy path takes it then (two Telegram pollers, two sweepers)."""
    ttl = timedelta(seconds=1.5)
    sessions = _Unanswering(harness.sessions)
    duties, stopped = await _holding_poll(Duties(sessions, ttl=ttl, holder="cut-off"))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    sessions.silent = True
    silenced = loop.time()  # the last renewal was before this: the lease runs out at silenced + ttl at the latest
    try:
        await asyncio.wait_for(stopped.wait(), ttl.total_seconds() * 3)
    finally:
        sessions.silent = False
        await asyncio.wait_for(duties.stop(), 10)
    assert loop.time() - silenced < ttl.total_seconds()
    assert duties.held == frozenset()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_standby_takes_a_dead_holders_duty_once_its_lease_ran_out(harness: BotHarness) -> None:
    """A holder on another machine stopped renewing: its duty moves only after the lease ran out."""
    ttl = timedelta(seconds=1.5)
    assert await acquire(harness.sessions, "poll", "elsewhere:1:dead", ttl) is not None
    standby = Duties(harness.sessions, ttl=ttl, holder="standby")
    standby.add("poll", _forever)
    await standby.start()
    await asyncio.sleep(ttl.total_seconds() / 3)  # a try or two, the lease still running
    assert standby.held == frozenset()
    await _until(lambda: "poll" in standby.held)
    await standby.stop()


async def test_a_restarted_process_takes_back_at_once_what_a_dead_process_of_its_host_held(
        harness: BotHarness) -> None:
    ttl = timedelta(seconds=60)  # far from running out
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = f"{socket.gethostname()[:40]}:{int(dead.stdout)}:before"
    alive = f"{socket.gethostname()[:40]}:{os.getppid()}:running"
    assert await acquire(harness.sessions, "sweep", gone, ttl) is not None
    assert await acquire(harness.sessions, "poll", alive, ttl) is not None
    restarted = Duties(harness.sessions, ttl=ttl)
    restarted.add("sweep", _forever)
    restarted.add("poll", _forever)
    await restarted.start()
    await _until(lambda: "sweep" in restarted.held)
    assert "poll" not in restarted.held  # its holder still runs: it keeps it
    assert (await holders(harness.sessions))["poll"] == alive
    await restarted.stop()


async def _forever() -> None:
    await asyncio.Event().wait()
