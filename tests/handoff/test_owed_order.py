"""Followers owed an answer: the longest owed first, each with the follower's own last message (not the
bot's "we will answer soon" notice), in the service, the CLI and (tests/admin) the console and the API."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from bot.cli import main
from bot.core.clock import utcnow
from bot.storage.models import Follower
from tests.handoff.conftest import Desk


async def owe(desk: Desk) -> tuple[int, int]:
    """Two owed followers: ``early`` owed longest, ``late`` owed since later but active last."""
    await desk.harness.follower("early", language="en").say("human")
    await desk.harness.follower("late", language="en").say("human")
    assert await desk.inbox.sweep_timeouts(now=utcnow() + desk.inbox.timeout + timedelta(seconds=1)) == 2
    early, late = (await desk.follower_row("early")).id, (await desk.follower_row("late")).id
    now = utcnow()
    async with desk.harness.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == early)
                        .values(owed_since=now - timedelta(hours=5), last_action_at=now - timedelta(hours=1)))
        await s.execute(update(Follower).where(Follower.id == late)
                        .values(owed_since=now - timedelta(hours=1), last_action_at=now))
    return early, late


async def test_the_longest_owed_come_first_with_the_followers_own_last_message(desk: Desk) -> None:
    early, late = await owe(desk)
    owed = await desk.inbox.conversations(owed=True)
    assert [c.follower_id for c in owed] == [early, late]
    assert [c.follower_id for c in await desk.inbox.conversations(owed=True, limit=1)] == [early]  # not cut off
    for c in owed:
        assert c.last_inbound is not None and (c.last_inbound.direction, c.last_inbound.text) == ("in", "human")
        assert c.last_message is not None and c.last_message.direction == "out"  # the bot's notice is the newest
    assert [c.follower_id for c in await desk.inbox.conversations()] == [late, early]  # latest action first


async def test_inbox_list_owed_in_the_terminal(desk: Desk, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", desk.harness.database_url)
    early, late = await owe(desk)
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["inbox", "list", "--owed"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == [str(early), str(late)]
    assert all(line.endswith("< human") for line in lines)
