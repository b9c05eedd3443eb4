"""What the webhook refuses, with the exact status and reason, at the exact limits; and what it takes."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.storage.models import Message

from .conftest import SECRET, RigFactory, eventually
from .test_inbound_safety import Storage, db_down

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

HEADER = "X-Telegram-Bot-Api-Secret-Token"
LIMIT = 2048


def update(update_id: int, user: int, text: str = "hi") -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1700000000, "text": text, "chat": {"id": user, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "Eve"}}}


async def inbound(rig: Any) -> int:
    async with rig.harness.sessions() as session:
        return await session.scalar(select(func.count()).select_from(Message).where(Message.direction == "in"))


async def inbound_is(rig: Any, count: int) -> bool:
    return await inbound(rig) == count


async def post(url: str, body: bytes, *, headers: dict[str, str] | None = None,
               chunked: bool = False) -> tuple[int, dict]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 512):
            yield body[start:start + 512]

    async with aiohttp.ClientSession() as http, http.post(
            url, data=chunks() if chunked else body, headers={"Content-Type": "application/json", **(headers or {})},
    ) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else {}


async def test_refusals_give_the_exact_status_and_reason(make_rig: RigFactory) -> None:
    rig = await make_rig(mode="webhook", max_body=LIMIT)
    url, good = f"{rig.base}/telegram", {HEADER: SECRET}
    wrong = await post(url, json.dumps(update(1, 5)).encode(), headers={HEADER: SECRET + "x"})
    assert wrong == (403, {"error": "SignatureError", "reason": "missing or wrong X-Telegram-Bot-Api-Secret-Token"})
    assert await post(url, b"{nope", headers=good) == (400, {"error": "PayloadError", "reason": "body is not JSON"})
    not_update = {"error": "PayloadError",
                  "reason": "body is not an Update: a JSON object with an integer update_id expected"}
    for body in (b"[]", b'{"message": {}}', b'{"update_id": "1"}', b'{"update_id": true}', b'{"update_id": 1.0}'):
        assert await post(url, body, headers=good) == (400, not_update), body
    status, malformed = await post(url, b'{"update_id": 7, "message": {"chat": 5}}', headers=good)
    assert (status, malformed["error"]) == (400, "PayloadError")
    assert re.fullmatch(r"malformed Update: [A-Za-z]+Error", malformed["reason"]), malformed
    too_large = (413, {"error": "PayloadTooLarge", "reason": f"body larger than {LIMIT} bytes"})
    big = b'{"update_id": 1, "pad": "' + b"x" * LIMIT + b'"}'
    assert await post(url, big, headers=good) == too_large  # said so by Content-Length
    assert await post(url, big, headers=good, chunked=True) == too_large  # counted while reading
    await asyncio.sleep(0.1)
    assert await rig.count_messages() == 0


async def test_a_body_of_exactly_the_limit_is_taken(make_rig: RigFactory) -> None:
    rig = await make_rig(mode="webhook", max_body=LIMIT)
    user = rig.user()
    body = json.dumps(update(1, user)).encode()
    body = body[:-1] + b', "pad": "' + b"x" * (LIMIT - len(body) - 11) + b'"}'
    assert len(body) == LIMIT
    assert (await post(f"{rig.base}/telegram", body, headers={HEADER: SECRET}, chunked=True))[0] == 200
    assert await eventually(lambda: inbound(rig)) == 1


async def test_an_update_arriving_before_the_bot_is_ready_is_asked_again_later(make_rig: RigFactory) -> None:
    rig = await make_rig(mode="webhook", start=False)
    await rig.serve()  # listening, but the channel (PTB) has not started
    status, body = await post(f"{rig.base}/telegram", json.dumps(update(1, 5)).encode(), headers={HEADER: SECRET})
    assert (status, body) == (503, {"error": "starting", "reason": "not ready, retry later"})
    await rig.channel.start()
    await rig.channel.wait_ready(10)
    user = rig.user()
    assert (await post(f"{rig.base}/telegram", json.dumps(update(2, user)).encode(), headers={HEADER: SECRET}))[0] == 200
    assert await eventually(lambda: inbound(rig)) == 1  # the refused one was not kept either


async def test_a_body_larger_than_one_read_is_counted_whole(make_rig: RigFactory) -> None:
    """Bodies past 64 KiB arrive in several reads: the limit counts them all, and they are joined as sent."""
    rig = await make_rig(mode="webhook", max_body=100_000)
    user = rig.user()
    url, good = f"{rig.base}/telegram", {HEADER: SECRET}
    text = "".join(f"{n:04d}" for n in range(1000))  # as long as a message may be (the edge checks the rest)
    # About 80 KB in all: over one read, under the limit. The pad is a list of numbers, so anything put
    # between two reads breaks the JSON wherever it falls in the pad (in a string it would not).
    fits = json.dumps({**update(1, user, text=text), "pad": list(range(12_000))}).encode()
    assert 64 * 1024 < len(fits) < 100_000
    assert (await post(url, fits, headers=good, chunked=True))[0] == 200
    assert await eventually(lambda: inbound(rig)) == 1
    async with rig.harness.sessions() as session:
        stored = await session.scalar(select(Message.text).where(Message.direction == "in"))
    assert stored == text  # the reads were joined as they came, nothing added
    too_big = json.dumps(update(2, user, text="y" * 150_000)).encode()
    assert (await post(url, too_big, headers=good, chunked=True))[0] == 413
    exact = json.dumps(update(3, user)).encode()
    exact = exact[:-1] + b', "pad": "' + b"z" * (100_000 - len(exact) - 11) + b'"}'
    assert len(exact) == 100_000
    assert (await post(url, exact, headers=good))[0] == 200  # with its Content-Length: exactly the limit
    assert await eventually(lambda: inbound_is(rig, 2))


async def test_an_update_that_could_not_be_stored_gets_503_with_the_reason_and_is_logged(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    """Storing failed every try: 503 (Telegram delivers it again) saying why; stored the next time, 200 only then."""
    rig = await make_rig(mode="webhook", dispatch_retry_pause=0.01)
    storage = Storage(rig)
    storage.failures["doomed"] = (4, db_down())  # each of the channel's four tries of this delivery
    user = rig.user()
    url, good, body = f"{rig.base}/telegram", {HEADER: SECRET}, json.dumps(update(7, user, text="doomed")).encode()
    with caplog.at_level(logging.WARNING, logger="engagebot.telegram"):
        answer = await post(url, body, headers=good)
    assert answer == (503, {"error": "not stored", "reason": "could not store the update, retry later"})
    [line] = [r for r in caplog.records if r.getMessage() == "telegram update not stored; asking for a retry"]
    assert (line.update_id, line.error) == (7, "OperationalError")  # type: ignore[attr-defined]
    assert storage.tries["doomed"] == 4 and await inbound(rig) == 0
    assert await post(url, body, headers=good) == (200, {})  # Telegram's next delivery of it
    assert await inbound(rig) == 1  # stored before the 200, not after


async def test_an_update_with_nothing_for_the_bot_is_taken_and_nothing_stored(make_rig: RigFactory) -> None:
    rig = await make_rig(mode="webhook")
    in_a_group = update(1, 5)
    in_a_group["message"]["chat"] = {"id": -100, "type": "group", "title": "a group"}
    assert await post(f"{rig.base}/telegram", json.dumps(in_a_group).encode(), headers={HEADER: SECRET}) == (200, {})
    await asyncio.sleep(0.1)
    assert await rig.count_messages() == 0
