"""Issue 13, seeing it run: /metrics counts what the real paths do, with bounded labels.

Counters are process-wide (one registry), so each test reads them before and after what it does.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import aiohttp
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bot.app import CORE, build_app
from bot.core.clock import utcnow
from bot.metrics import ScrapeSources, lease_holders
from bot.offers import Promotion
from bot.settings import Settings
from bot.storage.models import Follower, Message
from bot.testing import BotHarness
from handlers import default_router
from tests.channels.weibo.conftest import weibo_env
from tests.channels.weibo.test_adapter import FAN, slow_router
from tests.offers.conftest import load_into
from tests.support.cli import ROOT
from tests.support.servers import free_port, serve


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by (name, sorted labels)."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_metrics_count_messages_latency_and_the_outbox_read_at_scrape_time(tmp_path: Path,
                                                                                 database_url: str) -> None:
    settings = Settings(database_url=database_url, simulators=False, port=free_port(),
                        mock_sink=f"sqlite+aiosqlite:///{tmp_path / 'sink.db'}")
    app = build_app(settings)
    before_in = sample("engagebot_messages_total", channel="mock", direction="in", kind="text")
    before_out = sum(sample("engagebot_messages_total", channel="mock", direction="out", kind=kind)
                     for kind in ("text", "buttons", "articles", "image", "qr"))
    before_latency = sample("engagebot_handler_seconds_count", channel="mock")
    async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
        for n in range(3):
            async with http.post(f"{url}/mock", json={"from": "amy-secret-id", "text": "hi", "message_id": f"m{n}"},
                                 headers={"X-Request-Id": "bench-run-0001"}) as resp:
                assert resp.status == 200 and (await resp.json())["replies"]
        # Two replies waiting in the outbox, the older one five minutes old.
        async with app[CORE].sessions() as s:
            follower = (await s.execute(select(Follower))).scalars().first()
            assert follower is not None
            for minutes in (5, 1):
                s.add(Message(follower_id=follower.id, channel="mock", account="mock", direction="out", kind="text",
                              text="later", status="pending", created_at=utcnow() - timedelta(minutes=minutes)))
            await s.commit()
        async with http.get(f"{url}/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
    samples = scraped(text)
    assert sample("engagebot_messages_total", channel="mock", direction="in", kind="text") == before_in + 3
    assert sum(sample("engagebot_messages_total", channel="mock", direction="out", kind=kind)
               for kind in ("text", "buttons", "articles", "image", "qr")) >= before_out + 3
    assert sample("engagebot_handler_seconds_count", channel="mock") == before_latency + 3
    assert samples[("engagebot_messages_total", (("channel", "mock"), ("direction", "in"), ("kind", "text")))] \
        == before_in + 3
    assert samples[("engagebot_outbox_depth", (("channel", "mock"), ("status", "pending")))] == 2
    oldest = samples[("engagebot_outbox_oldest_age_seconds", (("channel", "mock"),))]
    assert 290 <= oldest < 400, oldest
    assert samples[("engagebot_scrape_error", (("source", "outbox"),))] == 0
    assert "amy-secret-id" not in text  # no follower in any label


async def test_passive_and_deferred_answers_and_delivery_outcomes_are_counted(database_url: str) -> None:
    passive = sample("engagebot_reply_routes_total", channel="weibo", route="passive")
    deferred = sample("engagebot_reply_routes_total", channel="weibo", route="deferred")
    sent = sample("engagebot_deliveries_total", channel="weibo", outcome="sent")
    async with weibo_env(database_url, routers=[slow_router], overrides={"passive_deadline_seconds": 0.3}) as env:
        assert (await env.text(FAN, "take your time"))[0] == 200
        for _ in range(100):
            if env.fake.dms():
                break
            await asyncio.sleep(0.05)
        assert env.fake.dms()
        assert (await env.text(FAN, "hello"))[0] == 200
    assert sample("engagebot_reply_routes_total", channel="weibo", route="passive") == passive + 1
    assert sample("engagebot_reply_routes_total", channel="weibo", route="deferred") == deferred + 1
    assert sample("engagebot_deliveries_total", channel="weibo", outcome="sent") == sent + 1


async def test_claims_are_counted_by_outcome(tmp_path: Path, database_url: str) -> None:
    claimed = sample("engagebot_claims_total", outcome="claimed")
    again = sample("engagebot_claims_total", outcome="already_claimed")
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path)
        follower = h.follower("claimer", language="en")
        await follower.follow()
        await follower.say("hotpot")
        await follower.say("hotpot")
        async with h.sessions() as s:
            assert (await s.execute(select(Promotion).where(Promotion.slug == "hotpot-50"))).scalar_one().claimed == 1
    assert sample("engagebot_claims_total", outcome="claimed") == claimed + 1
    assert sample("engagebot_claims_total", outcome="already_claimed") == again + 1


async def test_a_failing_scrape_source_is_reported_not_fatal_and_lease_holders_have_a_family() -> None:
    sources = ScrapeSources()

    async def leases():  # type: ignore[no-untyped-def]
        return [lease_holders([("outbox-sweeper", "host-a-1234"), ("telegram-poll", "host-b-99")])]

    async def broken():  # type: ignore[no-untyped-def]
        raise OSError("database down")

    sources.add("leases", leases)
    sources.add("broken", broken)
    families = {f.name: f for f in await sources.collect()}
    holders = {(s.labels["duty"], s.labels["holder"]): s.value for s in families["engagebot_lease_holder"].samples}
    assert holders == {("outbox-sweeper", "host-a-1234"): 1, ("telegram-poll", "host-b-99"): 1}
    errors = {s.labels["source"]: s.value for s in families["engagebot_scrape_error"].samples}
    assert errors == {"leases": 0, "broken": 1}


WORKER = """
import sys
from bot.metrics import MESSAGES, render
for _ in range(int(sys.argv[1])):
    MESSAGES.labels("wechat", "in", "text").inc()
"""
SCRAPER = """
import sys
from bot.metrics import render
sys.stdout.write(render().decode())
"""


def test_in_multiprocess_mode_a_scrape_adds_up_every_process(tmp_path: Path) -> None:
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    for count in (3, 4):  # two worker processes, each counting its own messages
        subprocess.run([sys.executable, "-c", WORKER, str(count)], env=env, check=True, timeout=60)
    assert len(list(directory.glob("counter_*.db"))) == 2
    done = subprocess.run([sys.executable, "-c", SCRAPER], env=env, check=True, timeout=60,
                          capture_output=True, text=True)
    samples = scraped(done.stdout)
    assert samples[("engagebot_messages_total", (("channel", "wechat"), ("direction", "in"), ("kind", "text")))] == 7


async def test_the_apps_metrics_name_who_holds_each_duty(database_url: str) -> None:
    settings = Settings(database_url=database_url, simulators=False, port=free_port())
    app = build_app(settings, plugins=[])
    async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
        async with asyncio.timeout(10):
            while True:
                async with http.get(f"{url}/metrics") as resp:
                    text = await resp.text()
                if 'engagebot_lease_holder{duty="retention"' in text:
                    break
                await asyncio.sleep(0.1)
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "engagebot_lease_holder"]
    [held] = [s for s in family.samples if s.labels["duty"] == "retention"]
    assert held.value == 1 and held.labels["holder"].count(":") == 2  # host:pid:nonce


async def test_the_database_batches_of_the_hot_path_are_measured(database_url: str) -> None:
    """One observation per batch (not per message): how many requests it served and how long it took;
    on SQLite, also how long each batch writer waited for the process's write gate."""
    from bot.storage.engine import is_sqlite

    def counts(batcher: str) -> tuple[float, float, float]:
        return (sample("engagebot_batch_requests_count", batcher=batcher),
                sample("engagebot_batch_requests_sum", batcher=batcher),
                sample("engagebot_batch_seconds_count", batcher=batcher))

    def phases(batcher: str) -> dict[str, tuple[float, float]]:
        return {phase: (sample("engagebot_batch_phase_seconds_count", batcher=batcher, phase=phase),
                        sample("engagebot_batch_phase_seconds_sum", batcher=batcher, phase=phase))
                for phase in ("to thread", "writers' turn", "in thread", "to loop")}

    def commits() -> tuple[float, float]:
        return (sample("engagebot_commit_seconds_count", writer="group-writer"),
                sample("engagebot_commit_seconds_sum", writer="group-writer"))

    def thread_cpu(batcher: str) -> float:
        return sample("engagebot_batch_thread_cpu_seconds_total", batcher=batcher)

    reader, writer = counts("follower-reader"), counts("group-writer")
    cpu_before = {batcher: thread_cpu(batcher) for batcher in ("follower-reader", "group-writer")}
    gate_waits = sample("engagebot_write_gate_wait_seconds_count", writer="group-writer")
    reader_phases, writer_phases, commits_before = phases("follower-reader"), phases("group-writer"), commits()
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        replies = await asyncio.gather(*(bot.channel.receive(f"fan-{i}", "text", "hello", message_id=f"b{i}")
                                         for i in range(12)))
        assert all(replies)
        sqlite = is_sqlite(bot.engine)
        in_memory = bot.engine.url.database in (None, "", ":memory:")  # no file: no thread of its own
    reader_after, writer_after = counts("follower-reader"), counts("group-writer")
    for before, after in ((reader, reader_after), (writer, writer_after)):
        batches = after[0] - before[0]
        assert 1 <= batches <= 12 and after[2] - before[2] == batches  # a time for every batch
        assert after[1] - before[1] == 12  # every request counted in exactly one batch
    waited = sample("engagebot_write_gate_wait_seconds_count", writer="group-writer") - gate_waits
    assert waited == (writer_after[0] - writer[0] if sqlite else 0)
    # Every writer batch committed once, and its commit was timed (an fsync on SQLite: more than nothing).
    commits_after = commits()
    assert commits_after[0] - commits_before[0] == writer_after[0] - writer[0]
    assert commits_after[1] > commits_before[1]
    # On a SQLite file each batch runs in its runner's thread: each phase of each batch observed once,
    # and the commit is part of the writer's time in its thread. On PostgreSQL there is no thread.
    for batcher, before, after_counts in (("follower-reader", reader_phases, reader_after),
                                          ("group-writer", writer_phases, writer_after)):
        after = phases(batcher)
        batches = after_counts[0] - (reader if batcher == "follower-reader" else writer)[0]
        for phase in after:
            # Only a writer waits for the other processes' writers (the reader's turn is never observed).
            observed = sqlite and not in_memory and (phase != "writers' turn" or batcher == "group-writer")
            assert after[phase][0] - before[phase][0] == (batches if observed else 0), (batcher, phase)
    if sqlite and not in_memory:
        in_thread = phases("group-writer")["in thread"][1] - writer_phases["in thread"][1]
        assert commits_after[1] - commits_before[1] <= in_thread
    # The CPU the batch threads used for their batches: some, and no more than their time in the thread.
    for batcher in cpu_before:
        used = thread_cpu(batcher) - cpu_before[batcher]
        if sqlite and not in_memory:
            spent = sum(phases(batcher)[phase][1] for phase in ("in thread", "writers' turn")) - sum(
                (reader_phases if batcher == "follower-reader" else writer_phases)[phase][1]
                for phase in ("in thread", "writers' turn"))
            assert 0 < used <= spent + 0.01, (batcher, used, spent)  # thread_time's tick, at most
        else:
            assert used == 0, batcher  # no thread of its own
