"""The WeChat adapter against the platform simulator, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from bot import Context, Inbound, Kind, Reply, Router, TextReply
from bot.core.clock import utcnow
from bot.storage.models import Follower, Message

ZH_FALLBACK = "抱歉，我没太明白您的意思。发送 /help 看看我能帮您做什么。"
EN_FALLBACK = "Sorry, I did not understand that. Send /help to see what I can do."


async def test_url_verification_answers_echostr(make_env: Any) -> None:
    async with make_env() as env:
        assert await env.sim.verify_callback() is True


async def test_text_gets_a_passive_reply_in_the_followers_language(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="zh_CN")
        result = await env.sim.send_text(openid, "随便说点什么")
        assert result.reply == {"type": "text", "content": ZH_FALLBACK}
        assert result.attempts == 1


async def test_follow_uses_the_platform_language_and_scene(make_env: Any) -> None:
    async with make_env() as env:
        openid = env.follower(language="en")
        result = await env.sim.follow(openid, scene="poster-7")
        assert result.reply["type"] == "text"
        assert result.reply["content"].startswith("Welcome! Thanks for following us.")
        assert "1. Help" in result.reply["content"]  # buttons became numbered choices
        help_reply = await env.sim.send_text(openid, "1")
        assert help_reply.reply["content"].startswith("Here is what I can do")
        async with env.bot.sessions() as s:
            follower = (await s.execute(select(Follower).where(Follower.external_id == openid))).scalar_one()
        assert (follower.first_source, follower.locale_hint, follower.following) == ("poster-7", "en", True)


async def test_safe_mode_round_trips(make_env: Any) -> None:
    async with make_env(safe=True) as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "anything")
        assert result.ok and result.reply == {"type": "text", "content": EN_FALLBACK}


async def test_compatible_mode_is_accepted(make_env: Any) -> None:
    async with make_env(safe=True, sim_overrides={"encoding_mode": "compat"}) as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "anything")
        assert result.reply == {"type": "text", "content": EN_FALLBACK}


@pytest.mark.parametrize("wrong", [
    {"aes_key": "0" * 43},
    {"app_id": "wxsomeoneelse0000"},
])
async def test_wrong_key_or_appid_gets_400_and_nothing_stored(make_env: Any, wrong: dict[str, str]) -> None:
    async with make_env(safe=True, sim_overrides=wrong) as env:
        openid = env.sim.add_follower(language="en", following=True)
        result = await env.sim.send_text(openid, "hello")
        assert result.status == 400
        assert await env.count(Message) == 0


async def test_wrong_signature_gets_403_and_nothing_is_stored(make_env: Any) -> None:
    async with make_env() as env:
        body = _text_xml("oFAKE", "hello", msg_id=1)
        bad = await env.sim.send_raw(body, query={"signature": "0" * 40})
        unsigned = await env.sim.send_raw(body, sign=False)
        assert (bad.status, unsigned.status) == (403, 403)
        assert await env.count(Message) == 0
        assert await env.count(Follower) == 0


def _text_xml(openid: str, text: str, *, msg_id: int, create_time: str | None = None) -> bytes:
    ct = create_time if create_time is not None else str(int(time.time()))
    return (f"<xml><ToUserName><![CDATA[gh_simulated]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{ct}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>").encode()


HOSTILE = {
    "xxe": b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>"
           b"<MsgType>text</MsgType><Content>&x;</Content><MsgId>1</MsgId></xml>",
    "billion-laughs": b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                      b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><xml>&lol2;</xml>',
    "ten-megabytes": b"<xml>" + b"a" * (10 * 1024 * 1024) + b"</xml>",
    "not-utf8": _text_xml("oX", "hi", msg_id=3).replace(b"hi", "你好".encode("gbk")),
    "truncated": _text_xml("oX", "hi", msg_id=4)[:-20],
    "missing-field": b"<xml><ToUserName>a</ToUserName><CreateTime>1</CreateTime><MsgType>text</MsgType></xml>",
    "createtime-not-a-number": _text_xml("oX", "hi", msg_id=5, create_time="yesterday"),
    "empty": b"",
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_bodies_get_4xx_with_a_reason_and_store_nothing(make_env: Any, name: str) -> None:
    async with make_env() as env:
        answer = await env.sim.send_raw(HOSTILE[name])
        assert answer.status in (400, 413), answer
        assert b"reason" in answer.body
        assert await env.count(Message) == 0
        # the bot is still fine
        openid = await env.following()
        assert (await env.sim.send_text(openid, "hi")).reply is not None


counter: dict[str, int] = {"runs": 0}
slow_router = Router("slow")


@slow_router.on(Kind.TEXT, keywords={"en": ["count me"]}, priority=500)
async def count_me(msg: Inbound, ctx: Context) -> list[Reply]:
    counter["runs"] += 1
    await asyncio.sleep(0.3)  # long enough for retries to arrive while the first try runs
    return [TextReply(f"run {counter['runs']}")]


@slow_router.on(Kind.TEXT, keywords={"en": ["take your time"]}, priority=500)
async def slow(msg: Inbound, ctx: Context) -> list[Reply]:
    await asyncio.sleep(7)
    return [TextReply("sorry for the wait")]


async def test_three_deliveries_of_one_message_run_the_handler_once(make_env: Any) -> None:
    counter["runs"] = 0
    async with make_env(routers=[slow_router]) as env:
        openid = await env.following(language="en")
        body = _text_xml(openid, "count me", msg_id=777)
        concurrent = await asyncio.gather(env.sim.send_raw(body), env.sim.send_raw(body))
        later = await env.sim.send_raw(body)
        # The same reply to each delivery; its CreateTime is the time of each answer's rendering, which
        # under load may fall in different seconds: the bodies are compared whole, that field aside.
        bodies = {re.sub(rb"<CreateTime>\d+</CreateTime>", b"", r.body) for r in (*concurrent, later)}
        assert len(bodies) == 1 and b"run 1" in bodies.pop()
        assert all(re.search(rb"<CreateTime>\d+</CreateTime>", r.body) for r in (*concurrent, later))
        assert counter["runs"] == 1
        assert await env.count(Message, Message.direction == "in", Message.dedupe_key == "777") == 1
        assert await env.count(Message, Message.direction == "out", Message.text == "run 1") == 1


@pytest.mark.timing
async def test_a_slow_handler_answers_success_in_time_and_replies_through_the_api(make_env: Any) -> None:
    async with make_env(routers=[slow_router]) as env:
        openid = await env.following(language="en")
        started = time.monotonic()
        result = await env.sim.send_text(openid, "take your time")
        assert result.acknowledged and result.attempts == 1 and result.latency < 5.0
        assert time.monotonic() - started < 5.0
        replies = await env.sim.wait_for_reply(openid, count=1, timeout=10)
        assert replies[-1]["source"] == "custom" and replies[-1]["content"] == "sorry for the wait"
        for _ in range(50):  # the row is marked sent right after the platform's answer
            async with env.bot.sessions() as s:
                status = await s.scalar(select(Message.status).where(Message.text == "sorry for the wait"))
            if status == "sent":
                break
            await asyncio.sleep(0.05)
        assert status == "sent"


async def _pending_reply(env: Any, openid: str, text: str) -> int:
    """Put a reply in the outbox for ``openid`` the way the dispatcher does, and return its id."""
    async with env.bot.sessions() as s:
        follower = (await s.execute(select(Follower).where(Follower.external_id == openid))).scalar_one()
        row = Message(follower_id=follower.id, channel="wechat", account="default", direction="out",
                      kind="text", text=text, body={"type": "text", "text": text}, status="pending",
                      attempts=0, created_at=utcnow())
        s.add(row)
        await s.commit()
        return row.id


async def _row(env: Any, message_id: int) -> Message:
    async with env.bot.sessions() as s:
        return await s.get(Message, message_id)


async def test_token_expiry_mid_run_is_refreshed_once(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        first = await _pending_reply(env, openid, "one")
        await env.channel.outbox.deliver([first])
        fetches = env.sim.token_fetches
        env.sim.expire_tokens()
        second = await _pending_reply(env, openid, "two")
        await env.channel.outbox.deliver([second])
        assert (await _row(env, second)).status == "sent"
        assert env.sim.token_fetches == fetches + 1
        assert [r["content"] for r in env.sim.replies(openid) if r["source"] == "custom"] == ["one", "two"]


async def test_outside_the_window_is_not_even_attempted(make_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        await env.sim.send_text(openid, "hi")
        async with env.bot.sessions() as s:
            await s.execute(update(Follower).where(Follower.external_id == openid).values(
                last_action_at=utcnow() - timedelta(hours=49)))
            await s.commit()
        calls: list[Any] = []
        original = env.channel.api.send_custom

        async def spy(payload: Any) -> None:
            calls.append(payload)
            await original(payload)

        monkeypatch.setattr(env.channel.api, "send_custom", spy)
        late = await _pending_reply(env, openid, "too late")
        await env.channel.outbox.deliver([late])
        row = await _row(env, late)
        assert (row.status, calls) == ("undeliverable", [])
        assert "window" in row.reason


async def test_window_counts_sends_like_the_platform(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")  # a follow opens 1 minute / 3 messages
        ids = [await _pending_reply(env, openid, f"m{i}") for i in range(4)]
        await env.channel.outbox.deliver(ids)
        statuses = [(await _row(env, i)).status for i in ids]
        print([(await _row(env, i)).reason for i in ids])
        assert statuses == ["sent", "sent", "sent", "undeliverable"]
        assert len([r for r in env.sim.replies(openid) if r["source"] == "custom"]) == 3


async def test_a_follower_who_unfollowed_gets_nothing(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        await env.sim.unfollow(openid)
        message = await _pending_reply(env, openid, "still there?")
        await env.channel.outbox.deliver([message])
        row = await _row(env, message)
        assert (row.status, row.reason) == ("undeliverable", "follower unfollowed")


async def test_a_platform_error_ends_failed_with_its_reason(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        env.sim.max_text_bytes = 16  # the platform now refuses what the adapter sends: errcode 45002
        message = await _pending_reply(env, openid, "longer than sixteen bytes")
        await env.channel.outbox.deliver([message])
        row = await _row(env, message)
        assert (row.status, row.reason) == ("failed", "platform error 45002: content size out of limit (16 bytes)")
        assert row.sent_at is None
        assert [r for r in env.sim.replies(openid) if r["source"] == "custom"] == []


async def test_a_refused_access_token_fails_the_send_with_the_platforms_reason(make_env: Any) -> None:
    async with make_env(config_overrides={"app_secret": SecretStr("not-the-app-secret")}) as env:
        openid = await env.following(language="en")
        message = await _pending_reply(env, openid, "hello")
        await env.channel.outbox.deliver([message])
        row = await _row(env, message)
        assert (row.status, row.reason) == ("failed", "platform error 40125: invalid appsecret")
        assert [r for r in env.sim.replies(openid) if r["source"] == "custom"] == []


async def test_unknown_message_types_get_a_polite_localized_answer(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="zh_CN")
        result = await env.sim.send_image(openid, pic_url="http://example.invalid/p.jpg")
        assert result.reply["content"] == "收到啦！不过我目前只能看懂文字消息。发送 /help 看看我能帮您做什么。"
        raw = (f"<xml><ToUserName>gh_simulated</ToUserName><FromUserName>{openid}</FromUserName>"
               f"<CreateTime>{int(time.time())}</CreateTime><MsgType>shortvideo</MsgType>"
               f"<MediaId>m</MediaId><MsgId>99</MsgId></xml>").encode()
        answer = await env.sim.send_raw(raw)
        assert answer.status == 200 and "只能看懂文字消息".encode() in answer.body


long_router = Router("long")


@long_router.on(Kind.TEXT, keywords={"en": ["long please"]}, priority=500)
async def long_text(msg: Inbound, ctx: Context) -> list[Reply]:
    return [TextReply("长" * 1000)]  # 3000 bytes of UTF-8, over WeChat's 2048


async def test_long_text_is_cut_at_the_byte_limit_without_breaking_a_character(make_env: Any) -> None:
    async with make_env(routers=[long_router]) as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "long please")
        content = result.reply["content"]
        assert len(content.encode()) <= 2048 and content.endswith("…") and set(content[:-1]) == {"长"}


async def test_empty_huge_and_invalid_text_are_answered_or_refused_cleanly(make_env: Any) -> None:
    async with make_env() as env:
        openid = await env.following(language="en")
        empty = await env.sim.send_raw(_text_xml(openid, "", msg_id=4242))
        assert empty.status == 200 and b"Did you mean to send something?" in empty.body
        huge = await env.sim.send_raw(_text_xml(openid, "x" * 100_000, msg_id=4243))
        assert huge.status == 413
        surrogate = _text_xml(openid, "lone", msg_id=4244).replace(b"lone", "\ud800".encode("utf-8", "surrogatepass"))
        assert (await env.sim.send_raw(surrogate)).status == 400
        assert await env.count(Message, Message.dedupe_key.in_(["4243", "4244"])) == 0


async def test_the_access_token_is_shared_by_instances_through_the_database(make_env: Any) -> None:
    from bot.channels.wechat.api import WeChatAPI

    async with make_env() as env:
        first = WeChatAPI(app_id=env.channel.api.app_id, app_secret="app-secret-for-tests",
                          api_base=env.sim_url, sessions=env.bot.sessions)
        second = WeChatAPI(app_id=env.channel.api.app_id, app_secret="app-secret-for-tests",
                           api_base=env.sim_url, sessions=env.bot.sessions)
        try:
            fetches = env.sim.token_fetches
            token = await first.access_token()
            assert await second.access_token() == token  # read from the database, not fetched again
            assert env.sim.token_fetches == fetches + 1
            refreshed = await second.access_token(stale=token)  # the platform refused it: fetch once
            assert refreshed != token and await first.access_token(stale=token) == refreshed
            assert env.sim.token_fetches == fetches + 2
        finally:
            await first.close()
            await second.close()


async def test_instances_needing_a_token_at_once_all_get_one_without_an_error(make_env: Any) -> None:
    """The first message after a start often reaches several instances at once: none may fail on the
    token row another is writing; on PostgreSQL the token is fetched once for all of them."""
    from bot.channels.wechat.api import WeChatAPI
    from bot.storage.dialect import is_postgresql

    async with make_env() as env:
        apis = [WeChatAPI(app_id=env.channel.api.app_id, app_secret="app-secret-for-tests",
                          api_base=env.sim_url, sessions=env.bot.sessions) for _ in range(4)]
        try:
            fetches = env.sim.token_fetches
            tokens = await asyncio.gather(*(api.access_token() for api in apis))
            assert all(tokens)
            if is_postgresql(env.bot.engine):
                assert len(set(tokens)) == 1 and env.sim.token_fetches == fetches + 1
        finally:
            for api in apis:
                await api.close()


async def test_a_news_reply_goes_out_as_one_article(make_env: Any) -> None:
    from bot import Article, ArticlesReply

    news = Router("news")

    @news.on(Kind.TEXT, keywords={"en": ["menu card"]}, priority=500)
    async def card(msg: Inbound, ctx: Context) -> list[Reply]:
        return [ArticlesReply((Article("Winter menu", "Hotpot is back", "https://example.com/m", "https://example.com/p.jpg"),))]

    async with make_env(routers=[news]) as env:
        openid = await env.following(language="en")
        result = await env.sim.send_text(openid, "menu card")
        assert result.reply["type"] == "news"
        assert [(a["title"], a["url"]) for a in result.reply["articles"]] == [("Winter menu", "https://example.com/m")]


async def test_scene_qr_codes_come_from_the_platform(make_env: Any) -> None:
    async with make_env() as env:
        url = await env.channel.scene_link("poster-7")
        assert url and url.startswith("http")
        openid = env.follower(language="en")
        result = await env.sim.scan(openid, "poster-7")  # not following yet: a subscribe with the scene
        assert result.reply["content"].startswith("Welcome!")


@pytest.mark.timing
async def test_a_follow_is_answered_within_the_deadline_even_when_user_info_is_slow(
        make_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_welcome = Router("slow-welcome")

    @slow_welcome.on(Kind.FOLLOW, priority=500)
    async def welcome(msg: Inbound, ctx: Context) -> list[Reply]:
        await asyncio.sleep(3.9)
        return [TextReply("welcome, slowly")]

    async with make_env(routers=[slow_welcome]) as env:
        original = env.channel.api.user_info

        async def slow_user_info(openid: str, **kwargs: Any) -> Any:
            await asyncio.sleep(0.9)
            return await original(openid, **kwargs)

        monkeypatch.setattr(env.channel.api, "user_info", slow_user_info)
        openid = env.follower(language="en")
        result = await env.sim.follow(openid)
        assert result.attempts == 1 and result.latency < 5.0
