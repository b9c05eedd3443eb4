"""``engagebot broadcast work``: a sender-only process drains broadcasts through the configured channels."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import Audience, create_broadcast
from bot.storage.models import Follower
from tests.support.broadcast import statuses
from tests.support.crash import ROOT, CrashRig

Sessions = async_sessionmaker[AsyncSession]


async def test_the_worker_alone_sends_through_wechat_and_telegram_and_does_not_poll(
        sessions: Sessions, database_url: str, tmp_path: Path) -> None:
    async with CrashRig(tmp_path, database_url) as rig:
        wechat = (await rig.control("POST", "wechat/followers", {"count": 3}))["followers"]
        telegram = (await rig.control("POST", "telegram/users", {"count": 3}))["followers"]
        async with asyncio.timeout(30):
            while True:
                async with sessions() as session:
                    if (await session.execute(select(func.count()).select_from(Follower))).scalar_one() == 6:
                        break
                await asyncio.sleep(0.1)
        async with asyncio.timeout(30):  # the web instance confirmed the updates it took (its next poll)
            while (await rig.control("GET", "received"))["telegram_unconfirmed"]:
                await asyncio.sleep(0.1)
        rig.stop(0)  # the web instance is gone: whatever is sent now, the worker sends
        async with sessions() as session:
            broadcast = await create_broadcast(session, name="w", texts={"en": "From the worker"},
                                               audience=Audience(), default_locale="en")
            await session.commit()
            broadcast_id = broadcast.id
        env = rig.env(rig.bots[0])
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "broadcast", "work", "--until-idle", "--poll", "0.2", cwd=ROOT, env=env,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            _out, err = await worker.communicate()
        assert worker.returncode == 0, err.decode()[-2000:]
        received = await rig.control("GET", "received")
        for openid in wechat:
            assert received["wechat"][openid].count("From the worker") == 1
        for user in telegram:
            assert received["telegram"][str(user)].count("From the worker") == 1
        assert await statuses(sessions, broadcast_id) == {"sent": 6}
        # It sent through the bot without polling it: a message sent meanwhile waits for the web instance.
        await rig.control("POST", "stream", {"channel": "telegram", "senders": telegram[:1], "count": 1, "rate": 1})
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "broadcast", "work", "--until-idle", "--poll", "0.2", cwd=ROOT, env=env,
            stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            await worker.communicate()
        assert (await rig.control("GET", "received"))["telegram_unconfirmed"] == 1


def test_work_refuses_when_there_is_nothing_to_send_through(tmp_path: Path, database_url: str) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEBOT_")}
    env.update(ENGAGEBOT_DATABASE_URL=database_url, ENGAGEBOT_SIMULATORS="false", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "bot.cli", "broadcast", "work", "--until-idle"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("engagebot: no channels to send through: configure WeChat or Telegram, "
                                   "or pass --mock-sink URL")
