"""Bad input never crashes nor half-writes: odd text, unknown kinds, bad settings."""

from __future__ import annotations

from sqlalchemy import func, select

from bot import Kind
from bot.storage.models import Message
from bot.testing import BotHarness

EN_FALLBACK = "Sorry, I did not understand that. Send /help to see what I can do."


async def count_messages(bot: BotHarness) -> int:
    async with bot.sessions() as s:
        return await s.scalar(select(func.count()).select_from(Message))


async def test_empty_text_gets_a_gentle_answer(harness: BotHarness) -> None:
    f = harness.follower("empty", language="en")
    await f.say("")
    assert f.texts == ["Did you mean to send something? Send /help to see what I can do."]
    await f.say("   \n\t ")
    assert f.texts == ["Did you mean to send something? Send /help to see what I can do."]


async def test_100_kb_text_is_stored_whole_and_answered(harness: BotHarness) -> None:
    f = harness.follower("big", language="en")
    text = "价格" * 50_000
    await f.say(text)
    assert f.texts == [EN_FALLBACK]
    async with harness.sessions() as s:
        stored = await s.scalar(select(Message.text).where(Message.direction == "in"))
    assert stored == text


async def test_lone_surrogates_and_nul_are_replaced_not_crashed_on(harness: BotHarness) -> None:
    f = harness.follower("odd", language="en")
    await f.say("hi \ud800 there \x00 end \ud83d\ude00")
    assert f.texts == [EN_FALLBACK]
    async with harness.sessions() as s:
        stored = await s.scalar(select(Message.text).where(Message.direction == "in"))
    assert stored == "hi \ufffd there \ufffd end 😀"


async def test_every_kind_gets_an_answer_or_silence_without_error(harness: BotHarness) -> None:
    f = harness.follower("kinds", language="zh-hans")
    for kind in Kind:
        replies = await f.send(kind, text="", payload="x" * 2000)
        if kind in (Kind.UNFOLLOW, Kind.VIEW, Kind.NOTIFICATION):
            assert replies == []
        else:
            assert replies, kind
    assert await count_messages(harness) >= len(Kind) - 1  # a notification is a notice, not a message


async def test_unknown_payloads_and_huge_payloads_are_bounded(harness: BotHarness) -> None:
    f = harness.follower("payload", language="en")
    await f.click("no-such-button" * 100)
    assert f.texts == [EN_FALLBACK]
    async with harness.sessions() as s:
        payload = await s.scalar(select(Message.payload).where(Message.direction == "in"))
    assert len(payload) == 512
