"""Callbacks to a fake bot over loopback: signatures, safe mode, retries, reply parsing, errors."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.simulators.wechat import WECHAT_ERROR_TEXT, ManualClock, WeChatSimulator

from .conftest import (
    ACCOUNT,
    AES_KEY,
    APP_ID,
    TOKEN,
    BotCrypto,
    FakeBot,
    get_token,
    make_sim,
    sha1_sign,
    start_bot,
    text_reply,
)


def news_reply(to: str, items: int = 1, count: int | None = None) -> str:
    item = (
        "<item><Title><![CDATA[Offer]]></Title><Description><![CDATA[10% off]]></Description>"
        "<PicUrl><![CDATA[https://example.com/p.png]]></PicUrl><Url><![CDATA[https://example.com/o]]></Url></item>"
    )
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{ACCOUNT}]]></FromUserName>"
        f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[news]]></MsgType>"
        f"<ArticleCount>{items if count is None else count}</ArticleCount><Articles>{item * items}</Articles></xml>"
    )


async def test_text_is_signed_and_the_passive_reply_lands_in_the_timeline(sim: WeChatSimulator, bot: FakeBot) -> None:
    oid = sim.add_follower(following=True)
    result = await sim.send_text(oid, "你好 <b>&]]>")
    assert result.ok and result.attempts == 1 and result.reply == {"type": "text", "content": "echo: 你好 <b>&]]>"}
    (req,) = bot.requests
    q = req["query"]
    assert q["signature"] == sha1_sign(TOKEN, q["timestamp"], q["nonce"]) and q["openid"] == oid
    assert "encrypt_type" not in q
    f = req["fields"]
    assert (f["ToUserName"], f["FromUserName"], f["MsgType"]) == (ACCOUNT, oid, "text")
    assert f["CreateTime"] == str(int(sim.clock())) and int(f["MsgId"]) == result.msg_id
    assert [(e["direction"], e["source"], e["content"]) for e in sim.timeline(oid)] == [
        ("in", "user", "你好 <b>&]]>"),
        ("out", "passive", "echo: 你好 <b>&]]>"),
    ]


async def test_msg_ids_are_unique_and_increasing(sim: WeChatSimulator, bot: FakeBot) -> None:
    oid = sim.add_follower(following=True)
    ids = [(await sim.send_text(oid, str(i))).msg_id for i in range(3)]
    assert ids == sorted(set(ids)) and all(0 < i < 2**63 for i in ids)


async def test_events_carry_scene_keys_and_tickets(
    sim: WeChatSimulator, bot: FakeBot, api: TestClient
) -> None:
    token = await get_token(api)
    r = await api.post("/cgi-bin/qrcode/create", params={"access_token": token},
                       json={"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "spring"}}})
    ticket = (await r.json())["ticket"]
    oid = sim.add_follower()
    await sim.follow(oid, "spring")
    await sim.scan(oid, "spring")
    await sim.click(oid, "HELP")
    await sim.view(oid, "https://example.com/")
    await sim.unfollow(oid)
    await sim.scan(oid, ticket=ticket)  # not following: a scan is a subscribe
    got = [(r["fields"]["Event"], r["fields"].get("EventKey"), r["fields"].get("Ticket")) for r in bot.requests]
    assert got == [
        ("subscribe", "qrscene_spring", ticket),
        ("SCAN", "spring", ticket),
        ("CLICK", "HELP", None),
        ("VIEW", "https://example.com/", None),
        ("unsubscribe", None, None),
        ("subscribe", "qrscene_spring", ticket),
    ]
    # the reply to unsubscribe is not shown; the others are
    assert len([e for e in sim.replies(oid) if e["source"] == "passive"]) == 5


@pytest.mark.parametrize("mode", ["safe", "compat"])
async def test_encrypted_callbacks_decrypt_and_encrypted_replies_are_read(clock: ManualClock, mode: str) -> None:
    sim = make_sim(clock, aes_key=AES_KEY, encoding_mode=mode)
    bot = FakeBot(crypto=BotCrypto(AES_KEY, APP_ID))
    server = await start_bot(bot)
    sim.callback_url = bot.url
    try:
        oid = sim.add_follower(following=True)
        result = await sim.send_text(oid, "secret")
        assert result.reply == {"type": "text", "content": "echo: secret"}, result.error
        req = bot.requests[0]
        assert req["query"]["encrypt_type"] == "aes" and req["query"]["msg_signature"]
        assert req["fields"]["Content"] == "secret" and req["fields"]["FromUserName"] == oid
        if mode == "safe":
            assert set(req["outer"]) == {"ToUserName", "Encrypt"} and req["outer"]["ToUserName"] == ACCOUNT
        else:
            assert req["outer"]["Content"] == "secret" and "Encrypt" in req["outer"]
        bot.encrypt_replies = False  # a plaintext reply: an error in safe mode, fine in compat mode
        plain = await sim.send_text(oid, "again")
        assert (plain.error is not None) == (mode == "safe")
    finally:
        await server.close()
        await sim.close()


async def test_slow_bot_is_retried_with_the_same_message_and_late_answer_ignored(clock: ManualClock) -> None:
    sim = make_sim(clock, callback_timeout=0.3)
    bot = FakeBot(delays=[1.0], answer=lambda f, n: text_reply(f["FromUserName"], f"try {n}"))
    server = await start_bot(bot)
    sim.callback_url = bot.url
    try:
        oid = sim.add_follower(following=True)
        result = await sim.send_text(oid, "slow")
        assert result.attempts == 2 and result.reply == {"type": "text", "content": "try 1"}
        first, second = (r["fields"] for r in bot.requests)
        assert (first["MsgId"], first["CreateTime"]) == (second["MsgId"], second["CreateTime"])
        assert 0.3 <= result.latency < 1.0
        await asyncio.sleep(0.8)  # the first try's late answer must not show up
        assert [e["content"] for e in sim.replies(oid)] == ["try 1"]
    finally:
        await server.close()
        await sim.close()


async def test_three_failed_tries_show_the_wechat_error(clock: ManualClock) -> None:
    sim = make_sim(clock, callback_timeout=0.2)
    bot = FakeBot(answer=lambda f, n: web.Response(status=500))
    server = await start_bot(bot)
    sim.callback_url = bot.url
    try:
        oid = sim.add_follower(following=True)
        result = await sim.send_text(oid, "x")
        assert result.attempts == 3 and "HTTP 500" in result.error and result.reply is None
        assert sim.replies(oid)[-1]["content"] == WECHAT_ERROR_TEXT
        bot.delays = [0.5] * 6
        slow = await sim.send_text(oid, "y")
        assert slow.attempts == 3 and "no answer" in slow.error
    finally:
        await server.close()
        await sim.close()


async def test_unreachable_bot_is_an_error_not_an_exception(sim: WeChatSimulator) -> None:
    sim.callback_url = "http://127.0.0.1:9/wechat"
    oid = sim.add_follower(following=True)
    result = await sim.send_text(oid, "x")
    assert result.attempts == 3 and result.error and sim.replies(oid)[-1]["type"] == "error"


@pytest.mark.parametrize("body", [b"success", b""])
async def test_success_or_empty_means_no_reply(sim: WeChatSimulator, bot: FakeBot, body: bytes) -> None:
    bot.answer = lambda f, n: body
    oid = sim.add_follower(following=True)
    result = await sim.send_text(oid, "x")
    assert result.ok and result.acknowledged and result.reply is None and sim.replies(oid) == []


async def test_news_reply_is_parsed(sim: WeChatSimulator, bot: FakeBot) -> None:
    bot.answer = lambda f, n: news_reply(f["FromUserName"])
    oid = sim.add_follower(following=True)
    result = await sim.send_text(oid, "offer")
    assert result.reply == {"type": "news", "articles": [
        {"title": "Offer", "description": "10% off", "url": "https://example.com/o", "picurl": "https://example.com/p.png"}
    ]}


@pytest.mark.parametrize(
    "make_body",
    [
        lambda to: "not xml at all",
        lambda to: text_reply("o_somebody_else", "hi"),
        lambda to: text_reply(to, "hi").replace(ACCOUNT, "gh_other"),
        lambda to: text_reply(to, "hi").replace("[text]", "[image]"),
        lambda to: text_reply(to, "hi").replace("<Content><![CDATA[hi]]></Content>", ""),
        lambda to: news_reply(to, items=2),
        lambda to: news_reply(to, items=1, count=2),
        lambda to: '<!DOCTYPE xml [<!ENTITY x "y">]>' + text_reply(to, "&x;"),
        lambda to: text_reply(to, "x" * 2049),
    ],
    ids=["not-xml", "wrong-to", "wrong-from", "image", "no-content", "two-articles", "count-mismatch", "doctype", "too-long"],
)
async def test_malformed_reply_shows_the_wechat_error(sim: WeChatSimulator, bot: FakeBot, make_body) -> None:
    bot.answer = lambda f, n: make_body(f["FromUserName"])
    oid = sim.add_follower(following=True)
    result = await sim.send_text(oid, "x")
    assert result.attempts == 1 and result.reply is None and result.error.startswith("malformed reply")
    last = sim.timeline(oid)[-1]
    assert (last["direction"], last["source"], last["type"], last["content"]) == ("out", "system", "error", WECHAT_ERROR_TEXT)


async def test_bot_replies_later_through_custom_send(sim: WeChatSimulator, api: TestClient) -> None:
    """The slow-handler pattern: answer `success`, then use the customer-service API."""
    api_base = str(api.make_url(""))

    async def reply_later(openid: str) -> None:
        async with aiohttp.ClientSession() as http:
            params = {"grant_type": "client_credential", "appid": APP_ID, "secret": sim.app_secret}
            async with http.get(api_base + "/cgi-bin/token", params=params) as r:
                token = (await r.json())["access_token"]
            body = {"touser": openid, "msgtype": "text", "text": {"content": "done"}}
            async with http.post(api_base + "/cgi-bin/message/custom/send", params={"access_token": token}, json=body) as r:
                assert (await r.json())["errcode"] == 0

    tasks = []
    bot = FakeBot()

    def answer(fields: dict[str, str], n: int) -> str:
        tasks.append(asyncio.ensure_future(reply_later(fields["FromUserName"])))
        return "success"

    bot.answer = answer
    server = await start_bot(bot)
    sim.callback_url = bot.url
    try:
        oid = sim.add_follower(following=True)
        result = await sim.send_text(oid, "slow question")
        assert result.acknowledged
        (entry,) = await sim.wait_for_reply(oid, timeout=3)
        assert (entry["source"], entry["content"]) == ("custom", "done")
        await asyncio.gather(*tasks)
        with pytest.raises(TimeoutError):
            await sim.wait_for_reply(oid, count=2, timeout=0.1)
    finally:
        await server.close()


async def test_send_raw_and_verify_callback(sim: WeChatSimulator, bot: FakeBot) -> None:
    assert await sim.verify_callback()
    unsigned = await sim.send_raw(b"<xml/>", sign=False)
    assert unsigned.status == 403
    bot.answer = lambda f, n: "success"
    signed = await sim.send_raw(b"<xml><MsgType>text</MsgType></xml>")
    assert (signed.status, signed.body) == (200, b"success") and len(bot.requests) == 1
