"""The Weibo adapter over real HTTP on loopback: callbacks, passive replies, the active API, the windows."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import select, update

from bot import Context, Inbound, Kind, Reply, Router, TextReply
from bot.core.clock import utcnow
from bot.storage.models import Follower, Message

from .conftest import BRAND, SECRET, WeiboEnv, created_at, message, passive, sign, weibo_env

FAN = "6000000002"
ZH_FALLBACK = "抱歉，我没太明白您的意思。发送 /help 看看我能帮您做什么。"
EN_FALLBACK = "Sorry, I did not understand that. Send /help to see what I can do."

counter = {"runs": 0}
slow_router = Router("weibo-slow")


@slow_router.on(Kind.TEXT, keywords={"en": ["count me"]}, priority=500)
async def count_me(msg: Inbound, ctx: Context) -> list[Reply]:
    counter["runs"] += 1
    await asyncio.sleep(0.3)
    return [TextReply(f"run {counter['runs']}")]


@slow_router.on(Kind.TEXT, keywords={"en": ["take your time"]}, priority=500)
async def slow(msg: Inbound, ctx: Context) -> list[Reply]:
    await asyncio.sleep(1.0)
    return [TextReply("sorry for the wait")]


async def _verify(env: WeiboEnv, query: dict[str, str]) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(f"{env.bot_url}/weibo", params=query) as resp:
        return resp.status, await resp.text()


async def test_url_verification_echoes_echostr_with_millisecond_timestamps(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        ts = str(int(time.time() * 1000))
        assert await _verify(env, {"signature": sign(ts, "abc"), "timestamp": ts, "nonce": "abc",
                                   "echostr": "hello123"}) == (200, "hello123")
        wrong = await _verify(env, {"signature": sign(ts, "abc", "other"), "timestamp": ts, "nonce": "abc",
                                    "echostr": "x"})
        seconds = str(int(time.time()))  # a timestamp in seconds is 56 years off in milliseconds
        old = await _verify(env, {"signature": sign(seconds, "abc"), "timestamp": seconds, "nonce": "abc",
                                  "echostr": "x"})
        assert (wrong[0], old[0]) == (403, 403)


async def test_text_gets_a_passive_json_reply_in_the_fans_language(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        status, body = await env.text(FAN, "随便说点什么")
        assert status == 200
        reply = passive(body)
        assert (reply["result"], reply["sender_id"], reply["receiver_id"], reply["type"]) == (
            True, int(BRAND), int(FAN), "text")
        assert reply["data"] == {"text": ZH_FALLBACK}
        status, body = await env.text("6000000009", "something random")
        assert passive(body)["data"] == {"text": EN_FALLBACK}


async def test_wrong_or_missing_signature_gets_403_and_nothing_is_stored(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        doc = message(FAN, "text", text="hello")
        bad = await env.push(doc, signature="0" * 40)
        unsigned = await env.push(doc, signed=False)
        other_secret = await env.push(doc, signature=sign("1", "n", SECRET + "x"), timestamp="1", nonce="n")
        in_seconds = await env.push(doc, timestamp=str(int(time.time())))  # milliseconds expected
        assert (bad[0], unsigned[0], other_secret[0], in_seconds[0]) == (403, 403, 403, 403)
        assert await env.count(Message) == 0 and await env.count(Follower) == 0


HOSTILE: dict[str, bytes] = {
    "deeply-nested": b'{"type": "text", "data": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    "ten-megabytes": json.dumps(message(FAN, "text", text="a" * (10 * 1024 * 1024))).encode(),
    "not-utf8": json.dumps(message(FAN, "text", text="hi")).encode().replace(b"hi", "你好".encode("gbk")),
    "wrong-types": json.dumps({**message(FAN, "text"), "sender_id": "fan", "text": 5}).encode(),
    "missing-fields": json.dumps({"type": "text", "text": "hi"}).encode(),
    "another-receiver": json.dumps({**message(FAN, "text", text="hi"), "receiver_id": 42}).encode(),
    "not-an-object": b"[1, 2]",
    "empty": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_bodies_get_4xx_with_a_reason_and_store_nothing(database_url: str, name: str) -> None:
    async with weibo_env(database_url) as env:
        status, body = await env.push(HOSTILE[name])
        assert status in (400, 413), (status, body)
        assert b"reason" in body or b"error" in body
        assert await env.count(Message) == 0 and await env.count(Follower) == 0
        assert (await env.text(FAN, "hi"))[0] == 200  # still fine


async def test_retries_of_one_push_run_the_handler_once(database_url: str) -> None:
    counter["runs"] = 0
    async with weibo_env(database_url, routers=[slow_router]) as env:
        doc = message(FAN, "text", text="count me", at=created_at())
        ts, nonce = str(int(time.time() * 1000)), "same-nonce"
        concurrent = await asyncio.gather(env.push(doc, timestamp=ts, nonce=nonce), env.push(doc))
        later = await env.push(doc)
        bodies = {b for _s, b in (*concurrent, later)}
        assert len(bodies) == 1 and passive(bodies.pop())["data"] == {"text": "run 1"}
        assert counter["runs"] == 1
        assert await env.count(Message, Message.direction == "in") == 1


async def test_a_replayed_signature_with_another_body_is_refused(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        ts = str(int(time.time() * 1000))
        assert (await env.text(FAN, "first", timestamp=ts, nonce="once"))[0] == 200
        assert (await env.text(FAN, "forged", timestamp=ts, nonce="once"))[0] == 403
        assert await env.count(Message, Message.direction == "in") == 1


async def test_a_forged_push_sent_with_the_real_one_under_its_signature_is_refused_and_stored_never(
        database_url: str) -> None:
    """The push's replay check travels with its message and is written with its exchange: of two bodies
    under one signature at the same moment, one is answered and stored, the other refused and stored
    never (a check written on its own, after both exchanges, would have let both be stored)."""
    forger = "1000000099"
    async with weibo_env(database_url) as env:
        for fan in (FAN, forger):  # known: the rounds below are no first contact
            assert (await env.text(fan, "hello"))[0] == 200
        for round_ in range(6):
            ts, nonce = str(int(time.time() * 1000)), f"forged-{round_}"
            at = created_at(-10 * (round_ + 1))  # a second of its own: each push is a new message
            answers = await asyncio.gather(
                env.push(message(FAN, "text", text=f"real {round_}", at=at), timestamp=ts, nonce=nonce),
                env.push(message(forger, "text", text=f"forged {round_}", at=at), timestamp=ts, nonce=nonce))
            assert sorted(status for status, _ in answers) == [200, 403], answers
            stored = await env.count(Message, Message.direction == "in",
                                     Message.text.in_([f"real {round_}", f"forged {round_}"]))
            assert stored == 1


@pytest.mark.timing  # a deadline: measured alone, after the parallel run (tools/test.sh)
async def test_a_slow_handler_is_answered_in_time_and_replied_through_the_api(database_url: str) -> None:
    async with weibo_env(database_url, routers=[slow_router], overrides={"passive_deadline_seconds": 0.3}) as env:
        started = time.monotonic()
        status, body = await env.text(FAN, "take your time")
        assert (status, body) == (200, b"") and time.monotonic() - started < 1.0
        for _ in range(100):
            if env.fake.dms():
                break
            await asyncio.sleep(0.05)
        assert env.fake.dms() == [{"to": FAN, "type": "text", "data": {"text": "sorry for the wait"}}]


async def test_every_push_kind_is_taken(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        for msg_type, data in [("position", {"longitude": 116.4, "latitude": 39.9}), ("image", {"vfid": "1"}),
                               ("voice", {"vfid": "2"}), ("video", {})]:
            status, body = await env.push(message(FAN, msg_type, data=data))
            assert status == 200 and (body == b"" or passive(body)["result"] is True)
        for subtype, key in [("follow", None), ("subscribe", None), ("scan", "poster"), ("click", "MENU"),
                             ("view", "https://example.com"), ("mention", None), ("unsubscribe", None),
                             ("unfollow", None), ("scan_follow", "poster2")]:
            assert (await env.event(FAN, subtype, key, text="@brand hello" if subtype == "mention" else ""))[0] == 200


async def test_unknown_types_get_the_polite_localized_answer(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        await env.text(FAN, "你好")
        status, body = await env.push(message(FAN, "video", data={"vfid": "9"}))
        assert status == 200 and "只能看懂文字消息" in passive(body)["data"]["text"]


async def _pending(env: WeiboEnv, fan: str, text: str) -> int:
    async with env.bot.sessions() as s:
        follower = (await s.execute(select(Follower).where(Follower.external_id == fan))).scalar_one()
        row = Message(follower_id=follower.id, channel="weibo", account="default", direction="out", kind="text",
                      text=text, body={"type": "text", "text": text}, status="pending", attempts=0,
                      created_at=utcnow())
        s.add(row)
        await s.commit()
        return row.id


async def _row(env: WeiboEnv, message_id: int) -> Message:
    async with env.bot.sessions() as s:
        row = await s.get(Message, message_id)
        assert row is not None
        return row


async def test_sends_within_the_48_hour_window_are_unlimited(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        await env.text(FAN, "hi")
        ids = [await _pending(env, FAN, f"m{i}") for i in range(6)]
        await env.channel.outbox.deliver(ids)
        assert [(await _row(env, i)).status for i in ids] == ["sent"] * 6
        assert [d["data"]["text"] for d in env.fake.dms()] == [f"m{i}" for i in range(6)]


async def test_outside_the_window_is_recorded_undeliverable_and_never_attempted(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        await env.text(FAN, "hi")
        async with env.bot.sessions() as s:
            await s.execute(update(Follower).where(Follower.external_id == FAN).values(
                last_action_at=utcnow() - timedelta(hours=49)))
            await s.commit()
        late = await _pending(env, FAN, "too late")
        await env.channel.outbox.deliver([late])
        row = await _row(env, late)
        assert row.status == "undeliverable" and "window" in (row.reason or "")
        assert env.fake.dms() == []


async def test_after_a_mention_only_one_reply_in_48_hours(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        assert (await env.event(FAN, "mention", text="@brand nice"))[0] == 200
        ids = [await _pending(env, FAN, f"m{i}") for i in range(2)]
        await env.channel.outbox.deliver(ids)
        rows = [await _row(env, i) for i in ids]
        assert [r.status for r in rows] == ["sent", "undeliverable"]
        assert "1 sends are used up" in (rows[1].reason or "")
        assert len([d for d in env.fake.dms() if d["data"]["text"].startswith("m")]) == 1


async def test_none_after_unfollow(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        await env.text(FAN, "hi")
        await env.event(FAN, "unfollow")
        row_id = await _pending(env, FAN, "still there?")
        await env.channel.outbox.deliver([row_id])
        row = await _row(env, row_id)
        assert (row.status, row.reason) == ("undeliverable", "follower unfollowed")
        assert env.fake.dms() == []


@pytest.mark.parametrize("code", [10022, 10023, 10024])
async def test_rate_limits_are_retried_later(database_url: str, code: int) -> None:
    async with weibo_env(database_url) as env:
        await env.text(FAN, "hi")
        env.fake.errors["/2/messages/reply.json"] = [code]
        row_id = await _pending(env, FAN, "later")
        await env.channel.outbox.deliver([row_id])
        row = await _row(env, row_id)
        assert row.status == "pending" and row.next_attempt_at is not None and str(code) in (row.reason or "")


async def test_repeated_content_fails_and_is_not_retried(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        await env.text(FAN, "hi")
        env.fake.errors["/2/messages/reply.json"] = [20019]
        row_id = await _pending(env, FAN, "again")
        await env.channel.outbox.deliver([row_id])
        row = await _row(env, row_id)
        assert row.status == "failed" and "20019" in (row.reason or "")
        assert len(env.fake.sent("/2/messages/reply.json")) == 1


async def test_mass_send_held_for_review_is_a_status(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        platform_id = await env.channel.send_mass([FAN, "6000000003"], TextReply("spring sale"),
                                                  context={"idempotency_key": "k"})
        assert platform_id is not None and platform_id.endswith("(held for review)")
        form = env.fake.sent("/2/messages/sendall.json")[0]
        assert form["touser"] == f"{FAN},6000000003" and form["type"] == "text"
        env.fake.sendall_status = "sent"
        assert "held" not in (await env.channel.send_mass([FAN], TextReply("x"), context={}) or "")


async def test_long_text_is_cut_under_weibos_limit(database_url: str) -> None:
    router = Router("long")

    @router.on(Kind.TEXT, keywords={"en": ["long please"]}, priority=500)
    async def long(msg: Inbound, ctx: Context) -> list[Reply]:
        return [TextReply("Words and more words. " * 40)]

    async with weibo_env(database_url, routers=[router]) as env:
        _status, body = await env.text(FAN, "long please")
        text = passive(body)["data"]["text"]
        assert len(text) <= 300 and text.endswith("…") and not text.endswith(" …")


async def test_scan_follow_records_the_touch(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        assert (await env.event(FAN, "scan_follow", "spring-poster"))[0] == 200
        async with env.bot.sessions() as s:
            follower = (await s.execute(select(Follower).where(Follower.external_id == FAN))).scalar_one()
        assert (follower.first_source, follower.following) == ("spring-poster", True)
        link = await env.channel.scene_link("spring-poster")  # the platform's QR, asked for the scene
        assert link == f"https://weibo.cn/qr/{BRAND}/spring-poster"
        assert [f["scene_str"] for f in env.fake.sent("/2/eps/qrcode/create.json")] == ["spring-poster"]


