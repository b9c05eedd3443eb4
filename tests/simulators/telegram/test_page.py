"""The follower's chat page and its JSON API: HTML, actions that become updates, 400 on bad input."""

from __future__ import annotations

import aiohttp
import pytest


async def test_page_is_self_contained_html(sim, base):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/simulator/telegram") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            page = await resp.text()
    assert "<html" in page and "@engagebot_demo_bot" in page
    assert "http://" not in page.replace("http://example", "") and "<link" not in page and "src=\"http" not in page


async def test_page_actions_become_updates(sim, base, bot):
    api = f"{base}/simulator/telegram/api"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/users", json={"first_name": "王芳", "language_code": "zh-hans"}) as resp:
            user = (await resp.json())["user"]
        async with http.post(f"{api}/users", json={"first_name": "Ann", "language_code": "none"}) as resp:
            assert (await resp.json())["user"]["language_code"] is None
        uid = user["id"]
        async with http.post(f"{api}/start", json={"user_id": uid, "payload": "qr_spring"}) as resp:
            assert resp.status == 200
        [update] = await bot.get_updates(timeout=0)
        assert update.message.text == "/start qr_spring" and update.message.from_user.language_code == "zh-hans"
        await bot.set_my_commands([("help", "帮助")], language_code="zh")
        await bot.send_message(uid, "选一个", reply_markup={"inline_keyboard": [[{"text": "好", "callback_data": "ok"}]]})
        async with http.get(f"{api}/chat", params={"user_id": str(uid)}) as resp:
            chat = await resp.json()
        assert [e["dir"] for e in chat["events"]] == ["in", "out"]
        assert chat["commands"] == [{"command": "help", "description": "帮助"}]
        message_id = chat["events"][1]["message_id"]
        async with http.post(f"{api}/press", json={"user_id": uid, "message_id": message_id, "data": "ok"}) as resp:
            assert resp.status == 200
        async with http.post(f"{api}/block", json={"user_id": uid, "blocked": True}) as resp:
            assert resp.status == 200
        async with http.post(f"{api}/media", json={"user_id": uid, "kind": "photo"}) as resp:
            file_id = (await resp.json())["update"]["message"]["photo"][0]["file_id"]
        async with http.get(f"{api}/file/{file_id}") as resp:  # a download, never rendered on this origin
            assert resp.content_type == "application/octet-stream"
            assert resp.headers["Content-Disposition"].startswith("attachment")
            assert (await resp.read()).startswith(b"\x89PNG")
        async with http.get(f"{api}/state") as resp:
            state = await resp.json()
        assert len(state["users"]) == 2 and state["users"][0]["blocked"] is False  # the photo unblocked
    kinds = [next(k for k in u if k != "update_id") for u in sim.updates]
    assert kinds == ["message", "callback_query", "my_chat_member", "my_chat_member", "message"]


@pytest.mark.parametrize("path, body, reason", [
    ("users", {"first_name": ""}, "first_name"),
    ("users", {"first_name": "A", "language_code": "zh hans!"}, "language_code"),
    ("users", {"first_name": "A", "username": "x"}, "username"),
    ("send", {"user_id": 1, "text": "hi"}, "user_id"),
    ("send", {"user_id": "USER", "text": ""}, "text"),
    ("send", {"user_id": "USER", "text": "x" * 4097}, "4096"),
    ("send", {"user_id": "USER", "text": ["hi"]}, "text"),
    ("start", {"user_id": "USER", "payload": "has space"}, "payload"),
    ("start", {"user_id": "USER", "payload": "x" * 65}, "payload"),
    ("press", {"user_id": "USER", "message_id": 99, "data": "nope"}, "no bot message"),
    ("press", {"user_id": "USER", "message_id": True, "data": "a"}, "message_id"),
    ("block", {"user_id": "USER", "blocked": "yes"}, "blocked"),
    ("block", {"user_id": "USER", "blocked": False}, "has not blocked"),
    ("media", {"user_id": "USER", "kind": ["photo"]}, "kind"),
])
async def test_api_rejects_bad_input_with_400(sim, base, path, body, reason):
    uid = sim.add_user(first_name="Bob")
    body = {k: (uid if v == "USER" else v) for k, v in body.items()}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/simulator/telegram/api/{path}", json=body) as resp:
            assert resp.status == 400
            data = await resp.json()
    assert data["ok"] is False and reason in data["error"]


@pytest.mark.parametrize("raw, content_type", [
    (b"not json", "application/json"), (b"[1, 2]", "application/json"), (b"\xff\xfe", "application/json"),
    (b"[" * 5000 + b"]" * 5000, "application/json"), (b"user_id=1&text=hi", "application/x-www-form-urlencoded"),
    (b"{}" + b" " * 70000, "application/json"),
])
async def test_api_rejects_malformed_bodies_with_400(sim, base, raw, content_type):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/simulator/telegram/api/send", data=raw,
                             headers={"Content-Type": content_type}) as resp:
            assert resp.status == 400
            assert (await resp.json())["ok"] is False


async def test_chat_endpoint_validates_query(sim, base):
    async with aiohttp.ClientSession() as http:
        for params in ({}, {"user_id": "abc"}, {"user_id": "5"}):
            async with http.get(f"{base}/simulator/telegram/api/chat", params=params) as resp:
                assert resp.status == 400
        uid = sim.add_user()
        async with http.get(f"{base}/simulator/telegram/api/chat", params={"user_id": uid, "version": "-1"}) as resp:
            assert resp.status == 400
        async with http.get(f"{base}/simulator/telegram/api/file/nope") as resp:
            assert resp.status == 404
