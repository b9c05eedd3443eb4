"""The simulated API over real HTTP: windows, error codes, since_id paging, tokens, hostile input."""

from __future__ import annotations

from bot.simulators.weibo import WeiboSimulator

from .conftest import BRAND, FakeBot, call, data


async def test_reply_inside_the_window_is_delivered_and_unlimited(sim: WeiboSimulator, api, bot: FakeBot, clock) -> None:
    uid = sim.add_fan(following=True)
    await sim.send_text(uid, "hi")
    for n in range(3):
        status, body = await call(api, "POST", "/2/messages/reply.json", type="text", data=data({"text": f"r{n}"}),
                                  receiver_id=uid)
        assert status == 200 and body["result"] is True
    assert [e["text"] for e in sim.replies(uid) if e["source"] == "active"] == ["r0", "r1", "r2"]


async def test_reply_after_48_hours_is_refused_with_weibo_error_json(sim, api, bot, clock) -> None:
    uid = sim.add_fan(following=True)
    await sim.send_text(uid, "hi")
    clock.advance(48 * 3600 + 1)
    status, body = await call(api, "POST", "/2/messages/reply.json", type="text", data=data({"text": "late"}),
                              receiver_id=uid)
    assert status == 400
    assert body == {"error": body["error"], "error_code": 21606, "request": "/2/messages/reply.json"}
    assert not [e for e in sim.replies(uid) if e["source"] == "active"]


async def test_one_reply_after_a_mention(sim, api, bot, clock) -> None:
    uid = sim.add_fan()
    post = next(iter(sim.posts))
    cid, push = await sim.comment(uid, post, "@engagebot_brand 有优惠吗")
    assert push is not None and push.payload["data"]["subtype"] == "mention"
    assert push.payload["type"] == "event"
    ok = await call(api, "POST", "/2/messages/reply.json", type="text", data=data({"text": "one"}), receiver_id=uid)
    assert ok[0] == 200
    status, body = await call(api, "POST", "/2/messages/reply.json", type="text", data=data({"text": "two"}),
                              receiver_id=uid)
    assert status == 400 and body["error_code"] == 21607


async def test_no_reply_after_unfollow_until_the_fan_acts_again(sim, api, bot) -> None:
    uid = sim.add_fan()
    await sim.follow(uid)
    await sim.unfollow(uid)
    status, body = await call(api, "POST", "/2/messages/reply.json", type="text", data=data({"text": "x"}),
                              receiver_id=uid)
    assert status == 400 and body["error_code"] == 21608
    await sim.send_text(uid, "back")
    status, _ = await call(api, "POST", "/2/messages/reply.json", type="text", data=data({"text": "x"}), receiver_id=uid)
    assert status == 200


async def test_reply_after_unfollow_is_configurable(clock, bot) -> None:
    from .conftest import make_sim

    sim = make_sim(clock, reply_after_unfollow=True)
    sim.callback_url = bot.url
    uid = sim.add_fan()
    await sim.follow(uid)
    await sim.unfollow(uid)
    assert sim.refusal(sim.fan(uid)) is None
    await sim.close()


async def test_reply_checks_its_parameters(sim, api, bot) -> None:
    uid = sim.add_fan(following=True)
    await sim.send_text(uid, "hi")
    cases = [
        ({"type": "text", "data": '{"text": "raw json"}', "receiver_id": uid}, 10008),
        ({"type": "text", "data": data({"text": "x" * 301}), "receiver_id": uid}, 20013),
        ({"type": "voice", "data": data({"text": "x"}), "receiver_id": uid}, 10008),
        ({"type": "text", "data": data({"text": "x"}), "receiver_id": 42}, 20003),
        ({"type": "text", "data": data({"text": "x"})}, 10016),
        ({"type": "text", "data": data({"text": "x"}), "receiver_id": "-1"}, 10008),
        ({"type": "text", "data": "%5B" * 5000, "receiver_id": uid}, 10008),
        ({"type": "text", "data": "%ff%fe", "receiver_id": uid}, 10008),
        ({"type": "articles", "data": data({"articles": [{"x": 1}]}), "receiver_id": uid}, 10008),
    ]
    for params, code in cases:
        status, body = await call(api, "POST", "/2/messages/reply.json", **params)
        assert 400 <= status < 500 and body["error_code"] == code, (params, body)


async def test_access_token_is_checked(sim, api) -> None:
    resp = await api.get("/2/comments/to_me.json")
    assert resp.status == 400 and (await resp.json())["error_code"] == 10006
    resp = await api.get("/2/comments/to_me.json", params={"access_token": "wrong"})
    assert resp.status == 401 and (await resp.json())["error_code"] == 21332
    sim.expire_token()
    status, body = await call(api, "GET", "/2/comments/to_me.json")
    assert status == 401 and body["error_code"] == 21327


async def test_comments_to_me_pages_with_since_id_newest_first(sim, api, clock) -> None:
    post = next(iter(sim.posts))
    fans = [sim.add_fan(screen_name=f"f{n}") for n in range(5)]
    ids = [(await sim.comment(uid, post, f"comment {n}"))[0] for n, uid in enumerate(fans)]
    status, body = await call(api, "GET", "/2/comments/to_me.json", count=2)
    assert status == 200 and [c["id"] for c in body["comments"]] == [ids[4], ids[3]]
    assert body["total_number"] == 5
    first = body["comments"][0]
    assert first["idstr"] == str(ids[4]) and first["status"]["id"] == post
    assert first["user"] == {"id": fans[4], "idstr": str(fans[4]), "screen_name": "f4"}
    assert first["created_at"].endswith("+0800 2023")
    status, body = await call(api, "GET", "/2/comments/to_me.json", since_id=ids[2])
    assert [c["id"] for c in body["comments"]] == [ids[4], ids[3]]
    status, body = await call(api, "GET", "/2/comments/to_me.json", since_id=ids[4])
    assert body["comments"] == []
    status, body = await call(api, "GET", "/2/comments/to_me.json", count=201)
    assert status == 400 and body["error_code"] == 10008


async def test_mentions_list_fan_posts_that_mention_the_brand(sim, api, bot) -> None:
    uid = sim.add_fan()
    plain, _ = await sim.post_status(uid, "no mention here")
    mention, push = await sim.post_status(uid, "hello @engagebot_brand!")
    assert push is not None and push.payload["data"]["status_id"] == str(mention)
    status, body = await call(api, "GET", "/2/statuses/mentions.json", since_id=0, count=10)
    assert [s["id"] for s in body["statuses"]] == [mention]
    assert body["statuses"][0]["user"]["id"] == uid


async def test_comment_reply_and_create_are_public_and_limited(sim, api, bot) -> None:
    uid = sim.add_fan(screen_name="小王")
    post = next(iter(sim.posts))
    cid, _ = await sim.comment(uid, post, "优惠?")
    status, body = await call(api, "POST", "/2/comments/reply.json", cid=cid, id=post, comment="私信我们领取")
    assert status == 200 and body["text"] == "回复@小王:私信我们领取" and body["user"]["id"] == BRAND
    assert body["reply_comment"]["id"] == cid
    assert [c["text"] for c in sim.thread(post)] == ["优惠?", "回复@小王:私信我们领取"]
    status, body = await call(api, "POST", "/2/comments/reply.json", cid=cid, id=post, comment="x" * 141)
    assert status == 400 and body["error_code"] == 20012
    status, body = await call(api, "POST", "/2/comments/reply.json", cid=cid + 999, id=post, comment="x")
    assert body["error_code"] == 20201
    mention, _ = await sim.post_status(uid, "@engagebot_brand hi")
    status, body = await call(api, "POST", "/2/comments/create.json", id=mention, comment="谢谢!")
    assert status == 200 and body["status"]["id"] == mention
    status, body = await call(api, "POST", "/2/comments/create.json", id=mention, comment="谢谢!")
    assert status == 400 and body["error_code"] == 20019  # repeated content
    status, body = await call(api, "GET", "/2/comments/by_me.json")
    assert len(body["comments"]) == 2
    # to_me never lists the brand's own comments
    status, body = await call(api, "GET", "/2/comments/to_me.json")
    assert [c["id"] for c in body["comments"]] == [cid]


async def test_rate_limits_and_repeated_content_can_be_triggered(sim, api) -> None:
    post = next(iter(sim.posts))
    for code, http in ((10022, 403), (10023, 403), (10024, 403), (20019, 400)):
        sim.inject_error(code, "/2/comments/create.json")
        status, body = await call(api, "POST", "/2/comments/create.json", id=post, comment=f"c{code}")
        assert (status, body["error_code"], body["request"]) == (http, code, "/2/comments/create.json")
    status, _ = await call(api, "POST", "/2/comments/create.json", id=post, comment="now fine")
    assert status == 200
    sim.hourly_limits["/2/comments/to_me.json"] = 2
    assert (await call(api, "GET", "/2/comments/to_me.json"))[0] == 200
    assert (await call(api, "GET", "/2/comments/to_me.json"))[0] == 200
    status, body = await call(api, "GET", "/2/comments/to_me.json")
    assert status == 403 and body["error_code"] == 10024


async def test_sendall_is_asynchronous_and_may_be_held_for_review(clock, bot) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from .conftest import make_sim

    sim = make_sim(clock, sendall_review="always")
    client = TestClient(TestServer(sim.make_app()))
    await client.start_server()
    try:
        a, b, gone = sim.add_fan(following=True), sim.add_fan(following=True), sim.add_fan()
        status, body = await call(client, "POST", "/2/messages/sendall.json", type="text", data=data({"text": "news"}))
        assert status == 200 and body["status"] == "held_for_review" and body["held_for_review"] is True
        await sim.drain()
        assert not sim.replies(a)
        sim.review(body["msg_id"])
        await sim.drain()
        assert [e["text"] for e in sim.replies(a)] == ["news"] and sim.replies(b) and not sim.replies(gone)
        status, st = await call(client, "GET", "/2/messages/sendall_status.json", msg_id=body["msg_id"])
        assert st["status"] == "sent" and st["delivered"] == 2
        sim.sendall_review = "never"
        status, body = await call(client, "POST", "/2/messages/sendall.json", type="text", data=data({"text": "b"}),
                                  touser=f"{a},{gone}")
        assert body["status"] == "queued"
        await sim.drain()
        assert [e["text"] for e in sim.replies(a)] == ["news", "b"] and not sim.replies(gone)
    finally:
        await client.close()


async def test_qr_scene_create_and_show(sim, api) -> None:
    status, body = await call(api, "POST", "/2/eps/qrcode/create.json", scene_str="spring-sale")
    assert status == 200 and body["scene"] == "spring-sale"
    resp = await api.get("/2/eps/qrcode/show", params={"ticket": body["ticket"]})
    assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
    status, body = await call(api, "POST", "/2/eps/qrcode/create.json", scene_str="bad scene!")
    assert status == 400 and body["error_code"] == 10008


async def test_hostile_bodies_get_4xx_not_500(sim, api) -> None:
    url = "/2/messages/reply.json?access_token=" + "2.00simulatedtoken"
    for raw, ctype in ((b"[" * 5000, "application/json"), (b"\xff\xfe" * 100, "application/x-www-form-urlencoded"),
                       (b"a=%ff", "application/x-www-form-urlencoded"), (b"x" * (300 * 1024),
                                                                          "application/x-www-form-urlencoded"),
                       (b"&".join(b"k%d=v" % n for n in range(500)), "application/x-www-form-urlencoded")):
        resp = await api.post(url, data=raw, headers={"Content-Type": ctype})
        assert 400 <= resp.status < 500, (raw[:20], resp.status)
        assert (await resp.json())["error_code"] in (10008, 10016)
