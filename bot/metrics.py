"""The Prometheus metrics, defined once; the code on the request path only increments them.

Labels are bounded by design: a channel name (``wechat``, ``telegram``, ``weibo``, ``mock``), a
kind (``bot.core.inbound.Kind`` values, reply types), an outcome (``DeliveryStatus`` values, claim
outcomes), a route (``passive`` / ``deferred``): never a follower, account or message id.

What lives in the database (the outbox's depth and age, who holds which lease) is not kept here:
it is read when ``/metrics`` is scraped, by the :data:`ScrapeSource` callables registered with
:class:`ScrapeSources` (``bot.health``), so the request path pays no query for it.

With ``PROMETHEUS_MULTIPROC_DIR`` set (it must be set before this module is first imported, and
the directory must be empty at start), every process writes its values to files there and
:func:`render` adds up those of all processes (``prometheus_client.multiprocess``): one scrape of
any worker sees the whole machine.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

__all__ = ["BATCH_PHASE_SECONDS", "BATCH_REQUESTS", "BATCH_SECONDS", "BATCH_THREAD_CPU_SECONDS", "CLAIMS", "COMMIT_SECONDS", "CONTENT_TYPE", "DELIVERIES", "HANDLER_SECONDS", "MESSAGES",
           "REPLY_ROUTES", "WRITE_GATE_WAIT_SECONDS",
           "ScrapeSource", "ScrapeSources", "counter", "histogram", "lease_holders", "multiprocess_dir",
           "multiprocess_dir_problem", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

MESSAGES = Counter("engagebot_messages", "Messages handled, in (by kind of action) and out (by kind of reply)",
                   ["channel", "direction", "kind"])
# Buckets around the platforms' deadlines: WeChat and Weibo read a passive reply within 4.5-5 s.
HANDLER_SECONDS = Histogram("engagebot_handler_seconds", "Time from a message's arrival at the dispatcher to its commit",
                            ["channel"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 4.5,
                                                  10))
REPLY_ROUTES = Counter("engagebot_reply_routes", "Answers to a platform's request: inline (passive) or, past the "
                       "deadline, through the send API (deferred)", ["channel", "route"])
DELIVERIES = Counter("engagebot_deliveries", "Outbox rows settled by a sender, by outcome (DeliveryStatus)",
                     ["channel", "outcome"])
CLAIMS = Counter("engagebot_claims", "Claims of an offer, by outcome (ClaimOutcome)", ["outcome"])
# The hot path's database stages (follower reader, group writer...): one observation per
# batch, not per message. Their sizes and times show where a message waits under load.
BATCH_REQUESTS = Histogram("engagebot_batch_requests", "Requests served by one database batch, by batcher",
                           ["batcher"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
BATCH_SECONDS = Histogram("engagebot_batch_seconds", "Time from a database batch's start to its results "
                          "(waits for the write gate and the event loop included), by batcher", ["batcher"],
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
# Where a batch's time goes on SQLite, where it runs in a thread of its own: waiting for that thread (and
# the GIL, which the event loop holds while it works), a writer's wait for the other processes' writers
# of the file, running there, and waiting for the event loop to pick the result up; and the commit alone
# (an fsync on SQLite), on both engines. A batch writer commits no more often than these allow.
_PHASE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
BATCH_PHASE_SECONDS = Histogram("engagebot_batch_phase_seconds", "A database batch's time by phase: 'to thread' "
                                "(waiting for its thread and the GIL), 'writers' turn' (a writer's wait for other processes' writers), "
                                "'in thread' (the statements and commit), "
                                "'to loop' (waiting for the event loop to resume the caller), by batcher",
                                ["batcher", "phase"], buckets=_PHASE_BUCKETS)
# The CPU the batch threads themselves use (time.thread_time: user and system, waits for the GIL's hand-over
# included), beside the process's whole CPU: the rest is the event loop's.
BATCH_THREAD_CPU_SECONDS = Counter("engagebot_batch_thread_cpu_seconds", "CPU time a database batch's thread used "
                                   "for it (on a SQLite file, where batches run in threads of their own), by batcher",
                                   ["batcher"])
COMMIT_SECONDS = Histogram("engagebot_commit_seconds", "Time a batch writer's commit took (on SQLite with "
                           "synchronous=FULL, the disk's flush), by writer", ["writer"], buckets=_PHASE_BUCKETS)
WRITE_GATE_WAIT_SECONDS = Histogram("engagebot_write_gate_wait_seconds", "Time a batch writer waited for the "
                                    "SQLite write gate of its process, by writer", ["writer"],
                                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))

@functools.cache
def counter(metric: Counter, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once per label set (the label sets are few and bounded)."""
    return metric.labels(*labels)


@functools.cache
def histogram(metric: Histogram, *labels: str) -> Any:
    return metric.labels(*labels)


SCRAPE_TIMEOUT = 2.0  # seconds per scrape-time source: a slow database must not hang the scrape

# Something read from the database at scrape time: it returns finished metric families.
ScrapeSource = Callable[[], Awaitable[Iterable[Metric]]]


class ScrapeSources:
    """The scrape-time readers of one app (the outbox's depth, the lease holders, ...).

    ``add`` at startup; a reader that fails is reported as ``engagebot_scrape_error{source}`` = 1
    instead of failing the whole scrape (the counters stay visible when the database is down).
    """

    def __init__(self) -> None:
        self._sources: list[tuple[str, ScrapeSource]] = []

    def add(self, name: str, source: ScrapeSource) -> None:
        self._sources.append((name, source))

    async def collect(self) -> list[Metric]:
        families: list[Metric] = []
        errors = GaugeMetricFamily("engagebot_scrape_error", "1 when a scrape-time reader failed", labels=["source"])
        for name, source in self._sources:
            try:
                async with asyncio.timeout(SCRAPE_TIMEOUT):
                    families += list(await source())
                errors.add_metric([name], 0)
            except Exception:
                errors.add_metric([name], 1)
        if self._sources:
            families.append(errors)
        return families


def lease_holders(held: Iterable[tuple[str, str]]) -> Metric:
    """``engagebot_lease_holder{duty, holder} 1`` for each (duty, holder instance) pair.

    For the lease table's reader: ``sources.add("leases", async lambda: [lease_holders(rows)])``.
    """
    family = GaugeMetricFamily("engagebot_lease_holder", "1 for the instance that holds each singleton duty's lease",
                               labels=["duty", "holder"])
    for duty, holder in held:
        family.add_metric([duty, holder], 1)
    return family


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def multiprocess_dir_problem() -> str | None:
    """Why the multiprocess directory cannot serve (for the operator, at start), or None.

    Every counter increment writes there: a directory missing or not writable would fail every
    message and every scrape of a server that otherwise looks ready.
    """
    directory = multiprocess_dir()
    if directory is None:
        return None
    if not os.path.isdir(directory):
        reason = "no such directory"
    elif not os.access(directory, os.W_OK | os.X_OK):
        reason = "not writable by this process"
    else:
        return None
    return f"PROMETHEUS_MULTIPROC_DIR {directory}: {reason} (the processes serving /metrics write their counters there)"


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(extra: Sequence[Metric] = ()) -> bytes:
    """The text exposition: this process's metrics (all processes' in multiprocess mode), then ``extra``."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    text = generate_latest(registry)
    if extra:
        scraped = CollectorRegistry(auto_describe=False)
        scraped.register(_Families(extra))
        text += generate_latest(scraped)
    return text
