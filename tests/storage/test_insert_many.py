"""Many rows inserted with their new ids: few statements, and every id matched to its own row."""

from __future__ import annotations

import random
from typing import Any, cast

from sqlalchemy import Table, delete, event, func, insert, select

from bot.core.clock import utcnow
from bot.storage.driver_sql import insert_rows
from bot.storage.engine import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import Follower, Message

MESSAGES = cast(Table, Message.__table__)


def _rows(follower_id: int, texts: list[str]) -> list[dict[str, Any]]:
    return [{"follower_id": follower_id, "channel": "mock", "account": "brand", "direction": "in", "kind": "text",
             "text": text, "payload": None, "body": None, "dedupe_key": None, "in_reply_to": None,
             "broadcast_id": None, "status": "handled", "reason": None, "attempts": 0, "next_attempt_at": None,
             "created_at": utcnow(), "sent_at": None} for text in texts]


async def test_each_row_gets_its_own_id_in_few_statements(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    statements: list[str] = []
    try:
        async with engine.begin() as conn:
            follower_id = (await conn.execute(insert(Follower).values(
                channel="mock", account="brand", external_id="fan", following=True, tags=[], state_data={},
                window_sends=0, created_at=utcnow()).returning(Follower.id))).scalar_one()
            # Rows already there, the newest of them deleted: SQLite gives new rows the ids after the
            # largest one left, which the order of the ids must still follow.
            await conn.execute(insert(MESSAGES), _rows(follower_id, [f"old {i}" for i in range(30)]))
            newest = (await conn.execute(select(func.max(Message.id)))).scalar_one()
            await conn.execute(delete(Message).where(Message.id > newest - 5))
        texts = [f"row {i}" for i in range(300)]
        random.Random(7).shuffle(texts)

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        async with engine.begin() as conn:
            rows = _rows(follower_id, texts)
            ids = await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, rows, returning_ids=True))
        event.remove(engine.sync_engine, "before_cursor_execute", count)
        async with engine.connect() as conn:
            stored = dict((await conn.execute(select(Message.id, Message.text).where(Message.id.in_(ids)))).all())
        assert len(set(ids)) == len(texts)
        assert [stored[i] for i in ids] == texts
        # One statement for all 300 rows (a row at a time was 300).
        assert len([s for s in statements if s.lstrip().upper().startswith("INSERT")]) == 1
        async with engine.begin() as conn:
            assert await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, [], returning_ids=True)) == []
    finally:
        await engine.dispose()
