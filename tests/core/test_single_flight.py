"""One piece of work for everyone who asks while it runs (bot/core/single_flight.py)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from bot.core.single_flight import LeaderCancelled, follow, lead


async def test_followers_get_what_the_leader_shares_and_the_leader_its_own_result() -> None:
    shared: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    go = asyncio.Event()

    async def work() -> str:
        await go.wait()
        return "four"

    leader = asyncio.create_task(lead(shared, work(), share=len))
    followers = [asyncio.create_task(follow(shared)) for _ in range(3)]
    await asyncio.sleep(0)
    go.set()
    assert await leader == "four"
    assert await asyncio.gather(*followers) == [4, 4, 4]


async def test_an_error_is_everyone_s_and_unfollowed_work_leaves_no_unretrieved_error(
        caplog: pytest.LogCaptureFixture) -> None:
    followed: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def fails() -> int:
        await asyncio.sleep(0)
        raise ConnectionError("database gone")

    follower = asyncio.create_task(follow(followed))
    with pytest.raises(ConnectionError):
        await lead(followed, fails(), share=int)
    with pytest.raises(ConnectionError):
        await follower
    alone: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    with pytest.raises(ConnectionError):
        await lead(alone, fails(), share=int)
    del alone
    gc.collect()
    await asyncio.sleep(0)
    assert "exception was never retrieved" not in caplog.text


async def test_a_follower_leads_when_the_leader_is_cancelled_but_not_when_it_is_cancelled_itself() -> None:
    shared: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    leader = asyncio.create_task(lead(shared, asyncio.sleep(10, result=1), share=int))
    takes_over, gives_up = asyncio.create_task(follow(shared)), asyncio.create_task(follow(shared))
    await asyncio.sleep(0)
    gives_up.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gives_up
    assert not shared.done()  # a follower gone cancels nobody else's wait
    leader.cancel()
    with pytest.raises(LeaderCancelled):
        await takes_over
    assert leader.cancelled() and shared.cancelled()
