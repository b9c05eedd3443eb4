"""The Telegram channel end to end over loopback: polling PTB, real dispatcher and database, the simulator."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot import Kind, Router, TextReply
from bot.i18n import default_catalogs

from .conftest import Rig, RigFactory, eventually

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")


def tr(locale: str, message: str) -> str:
    return default_catalogs().gettext(locale, message)


WELCOME = "Welcome! Thanks for following us. Ask me anything, or pick one:"
NOT_UNDERSTOOD = "Sorry, I did not understand that. Send /help to see what I can do."
MEDIA = "Thanks! I can only read text for now. Send /help to see what I can do."


async def test_deep_link_start_attributes_the_follower_to_the_scene(rig: Rig):
    user = rig.user(language_code="en-US")
    rig.sim.start(user, "campaign-x")
    [welcome] = await rig.replies(user, 1)
    assert welcome["text"] == WELCOME
    follower = await rig.follower(user)
    assert follower.first_source == "campaign-x" and follower.following
    assert follower.display_name == "Test User"


async def test_button_flow_answers_the_callback_and_replies(rig: Rig):
    user = rig.user(language_code="en")
    rig.sim.start(user)
    [welcome] = await rig.replies(user, 1)
    rows = welcome["reply_markup"]["inline_keyboard"]
    assert [(b["text"], b["callback_data"]) for row in rows for b in row] == [
        ("Help", "help"), ("中文 / English", "lang")]
    rig.sim.press_button(user, welcome["message_id"], "help")
    sent = await rig.replies(user, 2)
    assert sent[1]["text"].startswith("Here is what I can do:")
    await rig.sim.wait_for(lambda: len(rig.sim.answered_callbacks) == 1, timeout=5)
    assert all(q["answered"] for q in rig.sim.callback_queries.values())


async def test_language_from_hint_and_from_the_script(rig: Rig):
    zh, en, unknown = rig.user(language_code="zh-hans"), rig.user(language_code="en-US"), rig.user(language_code=None)
    rig.sim.send_text(zh, "anything new?")
    rig.sim.send_text(en, "anything new?")
    rig.sim.send_text(unknown, "你好，请问几点开门")
    assert (await rig.replies(zh, 1))[0]["text"] == tr("zh_Hans", NOT_UNDERSTOOD)
    assert (await rig.replies(en, 1))[0]["text"] == NOT_UNDERSTOOD
    assert (await rig.replies(unknown, 1))[0]["text"] == tr("zh_Hans", NOT_UNDERSTOOD)
    assert tr("zh_Hans", NOT_UNDERSTOOD) != NOT_UNDERSTOOD


async def test_zh_user_gets_the_welcome_and_buttons_in_chinese(rig: Rig):
    user = rig.user(language_code="zh-hans")
    rig.sim.start(user)
    [welcome] = await rig.replies(user, 1)
    assert welcome["text"] == tr("zh_Hans", WELCOME) != WELCOME
    assert welcome["reply_markup"]["inline_keyboard"][0][0]["text"] == tr("zh_Hans", "Help")


async def test_photo_sticker_and_voice_get_the_polite_answer(rig: Rig):
    photo, sticker, voice = (rig.user(language_code="zh-hans") for _ in range(3))
    rig.sim.send_photo(photo, caption="look")
    rig.sim.send_sticker(sticker)
    rig.sim.send_voice(voice)
    for user in (photo, sticker, voice):
        assert [m["text"] for m in await rig.replies(user, 1)] == [tr("zh_Hans", MEDIA)]
    async with rig.harness.sessions() as session:
        from sqlalchemy import select

        from bot.storage.models import Follower, Message
        kinds = dict((await session.execute(select(Follower.external_id, Message.kind).join(
            Follower, Follower.id == Message.follower_id).where(Message.direction == "in"))).all())
    assert kinds == {str(photo): str(Kind.IMAGE), str(sticker): str(Kind.UNKNOWN), str(voice): str(Kind.VOICE)}


async def test_a_5000_character_reply_is_split_in_two_messages(make_rig: RigFactory):
    words = " ".join(f"word{i:04d}" for i in range(560))  # 5,039 characters
    router = Router("long")

    @router.on(Kind.TEXT, priority=500)
    async def long_reply(msg, ctx):
        return [TextReply(words)]

    rig = await make_rig(routers=[router])
    user = rig.user()
    rig.sim.send_text(user, "tell me everything")
    first, second = await rig.replies(user, 2)
    assert len(words) > 5000 and len(first["text"]) <= 4096 and len(second["text"]) <= 4096
    assert f"{first['text']} {second['text']}" == words  # cut at a space, nothing lost
    [row] = await rig.outbound(user)
    await eventually(lambda: _status(rig, user, "sent"))


async def _status(rig: Rig, user: int, status: str) -> bool:
    return all(m.status == status for m in await rig.outbound(user))


async def test_commands_are_registered_in_english_and_chinese(rig: Rig):
    english = rig.sim.get_commands()
    chinese = rig.sim.get_commands(language_code="zh")
    assert [c["command"] for c in english] == ["start", "help", "lang"] == [c["command"] for c in chinese]
    assert english[1]["description"] == "What this bot can do"
    assert chinese[1]["description"] == tr("zh_Hans", "What this bot can do") != "What this bot can do"


async def test_a_long_button_payload_travels_as_a_token_and_comes_back(make_rig: RigFactory):
    from bot import Button, ButtonsReply

    long_payload = "offer:" + "x" * 80
    router = Router("long-buttons")
    pressed: list[str | None] = []

    @router.on(Kind.TEXT, priority=500)
    async def offer(msg, ctx):
        return [ButtonsReply("Pick", (Button("Claim", long_payload),))]

    @router.on(Kind.CLICK, priority=500)
    async def claim(msg, ctx):
        pressed.append(msg.payload)
        return [TextReply("claimed")]

    rig = await make_rig(routers=[router])
    user = rig.user()
    rig.sim.send_text(user, "offers?")
    [sent] = await rig.replies(user, 1)
    data = sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    assert data.startswith("#~") and len(data.encode()) <= 64
    rig.channel._long_payloads.clear()  # as after a restart: found again in the stored message
    rig.sim.press_button(user, sent["message_id"], data)
    await rig.replies(user, 2)
    assert pressed == [long_payload]


async def test_qr_reply_is_a_photo_of_the_deep_link_and_scene_link_is_the_deep_link(make_rig: RigFactory):
    from bot import QrReply

    router = Router("qr")

    @router.on(Kind.TEXT, priority=500)
    async def share(msg, ctx):
        return [QrReply("spring-2025", caption="Share this with a friend")]

    rig = await make_rig(routers=[router])
    assert await rig.channel.scene_link("spring-2025") == "https://t.me/engagebot_demo_bot?start=spring-2025"
    assert await rig.channel.scene_link("not a scene") is None
    user = rig.user()
    rig.sim.send_text(user, "share")
    [sent] = await rig.replies(user, 1)  # a photo of the QR, the caption and the link under it
    assert (sent["method"], sent["caption"]) == (
        "sendPhoto", "Share this with a friend\nhttps://t.me/engagebot_demo_bot?start=spring-2025")


async def test_group_messages_are_ignored(rig: Rig):
    user = rig.user()
    group = rig.sim.add_group()
    rig.sim.send_text(user, "hello group", chat_id=group)
    rig.sim.send_text(user, "hello bot")
    await rig.replies(user, 1)
    assert rig.sim.sent(group) == [] and await rig.count_messages() == 2  # the private one, in and out


async def test_a_bot_api_still_unreachable_after_a_second_is_a_warning(make_rig: RigFactory, caplog):
    rig = await make_rig(start=False)
    await rig.channel.start()
    await asyncio.sleep(0.5)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # the embedded simulator's moment
    await asyncio.sleep(1.6)
    assert [r for r in caplog.records
            if r.levelno == logging.WARNING and r.getMessage() == "telegram not reachable, retrying"]
    await rig.serve()
    await rig.channel.wait_ready(5)


async def test_connects_with_backoff_once_the_bot_api_is_reachable(make_rig: RigFactory, caplog):
    caplog.set_level(logging.INFO, "engagebot.telegram")  # the first second's misses are INFO, later ones WARNING
    rig = await make_rig(start=False)
    await rig.channel.start()  # nothing listens yet: getMe fails and is retried
    await asyncio.sleep(0.3)
    assert not rig.channel.ready.is_set()
    assert "telegram not reachable, retrying" in caplog.text and rig.config.token not in caplog.text
    await rig.serve()
    await rig.channel.wait_ready(5)
    user = rig.user()
    rig.sim.send_text(user, "hello")
    await rig.replies(user, 1)
