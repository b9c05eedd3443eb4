"""The follower's phone page and its JSON API: it renders, and it refuses bad input with 400, never 500."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.simulators.wechat import WeChatSimulator

from .conftest import FakeBot

API = "/simulator/wechat/api"


async def test_page_is_self_contained_html(api: TestClient) -> None:
    r = await api.get("/simulator/wechat")
    assert r.status == 200 and r.content_type == "text/html"
    html = await r.text()
    assert html.lstrip().startswith("<!doctype html>") and "/api" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no external assets
    assert "<link" not in html


async def test_create_follower_and_list_them(api: TestClient, sim: WeChatSimulator) -> None:
    r = await api.post(f"{API}/followers", json={"language": "en", "nickname": "Amy"})
    assert r.status == 201
    created = await r.json()
    assert (created["language"], created["nickname"], created["subscribed"]) == ("en", "Amy", False)
    assert created["openid"].startswith("o") and len(created["openid"]) == 28
    none = await (await api.post(f"{API}/followers", json={"language": None})).json()
    assert none["language"] is None
    state = await (await api.get(f"{API}/state")).json()
    assert [f["openid"] for f in state["followers"]] == [created["openid"], none["openid"]]
    assert state["menu"] == []  # no menu until the account creates one (menu/create)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{oops", "JSON"),
        (b"[1, 2]", "object"),
        (b'{"language": "fr"}', "language"),
        (b'{"language": 1}', "language"),
        (b'{"nickname": 42}', "nickname"),
        (b'{"nickname": "' + b"x" * 40 + b'"}', "nickname"),
        (b'{"openid": "bad id!"}', "openid"),
        (b"\xff\xfe", "JSON"),
    ],
)
async def test_create_follower_rejects_bad_input(api: TestClient, body: bytes, reason: str) -> None:
    r = await api.post(f"{API}/followers", data=body, headers={"Content-Type": "application/json"})
    assert r.status == 400
    assert reason in (await r.json())["error"]


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        ({"action": "text", "text": "hi"}, 400, "openid"),
        ({"openid": "FOLLOWER", "action": "dance"}, 400, "action"),
        ({"openid": "FOLLOWER", "action": "text"}, 400, "text"),
        ({"openid": "FOLLOWER", "action": "text", "text": ["hi"]}, 400, "text"),
        ({"openid": "FOLLOWER", "action": "text", "text": "x" * 2001}, 400, "text"),
        ({"openid": "FOLLOWER", "action": "scan"}, 400, "scene"),
        ({"openid": "FOLLOWER", "action": "view", "url": "javascript:alert(1)"}, 400, "url"),
        ({"openid": "FOLLOWER", "action": "unfollow"}, 409, "not following"),
        ({"openid": "FOLLOWER", "action": "text", "text": "hi"}, 409, "not following"),
        ({"openid": "o_nobody_here", "action": "follow"}, 404, "unknown"),
    ],
)
async def test_action_rejects_bad_input(
    api: TestClient, sim: WeChatSimulator, body: dict[str, Any], status: int, reason: str
) -> None:
    oid = sim.add_follower()
    if body.get("openid") == "FOLLOWER":
        body = {**body, "openid": oid}
    r = await api.post(f"{API}/action", json=body)
    assert r.status == status
    assert reason in (await r.json())["error"]


async def test_actions_drive_the_bot_and_the_timeline_polls(api: TestClient, sim: WeChatSimulator, bot: FakeBot) -> None:
    oid = sim.add_follower(language="en")
    r = await api.post(f"{API}/action", json={"openid": oid, "action": "follow"})
    assert r.status == 200 and (await r.json())["reply"] == {"type": "text", "content": "echo: subscribe"}
    r = await api.post(f"{API}/action", json={"openid": oid, "action": "text", "text": "hello"})
    result = await r.json()
    assert (result["attempts"], result["error"], result["reply"]["content"]) == (1, None, "echo: hello")
    assert (await api.post(f"{API}/action", json={"openid": oid, "action": "follow"})).status == 409
    page = await (await api.get(f"{API}/timeline", params={"openid": oid, "since": "1"})).json()
    assert page["next"] == 4 and [e["seq"] for e in page["entries"]] == [1, 2, 3]
    assert page["entries"][1] | {"at": 0} == {
        "seq": 2, "direction": "in", "source": "user", "type": "text", "content": "hello",
        "msg_id": result["msg_id"], "at": 0,
    }


@pytest.mark.parametrize("query", [{"openid": "x", "since": "-1"}, {"since": "0"}, {"openid": "x", "since": "a"}])
async def test_timeline_rejects_bad_query(api: TestClient, query: dict[str, str]) -> None:
    assert (await api.get(f"{API}/timeline", params=query)).status == 400


async def test_action_without_callback_url_is_a_conflict(api: TestClient, sim: WeChatSimulator) -> None:
    oid = sim.add_follower()
    r = await api.post(f"{API}/action", json={"openid": oid, "action": "follow"})
    assert r.status == 409 and "callback_url" in (await r.json())["error"]
