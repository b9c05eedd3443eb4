"""Signed pushes to a fake bot over real HTTP: the body, the signature, retries on timeout, passive replies."""

from __future__ import annotations

import json
import time

from aiohttp import web

from bot.simulators.weibo import WEIBO_ERROR_TEXT, WeiboSimulator

from .conftest import APP_SECRET, BRAND, FakeBot, sha1_sign, text_reply


async def test_a_text_push_is_signed_with_millisecond_timestamp_and_the_reply_is_read(sim: WeiboSimulator,
                                                                                    bot: FakeBot) -> None:
    uid = sim.add_fan(following=True)
    result = await sim.send_text(uid, "你好")
    assert result.ok and result.reply == {"type": "text", "text": "echo: 你好"} and result.attempts == 1
    req = bot.requests[0]
    q = req["query"]
    assert q["signature"] == sha1_sign(APP_SECRET, q["timestamp"], q["nonce"])
    assert abs(int(q["timestamp"]) - time.time() * 1000) < 60_000  # milliseconds
    body = req["body"]
    assert body["type"] == "text" and body["text"] == "你好" and body["data"] == {}
    assert body["receiver_id"] == BRAND and body["sender_id"] == uid
    assert body["created_at"] == "Wed Nov 15 06:13:20 +0800 2023"
    assert [e["source"] for e in sim.timeline(uid)] == ["fan", "passive"]
    await sim.send_text(uid, "again")  # same (frozen) second: the platform's created_at still differs
    assert bot.requests[1]["body"]["created_at"] == "Wed Nov 15 06:13:21 +0800 2023"


async def test_every_kind_of_push(sim: WeiboSimulator, bot: FakeBot) -> None:
    uid = sim.add_fan()
    await sim.follow(uid)
    await sim.send_position(uid, longitude=121.47, latitude=31.23)
    await sim.send_image(uid)
    await sim.send_voice(uid)
    await sim.subscribe(uid)
    await sim.unsubscribe(uid)
    await sim.click(uid, "OFFER_TODAY")
    await sim.view(uid, "https://example.com/x")
    await sim.scan(uid, "spring")
    await sim.unfollow(uid)
    await sim.scan(uid, "spring")
    await sim.post_status(uid, "@engagebot_brand hi")
    seen = [(r["body"]["type"], r["body"]["data"].get("subtype"), r["body"]["data"].get("key")) for r in bot.requests]
    assert seen == [("event", "follow", None), ("position", None, None), ("image", None, None),
                    ("voice", None, None), ("event", "subscribe", None), ("event", "unsubscribe", None),
                    ("event", "click", "OFFER_TODAY"), ("event", "view", "https://example.com/x"),
                    ("event", "scan", "spring"), ("event", "unfollow", None), ("event", "scan_follow", "spring"),
                    ("event", "mention", None)]
    assert bot.requests[1]["body"]["data"] == {"longitude": "121.470000", "latitude": "31.230000"}
    assert sim.fan(uid).following


async def test_a_slow_bot_gets_three_tries_with_the_same_body(clock, bot: FakeBot) -> None:
    from .conftest import make_sim

    sim = make_sim(clock, callback_timeout=0.3)
    sim.callback_url = bot.url
    bot.delays = [1.0, 1.0, 0]
    uid = sim.add_fan(following=True)
    result = await sim.send_text(uid, "slow")
    assert result.ok and result.attempts == 3 and result.reply is not None
    assert len(bot.requests) == 3
    assert len({json.dumps(r["body"]) for r in bot.requests}) == 1
    assert len({r["query"]["nonce"] for r in bot.requests}) == 3
    await sim.close()


async def test_three_timeouts_show_the_platform_error(clock, bot: FakeBot) -> None:
    from .conftest import make_sim

    sim = make_sim(clock, callback_timeout=0.2)
    sim.callback_url = bot.url
    bot.delays = [0.5, 0.5, 0.5]
    uid = sim.add_fan(following=True)
    result = await sim.send_text(uid, "x")
    assert not result.ok and result.attempts == 3 and len(bot.requests) == 3
    assert sim.replies(uid)[-1]["text"] == WEIBO_ERROR_TEXT
    await sim.close()


async def test_an_empty_body_acknowledges_and_stops_retries(sim: WeiboSimulator, bot: FakeBot) -> None:
    bot.answer = lambda b, n: b""
    uid = sim.add_fan(following=True)
    result = await sim.send_text(uid, "x")
    assert result.ok and result.acknowledged and result.attempts == 1 and result.reply is None


async def test_a_refusal_is_not_retried_and_a_5xx_is(sim: WeiboSimulator, bot: FakeBot) -> None:
    bot.answer = lambda b, n: web.Response(status=403)
    uid = sim.add_fan(following=True)
    result = await sim.send_text(uid, "x")
    assert result.attempts == 1 and result.status == 403 and not result.ok
    bot.answer = lambda b, n: web.Response(status=500) if n < 2 else text_reply(uid, "ok")
    result = await sim.send_text(uid, "y")
    assert result.ok and result.reply == {"type": "text", "text": "ok"}


async def test_malformed_passive_replies_are_reported(sim: WeiboSimulator, bot: FakeBot) -> None:
    uid = sim.add_fan(following=True)
    bad = [
        {"result": True, "sender_id": BRAND, "receiver_id": uid, "type": "text", "data": '{"text":"raw"}'},
        {**text_reply(uid, "x"), "sender_id": 1},
        {**text_reply(uid, "x"), "receiver_id": 1},
        {**text_reply(uid, "x"), "result": False},
        text_reply(uid, "字" * 301),
        {**text_reply(uid, "x"), "type": "voice"},
    ]
    for answer in bad:
        bot.answer = lambda b, n, answer=answer: answer
        result = await sim.send_text(uid, "x")
        assert result.error and result.error.startswith("malformed reply"), answer
    bot.answer = lambda b, n: b"not json"
    assert "malformed" in ((await sim.send_text(uid, "x")).error or "")


async def test_callback_url_verification(sim: WeiboSimulator, bot: FakeBot) -> None:
    assert await sim.verify_callback()
    sim.app_secret = "wrong"
    assert not await sim.verify_callback()


async def test_raw_pushes_for_hostile_input_tests(sim: WeiboSimulator, bot: FakeBot) -> None:
    resp = await sim.send_raw(b"{}", sign=False)
    assert resp.status == 403
