"""Webhook mode: Telegram POSTs updates to our /telegram route with the secret header; we answer 200 at once."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from .conftest import SECRET, RigFactory

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

WELCOME = "Welcome! Thanks for following us. Ask me anything, or pick one:"


async def test_webhook_mode_sets_the_webhook_and_replies(make_rig: RigFactory):
    rig = await make_rig(mode="webhook")
    assert rig.sim.webhook == {"url": f"{rig.base}/telegram", "secret_token": SECRET, "max_connections": 40}
    user = rig.user()
    rig.sim.start(user, "spring")
    [welcome] = await rig.replies(user, 1)
    assert welcome["text"] == WELCOME
    assert [d["status"] for d in rig.sim.webhook_deliveries] == [200]
    assert (await rig.follower(user)).first_source == "spring"
    rig.sim.press_button(user, welcome["message_id"], "help")
    await rig.replies(user, 2)
    assert len(rig.sim.answered_callbacks) == 1
    assert "getUpdates" not in [c.method for c in rig.sim.calls]


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_stored(make_rig: RigFactory):
    rig = await make_rig(mode="webhook")
    user = rig.user()
    update = {"update_id": 1, "message": {"message_id": 1, "date": 1700000000, "text": "hi",
                                          "chat": {"id": user, "type": "private"},
                                          "from": {"id": user, "is_bot": False, "first_name": "Eve"}}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {SECRET_HEADER: ""}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET + "x"},
                        {SECRET_HEADER: SECRET[:-1]}):
            async with http.post(f"{rig.base}/telegram", json=update, headers=headers) as resp:
                assert resp.status == 403, headers
    await asyncio.sleep(0.2)
    assert await rig.count_messages() == 0 and rig.sim.sent(user) == []


async def test_malformed_bodies_get_400_with_a_reason(make_rig: RigFactory):
    rig = await make_rig(mode="webhook")
    good = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with aiohttp.ClientSession() as http:
        for body, reason in ((b"{not json", "not JSON"), (b"[1, 2]", "update_id"),
                             (b'{"update_id": "7"}', "update_id"),
                             (b'{"update_id": 7, "message": {"chat": 5}}', "malformed Update")):
            async with http.post(f"{rig.base}/telegram", data=body, headers=good) as resp:
                assert resp.status == 400, body
                assert reason in (await resp.json())["reason"]
        async with http.post(f"{rig.base}/telegram", data=b"{" + b" " * 300_000 + b"}", headers=good) as resp:
            assert resp.status == 413
    assert await rig.count_messages() == 0
