"""The promotions index is read by one message at a time: the others arriving meanwhile wait for its read."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.offers.index import OfferIndex


class Reads:
    """Stands for a message's ``ctx.session``: counts the sessions opened and holds each read until let go."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows
        self.opened = 0
        self.go = asyncio.Event()
        self.fail_next = False

    def open_session(self) -> Any:
        self.opened += 1
        return self

    async def execute(self, _statement: Any) -> Any:
        await self.go.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database gone")
        return self

    def all(self) -> list[Any]:
        return self.rows


class Row:
    def __init__(self, id: int, slug: str, words: list[str]) -> None:
        self.id, self.slug, self.keywords, self.menu_key, self.channels = id, slug, {"en": words}, None, []
        self.starts_at = self.ends_at = self.friends_needed = None


async def test_messages_arriving_during_a_read_wait_for_it_instead_of_reading_again() -> None:
    index = OfferIndex(ttl=60)
    reads = Reads([Row(1, "spring", ["spring"])])
    waiting = [asyncio.create_task(index.by_text(reads.open_session, "spring sale?", "wechat")) for _ in range(20)]
    await asyncio.sleep(0)
    assert reads.opened == 1
    reads.go.set()
    found = await asyncio.gather(*waiting)
    assert [[p.slug for p in f] for f in found] == [["spring"]] * 20
    assert reads.opened == 1
    await index.items(reads.open_session)  # fresh: no read at all
    assert reads.opened == 1


async def test_a_failed_read_fails_its_waiters_together_and_the_next_message_reads_again() -> None:
    """A database that fails (a pool or connect timeout) fails the messages waiting on that read at once,
    not one after another, each waiting its turn to fail again."""
    index = OfferIndex(ttl=60)
    reads = Reads([Row(1, "spring", ["spring"])])
    reads.fail_next = True
    first = asyncio.create_task(index.items(reads.open_session))
    await asyncio.sleep(0)
    others = [asyncio.create_task(index.items(reads.open_session)) for _ in range(5)]
    await asyncio.sleep(0)
    reads.go.set()
    outcomes = await asyncio.gather(first, *others, return_exceptions=True)
    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)
    assert reads.opened == 1
    assert [p.slug for p in await index.items(reads.open_session)] == ["spring"]
    assert reads.opened == 2


async def test_no_ttl_reads_once_per_message_that_finds_no_read_in_progress() -> None:
    """ttl 0 (the prompt-rules TTL allows it): every message reads, and a read's waiters take what it read."""
    index = OfferIndex(ttl=0)
    reads = Reads([Row(1, "spring", ["spring"])])
    reads.go.set()  # reads return at once
    assert [p.slug for p in await asyncio.wait_for(index.items(reads.open_session), 1)] == ["spring"]
    assert reads.opened == 1
    assert [p.slug for p in await asyncio.wait_for(index.items(reads.open_session), 1)] == ["spring"]
    assert reads.opened == 2
    reads.go.clear()
    waiting = [asyncio.create_task(index.items(reads.open_session)) for _ in range(20)]
    await asyncio.sleep(0)
    reads.go.set()
    assert len(await asyncio.wait_for(asyncio.gather(*waiting), 1)) == 20
    assert reads.opened == 3


async def test_a_cancelled_reader_or_waiter_leaves_the_others_their_answer() -> None:
    index = OfferIndex(ttl=60)
    reads = Reads([Row(1, "spring", ["spring"])])
    reader = asyncio.create_task(index.items(reads.open_session))
    await asyncio.sleep(0)
    waiter, other = (asyncio.create_task(index.items(reads.open_session)) for _ in range(2))
    await asyncio.sleep(0)
    reader.cancel()
    waiter.cancel()
    await asyncio.sleep(0)
    reads.go.set()
    assert [p.slug for p in await other] == ["spring"]
    assert reader.cancelled() and waiter.cancelled()


async def test_an_invalidation_during_a_read_is_not_lost() -> None:
    """An operator's change lands while a message reads the old promotions: the next message reads again."""
    index = OfferIndex(ttl=60)
    reads = Reads([Row(1, "spring", ["spring"])])
    reader = asyncio.create_task(index.items(reads.open_session))
    await asyncio.sleep(0)
    index.invalidate()
    reads.rows = [Row(1, "spring", ["spring"]), Row(2, "summer", ["summer"])]
    reads.go.set()
    await reader
    assert [p.slug for p in await index.items(reads.open_session)] == ["spring", "summer"]
    assert reads.opened == 2
