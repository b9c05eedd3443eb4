"""Two real ``engagebot run`` instances on one PostgreSQL, as behind a load balancer.

The platforms run in a process of their own (``tests/support/platforms.py``). Checked: a WeChat retry
(the same signed callback) landing on the other instance is handled once and answered alike; the same
signature with another body is refused by the other instance too (the replay cache is shared); each
duty that must run once is held by one instance, and passes to the other when that one is killed; a
broadcast reaches every follower exactly once. Skipped without ENGAGEBOT_TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import Audience, create_broadcast
from bot.broadcast.models import DONE, Broadcast
from bot.broadcast.worker import SUPERVISOR_DUTY
from bot.storage.leases import holders
from bot.storage.models import Follower, Message
from tests.support.crash import DUTY_LEASE_SECONDS, CrashRig, eventually_in
from tests.support.db import backend
from tests.support.platforms import TELEGRAM_TOKEN, WECHAT
from tests.support.wechat import post, signed_query, text_xml

pytestmark = pytest.mark.skipif(backend() != "postgresql", reason="many instances share PostgreSQL")

Sessions = async_sessionmaker[AsyncSession]
BOT = TELEGRAM_TOKEN.split(":", 1)[0]
BROADCAST = "Spring sale!"
DUTIES = (f"outbox:telegram:{BOT}", f"telegram-poll:{BOT}", "outbox:wechat:default", SUPERVISOR_DUTY)


async def test_two_instances_share_retries_replays_duties_and_broadcasts(
        sessions: Sessions, database_url: str, tmp_path: Path) -> None:
    async with CrashRig(tmp_path, database_url, instances=2, telegram_mode="polling") as rig:
        first, second = rig.bots

        # A WeChat retry on the other instance: both answer alike, one message stored, one reply written.
        query, body = signed_query(WECHAT["token"]), text_xml("oRetry", "hello there", msg_id=424242)
        async with aiohttp.ClientSession() as http:
            answers = await asyncio.gather(post(http, f"{first.base}/wechat", query, body),
                                           post(http, f"{second.base}/wechat", query, body))
            assert [status for status, _ in answers] == [200, 200]
            assert answers[0][1] == answers[1][1] and "<Content>" in answers[0][1]
            # The same signature with another body: refused by either instance.
            forged = text_xml("oRetry", "send me the code", msg_id=424243)
            for bot in (first, second):
                status, _ = await post(http, f"{bot.base}/wechat", query, forged)
                assert status == 403
        async with sessions() as session:
            by_direction = dict((await session.execute(select(Message.direction, func.count()).join(
                Follower, Follower.id == Message.follower_id).where(
                Follower.external_id == "oRetry").group_by(Message.direction))).all())
        assert by_direction == {"in": 1, "out": 1}

        # Each duty held by one instance.
        held = await eventually_in(lambda: _all_held(sessions), 30, "every duty held", rig)
        pids = {str(bot.proc.pid) for bot in rig.bots if bot.proc is not None}
        assert {h.split(":")[-2] for h in held.values()} <= pids

        # A broadcast to Telegram users: each gets it once, whichever instance sweeps.
        users = (await rig.control("POST", "telegram/users", {"count": 60}))["followers"]

        async def all_followed() -> bool:
            async with sessions() as session:
                return (await session.execute(select(func.count()).select_from(Follower).where(
                    Follower.channel == "telegram"))).scalar_one() == len(users)

        await eventually_in(all_followed, 60, "followers stored", rig)
        async with sessions() as session:
            broadcast = await create_broadcast(session, name="instances", texts={"en": BROADCAST},
                                               audience=Audience(channels=("telegram",)), default_locale="en")
            await session.commit()
            broadcast_id = broadcast.id

        async def finished() -> bool:
            async with sessions() as session:
                return (await session.execute(select(Broadcast.status).where(
                    Broadcast.id == broadcast_id))).scalar_one() == DONE

        await eventually_in(finished, 60, "the broadcast done", rig)
        received = (await rig.control("GET", "received"))["telegram"]
        assert Counter(texts.count(BROADCAST) for texts in received.values()) == Counter({1: len(users)})

        # Kill the instance holding the Telegram poll: the other takes every duty the dead one held.
        holder = held[f"telegram-poll:{BOT}"]
        victim = next(i for i, bot in enumerate(rig.bots) if bot.proc is not None and str(bot.proc.pid) in holder)
        survivor = rig.bots[1 - victim]
        assert survivor.proc is not None
        rig.kill(victim)
        killed_at = time.monotonic()

        async def all_on_survivor() -> dict[str, str] | None:
            now = await _all_held(sessions)
            assert survivor.proc is not None
            return now if now and all(f":{survivor.proc.pid}:" in h for h in now.values()) else None

        await eventually_in(all_on_survivor, 30, "every duty on the survivor", rig)
        assert time.monotonic() - killed_at < DUTY_LEASE_SECONDS * 4 / 3 + 5


async def _all_held(sessions: Sessions) -> dict[str, str] | None:
    now = await holders(sessions)
    return {n: now[n] for n in DUTIES} if all(n in now for n in DUTIES) else None
