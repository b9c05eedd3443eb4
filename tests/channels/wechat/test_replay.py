"""Issue 8, point 2: WeChat safe mode cannot be bypassed and a signature cannot be replayed.

Each test plays the attack over real HTTP on loopback, against the adapter on SQLite (or
PostgreSQL with ENGAGEBOT_TEST_DATABASE_URL): the callback URL's (timestamp, nonce, signature) is
what an attacker finds in an access log.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.channels.replay import ReplayGuard
from bot.core.clock import utcnow
from bot.errors import PayloadError, ReplayError
from bot.storage.engine import create_engine
from bot.storage.migrate import upgrade
from bot.storage.models import Follower, Message, SeenRequest
from bot.storage.replay import ReplayLedger, Seen
from tests.support.wechat import post, reason, signed_query, text_xml

from .conftest import TOKEN

EN_FALLBACK = "Sorry, I did not understand that. Send /help to see what I can do."


async def _stored(env: Any) -> tuple[int, int]:
    return await env.count(Message), await env.count(Follower)


# --- safe mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encrypt_type", [None, "raw"])
async def test_plaintext_body_to_a_safe_mode_account_is_refused_and_nothing_stored(
        make_env: Any, encrypt_type: str | None) -> None:
    async with make_env(safe=True) as env, aiohttp.ClientSession() as http:
        query = signed_query(TOKEN)
        if encrypt_type:
            query["encrypt_type"] = encrypt_type
        status, answer = await post(http, f"{env.bot_url}/wechat", query, text_xml("oVictim", "hotpot", msg_id=1))
        assert status == 400
        assert "plaintext" in reason(answer)
        assert await _stored(env) == (0, 0)
        # The platform's own (encrypted) callbacks still go through.
        openid = await env.following(language="en")
        assert (await env.sim.send_text(openid, "anything")).reply == {"type": "text", "content": EN_FALLBACK}


async def test_allow_plaintext_takes_plaintext_during_a_migration_and_still_takes_safe_mode(make_env: Any) -> None:
    async with make_env(safe=True, config_overrides={"allow_plaintext": True}) as env, \
            aiohttp.ClientSession() as http:
        status, answer = await post(http, f"{env.bot_url}/wechat", signed_query(TOKEN),
                                    text_xml("oPlain", "hello", msg_id=5))
        assert status == 200 and _content(answer)
        openid = await env.following(language="en")
        assert (await env.sim.send_text(openid, "anything")).reply == {"type": "text", "content": EN_FALLBACK}
        assert await env.count(Message, Message.direction == "in") == 3  # plaintext, follow, safe-mode text


# --- the timestamp window ----------------------------------------------------------------------


# 330 s, not 301: the request and the server's clock read are a moment apart, more on a loaded machine.
@pytest.mark.parametrize("age", [time.time() - 1_500_000_000, 330, -330], ids=["2017", "5min-ago", "5min-ahead"])
async def test_a_signed_callback_outside_the_window_is_refused_403_and_nothing_stored(
        make_env: Any, age: float) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        query = signed_query(TOKEN, timestamp=int(time.time() - age))
        status, answer = await post(http, f"{env.bot_url}/wechat", query, text_xml("oVictim", "hotpot", msg_id=2))
        assert status == 403 and "timestamp" in reason(answer)
        assert await _stored(env) == (0, 0)
        async with http.get(f"{env.bot_url}/wechat", params={**query, "echostr": "echo"}) as resp:
            assert resp.status == 403  # the URL check is held to the same window


async def test_a_callback_inside_the_window_is_taken(make_env: Any) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        query = signed_query(TOKEN, timestamp=int(time.time()) - 280)
        status, answer = await post(http, f"{env.bot_url}/wechat", query, text_xml("oLate", "hi", msg_id=3))
        assert status == 200 and "<Content>" in answer


async def test_the_window_is_a_setting(make_env: Any) -> None:
    async with make_env(config_overrides={"max_clock_skew": 30}) as env, aiohttp.ClientSession() as http:
        query = signed_query(TOKEN, timestamp=int(time.time()) - 60)
        status, _answer = await post(http, f"{env.bot_url}/wechat", query, text_xml("oLate", "hi", msg_id=4))
        assert status == 403


# --- the replay cache --------------------------------------------------------------------------


async def test_a_signature_replayed_with_another_body_is_refused_and_nothing_stored(make_env: Any) -> None:
    """A forged "hotpot" from someone else's openid, under a signature lifted from an access log."""
    async with make_env() as env, aiohttp.ClientSession() as http:
        url = f"{env.bot_url}/wechat"
        query = signed_query(TOKEN)
        status, answer = await post(http, url, query, text_xml("oAlice", "hello", msg_id=10))
        assert status == 200 and "<Content>" in answer
        before = await _stored(env)
        for forged in (text_xml("oBob", "hotpot", msg_id=11),  # someone else, another message
                       text_xml("oAlice", "hotpot", msg_id=10),  # the same message id, another text
                       text_xml("oAlice", "hotpot", msg_id=12)):
            status, answer = await post(http, url, query, forged)
            assert status == 403 and "signature already used" in reason(answer)
        # The signature is compared case-insensitively: upper-case hex is the same signature.
        upper = {**query, "signature": query["signature"].upper()}
        status, _answer = await post(http, url, upper, text_xml("oBob", "hotpot", msg_id=13))
        assert status == 403
        assert await _stored(env) == before
        assert await env.count(Follower, Follower.external_id == "oBob") == 0


async def test_a_platform_retry_with_the_same_signature_and_body_gets_the_stored_reply(make_env: Any) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        url, query, body = f"{env.bot_url}/wechat", signed_query(TOKEN), text_xml("oRetry", "hello", msg_id=20)
        first = await post(http, url, query, body)
        again = await post(http, url, query, body)
        assert first[0] == again[0] == 200
        assert _content(first[1]) and _content(first[1]) == _content(again[1])
        assert await env.count(Message, Message.direction == "in") == 1


async def test_the_replay_cache_is_shared_by_every_instance(make_env: Any) -> None:
    """Two servers on one database: a signature used on one is refused with another body on the other."""
    async with make_env() as one, make_env() as two, aiohttp.ClientSession() as http:
        query, body = signed_query(TOKEN), text_xml("oShared", "hello", msg_id=30)
        first = await post(http, f"{one.bot_url}/wechat", query, body)
        assert first[0] == 200
        status, _answer = await post(http, f"{two.bot_url}/wechat", query, text_xml("oEve", "hotpot", msg_id=31))
        assert status == 403
        retry = await post(http, f"{two.bot_url}/wechat", query, body)  # the platform retrying elsewhere
        assert retry[0] == 200 and _content(retry[1]) == _content(first[1]) != None  # noqa: E711
        assert await one.count(Message, Message.direction == "in") == 1
        assert await one.count(Follower, Follower.external_id == "oEve") == 0


async def test_signatures_are_kept_for_the_window_then_pruned(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    ledger = ReplayLedger(engine, prune_every=0)
    try:
        now = utcnow()
        assert await ledger.admit(Seen("wechat:default", "a" * 64, "h1", now - timedelta(seconds=1)))
        assert await ledger.admit(Seen("wechat:default", "b" * 64, "h2", now + timedelta(seconds=300)))
        assert not await ledger.admit(Seen("wechat:default", "b" * 64, "other", now + timedelta(seconds=300)))
        assert await ledger.admit(Seen("wechat:other", "b" * 64, "other", now + timedelta(seconds=300)))
        async with engine.connect() as conn:
            keys = sorted((await conn.execute(select(SeenRequest.scope, SeenRequest.key))).all())
        assert keys == [("wechat:default", "b" * 64), ("wechat:other", "b" * 64)]  # the expired one is gone
    finally:
        await ledger.close()
        await engine.dispose()


async def test_weibo_millisecond_timestamps_get_the_same_window_and_cache(database_url: str) -> None:
    engine = create_engine(database_url)
    await upgrade(engine)
    now = 1_700_000_000.0
    guard = ReplayGuard(ReplayLedger(engine), scope="weibo:brand", max_skew=300, units_per_second=1000,
                        clock=lambda: now)
    try:
        assert guard.check_window("1700000299000") == pytest.approx(1_700_000_299)
        for stale in ("1699999699000", "1700000301000", "1700000000"):  # seconds are 1970 in milliseconds
            with pytest.raises(ReplayError):
                guard.check_window(stale)
        for malformed in ("", "17e11", "١٧٠٠٠٠٠٠٠٠٠٠٠", "1" * 17):
            with pytest.raises(PayloadError):
                guard.check_window(malformed)
        await guard.check(timestamp="1700000000123", nonce="n1", signature="ab" * 20, body=b'{"text": "hi"}').wait()
        await guard.check(timestamp="1700000000123", nonce="n1", signature="ab" * 20, body=b'{"text": "hi"}').wait()
        with pytest.raises(ReplayError):
            await guard.check(timestamp="1700000000123", nonce="n1", signature="ab" * 20, body=b'{"text": "x"}').wait()
        async with engine.connect() as conn:
            expires = (await conn.execute(select(SeenRequest.expires_at))).scalar_one()
        assert expires.timestamp() == pytest.approx(1_700_000_300.123)
    finally:
        await guard.ledger.close()
        await engine.dispose()


def _content(answer: str) -> str | None:
    import defusedxml.ElementTree as ET

    return ET.fromstring(answer).findtext("Content")


async def test_seen_requests_table_counts_one_row_per_signature(make_env: Any) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        for i in range(3):
            assert (await post(http, f"{env.bot_url}/wechat", signed_query(TOKEN),
                               text_xml("oCount", f"hi {i}", msg_id=40 + i)))[0] == 200
        async with env.bot.sessions() as s:
            assert await s.scalar(select(func.count()).select_from(SeenRequest)) == 3
