"""No inbound loss: Telegram's copy of an update is released (getUpdates offset, webhook 200) only once it is stored."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.storage.models import Message

from .conftest import Rig, RigFactory, eventually
from .test_delivery import echo_router

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


class Storage:
    """Stands between the channel and the dispatcher: holds or fails the storing of chosen texts."""

    def __init__(self, rig: Rig) -> None:
        self.dispatch = rig.channel._dispatch
        self.hold = asyncio.Event()
        self.hold.set()
        self.failures: dict[str, tuple[int, Exception]] = {}  # text -> (times left, error)
        self.tries: dict[str, int] = {}
        rig.channel._dispatch = self  # type: ignore[method-assign]

    async def __call__(self, msg: Any, **kwargs: Any) -> Any:
        self.tries[msg.text] = self.tries.get(msg.text, 0) + 1
        await self.hold.wait()
        left, error = self.failures.get(msg.text, (0, None))
        if left:
            self.failures[msg.text] = (left - 1, error)
            raise error
        return await self.dispatch(msg, **kwargs)


async def stored_texts(rig: Rig) -> list[str]:
    async with rig.harness.sessions() as session:
        return list((await session.execute(select(Message.text).where(Message.direction == "in")
                                            .order_by(Message.id))).scalars())


def offsets(rig: Rig) -> list[int]:
    return [int(c.params["offset"]) for c in rig.sim.calls if c.method == "getUpdates" and c.params.get("offset")]


def db_down() -> OperationalError:
    return OperationalError("INSERT ...", {}, Exception("database is locked"))


async def test_polling_never_acknowledges_an_update_before_it_is_stored(make_rig: RigFactory) -> None:
    rig = await make_rig(routers=[echo_router()], dispatch_retry_pause=0.01)
    storage = Storage(rig)
    user = rig.user()
    storage.hold.clear()
    held = rig.sim.send_text(user, "first")
    await eventually(lambda: asyncio.sleep(0, storage.tries.get("first")))
    rig.sim.send_text(user, "second")
    await asyncio.sleep(2.5)  # longer than a long poll: the poller would have come back by now
    pending = [u["update_id"] for u in rig.sim.updates]
    assert held["update_id"] in pending  # Telegram still keeps it: a crash now would lose nothing
    assert all(o <= held["update_id"] for o in offsets(rig))
    assert await stored_texts(rig) == []
    storage.hold.set()
    replies = await rig.replies(user, 2)
    assert [r["text"] for r in replies] == ["echo: first", "echo: second"]
    await eventually(lambda: asyncio.sleep(0, not rig.sim.updates))
    assert await stored_texts(rig) == ["first", "second"]


async def test_an_update_that_could_not_be_stored_is_fetched_again_and_answered_once(make_rig: RigFactory) -> None:
    rig = await make_rig(routers=[echo_router()], dispatch_retry_pause=0.01)
    storage = Storage(rig)
    storage.failures["flaky"] = (9, db_down())  # more than one round of retries: the offset must hold
    user = rig.user()
    update = rig.sim.send_text(user, "flaky")
    [reply] = await rig.replies(user, 1, timeout=20)
    assert reply["text"] == "echo: flaky"
    assert storage.tries["flaky"] == 10
    assert await stored_texts(rig) == ["flaky"]
    assert offsets(rig).count(update["update_id"]) >= 2  # asked for again, not acknowledged
    await asyncio.sleep(0.5)
    assert len(rig.sim.sent(user)) == 1


async def test_an_update_that_can_never_be_stored_is_skipped_after_some_rounds(make_rig: RigFactory, caplog) -> None:
    rig = await make_rig(routers=[echo_router()], dispatch_retry_pause=0.01)
    storage = Storage(rig)
    storage.failures["poison"] = (1000, ValueError("a bug with this message"))
    user = rig.user()
    with caplog.at_level(logging.ERROR, logger="engagebot.telegram"):
        rig.sim.send_text(user, "poison")
        rig.sim.send_text(user, "after")
        [reply] = await rig.replies(user, 1, timeout=30)
        await eventually(lambda: asyncio.sleep(0, not rig.sim.updates), timeout=30)  # both acknowledged at last
    assert reply["text"] == "echo: after"
    assert storage.tries["poison"] == 4 * 5  # four tries in each of five rounds, then given up
    assert storage.tries["after"] >= 2  # fetched again with it meanwhile: dropped as a duplicate
    assert "telegram update skipped: it could not be stored" in caplog.text
    assert await stored_texts(rig) == ["after"]
    assert len(rig.sim.sent(user)) == 1


async def test_the_webhook_answers_503_until_the_update_is_stored(make_rig: RigFactory) -> None:
    rig = await make_rig(mode="webhook", routers=[echo_router()], dispatch_retry_pause=0.01)
    storage = Storage(rig)
    storage.failures["flaky"] = (6, db_down())
    user = rig.user()
    rig.sim.send_text(user, "flaky")
    [reply] = await rig.replies(user, 1, timeout=20)
    assert reply["text"] == "echo: flaky"
    statuses = [d["status"] for d in rig.sim.webhook_deliveries]
    assert statuses[0] == 503 and statuses[-1] == 200
    assert await stored_texts(rig) == ["flaky"]
    async with rig.harness.sessions() as session:
        out = (await session.execute(select(func.count()).select_from(Message).where(
            Message.direction == "out"))).scalar_one()
    assert out == 1 and len(rig.sim.sent(user)) == 1


@pytest.mark.parametrize("poison", ["date-overflow", "reply-chain-past-the-recursion-limit"])
async def test_polling_skips_an_update_ptb_cannot_build_and_answers_the_ones_around_it(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture, poison: str) -> None:
    """Telegram could send an update PTB cannot turn into an ``Update``: polling must not stop at it."""
    rig = await make_rig(routers=[echo_router()], dispatch_retry_pause=0.01)
    user = rig.user()
    rig.sim.send_text(user, "before")
    assert [r["text"] for r in await rig.replies(user, 1)] == ["echo: before"]
    bad = rig.sim.send_text(user, "poison")
    if poison == "date-overflow":
        bad["message"]["date"] = 10**20
    else:
        chain: dict[str, Any] = {"message_id": 1, "date": 1700000000, "chat": {"id": user, "type": "private"}}
        for _ in range(600):  # PTB takes several frames per quoted message: past the recursion limit
            chain = {"message_id": 1, "date": 1700000000, "chat": {"id": user, "type": "private"},
                     "reply_to_message": chain}
        bad["message"]["reply_to_message"] = chain
    rig.sim.send_text(user, "after")
    with caplog.at_level(logging.ERROR, logger="engagebot.telegram"):
        replies = await rig.replies(user, 2)
        assert [r["text"] for r in replies] == ["echo: before", "echo: after"]
        await eventually(lambda: asyncio.sleep(0, not rig.sim.updates))  # Telegram forgot both
    skipped = [r for r in caplog.records if r.getMessage() == "telegram update skipped: it cannot be read"]
    assert [r.update_id for r in skipped] == [bad["update_id"]]  # type: ignore[attr-defined]
    assert await stored_texts(rig) == ["before", "after"]
