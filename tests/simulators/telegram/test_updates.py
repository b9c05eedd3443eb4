"""Injected updates reach python-telegram-bot through getUpdates (offset, long poll) and a full Application."""

from __future__ import annotations

import asyncio
import time

import pytest
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import Conflict
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from .conftest import make_bot


async def test_get_updates_offset_and_parsing(sim, bot, user):
    sim.start(user, "promo42")
    sim.send_text(user, "hello")
    updates = await bot.get_updates(timeout=0)
    assert [type(u) for u in updates] == [Update, Update]
    first = updates[0]
    assert first.message.text == "/start promo42"
    assert first.message.entities[0].type == "bot_command" and first.message.entities[0].length == 6
    assert first.message.from_user.language_code == "zh-hans"
    assert first.effective_chat.type == "private" and first.effective_chat.id == user
    assert updates[1].update_id == first.update_id + 1 and updates[1].message.entities == ()
    # the offset confirms both; nothing is delivered twice
    assert await bot.get_updates(offset=updates[1].update_id + 1, timeout=0) == ()
    assert sim.updates == []


async def test_long_poll_returns_as_soon_as_an_update_arrives(sim, bot, user):
    msg = await bot.send_message(user, "Pick", reply_markup=InlineKeyboardMarkup(
        [[InlineKeyboardButton("A", callback_data="a")]]))

    async def press_later() -> None:
        await asyncio.sleep(0.2)
        sim.press_button(user, msg.message_id, "a")

    started = time.monotonic()
    task = asyncio.create_task(press_later())
    [update] = await bot.get_updates(timeout=5)
    await task
    assert 0.15 < time.monotonic() - started < 2
    query = update.callback_query
    assert query.data == "a" and query.message.message_id == msg.message_id and query.chat_instance
    assert query.from_user.id == user


async def test_block_unblock_and_media_updates(sim, bot, user):
    sim.block(user)
    sim.unblock(user)
    sim.send_photo(user, caption="look")
    sim.send_sticker(user)
    sim.send_voice(user)
    blocked, unblocked, photo, sticker, voice = await bot.get_updates(timeout=0, limit=10)
    assert blocked.my_chat_member.old_chat_member.status == "member"
    assert blocked.my_chat_member.new_chat_member.status == "kicked"
    assert blocked.my_chat_member.new_chat_member.user.id == bot.id
    assert unblocked.my_chat_member.new_chat_member.status == "member"
    assert photo.message.photo[-1].file_id and photo.message.caption == "look"
    assert sticker.message.sticker.emoji and voice.message.voice.file_id
    data = await (await bot.get_file(photo.message.photo[-1].file_id)).download_as_bytearray()
    assert bytes(data[:4]) == b"\x89PNG"


async def test_allowed_updates_and_limit(sim, bot, user):
    assert await bot.get_updates(timeout=0, allowed_updates=["message"]) == ()
    sim.send_text(user, "one")
    sim.block(user)  # my_chat_member is not allowed now: dropped
    sim.send_text(user, "two")  # auto-unblocks first (Telegram's "Restart"): also dropped
    updates = await bot.get_updates(timeout=0, limit=1)
    assert [u.message.text for u in updates] == ["one"]
    updates = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert [u.message.text for u in updates] == ["two"]
    assert [next(k for k in u if k != "update_id") for u in sim.dropped_updates] == ["my_chat_member"] * 2


async def test_a_second_poller_ends_the_first_with_conflict(sim, base, bot):
    """Two bot replicas polling the same token: Telegram ends the older long poll with 409."""
    replica = make_bot(sim, base)  # PTB serialises one Bot's getUpdates (pool of 1), so use a second Bot
    async with replica:
        first = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        assert await replica.get_updates(timeout=0) == ()
        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await first


async def test_application_polling_end_to_end(sim, base):
    """A real PTB Application polls the simulator, answers /start with a button, handles the press."""
    user = sim.add_user(first_name="Alice", language_code="en")

    async def on_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        payload = context.args[0] if context.args else "-"
        lang = update.effective_user.language_code
        await update.message.reply_text(f"welcome {payload} {lang}", reply_markup=InlineKeyboardMarkup(
            [[InlineKeyboardButton("Claim", callback_data="claim")]]))

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await update.callback_query.answer("done")
        await update.callback_query.edit_message_text("claimed")

    app = (Application.builder().token(sim.token).base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
           .build())
    app.add_handler(CommandHandler("start", on_start))
    app.add_handler(CallbackQueryHandler(on_press))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0, timeout=2)
    try:
        sim.start(user, "spring")
        [sent] = await sim.wait_for_messages(user, 1, timeout=5)
        assert sent["text"] == "welcome spring en"
        assert sent["reply_to_message_id"] is None
        sim.press_button(user, sent["message_id"], "claim")
        await sim.wait_for(lambda: sim.sent(user)[0]["text"] == "claimed", timeout=5)
        assert len(sim.answered_callbacks) == 1
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
    assert "deleteWebhook" in [c.method for c in sim.calls]
    assert sim.updates == []  # the updater confirmed everything on stop
