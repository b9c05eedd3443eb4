"""The simulators' records: what take_changes() gives back comes back whole through restore()."""

from __future__ import annotations

import pytest

from bot.simulators.telegram import TelegramBotAPISimulator
from bot.simulators.wechat import WeChatSimulator

from .wechat.conftest import APP_ID, APP_SECRET, TOKEN


def _stored(changes: list, into: dict) -> list:
    for kind, key, data in changes:
        if data is None:
            into.pop((kind, key), None)
        else:
            into[(kind, key)] = data
    return [(kind, key, data) for (kind, key), data in into.items()]


def test_a_telegram_world_comes_back_whole_and_its_ids_continue() -> None:
    sim = TelegramBotAPISimulator()
    sim.max_files = 2
    ada = sim.add_user(first_name="Ada", language_code="en")
    sim.send_text(ada, "hello")
    sim.send_photo(ada)
    group = sim.add_group(title="Fans")
    store: dict = {}
    records = _stored(sim.take_changes(), store)
    sim.send_sticker(ada)  # a third file: the first one is dropped, and its record goes
    sim.block(ada)
    records = _stored(sim.take_changes(), store)
    assert sim.take_changes() == []  # nothing changed since
    assert len([k for k in store if k[0] == "file"]) == 2

    again = TelegramBotAPISimulator(sim.token)
    again.restore(records)
    assert again.users[ada] == sim.users[ada] and again.users[ada].blocked
    assert again.chats[ada].timeline == sim.chats[ada].timeline
    assert again.chats[ada].messages == sim.chats[ada].messages
    assert again.chats[group].title == "Fans" and set(again.files) == set(sim.files)
    assert [u["update_id"] for u in again.updates] == [u["update_id"] for u in sim.updates]
    bob = again.add_user(first_name="Bob")
    assert bob == ada + 1  # a new user is never an old one
    update = again.send_text(ada, "back")
    assert update["message"]["message_id"] == sim.chats[ada].next_message_id
    assert update["update_id"] == sim.updates[-1]["update_id"] + 2  # +1: the unblock ("Restart") before it


def test_after_a_crash_telegram_ids_skip_ahead() -> None:
    sim = TelegramBotAPISimulator()
    ada = sim.add_user(first_name="Ada")
    sim.send_text(ada, "hello")
    again = TelegramBotAPISimulator(sim.token)
    again.restore(_stored(sim.take_changes(), {}), after_crash=True)
    assert again.send_text(ada, "again")["message"]["message_id"] > sim.chats[ada].next_message_id + 1000
    assert again.add_user(first_name="Bob") > ada + 1000


async def test_a_wechat_world_comes_back_whole() -> None:
    sim = WeChatSimulator(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET)
    wei = sim.add_follower(language="zh_CN", nickname="Wei", following=True)
    sim._record(sim.follower(wei), "in", "user", "text", content="你好")
    ticket = sim.create_ticket("QR_LIMIT_STR_SCENE", "mall-poster", None)["ticket"]
    token = sim._issue_token()
    records = _stored(sim.take_changes(), {})
    again = WeChatSimulator(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET)
    again.restore(records)
    assert again.followers[wei] == sim.followers[wei]
    assert again.tickets[ticket] == sim.tickets[ticket]
    assert again._check_token(token) is None  # the bot's cached access token still works
    assert again._new_msg_id() > sim._next_msg_id  # never an id the bot has seen
    await sim.close()
    await again.close()


async def test_persistence_marks_a_clean_stop_and_a_failed_save_is_retried(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.simulation
    from bot.simulation import SimulatorPersistence
    from bot.storage.engine import create_engine, make_sessionmaker
    from bot.storage.migrate import upgrade
    from bot.storage.simulators import load_records, save_records

    engine = create_engine(database_url)
    await upgrade(engine)
    sessions = make_sessionmaker(engine)
    try:
        sim = TelegramBotAPISimulator()
        ada = sim.add_user(first_name="Ada")
        persistence = SimulatorPersistence(sessions, "telegram", sim)
        await persistence.flush(clean=False)
        meta = {kind: data for kind, _key, data in await load_records(sessions, "telegram")}["meta"]
        assert meta["clean"] is False  # a crash now would be seen at the next start

        async def disk_gone(*args: object) -> None:
            raise OSError("disk gone")

        sim.send_text(ada, "hello")
        monkeypatch.setattr(bot.simulation, "save_records", disk_gone)
        with pytest.raises(OSError):
            await persistence.flush(clean=False)
        monkeypatch.setattr(bot.simulation, "save_records", save_records)
        await persistence.stop()  # saves what the failed save kept, and marks the records clean
        records = await load_records(sessions, "telegram")
        assert {kind: data for kind, _key, data in records}["meta"]["clean"] is True
        again = TelegramBotAPISimulator(sim.token)
        await SimulatorPersistence(sessions, "telegram", again).restore()
        assert again.chats[ada].timeline == sim.chats[ada].timeline and len(sim.chats[ada].timeline) == 1
    finally:
        await engine.dispose()
