"""Every query on a message's path reads the tables that grow (followers, messages, the replay cache,
claims...) through an index, never by scanning them: a scan costs in proportion to the table, so
each message would get slower as the account grows.

The statements a conversation really runs are captured (signed WeChat callbacks over HTTP, follows,
scans, offers claimed, locations) and each is asked for SQLite's plan with its own parameters.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from bot.offers import offer_index
from tests.channels.wechat.conftest import wechat_env
from tests.offers.conftest import load_into
from tests.support.db import backend

pytestmark = pytest.mark.skipif(backend() != "sqlite", reason="reads SQLite's query plans")

# Tables that grow with the audience or the traffic; small configuration tables may be scanned.
GROWING = {"follower", "message", "seen_request", "platform_notice", "claim", "pool_code", "campaign_touch",
           "referral", "referral_invite", "outbox_sender", "weibo_public_reply", "broadcast_mass_send"}
SCAN = re.compile(r"^SCAN (\w+)")


@contextmanager
def captured_statements() -> Iterator[list[tuple[str, Any]]]:
    """Every statement any engine of this process runs meanwhile (the stdlib twins of the batch runners too)."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if not executemany and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def scans(database: Path, statements: list[tuple[str, Any]]) -> dict[str, set[str]]:
    """Which growing tables each statement scans, by SQLite's plan on the test's database file."""
    found: dict[str, set[str]] = {}
    with sqlite3.connect(database) as conn:
        for statement, parameters in statements:
            tables = {m.group(1) for *_, detail in conn.execute(f"EXPLAIN QUERY PLAN {statement}", parameters or ())
                      if (m := SCAN.match(detail)) and m.group(1) in GROWING}
            if tables:
                found.setdefault(" ".join(statement.split())[:300], set()).update(tables)
    return found


async def test_a_conversation_reads_the_growing_tables_only_through_indexes(database_url: str,
                                                                            tmp_path: Path) -> None:
    database = Path(make_url(database_url).database or "")
    with captured_statements() as statements:
        async with wechat_env(database_url) as env:
            await load_into(env.bot, tmp_path)
            offer_index(env.bot.dispatcher.services).invalidate()
            fans = [await env.following(language=lang) for lang in ("zh_CN", "en", "zh_CN")]
            newcomer = env.follower()
            for fan in fans:
                assert (await env.sim.send_text(fan, "你好")).ok
                assert (await env.sim.send_text(fan, "火锅")).ok  # claims the offer
                assert (await env.sim.send_text(fan, "火锅")).ok  # asks again: the same code back
                assert (await env.sim.report_location(fan, latitude=31.23, longitude=121.47)).ok
            # Together, so that batches hold several followers (SQLite plans a list of one as "=").
            burst = await asyncio.gather(*(env.sim.send_text(fan, f"hello {i}") for i in range(3) for fan in fans))
            assert all(r.ok for r in burst)
            assert (await env.sim.follow(newcomer, "mall-poster-2026")).ok
            assert (await env.sim.scan(fans[0], "kol-lily")).ok
            assert (await env.sim.click(fans[1], "OFFER_HOTPOT")).ok
    assert statements, "nothing was captured: the listener saw no statement"
    assert scans(database, statements) == {}
