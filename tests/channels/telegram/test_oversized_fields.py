"""Issue 8, point 4 on Telegram: oversized or malformed fields are refused at the edge, NULs cleaned.

Webhook mode answers 400 naming the field (nothing stored); polling mode cannot answer, so the
update is dropped with a log line naming the field. A NUL in a name or a text is replaced by U+FFFD
on every database (PostgreSQL refuses NUL in text).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest

from .conftest import SECRET, RigFactory, eventually

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _update(user: int, *, text: str = "hello", chat_id: int | None = None, **user_fields: Any) -> dict[str, Any]:
    sender = {"id": user, "is_bot": False, "first_name": "Eve", **user_fields}
    return {"update_id": 1, "message": {"message_id": 1, "date": 1700000000, "text": text,
                                        "chat": {"id": chat_id or user, "type": "private"}, "from": sender}}


def _click(user: int, data: str, query_id: str = "4242") -> dict[str, Any]:
    sender = {"id": user, "is_bot": False, "first_name": "Eve"}
    return {"update_id": 2, "callback_query": {
        "id": query_id, "from": sender, "chat_instance": "1", "data": data,
        "message": {"message_id": 3, "date": 1700000000, "chat": {"id": user, "type": "private"}, "text": "Pick"}}}


OVERSIZED = {
    "first_name": lambda u: _update(u, first_name="E" * 300),
    "last_name": lambda u: _update(u, last_name="L" * 300),
    "username": lambda u: _update(u, username="u" * 100),
    "language_code": lambda u: _update(u, language_code="x" * 50),
    "chat.id": lambda u: _update(u, chat_id=2**70),
    "text": lambda u: _update(u, text="t" * 5000),
    "callback_data": lambda u: _click(u, "d" * 100),
    "callback_query.id": lambda u: _click(u, "help", query_id="9" * 100),
}
MALFORMED = {
    "username": lambda u: _update(u, username="eve\x00admin"),
    "language_code": lambda u: _update(u, language_code="en\nUS"),
}


@pytest.mark.parametrize(("field", "make"), [*OVERSIZED.items(), *MALFORMED.items()],
                         ids=[*(f"oversized-{f}" for f in OVERSIZED), *(f"malformed-{f}" for f in MALFORMED)])
async def test_a_webhook_update_with_an_oversized_or_malformed_field_gets_400_naming_it(
        make_rig: RigFactory, field: str, make: Any) -> None:
    rig = await make_rig(mode="webhook")
    user = rig.user()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{rig.base}/telegram", json=make(user), headers={SECRET_HEADER: SECRET}) as resp:
            assert resp.status == 400
            assert f"field {field}" in (await resp.json())["reason"]
    await asyncio.sleep(0.2)
    assert await rig.count_messages() == 0 and await rig.follower(user) is None


async def test_a_nul_in_a_name_or_text_is_stored_as_a_replacement_character(make_rig: RigFactory) -> None:
    rig = await make_rig(mode="webhook")
    user = rig.user()
    async with aiohttp.ClientSession() as http:
        update = _update(user, text="hi\x00there", first_name="Li\x00", last_name="Lei")
        async with http.post(f"{rig.base}/telegram", json=update, headers={SECRET_HEADER: SECRET}) as resp:
            assert resp.status == 200
    follower = await eventually(lambda: rig.follower(user))
    assert follower.display_name == "Li\ufffd Lei"
    assert await rig.replies(user, 1)


async def test_polling_drops_an_update_with_an_oversized_name_and_goes_on(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    rig = await make_rig()
    mallory = rig.sim.add_user(first_name="M" * 300, started=True)
    nul = rig.sim.add_user(first_name="Zhao\x00", last_name="Lei", started=True)
    caplog.set_level(logging.WARNING, logger="engagebot.telegram")
    rig.sim.send_text(mallory, "hotpot")
    rig.sim.send_text(nul, "hello")
    assert await rig.replies(nul, 1)
    assert (await rig.follower(nul)).display_name == "Zhao\ufffd Lei"
    await eventually(lambda: _refused(caplog))
    assert await rig.follower(mallory) is None and rig.sim.sent(mallory) == []


async def _refused(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.getMessage() == "telegram update refused" and "field first_name" in r.reason
               for r in caplog.records)
