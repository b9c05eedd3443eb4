"""The simulated /cgi-bin API over real HTTP: tokens, custom and mass sends, QR codes, user info."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.simulators.wechat import ManualClock, WeChatSimulator

from .conftest import APP_ID, APP_SECRET, FakeBot, get_token


async def call(api: TestClient, path: str, token: str | None, body: Any = None, **params: str) -> dict[str, Any]:
    if token is not None:
        params["access_token"] = token
    if body is None:
        r = await api.get(path, params=params)
    else:
        r = await api.post(path, params=params, json=body)
    assert r.status == 200
    return await r.json()


def text(openid: str, content: str = "hi") -> dict[str, Any]:
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


# -- tokens -------------------------------------------------------------------------------------------


async def test_token_rejects_wrong_credentials(api: TestClient) -> None:
    base = {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
    assert (await call(api, "/cgi-bin/token", None, **{**base, "appid": "wxnope"}))["errcode"] == 40013
    assert (await call(api, "/cgi-bin/token", None, **{**base, "secret": "nope"}))["errcode"] == 40125
    assert (await call(api, "/cgi-bin/token", None, **{**base, "grant_type": "x"}))["errcode"] == 40002
    ok = await call(api, "/cgi-bin/token", None, **base)
    assert ok["expires_in"] == 7200 and ok["access_token"]


async def test_token_expires_after_ttl(api: TestClient, sim: WeChatSimulator, clock: ManualClock) -> None:
    token = await get_token(api)
    assert (await call(api, "/cgi-bin/user/info", token, openid="nobody"))["errcode"] == 40003
    clock.advance(7200)
    assert (await call(api, "/cgi-bin/user/info", token, openid="nobody"))["errcode"] == 42001


async def test_new_token_keeps_the_old_one_valid_for_five_minutes(
    api: TestClient, sim: WeChatSimulator, clock: ManualClock
) -> None:
    old = await get_token(api)
    clock.advance(10)
    new = await get_token(api)
    assert old != new and sim.token_fetches == 2
    clock.advance(299)
    assert (await call(api, "/cgi-bin/user/info", old, openid="x"))["errcode"] == 40003  # still accepted
    clock.advance(2)
    assert (await call(api, "/cgi-bin/user/info", old, openid="x"))["errcode"] == 40001
    assert (await call(api, "/cgi-bin/user/info", new, openid="x"))["errcode"] == 40003


async def test_missing_unknown_and_expired_tokens(api: TestClient, sim: WeChatSimulator) -> None:
    token = await get_token(api)
    assert (await call(api, "/cgi-bin/message/custom/send", None, text("x")))["errcode"] == 41001
    assert (await call(api, "/cgi-bin/message/custom/send", "bogus", text("x")))["errcode"] == 40014
    sim.expire_tokens()
    assert (await call(api, "/cgi-bin/message/custom/send", token, text("x")))["errcode"] == 42001
    fresh = await get_token(api)
    assert (await call(api, "/cgi-bin/message/custom/send", fresh, text("x")))["errcode"] == 40003


# -- customer-service messages ---------------------------------------------------------------------


async def test_message_opens_a_48h_window_of_five(
    api: TestClient, sim: WeChatSimulator, bot: FakeBot, clock: ManualClock
) -> None:
    token = await get_token(api)
    oid = sim.add_follower(following=True)
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 45015
    await sim.send_text(oid, "hello")
    for _ in range(5):
        assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 0
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 45047
    await sim.send_text(oid, "again")
    clock.advance(48 * 3600 - 1)
    token = await get_token(api)
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid, "late")))["errcode"] == 0
    clock.advance(1)
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 45015
    custom = [e for e in sim.replies(oid) if e["source"] == "custom"]
    assert len(custom) == 6 and custom[-1]["content"] == "late"


async def test_event_window_is_60s_of_three_and_resets(
    api: TestClient, sim: WeChatSimulator, bot: FakeBot, clock: ManualClock
) -> None:
    token = await get_token(api)
    oid = sim.add_follower()
    await sim.follow(oid)
    for _ in range(3):
        assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 0
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 45047
    await sim.click(oid, "OFFER_TODAY")  # the latest interaction resets the count
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 0
    clock.advance(61)
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 45015
    await sim.view(oid, "https://example.com/")  # VIEW opens no window
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 45015


async def test_custom_send_refuses_unfollowed_unknown_and_two_articles(
    api: TestClient, sim: WeChatSimulator, bot: FakeBot
) -> None:
    token = await get_token(api)
    oid = sim.add_follower()
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 40003  # never followed
    await sim.follow(oid)
    article = {"title": "Offer", "description": "10% off", "url": "https://example.com/o", "picurl": ""}
    news = {"touser": oid, "msgtype": "news", "news": {"articles": [article, article]}}
    assert (await call(api, "/cgi-bin/message/custom/send", token, news))["errcode"] == 45008
    news["news"]["articles"] = [article]
    assert (await call(api, "/cgi-bin/message/custom/send", token, news))["errcode"] == 0
    assert sim.replies(oid)[-1]["articles"] == [article]
    bad = {"touser": oid, "msgtype": "text", "text": {}}
    assert (await call(api, "/cgi-bin/message/custom/send", token, bad))["errcode"] == 44004
    r = await api.post("/cgi-bin/message/custom/send", params={"access_token": token}, data=b"{not json")
    assert (await r.json())["errcode"] == 47001
    await sim.unfollow(oid)
    assert (await call(api, "/cgi-bin/message/custom/send", token, text(oid)))["errcode"] == 43004


# -- mass messages ------------------------------------------------------------------------------------


async def test_mass_send_is_asynchronous_and_has_a_daily_quota(
    api: TestClient, sim: WeChatSimulator, clock: ManualClock
) -> None:
    token = await get_token(api)
    a, b = sim.add_follower(following=True, tags=[7]), sim.add_follower(following=True)
    gone = sim.add_follower(following=True)
    sim.followers[gone].subscribed = False
    body = {"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": "sale"}}
    sent = await call(api, "/cgi-bin/message/mass/sendall", token, body)
    assert sent["errcode"] == 0 and sent["errmsg"] == "send job submission success" and sent["msg_id"]
    await sim.drain()
    assert [e["content"] for e in sim.replies(a)] == ["sale"] and sim.replies(a)[0]["source"] == "mass"
    assert len(sim.replies(b)) == 1 and sim.replies(gone) == []
    assert (await call(api, "/cgi-bin/message/mass/sendall", token, body))["errcode"] == 45009
    clock.advance(86400)
    token = await get_token(api)
    by_tag = {"filter": {"is_to_all": False, "tag_id": 7}, "msgtype": "text", "text": {"content": "tagged"}}
    assert (await call(api, "/cgi-bin/message/mass/sendall", token, by_tag))["errcode"] == 0
    await sim.drain()
    assert len(sim.replies(a)) == 2 and len(sim.replies(b)) == 1


async def test_mass_send_by_openid_list(api: TestClient, sim: WeChatSimulator) -> None:
    token = await get_token(api)
    a, b = sim.add_follower(following=True), sim.add_follower(following=True)
    one = {"touser": [a], "msgtype": "text", "text": {"content": "x"}}
    assert (await call(api, "/cgi-bin/message/mass/send", token, one))["errcode"] == 40130
    two = {"touser": [a, b], "msgtype": "text", "text": {"content": "x"}}
    assert (await call(api, "/cgi-bin/message/mass/send", token, two))["errcode"] == 0
    await sim.wait_for_reply(b, timeout=2)
    assert sim.replies(a)[0]["source"] == "mass"


# -- QR codes ---------------------------------------------------------------------------------------


async def test_qrcode_create_validates_and_showqrcode_returns_png(
    api: TestClient, sim: WeChatSimulator, clock: ManualClock
) -> None:
    token = await get_token(api)
    temp = await call(api, "/cgi-bin/qrcode/create", token, {"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 42}}})
    assert temp["expire_seconds"] == 30 and temp["url"].startswith("http://weixin.qq.com/q/")
    perm = await call(
        api, "/cgi-bin/qrcode/create", token,
        {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": "promo-2024"}}},
    )
    assert "expire_seconds" not in perm and perm["ticket"]
    bad_cases = [
        ({"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100001}}}, "1..100000"),
        ({"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 0}}}, "non-zero"),
        ({"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "x" * 65}}}, "1..64"),
        ({"action_name": "QR_SCENE", "expire_seconds": 2592001, "action_info": {"scene": {"scene_id": 1}}}, "expire_seconds"),
        ({"action_name": "QR_NOPE", "action_info": {"scene": {"scene_id": 1}}}, "action_name"),
        ({"action_name": "QR_SCENE"}, "action_info"),
    ]
    for body, reason in bad_cases:
        answer = await call(api, "/cgi-bin/qrcode/create", token, body)
        assert answer["errcode"] == 40053 and reason in answer["errmsg"], answer
    r = await api.get("/cgi-bin/showqrcode", params={"ticket": temp["ticket"]})
    assert r.status == 200 and r.content_type == "image/png"
    assert (await r.read()).startswith(b"\x89PNG\r\n\x1a\n")
    clock.advance(31)
    assert (await api.get("/cgi-bin/showqrcode", params={"ticket": temp["ticket"]})).status == 404
    assert (await api.get("/cgi-bin/showqrcode", params={"ticket": perm["ticket"]})).status == 200
    assert (await api.get("/cgi-bin/showqrcode", params={"ticket": "nope"})).status == 404


# -- user info -----------------------------------------------------------------------------------------


async def test_user_info_for_following_unfollowed_and_unknown(
    api: TestClient, sim: WeChatSimulator, bot: FakeBot
) -> None:
    token = await get_token(api)
    en = sim.add_follower(language="en", tags=[2])
    await sim.follow(en, "promo")
    info = await call(api, "/cgi-bin/user/info", token, openid=en, lang="en")
    assert info["subscribe"] == 1 and info["openid"] == en and info["language"] == "en"
    assert info["tagid_list"] == [2] and info["unionid"] and info["subscribe_time"] == int(sim.clock())
    assert (info["subscribe_scene"], info["qr_scene"], info["qr_scene_str"]) == ("ADD_SCENE_QR_CODE", 0, "promo")
    silent = sim.add_follower(language=None)
    await sim.follow(silent, "42")
    info = await call(api, "/cgi-bin/user/info", token, openid=silent)
    assert "language" not in info and info["qr_scene"] == 42
    await sim.unfollow(silent)
    assert await call(api, "/cgi-bin/user/info", token, openid=silent) == {"subscribe": 0, "openid": silent}
    assert (await call(api, "/cgi-bin/user/info", token, openid="ounknown"))["errcode"] == 40003
