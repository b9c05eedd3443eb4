"""The mock channel's delivery sink (``ENGAGEBOT_MOCK_SINK``), as the workers of one run open it together."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.channels.mock import MOCK_DELIVERY, SqlDeliverySink
from bot.core.reply import TextReply


async def test_a_sink_whose_table_another_process_creates_during_its_check_opens_on_that_table(
        tmp_path: Path) -> None:
    """`run --workers 2` with a sink: both workers open it at once, and the one that lost the CREATE used
    to stop with "table mock_delivery already exists", which stopped the whole run."""
    path = tmp_path / "sink.db"
    raced: list[bool] = []

    def another_worker_creates_it(_table: Any, _connection: Any, **_kw: Any) -> None:
        if raced:  # only the first time
            return
        raced.append(True)
        with sqlite3.connect(path) as other:
            other.execute("CREATE TABLE mock_delivery (idempotency_key VARCHAR(160) PRIMARY KEY, external_id "
                          "VARCHAR(128) NOT NULL, text TEXT NOT NULL, attempts INTEGER NOT NULL, "
                          "delivered_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL)")

    event.listen(MOCK_DELIVERY, "before_create", another_worker_creates_it)  # between the check and the CREATE
    sink = SqlDeliverySink(f"sqlite+aiosqlite:///{path}")
    try:
        await sink.open()
        assert raced
        await sink.deliver("amy", TextReply("hi"), idempotency_key="k1")
        assert await sink.count() == 1
    finally:
        event.remove(MOCK_DELIVERY, "before_create", another_worker_creates_it)
        await sink.close()

