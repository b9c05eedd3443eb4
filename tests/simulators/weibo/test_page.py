"""The fan's page and its JSON API: both languages, every action, bad input answered 400 (never 500)."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient

from bot.i18n import default_catalogs
from bot.simulators.weibo import WeiboSimulator
from bot.simulators.weibo.page import PAGE_TEXT

from .conftest import FakeBot, call

API = "/simulator/weibo/api"


async def test_page_renders_in_chinese_and_english(api: TestClient) -> None:
    r = await api.get("/simulator/weibo", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    zh = await r.text()
    assert r.status == 200 and r.content_type == "text/html" and '<html lang="zh-Hans">' in zh
    assert "微博模拟器" in zh and "私信" in zh and "Direct messages" not in zh
    r = await api.get("/simulator/weibo", params={"lang": "en"})
    en = await r.text()
    assert '<html lang="en">' in en and "Weibo simulator" in en and "Direct messages" in en and "微博模拟器" not in en
    r = await api.get("/simulator/weibo", params={"lang": "zh_Hant"})
    assert "微博模擬器" in await r.text()
    r = await api.get("/simulator/weibo")  # no preference: Simplified Chinese
    assert "微博模拟器" in await r.text()
    for page in (zh, en):
        assert "{{" not in page and "__CONFIG__" not in page and "__BRAND__" not in page
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no external assets


def test_every_page_string_is_translated_in_every_catalog() -> None:
    catalogs = default_catalogs()
    for msgid in PAGE_TEXT.values():
        assert catalogs.gettext("zh_Hans", msgid) != msgid, msgid
        assert catalogs.gettext("zh_Hant", msgid) != msgid, msgid


async def test_a_fan_follows_scans_sends_and_comments(api: TestClient, sim: WeiboSimulator, bot: FakeBot) -> None:
    r = await api.post(f"{API}/fans", json={"screen_name": "Amy", "language": "en"})
    assert r.status == 201
    uid = (await r.json())["uid"]
    for body in ({"action": "follow"}, {"action": "scan", "scene": "spring"}, {"action": "text", "text": "hi"},
                 {"action": "click", "key": "HELP"}, {"action": "image"}, {"action": "voice"}, {"action": "position"},
                 {"action": "view", "url": "https://example.com"}):
        r = await api.post(f"{API}/action", json={"uid": uid, **body})
        assert r.status == 200, (body, await r.text())
    assert [q["body"]["data"].get("subtype", q["body"]["type"]) for q in bot.requests] == [
        "follow", "scan", "text", "click", "image", "voice", "position", "view"]
    post = next(iter(sim.posts))
    r = await api.post(f"{API}/comment", json={"uid": uid, "post_id": str(post), "text": "any offer?", "mention": True})
    assert r.status == 201 and (await r.json())["push"]["action"] == "mention"
    r = await api.post(f"{API}/status", json={"uid": str(uid), "text": "no mention", "mention": False})
    assert r.status == 201 and (await r.json())["push"] is None
    # the brand answers in public: the page shows it in the thread
    status, _ = await call(api, "POST", "/2/comments/create.json", id=post, comment="DM us!")
    assert status == 200
    state = await (await api.get(f"{API}/state")).json()
    thread = next(p for p in state["posts"] if p["id"] == post)["comments"]
    assert [(c["text"], c["by_brand"]) for c in thread] == [("@engagebot_brand any offer?", False), ("DM us!", True)]
    timeline = await (await api.get(f"{API}/timeline", params={"uid": str(uid)})).json()
    assert any(e["source"] == "passive" for e in timeline["entries"])
    assert "spring" in state["scenes"]


async def test_scan_link_opens_the_page_on_that_scene(api: TestClient) -> None:
    r = await api.get("/simulator/weibo/scan", params={"scene": "spring"}, allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/simulator/weibo?scene=spring"
    r = await api.get("/simulator/weibo/scan", params={"scene": "<x>"}, allow_redirects=False)
    assert r.status == 400


async def test_bad_input_is_400_unknown_is_404_refused_is_409(api: TestClient, sim: WeiboSimulator,
                                                              bot: FakeBot) -> None:
    uid = sim.add_fan()
    for path, raw in (("fans", b"[" * 5000), ("action", b"\xff\xfe"), ("comment", b"x" * 20000),
                      ("status", b"[1]"), ("action", b'{"uid": {"a": [[[[]]]]}}')):
        r = await api.post(f"{API}/{path}", data=raw, headers={"Content-Type": "application/json"})
        assert r.status == 400, (path, raw[:20], r.status)
    bad = [("fans", {"language": "fr"}), ("fans", {"screen_name": "<script>"}), ("action", {"uid": uid}),
           ("action", {"uid": uid, "action": "text", "text": 5}), ("action", {"uid": True, "action": "follow"}),
           ("action", {"uid": uid, "action": "scan", "scene": "a b"}),
           ("action", {"uid": uid, "action": "view", "url": "javascript:x"}),
           ("comment", {"uid": uid, "post_id": "x", "text": "t"}),
           ("comment", {"uid": uid, "post_id": str(next(iter(sim.posts))), "text": "t" * 141}),
           ("status", {"uid": uid, "text": "t", "mention": "yes"})]
    for path, body in bad:
        r = await api.post(f"{API}/{path}", json=body)
        assert r.status == 400, (path, body, r.status)
    r = await api.post(f"{API}/action", json={"uid": 12345, "action": "follow"})
    assert r.status == 404
    r = await api.post(f"{API}/comment", json={"uid": uid, "post_id": "123", "text": "t"})
    assert r.status == 404
    await sim.follow(uid)
    r = await api.post(f"{API}/action", json={"uid": uid, "action": "follow"})
    assert r.status == 409
    for query in ({"uid": "x"}, {"uid": str(uid), "since": "-1"}, {}):
        r = await api.get(f"{API}/timeline", params=query)
        assert r.status == 400
