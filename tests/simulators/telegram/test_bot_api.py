"""python-telegram-bot 22 against the simulator: identity, sending, editing, callbacks, commands, files, errors."""

from __future__ import annotations

import datetime as dtm
import time

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter

from .conftest import make_bot


async def test_get_me_through_initialize(sim, bot):
    assert bot.username == "engagebot_demo_bot"
    assert bot.id == 123456
    me = await bot.get_me()
    assert me.is_bot and me.can_join_groups
    assert [c.method for c in sim.calls] == ["getMe", "getMe"]


async def test_wrong_token_is_unauthorized(sim, base):
    other = make_bot(sim, base, token="999:WRONG")
    with pytest.raises(InvalidToken):
        await other.initialize()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/bot999:WRONG/getMe") as resp:
            assert resp.status == 401
            assert await resp.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_send_message_with_inline_keyboard_is_recorded(sim, bot, user):
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="yes"),
                                    InlineKeyboardButton("Site", url="https://example.com")]])
    msg = await bot.send_message(user, "<b>Hello</b> 你好", parse_mode=ParseMode.HTML, reply_markup=markup)
    assert msg.message_id == 1 and msg.chat.id == user and msg.from_user.id == bot.id
    assert msg.text == "Hello 你好"
    assert msg.entities[0].type == "bold" and msg.entities[0].length == 5
    assert msg.reply_markup.inline_keyboard[0][0].callback_data == "yes"
    [sent] = sim.sent(user)
    assert sent["text"] == "Hello 你好" and sent["parse_mode"] == "HTML"
    assert sent["reply_markup"]["inline_keyboard"][0][1]["url"] == "https://example.com"
    call = sim.calls[-1]
    assert call.method == "sendMessage" and call.params["chat_id"] == user
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["text"] == "Yes"
    second = await bot.send_message(user, "again", reply_parameters=telegram.ReplyParameters(msg.message_id))
    assert second.message_id == 2 and second.reply_to_message.message_id == 1


async def test_bad_requests_are_telegram_like(sim, bot, user):
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(user, "x" * 4097)
    await bot.send_message(user, "x" * 4096)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(user, "")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(42, "hi")
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(user, "1 <2", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)reserved"):
        await bot.send_message(user, "Price: 3.50", parse_mode=ParseMode.MARKDOWN_V2)
    assert len(sim.sent(user)) == 1
    assert [e["status"] for e in sim.errors] == [400] * 5


async def test_unknown_method_is_404(sim, base):
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/bot{sim.token}/sendTelepathy") as resp:
            assert resp.status == 404
            assert await resp.json() == {"ok": False, "error_code": 404, "description": "Not Found: method not found"}


async def test_json_form_and_query_bodies_are_all_understood(sim, base, user):
    async with aiohttp.ClientSession() as http:
        url = f"{base}/bot{sim.token}/sendMessage"
        kb = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
        async with http.post(url, json={"chat_id": user, "text": "json", "reply_markup": kb}) as resp:
            assert (await resp.json())["result"]["reply_markup"] == kb
        import json as _json
        async with http.post(url, data={"chat_id": str(user), "text": "form", "reply_markup": _json.dumps(kb)}) as resp:
            assert (await resp.json())["ok"]
        async with http.get(url, params={"chat_id": str(user), "text": "query"}) as resp:
            assert (await resp.json())["ok"]
    assert [m["text"] for m in sim.sent(user)] == ["json", "form", "query"]
    assert all(m["reply_markup"] == kb for m in sim.sent(user)[:2])


async def test_blocked_chat_is_forbidden(sim, bot, user):
    sim.block(user)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(user, "still there?")
    sim.unblock(user)
    await bot.send_message(user, "welcome back")
    stranger = sim.add_user(first_name="Never Started")
    with pytest.raises(Forbidden, match="(?i)can't initiate conversation"):
        await bot.send_message(stranger, "hi")


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_injected_429_raises_retry_after(sim, bot, user):
    sim.inject_429(2, retry_after=7, method="sendMessage", chat_id=user)
    for _ in range(2):
        with pytest.raises(RetryAfter) as info:
            await bot.send_message(user, "hi")
        retry = info.value.retry_after
        assert (retry.total_seconds() if isinstance(retry, dtm.timedelta) else retry) == 7
    await bot.send_message(user, "hi")
    assert len(sim.sent(user)) == 1
    sim.inject_error(502, "Bad Gateway", method=None)
    with pytest.raises(NetworkError):
        await bot.get_me()


async def test_response_delay(sim, bot):
    sim.response_delay(0.3, method="getMe")
    started = time.monotonic()
    await bot.get_me()
    assert time.monotonic() - started >= 0.3
    sim.response_delay(0, method="getMe")


async def test_edit_and_answer_callback(sim, bot, user):
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Claim", callback_data="claim:1")]])
    msg = await bot.send_message(user, "Offer", reply_markup=markup)
    update = sim.press_button(user, msg.message_id, "claim:1")
    query_id = update["callback_query"]["id"]
    assert update["callback_query"]["message"]["message_id"] == msg.message_id
    assert await bot.answer_callback_query(query_id, text="Claimed!")
    assert sim.answered_callbacks == [query_id]
    assert sim.callback_queries[query_id]["answer"]["text"] == "Claimed!"
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await bot.answer_callback_query(query_id)
    edited = await bot.edit_message_text("Offer claimed", chat_id=user, message_id=msg.message_id)
    assert edited.text == "Offer claimed" and edited.reply_markup is None and edited.edit_date
    assert sim.sent(user)[0]["text"] == "Offer claimed" and sim.sent(user)[0]["edited"]
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Offer claimed", chat_id=user, message_id=msg.message_id)
    with pytest.raises(ValueError):
        sim.press_button(user, msg.message_id, "no-such-button")


async def test_commands_are_stored_per_language(sim, bot):
    await bot.set_my_commands([("start", "Start"), ("help", "Help")])
    await bot.set_my_commands([("start", "开始"), ("help", "帮助")], language_code="zh")
    zh = await bot.get_my_commands(language_code="zh")
    assert [(c.command, c.description) for c in zh] == [("start", "开始"), ("help", "帮助")]
    assert [c["description"] for c in sim.get_commands("")] == ["Start", "Help"]
    with pytest.raises(BadRequest, match="(?i)LANG_CODE_INVALID"):
        await bot.set_my_commands([("start", "开始")], language_code="zh-hans")
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("Start", "x")])
    await bot.delete_my_commands(language_code="zh")
    assert sim.get_commands("zh") == []


async def test_photo_upload_url_and_file_download(sim, bot, user):
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    msg = await bot.send_photo(user, png, caption="a <i>picture</i>", parse_mode=ParseMode.HTML)
    assert msg.caption == "a picture" and msg.photo
    sent = sim.sent(user)[0]
    assert sent["photo"]["size"] == len(png) and sent["caption"] == "a picture"
    assert sim.calls[-1].params["photo"]["upload"]
    await bot.send_photo(user, "https://example.com/p.jpg")
    assert sim.sent(user)[1]["photo"] == "https://example.com/p.jpg"
    await bot.send_photo(user, msg.photo[-1].file_id)  # a file_id Telegram already knows
    with pytest.raises(BadRequest, match="(?i)wrong file identifier"):
        await bot.send_photo(user, "not-a-file")
    tg_file = await bot.get_file(msg.photo[-1].file_id)
    assert bytes(await tg_file.download_as_bytearray()) == png
    assert await bot.send_chat_action(user, "typing")
    doc = await bot.send_document(user, b"hello", filename="hello.txt")
    assert doc.document.file_name == "hello.txt"
