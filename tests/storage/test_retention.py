"""Issue 13, retention: old messages and settled outbox rows go, in batches; the rest stays.

Runs on SQLite, and on PostgreSQL with ENGAGEBOT_TEST_DATABASE_URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from bot.app import CORE, RETENTION, build_app
from bot.core.clock import utcnow
from bot.offers import Claim
from bot.offers.models import CampaignTouch, PoolCode
from bot.settings import Settings
from bot.storage import retention
from bot.storage.leases import holders
from bot.storage.models import Follower, Message, PlatformNotice, SeenRequest
from bot.storage.retention import BatchSize, RetentionDuty, count_prunable, prune, retention_cutoff
from bot.testing import BotHarness
from handlers import default_router
from tests.offers.conftest import load_into
from tests.support.cli import engagebot
from tests.support.servers import free_port, serve

OLD = timedelta(days=40)
KEPT_STATUSES = ("pending", "sending", "held")  # still to send, whatever their age
SETTLED = ("passive", "sent", "failed", "undeliverable", "cancelled")


async def _count(h: BotHarness, model: Any, *conditions: Any) -> int:
    async with h.sessions() as s:
        return (await s.execute(select(func.count()).select_from(model).where(*conditions))).scalar_one()


async def _world(h: BotHarness, tmp_path: Path) -> dict[str, int]:
    """A follower who came through a campaign, claimed a pool code and chatted, 40 days ago; one who
    wrote today; outbox rows of every status; replay-cache rows expired and live."""
    await load_into(h, tmp_path)
    old = h.follower("old-timer", language="en")
    await old.scan("mall-poster-2026")
    await old.say("tea")  # a pool code
    await old.say("hotpot")  # a generated code
    now = utcnow()
    async with h.sessions() as s:
        await s.execute(update(Message).values(created_at=now - OLD))
        await s.execute(update(CampaignTouch).values(at=now - OLD))
        await s.execute(update(Claim).values(claimed_at=now - OLD))
        follower_id = (await s.execute(select(Follower.id).where(Follower.external_id == "old-timer"))).scalar_one()
        for status in (*KEPT_STATUSES, *SETTLED):
            s.add(Message(follower_id=follower_id, channel="mock", account="mock", direction="out", kind="text",
                          text=status, status=status, created_at=now - OLD))
        for n, expires in enumerate((now - timedelta(minutes=10), now + timedelta(minutes=5))):
            s.add(SeenRequest(scope="wechat", key=f"k{n}", body_hash="h", expires_at=expires))
        await s.commit()
    await h.follower("newcomer", language="en").say("hello")
    counts = {"claims": await _count(h, Claim), "touches": await _count(h, CampaignTouch),
              "pool_used": await _count(h, PoolCode, PoolCode.claim_id.is_not(None)),
              "recent": await _count(h, Message, Message.created_at > now - timedelta(days=1)),
              "old_prunable": await _count(h, Message, Message.created_at < now - timedelta(days=30),
                                           Message.status.not_in(KEPT_STATUSES))}
    assert counts["claims"] == 2 and counts["touches"] >= 1 and counts["pool_used"] == 1 and counts["recent"] >= 2
    assert counts["old_prunable"] >= 10
    return counts


async def test_old_settled_rows_go_in_batches_and_claims_codes_touches_unsent_and_recent_stay(
        tmp_path: Path, database_url: str) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        before = await _world(h, tmp_path)
        now = utcnow()
        cutoff = retention_cutoff(30, now)
        dry = await count_prunable(h.engine, cutoff=cutoff, now=now)
        assert (dry.messages, dry.seen_requests) == (before["old_prunable"], 1)

        pruned = await prune(h.engine, cutoff=cutoff, now=now, batch_size=3, pause=0)

        assert (pruned.messages, pruned.seen_requests) == (before["old_prunable"], 1)
        # Each batch of at most 3 rows was its own transaction: several for the messages.
        assert pruned.batches >= before["old_prunable"] // 3 + 1
        assert sorted(await _statuses(h, Message.created_at < now - timedelta(days=30))) == sorted(KEPT_STATUSES)
        assert await _count(h, Message, Message.created_at > now - timedelta(days=1)) == before["recent"]
        assert await _count(h, Claim) == before["claims"]
        assert await _count(h, CampaignTouch) == before["touches"]
        assert await _count(h, PoolCode, PoolCode.claim_id.is_not(None)) == before["pool_used"]
        assert [k for (k,) in (await _rows(h, select(SeenRequest.key)))] == ["k1"]
        # A second pass finds nothing more.
        again = await prune(h.engine, cutoff=cutoff, now=now, batch_size=3, pause=0)
        assert (again.messages, again.seen_requests) == (0, 0)


async def test_zero_days_keeps_messages_forever_and_the_duty_runs_passes(tmp_path: Path, database_url: str) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        before = await _world(h, tmp_path)
        duty = RetentionDuty(h.engine, days=0, first_pass_after=0, interval=3600)
        pruned = await duty.run_once()
        assert (pruned.messages, pruned.seen_requests) == (0, 1)  # expired replay rows go regardless
        assert await _count(h, Message) == before["recent"] + before["old_prunable"] + len(KEPT_STATUSES)
        duty.days = 30
        duty.start()
        try:
            for _ in range(200):
                if duty.passes > 1:
                    break
                await asyncio.sleep(0.02)
        finally:
            await duty.stop()
        assert duty.passes == 2
        assert await _count(h, Message) == before["recent"] + len(KEPT_STATUSES)


async def _statuses(h: BotHarness, *conditions: Any) -> list[str]:
    return [status for (status,) in await _rows(h, select(Message.status).where(*conditions))]


async def _rows(h: BotHarness, query: Any) -> list[Any]:
    async with h.sessions() as s:
        return list((await s.execute(query)).all())


async def test_db_prune_command_counts_in_a_dry_run_then_deletes(tmp_path: Path, database_url: str) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        before = await _world(h, tmp_path)
        env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_RETENTION_DAYS": "30"}
        dry = engagebot("db", "prune", "--dry-run", env=env)
        assert dry.returncode == 0, dry.stderr
        assert f"would delete: {before['old_prunable']} messages" in dry.stdout and "1 expired" in dry.stdout
        assert await _count(h, Message, Message.status == "handled", Message.created_at < utcnow() - OLD / 2) > 0
        done = engagebot("db", "prune", env=env)
        assert done.returncode == 0, done.stderr
        assert f"deleted: {before['old_prunable']} messages" in done.stdout
        assert await _count(h, Message, Message.created_at < utcnow() - OLD / 2) == len(KEPT_STATUSES)
        refused = engagebot("db", "prune", env={**env, "ENGAGEBOT_RETENTION_DAYS": "-1"})
        assert refused.returncode == 2 and "ENGAGEBOT_RETENTION_DAYS" in refused.stderr


async def test_the_app_runs_the_retention_duty_while_it_serves(database_url: str) -> None:
    settings = Settings(database_url=database_url, simulators=False, port=free_port(), retention_days=7)
    app = build_app(settings, plugins=[])
    duty = app[RETENTION]
    assert duty.days == 7 and not duty.running
    async with serve(app, port=settings.port):
        # A duty held by lease: one pruner in the deployment, started once this process holds it.
        async with asyncio.timeout(10):
            while not duty.running:
                await asyncio.sleep(0.05)
        assert (await holders(app[CORE].sessions)).get("retention") is not None
    assert not duty.running


async def test_old_platform_notices_go_and_recent_ones_stay(database_url: str) -> None:
    async with BotHarness(routers=[], database_url=database_url) as h:
        now = utcnow()
        async with h.sessions() as s:
            for n, age in enumerate((timedelta(days=40), timedelta(days=40), timedelta(hours=1))):
                s.add(PlatformNotice(channel="wechat", account="a", event="location", dedupe_key=f"k{n}",
                                     details={}, received_at=now - age))
            await s.commit()
        cutoff = retention_cutoff(30, now)
        assert (await count_prunable(h.engine, cutoff=cutoff, now=now)).notices == 2
        pruned = await prune(h.engine, cutoff=cutoff, now=now, batch_size=1, pause=0)
        assert pruned.notices == 2
        assert await _count(h, PlatformNotice) == 1


def test_a_batch_is_sized_by_how_long_the_last_one_held_the_database() -> None:
    size = BatchSize(most=1000, budget=0.005, first=100)
    assert size.rows == 100
    size.held(100, 0.001)  # 500 would fit: at most doubling
    assert size.rows == 200
    size.held(200, 0.001)
    assert size.rows == 400
    size.held(400, 0.004)  # 500 fit
    assert size.rows == 500
    size.held(500, 0.05)  # ten times too slow (a loaded disk, a big index): a tenth
    assert size.rows == 50
    size.held(50, 10.0)  # never below one row
    assert size.rows == 1
    for _ in range(20):
        size.held(size.rows, 0.0)  # however fast, never above the most
    assert size.rows == 1000
    fixed = BatchSize(most=3, budget=None)
    fixed.held(3, 100.0)
    assert fixed.rows == 3
    with pytest.raises(ValueError):
        BatchSize(most=0, budget=0.005)


@pytest.fixture
def scripted_holds(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[list[float], list[int]]]:
    """Each retention transaction runs for real, but reports the hold time the test scripts; the rows
    each one deleted are recorded."""
    holds: list[float] = []
    deleted_by_batch: list[int] = []
    real = retention._delete_batch

    async def scripted(engine: Any, statement: Any, params: dict[str, Any] | None = None) -> tuple[int, float]:
        deleted, _held = await real(engine, statement, params)
        deleted_by_batch.append(deleted)
        return deleted, holds.pop(0) if holds else 0.001

    monkeypatch.setattr(retention, "_delete_batch", scripted)
    yield holds, deleted_by_batch


async def test_a_pass_takes_as_many_rows_per_transaction_as_fit_its_time_budget(
        database_url: str, scripted_holds: tuple[list[float], list[int]]) -> None:
    holds, deleted_by_batch = scripted_holds
    async with BotHarness(routers=[], database_url=database_url) as h:
        now = utcnow()
        async with h.engine.begin() as conn:
            follower_id = (await conn.execute(insert(Follower).returning(Follower.id), [{
                "channel": "mock", "account": "mock", "external_id": "f", "created_at": now, "tags": [],
                "state_data": {}}])).scalar_one()
            await conn.execute(insert(Message), [{
                "follower_id": follower_id, "channel": "mock", "account": "mock", "direction": "in", "kind": "text",
                "text": f"m{n}", "status": "handled", "created_at": now - OLD} for n in range(400)])
        # First 100 rows (the first batch), slow: a quarter of the budget's worth next; then quick: doubling.
        holds.extend([0.02, 0.0025, 0.0025, 0.0025])
        pruned = await prune(h.engine, cutoff=retention_cutoff(30, now), now=now, batch_size=1000, pause=0,
                             budget=0.005)
        assert pruned.messages == 400
        assert deleted_by_batch[:5] == [100, 25, 50, 100, 125]  # the last one short: nothing left
        assert pruned.longest_hold == 0.02
        assert await _count(h, Message) == 0
