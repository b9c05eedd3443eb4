"""Exactly once across a crash: SIGKILL a worker-only process mid-broadcast, restart it, count what arrived.

The per-channel crash tests of ``engagebot run`` itself are in ``test_crash_channels.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import Audience, create_broadcast, expand_broadcast
from bot.broadcast.models import DONE, Broadcast
from bot.channels.mock import MOCK_DELIVERY, SqlDeliverySink
from tests.support.broadcast import add_followers, statuses

FOLLOWERS = 3000
RATE = 1000  # at most this many sends per second: the kill lands mid-way
ROOT = Path(__file__).resolve().parents[2]


def _worker(database_url: str, sink_url: str, *more: str) -> list[str]:
    return [sys.executable, "-m", "bot.cli", "broadcast", "work", "--channel", "mock", "--mock-sink", sink_url,
            "--mock-rate", str(RATE), "--poll", "0.1", "--lease", "2", *more]


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEBOT_")}
    env.update(ENGAGEBOT_DATABASE_URL=database_url, ENGAGEBOT_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    return env


async def test_sigkill_mid_broadcast_then_restart_delivers_exactly_once(
    sessions: async_sessionmaker[AsyncSession], database_url: str, tmp_path: Path,
) -> None:
    await add_followers(sessions, FOLLOWERS, channel="mock", account="mock")
    async with sessions() as session:
        broadcast = await create_broadcast(session, name="crash", texts={"en": "Hi", "zh_Hans": "嗨"},
                                           audience=Audience(), default_locale="en")
        await session.commit()
        broadcast_id = broadcast.id
    await expand_broadcast(sessions, broadcast_id)
    sink_url = database_url if database_url.startswith("postgresql") else f"sqlite+aiosqlite:///{tmp_path / 'platform.db'}"
    sink = SqlDeliverySink(sink_url)
    await sink.open()
    try:
        first = await asyncio.create_subprocess_exec(*_worker(database_url, sink_url), env=_env(database_url),
                                                     cwd=ROOT, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(60):
                while (delivered := await sink.count()) < FOLLOWERS // 4:
                    await asyncio.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            await first.wait()
        at_kill = await sink.count()
        assert FOLLOWERS // 4 <= delivered <= at_kill < FOLLOWERS, "the kill must land mid-broadcast"
        assert (await statuses(sessions, broadcast_id)).get("pending", 0) > 0

        second = await asyncio.create_subprocess_exec(*_worker(database_url, sink_url, "--until-idle"),
                                                      env=_env(database_url), cwd=ROOT,
                                                      stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(120):
            _out, err = await second.communicate()
        assert second.returncode == 0, err.decode()[-2000:]

        async with sink.engine.connect() as conn:
            per_follower = dict((await conn.execute(select(
                MOCK_DELIVERY.c.external_id, func.count()).group_by(MOCK_DELIVERY.c.external_id))).all())
            resent = (await conn.execute(select(func.count()).select_from(MOCK_DELIVERY).where(
                MOCK_DELIVERY.c.attempts > 1))).scalar_one()
    finally:
        await sink.close()
    assert len(per_follower) == FOLLOWERS
    assert set(per_follower.values()) == {1}  # exactly one delivery each
    assert await statuses(sessions, broadcast_id) == {"sent": FOLLOWERS}
    async with sessions() as session:
        assert (await session.execute(select(Broadcast.status).where(Broadcast.id == broadcast_id))).scalar() == DONE
    # The killed batch was in doubt: its rows went out again with the same keys and the sink dropped them.
    print(f"delivered before the kill: {at_kill}; in-doubt resends dropped by idempotency key: {resent}")
