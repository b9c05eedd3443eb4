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
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.core.clock import utcnow
from bot.metrics import CONTENT_TYPE, ScrapeSource, ScrapeSources, render
from bot.storage.migrate import current_heads, head_revisions, schema_newer
from bot.storage.models import Message
from bot.storage.status import UNSENT

READY_TIMEOUT = 3.0  # seconds: an orchestrator's probe gives up soon; a database this slow is not ready

SCRAPE_SOURCES = web.AppKey("scrape_sources", ScrapeSources)


async def readiness(engine: AsyncEngine) -> str | None:
    """Why this process is not ready (a reason for the operator), or None when it is."""
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            current = await current_heads(engine)
    except TimeoutError:
        return f"database did not answer within {READY_TIMEOUT:g} s"
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


def readyz_handler(engine: AsyncEngine) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(request: web.Request) -> web.Response:
        reason = await readiness(engine)
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


__all__ = ["SCRAPE_SOURCES", "metrics", "outbox_source", "readiness", "readyz_handler"]
