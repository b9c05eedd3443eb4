"""Seeing it run: ``/readyz`` (the database answers, its schema is current) and ``/metrics``.

``/healthz`` (``bot.web``) says the process serves; ``/readyz`` says it can do its work, for a load
balancer or an orchestrator deciding where to send traffic. ``/metrics`` is the Prometheus text
format: the counters of ``bot.metrics`` plus what the scrape-time sources read from the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from bot.core.clock import utcnow
from bot.metrics import CONTENT_TYPE, ScrapeSource, ScrapeSources, render
from bot.storage.engine import mark_retrieved
from bot.storage.migrate import current_heads, head_revisions, schema_newer
from bot.storage.models import Message
from bot.storage.status import UNSENT

# Seconds a /readyz probe waits for the database (ENGAGEBOT_READY_TIMEOUT): well under a load balancer's
# or an orchestrator's probe timeout (often 2 to 5 s), so that the probe hears a 503 and its reason
# rather than giving up itself.
READY_TIMEOUT = 1.5

SCRAPE_SOURCES = web.AppKey("scrape_sources", ScrapeSources)


class Readiness:
    """Whether the database answers and its schema is at this code's head, said within ``timeout``.

    On PostgreSQL each check opens a connection of its own (``NullPool``), not one of the app's pool: a
    pooled connection left half-open (the server restarted, a NAT or a firewall forgot it) answered
    nothing, the probe waited out its whole timeout and then the cancelled connection's close (5 s in
    all), and the next probe could be handed the same dead connection. A fresh connection reaches the
    server as it is now. On SQLite (a file, or the app's one in-memory database) the app's engine.

    A check that has not answered within ``timeout`` is answered for (503) at once and cancelled
    behind the answer: its cleanup (closing a connection that does not answer) is not waited for.
    """

    def __init__(self, engine: AsyncEngine, timeout: float = READY_TIMEOUT) -> None:
        self.timeout = timeout
        self._engine = engine
        self._own_engine = None if engine.dialect.name == "sqlite" else create_async_engine(
            engine.url, poolclass=NullPool, hide_parameters=True)
        self._abandoned: set[asyncio.Future[frozenset[str]]] = set()

    async def reason(self) -> str | None:
        """Why this process is not ready (a reason for the operator), or None when it is."""
        check = asyncio.ensure_future(current_heads(self._own_engine or self._engine))
        try:
            await asyncio.wait({check}, timeout=self.timeout)
        finally:
            if not check.done():  # out of time (or the probe itself cancelled): left to end on its own
                check.cancel()
                self._abandoned.add(check)
                check.add_done_callback(self._forget)
        if not check.done():
            return f"database did not answer within {self.timeout:g} s"
        try:
            current = check.result()
        except Exception as exc:
            # The exception's text may name the host and user: the type is enough for a probe.
            return f"database unreachable ({type(exc).__name__})"
        if (newer := schema_newer(current)) is not None:
            return newer
        expected = head_revisions()
        if current != expected:
            at = ", ".join(sorted(current)) or "no revision"
            return f"database schema at {at}, expected {', '.join(sorted(expected))} (run: engagebot db upgrade)"
        return None

    def _forget(self, check: asyncio.Future[frozenset[str]]) -> None:
        self._abandoned.discard(check)
        mark_retrieved(check)  # a late failure of an abandoned check is no news

    async def close(self, grace: float = 2.0) -> None:
        """Let the abandoned checks end (``grace`` seconds at most), then close the probes' engine."""
        if self._abandoned:
            await asyncio.wait(set(self._abandoned), timeout=grace)
        if self._own_engine is not None:
            await self._own_engine.dispose()


def readyz_handler(probe: Readiness) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(request: web.Request) -> web.Response:
        reason = await probe.reason()
        if reason is not None:
            return web.json_response({"status": "unavailable", "reason": reason}, status=503)
        return web.json_response({"status": "ready", "revision": sorted(head_revisions())})

    return readyz


async def metrics(request: web.Request) -> web.Response:
    body = render(await request.app[SCRAPE_SOURCES].collect())
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


def outbox_source(engine: AsyncEngine) -> ScrapeSource:
    """The outbox's depth per channel and status, and the age of its oldest unsent row, in one query.

    The rows counted are those still to send (``pending``, ``sending``, ``held``); the query uses the
    outbox index (status first) and reads no settled row.
    """

    async def read() -> Iterable[Metric]:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(Message.channel, Message.status, func.count(), func.min(Message.created_at))
                .where(Message.status.in_(UNSENT)).group_by(Message.channel, Message.status))).all()
        now = utcnow()
        depth = GaugeMetricFamily("engagebot_outbox_depth", "Outbox rows still to send, by channel and status",
                                  labels=["channel", "status"])
        age = GaugeMetricFamily("engagebot_outbox_oldest_age_seconds",
                                "Age of the oldest outbox row still to send, by channel", labels=["channel"])
        oldest: dict[str, float] = {}
        for channel, status, count, first in rows:
            depth.add_metric([channel, status], count)
            if first is not None:
                oldest[channel] = max(oldest.get(channel, 0.0), (now - first).total_seconds())
        for channel, seconds in oldest.items():
            age.add_metric([channel], seconds)
        return [depth, age]

    return read


__all__ = ["READY_TIMEOUT", "SCRAPE_SOURCES", "Readiness", "metrics", "outbox_source", "readyz_handler"]
