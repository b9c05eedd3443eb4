"""The batch threads' statements given to the driver store and read exactly what Core's statements do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    TypeDecorator,
    event,
    func,
    insert,
    select,
    update,
)

from bot.storage import driver_sql
from bot.storage.driver_sql import insert_new_rows, insert_rows, select_in, update_rows
from bot.storage.engine import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import Follower, Message, SeenRequest

MESSAGES = cast(Table, Message.__table__)
FOLLOWERS = cast(Table, Follower.__table__)
SHANGHAI = timezone(timedelta(hours=8))


def _message(follower_id: int, **values: Any) -> dict[str, Any]:
    row = {"follower_id": follower_id, "channel": "mock", "account": "brand", "direction": "out", "kind": "text",
           "text": "", "payload": None, "body": None, "dedupe_key": None, "in_reply_to": None,
           "broadcast_id": None, "status": "pending", "reason": None, "attempts": 0, "next_attempt_at": None,
           "created_at": datetime(2026, 12, 1, 10, 0, tzinfo=UTC), "sent_at": None, "resent_in_doubt": False,
           "sent_by": None}
    return {**row, **values}


def _varied(follower_id: int) -> list[dict[str, Any]]:
    """Rows whose values each take a different path through the types' processors."""
    return [
        _message(follower_id, text="你好 👋 'quotes' \"and\" \\ back", dedupe_key="a"),
        _message(follower_id, body={"type": "buttons", "text": "選擇", "buttons": [{"title": "是", "payload": None}],
                                    "n": 1.5, "ok": True}, dedupe_key="b"),
        # An aware time in another zone is stored as UTC; a naive one is taken as UTC.
        _message(follower_id, created_at=datetime(2026, 12, 1, 18, 30, 15, 123456, tzinfo=SHANGHAI),
                 next_attempt_at=datetime(2026, 12, 1, 10, 0, 0), sent_at=datetime(2026, 12, 1, 10, 0, 0, 1, tzinfo=UTC),
                 dedupe_key="c"),
        _message(follower_id, resent_in_doubt=True, attempts=3, reason="x" * 255, sent_by="agent 7", dedupe_key="d"),
        _message(follower_id, payload="offer:spring", body={}, in_reply_to=2**40, broadcast_id=9, dedupe_key="e"),
    ]


async def _follower(conn: Any, external_id: str = "fan") -> int:
    return cast(int, (await conn.execute(insert(Follower).values(
        channel="mock", account="brand", external_id=external_id, following=True, tags=["vip", "北京"],
        state_data={"step": 2}, window_sends=0, created_at=datetime(2026, 12, 1, tzinfo=UTC))
        .returning(Follower.id))).scalar_one())


def _stored(sync: Connection, table: Table, ids: list[int]) -> list[tuple[Any, ...]]:
    """The rows as the database holds them (the driver's values, nothing processed), without their ids."""
    names = ", ".join(c.name for c in table.columns if not c.primary_key)
    return [tuple(sync.exec_driver_sql(f"SELECT {names} FROM {table.name} WHERE id = {int(i)}").one()) for i in ids]


@pytest.fixture
async def engine(database_url: str) -> Any:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


async def test_rows_inserted_through_the_driver_are_stored_as_core_stores_them(engine: Any) -> None:
    async with engine.begin() as conn:
        follower_id = await _follower(conn)
        core_rows = _varied(follower_id)
        core_ids = [(await conn.execute(insert(Message).values(**row).returning(Message.id))).scalar_one()
                    for row in core_rows]
        driver_rows = [{**row, "dedupe_key": f"driver {row['dedupe_key']}"} for row in _varied(follower_id)]
        driver_ids = await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, driver_rows, returning_ids=True))
        core = await conn.run_sync(lambda sync: _stored(sync, MESSAGES, core_ids))
        driver = await conn.run_sync(lambda sync: _stored(sync, MESSAGES, driver_ids))
    dedupe = [c.name for c in MESSAGES.columns if not c.primary_key].index("dedupe_key")
    assert [row[:dedupe] + row[dedupe + 1:] for row in driver] == [row[:dedupe] + row[dedupe + 1:] for row in core]
    assert [row[dedupe] for row in driver] == [f"driver {row[dedupe]}" for row in core]


async def test_a_column_left_out_gets_the_default_core_would_give_it(engine: Any) -> None:
    async with engine.begin() as conn:
        follower_id = await _follower(conn)
        row = _message(follower_id, dedupe_key="no flag")
        del row["resent_in_doubt"], row["attempts"], row["text"]  # Python-side defaults: False, 0, ""
        (new_id,) = await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, [row], returning_ids=True))
        stored = (await conn.execute(select(Message.resent_in_doubt, Message.attempts, Message.text)
                                     .where(Message.id == new_id))).one()
    assert tuple(stored) == (False, 0, "")


async def test_rows_updated_through_the_driver_are_stored_as_core_stores_them(engine: Any) -> None:
    changes = {"last_action_at": datetime(2026, 12, 1, 20, 1, 2, 3, tzinfo=SHANGHAI), "last_action_kind": "message",
               "window_sends": 4, "tags": ["新", "fan's"], "state_data": {"a": [1, None]}, "following": False}
    async with engine.begin() as conn:
        core_id, driver_id, untouched = [await _follower(conn, name) for name in ("core", "driver", "other")]
        await conn.execute(update(Follower).where(Follower.id == core_id).values(**changes))
        await conn.run_sync(lambda sync: update_rows(sync, FOLLOWERS, [{"_fid": driver_id, **changes}], key="_fid"))
        stored = await conn.run_sync(lambda sync: _stored(sync, FOLLOWERS, [core_id, driver_id, untouched]))
    external_id = [c.name for c in FOLLOWERS.columns if not c.primary_key].index("external_id")
    core, driver, other = ([*row[:external_id], *row[external_id + 1:]] for row in stored)
    assert driver == core
    assert other != core


async def test_rows_read_through_the_driver_are_what_core_reads(engine: Any) -> None:
    async with engine.begin() as conn:
        follower_ids = [await _follower(conn, name) for name in ("a", "b", "c")]
        rows = [row for follower_id in follower_ids for row in _varied(follower_id)[:1]]
        for i, row in enumerate(rows):
            row["dedupe_key"] = f"m{i}"
        await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, rows))
        keys = [c.key for c in FOLLOWERS.columns]
        read = await conn.run_sync(lambda sync: select_in(
            sync, FOLLOWERS, keys, where={"channel": "mock", "account": "brand"}, column="external_id",
            values=["a", "c", "nobody"]))
        core = [dict(r._mapping) for r in await conn.execute(
            select(*FOLLOWERS.columns).where(Follower.external_id.in_(["a", "c"])))]
        other_account = await conn.run_sync(lambda sync: select_in(
            sync, MESSAGES, ["id"], where={"channel": "mock", "account": "another"}, column="dedupe_key",
            values=["m0", "m1"]))
        none_asked = await conn.run_sync(lambda sync: select_in(
            sync, MESSAGES, ["id"], where={"channel": "mock", "account": "brand"}, column="dedupe_key", values=[]))
    assert sorted(read, key=lambda r: r["id"]) == sorted(core, key=lambda r: r["id"])
    assert {r["external_id"] for r in read} == {"a", "c"}
    assert read[0]["tags"] == ["vip", "北京"] and read[0]["created_at"].tzinfo is not None
    assert other_account == [] and none_asked == []


async def test_conflicting_rows_are_skipped_when_asked(engine: Any) -> None:
    async with engine.begin() as conn:
        follower_id = await _follower(conn)
        first = [_message(follower_id, direction="in", dedupe_key="same", text="first")]
        await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, first))
        again = [_message(follower_id, direction="in", dedupe_key="same", text="again"),
                 _message(follower_id, direction="in", dedupe_key="new", text="new")]
        inserted = await conn.run_sync(lambda sync: insert_new_rows(sync, MESSAGES, again))
        texts = (await conn.execute(select(Message.dedupe_key, Message.text).order_by(Message.id))).all()
    assert inserted == (None if engine.dialect.name == "postgresql" else 1)
    assert [tuple(t) for t in texts] == [("same", "first"), ("new", "new")]


async def test_ids_stay_in_row_order_across_statements(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_sql, "ROWS_PER_INSERT", 7)
    async with engine.begin() as conn:
        follower_id = await _follower(conn)
        rows = [_message(follower_id, text=f"row {i}") for i in range(23)]
        ids = await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, rows, returning_ids=True))
        stored = dict((await conn.execute(select(Message.id, Message.text))).all())
    assert [stored[i] for i in ids] == [f"row {i}" for i in range(23)]


async def test_rows_that_cannot_be_written_as_one_shape_are_refused(engine: Any) -> None:
    async with engine.begin() as conn:
        follower_id = await _follower(conn)
        other_keys = [_message(follower_id, dedupe_key="x"), {**_message(follower_id), "unknown": 1}]
        with pytest.raises(ValueError, match="same keys"):
            await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, other_keys))
        fewer_keys = [_message(follower_id, dedupe_key="y"), {"follower_id": follower_id}]
        with pytest.raises(ValueError, match="same keys"):
            await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, fewer_keys))
        assert (await conn.execute(select(func.count()).select_from(Message))).scalar_one() == 0


def test_a_default_written_in_sql_is_refused() -> None:
    """Core puts a SQL default in the statement itself; the driver's statement would store NULL."""
    table = Table("stamped", MetaData(), Column("id", Integer, primary_key=True),
                  Column("at", DateTime, default=func.now()))
    from sqlalchemy.dialects.sqlite import pysqlite

    with pytest.raises(ValueError, match="stamped.at: its default is SQL"):
        driver_sql._shape(pysqlite.dialect(), table, ("id",), updating=False)


@pytest.mark.parametrize("hide", [True, False], ids=["hidden", "shown"])
async def test_a_value_its_column_cannot_take_fails_as_in_core(database_url: str, hide: bool) -> None:
    """A StatementError naming the cause, its parameters hidden unless the engine shows them (DEBUG): the
    group writer's batch splitting and the logs' redaction rely on Core's error, whichever path ran."""
    from sqlalchemy.exc import StatementError

    engine = create_engine(database_url, hide_parameters=hide)
    await upgrade(engine)
    try:
        async with engine.connect() as conn:
            follower_id = await _follower(conn)
            bad = _message(follower_id, body={"not json": {1, 2}}, text="secret text")
            with pytest.raises(StatementError) as driver:
                await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, [bad], returning_ids=True))
            await conn.rollback()
        error = driver.value
        assert "Object of type set is not JSON serializable" in str(error)
        assert isinstance(error.orig, TypeError)
        assert ("[SQL parameters hidden" in str(error)) is hide
        assert ("secret text" in str(error)) is not hide
    finally:
        await engine.dispose()


@pytest.mark.parametrize("update_from", [True, False], ids=["one statement", "a statement per row"])
async def test_a_row_named_twice_keeps_its_last_values_across_statements(
        engine: Any, monkeypatch: pytest.MonkeyPatch, update_from: bool) -> None:
    """As one UPDATE per row in order would leave it, in one statement or several, and on an SQLite
    without ``UPDATE ... FROM`` (before 3.33)."""
    monkeypatch.setattr(driver_sql, "ROWS_PER_INSERT", 3)
    monkeypatch.setattr(driver_sql, "_SQLITE_UPDATE_FROM", update_from)
    async with engine.begin() as conn:
        ids = [await _follower(conn, f"f{i}") for i in range(7)]
        rows = [{"_fid": fid, "window_sends": n, "last_action_kind": f"k{n}"}
                for n, fid in enumerate([*ids, ids[0], ids[5], ids[0]])]
        await conn.run_sync(lambda sync: update_rows(sync, FOLLOWERS, rows, key="_fid"))
        stored = dict((await conn.execute(select(Follower.id, Follower.window_sends))).all())
        kinds = dict((await conn.execute(select(Follower.id, Follower.last_action_kind))).all())
    assert [stored[fid] for fid in ids] == [9, 1, 2, 3, 4, 8, 6]
    assert [kinds[fid] for fid in ids] == ["k9", "k1", "k2", "k3", "k4", "k8", "k6"]


async def test_rows_of_a_table_with_a_composite_key_are_inserted(engine: Any) -> None:
    """The replay cache's rows: (scope, key) is their key; a repeat is skipped when asked."""
    from bot.storage.models import SeenRequest

    seen = cast(Table, SeenRequest.__table__)
    expires = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
    rows = [{"scope": "wechat", "key": f"k{i}", "body_hash": f"h{i}", "expires_at": expires} for i in range(3)]
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: insert_rows(sync, seen, rows))
        again = [{**rows[0], "body_hash": "other"}, {**rows[0], "key": "k3"}]
        await conn.run_sync(lambda sync: insert_new_rows(sync, seen, again))
        stored = (await conn.execute(select(SeenRequest.key, SeenRequest.body_hash).order_by(SeenRequest.key))).all()
    assert [tuple(r) for r in stored] == [("k0", "h0"), ("k1", "h1"), ("k2", "h2"), ("k3", "h0")]


class _Upper(TypeDecorator[str]):
    """A column type whose processors refuse None (ours all take it; a developer's may not)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str:
        return value.upper()  # type: ignore[union-attr]

    def process_result_value(self, value: str | None, dialect: Any) -> str:
        return value.lower()  # type: ignore[union-attr]


def test_a_type_that_refuses_none_fails_only_the_rows_holding_none_as_in_core() -> None:
    """The shape is built without calling the type on None for good: rows without None go in and are
    read back through it; a row with None fails with Core's error, on insert and on read."""
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy.exc import StatementError

    table = Table("shouting", MetaData(), Column("id", Integer, primary_key=True), Column("word", _Upper))
    engine = create_sync_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        assert insert_rows(conn, table, [{"word": "hi"}, {"word": "ni hao"}], returning_ids=True) == [1, 2]
        assert conn.exec_driver_sql("SELECT word FROM shouting ORDER BY id").scalars().all() == ["HI", "NI HAO"]
        assert select_in(conn, table, ["id", "word"], where={}, column="id", values=[1, 2]) == [
            {"id": 1, "word": "hi"}, {"id": 2, "word": "ni hao"}]
        with pytest.raises(StatementError) as core:
            conn.execute(insert(table), [{"word": None}])
        with pytest.raises(StatementError) as driver:
            insert_rows(conn, table, [{"word": "ok"}, {"word": None}])
        assert type(driver.value.orig) is type(core.value.orig) is AttributeError
        conn.exec_driver_sql("INSERT INTO shouting (id, word) VALUES (3, NULL)")
        with pytest.raises(AttributeError):
            conn.execute(select(table.c.word).where(table.c.id == 3)).all()
        with pytest.raises(AttributeError):
            select_in(conn, table, ["word"], where={}, column="id", values=[3])


def test_a_key_that_is_no_column_is_refused_as_core_refuses_it() -> None:
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy.exc import CompileError

    engine = create_sync_engine("sqlite://")
    MESSAGES.metadata.create_all(engine, tables=[FOLLOWERS, MESSAGES])
    with engine.begin() as conn:
        with pytest.raises(CompileError, match="Unconsumed column names: colour"):
            conn.execute(insert(MESSAGES).values({**_message(1), "colour": "red"}))
        with pytest.raises(CompileError, match="Unconsumed column names: colour"):
            insert_rows(conn, MESSAGES, [{**_message(1), "colour": "red"}])


async def test_a_value_a_lookup_cannot_bind_fails_as_in_core(engine: Any) -> None:
    """The reader's lookups wrap a refused value as the writes do: Core's StatementError."""
    from sqlalchemy.exc import StatementError

    async with engine.connect() as conn:
        with pytest.raises(StatementError) as driver:
            await conn.run_sync(lambda sync: select_in(sync, FOLLOWERS, ["id"], where={"channel": "mock"},
                                                       column="created_at", values=["not a time"]))
    error = driver.value
    assert error.statement is not None and error.statement.startswith("SELECT ")  # the lookup is named
    assert "FROM follower" in error.statement
    assert "[SQL parameters hidden" in str(error) and "not a time" not in str(error)  # as the engine says


@pytest.mark.parametrize("update_from", [True, False], ids=["one statement", "a statement per row"])
async def test_an_update_leaves_the_columns_it_does_not_name_as_they_were(
        engine: Any, monkeypatch: pytest.MonkeyPatch, update_from: bool) -> None:
    """Those with a Python default included: a default is for an INSERT; an UPDATE computes only what a
    column's ``onupdate`` would (none of ours has one)."""
    monkeypatch.setattr(driver_sql, "_SQLITE_UPDATE_FROM", update_from)
    async with engine.begin() as conn:
        fid = await _follower(conn)  # following, tags ["vip", "北京"], state_data {"step": 2}
        await conn.run_sync(lambda sync: update_rows(sync, FOLLOWERS, [{"_fid": fid, "last_action_kind": "message"}],
                                                     key="_fid"))
        stored = (await conn.execute(select(Follower.following, Follower.tags, Follower.state_data,
                                            Follower.window_sends, Follower.last_action_kind))).one()
    assert tuple(stored) == (True, ["vip", "北京"], {"step": 2}, 0, "message")


async def test_no_statement_binds_more_variables_than_sqlite_allows(
        engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows per statement are bounded by SQLite's variables too (wide rows: fewer than ROWS_PER_INSERT)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's statements: on PostgreSQL the rows go through Core's executemany")
    monkeypatch.setattr(driver_sql, "_SQLITE_MAX_VARIABLES", 100)
    statements: list[int] = []

    def count(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().startswith(("INSERT", "UPDATE")):
            statements.append(len(parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with engine.begin() as conn:
            follower_id = await _follower(conn)
            statements.clear()
            rows = [_message(follower_id, text=f"row {i}") for i in range(25)]  # 19 columns: 5 rows a statement
            ids = await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, rows, returning_ids=True))
            inserts, statements[:] = list(statements), []
            ids2 = [await _follower(conn, f"f{i}") for i in range(60)]
            statements.clear()
            await conn.run_sync(lambda sync: update_rows(  # 2 columns and the key: 33 rows a statement
                sync, FOLLOWERS, [{"_fid": f, "window_sends": 7, "last_action_kind": "x"} for f in ids2], key="_fid"))
            updates = list(statements)
            texts = dict((await conn.execute(select(Message.id, Message.text))).all())
            sends = (await conn.execute(select(func.count()).select_from(Follower)
                                        .where(Follower.window_sends == 7))).scalar_one()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert len(rows[0]) == 19 and inserts == [5 * 19] * 5
    assert [texts[i] for i in ids] == [f"row {i}" for i in range(25)]
    assert updates == [99, 81]
    assert sends == 60


@pytest.mark.parametrize("update_from", [True, False], ids=["one statement", "a statement per row"])
async def test_a_value_its_column_cannot_take_fails_an_update_as_in_core(
        database_url: str, monkeypatch: pytest.MonkeyPatch, update_from: bool) -> None:
    """As for an insert: a StatementError naming its statement and its cause, the parameters hidden."""
    from sqlalchemy.exc import StatementError

    monkeypatch.setattr(driver_sql, "_SQLITE_UPDATE_FROM", update_from)
    engine = create_engine(database_url, hide_parameters=True)
    await upgrade(engine)
    try:
        async with engine.connect() as conn:
            fid = await _follower(conn)
            with pytest.raises(StatementError) as driver:
                await conn.run_sync(lambda sync: update_rows(
                    sync, FOLLOWERS, [{"_fid": fid, "state_data": {"not json": {1, 2}}, "state": "secret"}],
                    key="_fid"))
            await conn.rollback()
        error = driver.value
        assert isinstance(error.orig, TypeError) and "Object of type set is not JSON serializable" in str(error)
        assert error.statement is not None and error.statement.startswith("UPDATE follower SET ")
        assert "[SQL parameters hidden" in str(error) and "secret" not in str(error)
    finally:
        await engine.dispose()


def test_ids_not_after_the_largest_are_refused_with_what_was_seen() -> None:
    assert driver_sql.consecutive_ids(17, 4, 17) == [14, 15, 16, 17]
    with pytest.raises(RuntimeError) as refused:
        driver_sql.consecutive_ids(17, 4, 2**63 - 1)
    assert str(refused.value) == ("SQLite did not give one INSERT's 4 rows the ids after the largest "
                                  "(last inserted 17, largest 9223372036854775807); their ids cannot be told")
    with pytest.raises(RuntimeError):
        driver_sql.consecutive_ids(None, 1, None)


def test_past_the_largest_rowid_sqlite_picks_ids_at_random_and_the_insert_is_refused() -> None:
    """With a row at 2**63 - 1, SQLite gives new rows random free ids: their order cannot be told."""
    from sqlalchemy import create_engine as create_sync_engine

    table = Table("words", MetaData(), Column("id", Integer, primary_key=True), Column("word", String))
    engine = create_sync_engine("sqlite://")
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        assert insert_rows(conn, table, [{"word": "a"}, {"word": "b"}], returning_ids=True) == [1, 2]
        conn.execute(insert(table), [{"id": 2**63 - 1, "word": "last"}])
        with pytest.raises(RuntimeError, match="ids cannot be told"):
            insert_rows(conn, table, [{"word": "c"}, {"word": "d"}], returning_ids=True)


async def test_insert_new_rows_counts_what_went_in(engine: Any) -> None:
    """What the replay cache trusts to skip reading its rows back: the count of rows inserted, a row
    conflicting with a stored one or with another of the same statement not counted."""
    seen = cast(Table, SeenRequest.__table__)
    expires = datetime(2030, 1, 1, tzinfo=UTC)

    def row(key: str, body: str) -> dict[str, Any]:
        return {"scope": "wechat", "key": key, "body_hash": body, "expires_at": expires}

    postgresql = engine.dialect.name == "postgresql"
    async with engine.begin() as conn:
        assert await conn.run_sync(lambda sync: insert_new_rows(sync, seen, [])) == 0
        first = await conn.run_sync(lambda sync: insert_new_rows(sync, seen, [row("a", "1"), row("b", "1")]))
        assert first == (None if postgresql else 2)
        again = await conn.run_sync(lambda sync: insert_new_rows(
            sync, seen, [row("a", "2"), row("c", "1"), row("c", "2"), row("d", "1")]))
        assert again == (None if postgresql else 2)
        stored = dict((await conn.execute(select(SeenRequest.key, SeenRequest.body_hash))).all())
    assert stored == {"a": "1", "b": "1", "c": "1", "d": "1"}


async def test_a_conflicting_row_fails_the_insert_unless_conflicts_are_ignored(engine: Any) -> None:
    from sqlalchemy.exc import IntegrityError

    async with engine.connect() as conn:
        follower_id = await _follower(conn)
        await conn.commit()
        first = [_message(follower_id, direction="in", dedupe_key="same", text="first")]
        await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, first))
        await conn.commit()
        again = [_message(follower_id, direction="in", dedupe_key="new", text="new"),
                 _message(follower_id, direction="in", dedupe_key="same", text="again")]
        with pytest.raises(IntegrityError):
            await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, again))
        await conn.rollback()
        texts = (await conn.execute(select(Message.text))).scalars().all()
    assert texts == ["first"]


async def test_a_refused_batch_shows_its_parameter_sets_as_core_does(database_url: str) -> None:
    """A batch of 12 rows, one of them refused: its error lists the first rows' parameters and says how many
    sets there were, as Core's ``executemany`` does (not one set of 12 rows run together)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's statements: on PostgreSQL the rows go through Core's executemany")
    from sqlalchemy.exc import StatementError

    engine = create_engine(database_url, hide_parameters=False)
    await upgrade(engine)
    try:
        async with engine.connect() as conn:
            follower_id = await _follower(conn)
            rows = [_message(follower_id, text=f"row {i}") for i in range(11)]
            rows.append(_message(follower_id, body={"not json": {1, 2}}, text="row 11"))
            with pytest.raises(StatementError) as driver:
                await conn.run_sync(lambda sync: insert_rows(sync, MESSAGES, rows, returning_ids=True))
            await conn.rollback()
    finally:
        await engine.dispose()
    assert "displaying 10 of 12 total bound parameter sets" in str(driver.value)


async def test_columns_left_out_with_a_callable_default_get_what_core_would_give_them(engine: Any) -> None:
    """A follower's ``tags`` (``default=list``) and ``state_data`` (``default=dict``) left out: an empty list
    and dict in each row, as Core stores them."""
    rows = [{"channel": "mock", "account": "brand", "external_id": f"fan {i}", "following": False,
             "created_at": datetime(2026, 12, 1, tzinfo=UTC)} for i in range(3)]
    async with engine.begin() as conn:
        ids = await conn.run_sync(lambda sync: insert_rows(sync, FOLLOWERS, rows, returning_ids=True))
        stored = (await conn.execute(select(Follower.tags, Follower.state_data, Follower.window_sends)
                                     .where(Follower.id.in_(ids)))).all()
    assert [tuple(r) for r in stored] == [([], {}, 0)] * 3
