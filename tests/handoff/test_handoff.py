"""Asking for a person, the bot's silence while queued or taken, take / reply / release, the queue's timeout."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.admin.handoff import (
    BACK_TO_BOT,
    ConversationNotFound,
    HandoffRefused,
    InboxInputError,
    QueueTimeoutSweeper,
)
from bot.core.clock import utcnow
from bot.core.follower import PERSON_WILL_ANSWER, HandoffState, handoff_state
from bot.core.inbound import Kind
from bot.errors import OutsideReplyWindow
from bot.i18n import default_catalogs
from bot.storage.models import Follower
from bot.storage.status import DeliveryStatus
from bot.testing import MOCK_CAPABILITIES
from tests.handoff.conftest import TIMEOUT, Desk, make_desk

CATALOGS = default_catalogs()
QUEUED_EN = "OK, I have asked a person from our team to answer you. Please wait here: they will reply soon."


def queued_text(locale: str) -> str:
    return CATALOGS.gettext(locale, QUEUED_EN)


def told_text(locale: str) -> str:
    return CATALOGS.gettext(locale, PERSON_WILL_ANSWER)


@pytest.mark.parametrize("words", ["人工", "客服", "转人工", "轉人工", "聯絡客服", "human", "Human!", " talk to a  human ",
                                   "AGENT", "/human", "/agent"])
async def test_asking_for_a_person_queues_the_follower(desk: Desk, words: str) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say(words)
    assert fan.texts == [queued_text("en")]
    row = await desk.follower_row("fan")
    assert (row.paused_by, row.handoff_told_at is not None) == ("queue", True)


async def test_a_menu_key_human_queues_too(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="zh-CN")
    await fan.click("human")
    assert fan.texts == [queued_text("zh_Hans")]
    assert (await desk.follower_row("fan")).paused_by == "queue"


@pytest.mark.parametrize("words", ["客服电话是多少", "I am not a human", "人工智能", "agent smith is here", "humans"])
async def test_a_word_inside_a_sentence_does_not_queue(desk: Desk, words: str) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say(words)
    assert fan.texts and fan.texts != [queued_text("en")]
    assert (await desk.follower_row("fan")).paused_by is None


async def test_queued_follower_is_told_once_in_their_language_and_the_bot_stays_silent(desk: Desk) -> None:
    fan = desk.harness.follower("hk-fan", language="zh-HK")
    await fan.say("hours")
    assert fan.texts == ["我們10:00至22:00營業。"]  # the rule answers before the handoff
    await fan.say("轉人工")
    assert fan.texts == [queued_text("zh_Hant")] and queued_text("zh_Hant") != QUEUED_EN
    for words in ("hours", "help", "人工", "/start"):
        assert await fan.say(words) == []  # no rule, no built-in handler, no second notice
    inbound = await desk.messages("hk-fan", "in")
    assert [m.text for m in inbound] == ["hours", "轉人工", "hours", "help", "人工", "/start"]


async def test_a_platform_retry_while_queued_is_stored_once(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("human")
    for _ in range(2):
        assert await desk.harness.channel.receive("fan", Kind.TEXT, "hours", message_id="same-id",
                                                  language_hint="en") == []
    assert [m.text for m in await desk.messages("fan", "in")] == ["human", "hours"]


async def test_take_reply_release_on_the_mock_channel(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id

    change = await desk.inbox.take(follower_id, "alice")
    assert (change.state, change.agent, change.changed, change.told) == (HandoffState.TAKEN, "alice", True, True)
    assert await fan.say("hours") == []  # taken: the rule does not answer, nor is the follower told twice
    await desk.sender.sweep_once()
    assert desk.sent_texts("fan") == [told_text("en")]

    queued = await desk.inbox.reply(follower_id, "alice", "Hi, Alice here. We open at ten.")
    assert await desk.sender.sweep_once() == 1
    assert desk.sent_texts("fan") == [told_text("en"), "Hi, Alice here. We open at ten."]
    out = [m for m in await desk.messages("fan", "out") if m.id == queued.message_id]
    assert [(m.status, m.sent_by) for m in out] == [(DeliveryStatus.SENT, "alice")]

    conversation = await desk.inbox.conversation(follower_id)
    assert [(m.direction, m.text, m.sent_by) for m in conversation.messages][-3:] == [
        ("out", told_text("en"), None), ("in", "hours", None), ("out", "Hi, Alice here. We open at ten.", "alice")]

    assert (await desk.inbox.release(follower_id, "alice")).state is HandoffState.BOT
    await fan.say("hours")
    assert fan.texts == ["We are open 10:00-22:00."]  # the bot answers again


async def test_take_after_the_follower_asked_tells_nothing_more(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("human")
    follower_id = (await desk.follower_row("fan")).id
    change = await desk.inbox.take(follower_id, "bob")
    assert (change.changed, change.told) == (True, False)
    assert await desk.sender.sweep_once() == 0
    assert await fan.say("are you there?") == []
    listed = await desk.inbox.conversations(state=HandoffState.TAKEN)
    assert [(c.follower_id, c.agent) for c in listed] == [(follower_id, "bob")]


async def test_another_agent_cannot_take_reply_or_release_without_force(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("human")
    follower_id = (await desk.follower_row("fan")).id
    await desk.inbox.take(follower_id, "alice")
    assert (await desk.inbox.take(follower_id, "alice")).changed is False  # taking twice is no change
    with pytest.raises(HandoffRefused, match="taken by agent 'alice'"):
        await desk.inbox.take(follower_id, "bob")
    with pytest.raises(HandoffRefused, match="taken by agent 'alice'"):
        await desk.inbox.reply(follower_id, "bob", "hello")
    with pytest.raises(HandoffRefused, match="taken by agent 'alice'"):
        await desk.inbox.release(follower_id, "bob")
    assert (await desk.inbox.release(follower_id, "bob", force=True)).changed is True
    assert (await desk.follower_row("fan")).paused_by is None


async def test_reply_needs_the_conversation_taken_and_some_text(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    with pytest.raises(HandoffRefused, match="take it first"):
        await desk.inbox.reply(follower_id, "alice", "hello")
    await desk.inbox.take(follower_id, "alice")
    for text, why in (("   ", "empty"), ("x" * 4001, "at most 4000")):
        with pytest.raises(InboxInputError, match=why):
            await desk.inbox.reply(follower_id, "alice", text)
    for agent in ("", "has space", "x" * 65, "名字"):
        with pytest.raises(InboxInputError, match="agent id"):
            await desk.inbox.take(follower_id, agent)
    with pytest.raises(ConversationNotFound):
        await desk.inbox.take(follower_id + 1000, "alice")


async def test_reply_outside_the_window_is_refused_with_the_reason(windowed_desk: Desk) -> None:
    desk = windowed_desk
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    await desk.inbox.take(follower_id, "alice")
    queued = await desk.inbox.reply(follower_id, "alice", "inside the window")
    assert queued.window.open and queued.window.closes_at is not None
    async with desk.harness.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == follower_id).values(
            last_action_at=utcnow() - timedelta(hours=49)))
    before = len(await desk.messages("fan", "out"))
    with pytest.raises(OutsideReplyWindow, match="outside the reply window; the follower must write first"):
        await desk.inbox.reply(follower_id, "alice", "too late")
    assert len(await desk.messages("fan", "out")) == before  # nothing written
    [summary] = await desk.inbox.conversations()
    assert (summary.window is not None, summary.window and summary.window.open) == (True, False)
    await fan.say("still there?")  # the follower writes: the window opens again
    assert fan.texts == []  # told at the take already (the window was open then): not again
    assert (await desk.inbox.reply(follower_id, "alice", "yes")).window.open


async def test_taken_while_the_window_is_closed_the_follower_is_told_with_their_next_message(
        windowed_desk: Desk) -> None:
    desk = windowed_desk
    fan = desk.harness.follower("fan", language="zh-TW")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    async with desk.harness.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == follower_id).values(
            last_action_at=utcnow() - timedelta(hours=49)))
    change = await desk.inbox.take(follower_id, "alice")
    assert (change.changed, change.told) == (True, False)
    await fan.say("有人嗎")
    assert fan.texts == [told_text("zh_Hant")]
    assert await fan.say("hours") == []


async def test_queued_past_the_timeout_goes_back_to_the_bot_told_in_their_language(desk: Desk) -> None:
    hant = desk.harness.follower("hant", language="zh-TW")
    en = desk.harness.follower("en", language="en")
    await hant.say("人工")
    await en.say("human")
    assert await desk.inbox.sweep_timeouts(now=utcnow() + TIMEOUT - timedelta(seconds=5)) == 0
    assert await desk.inbox.sweep_timeouts(now=utcnow() + TIMEOUT + timedelta(seconds=1)) == 2
    assert await desk.inbox.sweep_timeouts(now=utcnow() + TIMEOUT + timedelta(seconds=2)) == 0  # once
    await desk.sender.sweep_once()
    assert desk.sent_texts("hant") == [CATALOGS.gettext("zh_Hant", BACK_TO_BOT)]
    assert desk.sent_texts("en") == [BACK_TO_BOT]
    assert CATALOGS.gettext("zh_Hant", BACK_TO_BOT) != BACK_TO_BOT
    assert (await desk.follower_row("hant")).paused_by is None
    await en.say("hours")
    assert en.texts == ["We are open 10:00-22:00."]


async def test_the_timeout_leaves_taken_conversations_alone(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("human")
    await desk.inbox.take((await desk.follower_row("fan")).id, "alice")
    assert await desk.inbox.sweep_timeouts(now=utcnow() + TIMEOUT * 2) == 0
    assert (await desk.follower_row("fan")).paused_by == "agent:alice"


async def test_the_platform_desk_keeps_its_conversation(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    async with desk.harness.sessions() as s, s.begin():
        await s.execute(update(Follower).where(Follower.id == follower_id).values(
            paused_by="platform", paused_at=utcnow()))
    with pytest.raises(HandoffRefused, match="platform's own"):
        await desk.inbox.take(follower_id, "alice")
    assert await fan.say("hours") == []  # the platform's desk answers; the bot tells nothing either


async def test_conversations_newest_first_with_locale_state_and_window(windowed_desk: Desk) -> None:
    desk = windowed_desk
    for name, language, words in (("a", "en", "hello"), ("b", None, "你好"), ("c", "zh-HK", "人工")):
        await desk.harness.follower(name, language=language).say(words)
    listed = await desk.inbox.conversations()
    assert [(c.external_id, c.locale, c.state) for c in listed] == [
        ("c", "zh_Hant", HandoffState.QUEUED), ("b", "zh_Hans", HandoffState.BOT), ("a", "en", HandoffState.BOT)]
    assert all(c.window is not None and c.window.open and c.window.sends_left == 5 for c in listed)
    last = listed[0].last_message
    assert last is not None and (last.direction, last.text) == ("out", queued_text("zh_Hant"))
    assert [c.external_id for c in await desk.inbox.conversations(state=HandoffState.QUEUED)] == ["c"]
    assert [c.external_id for c in await desk.inbox.conversations(limit=1, offset=1)] == ["b"]
    assert await desk.inbox.conversations(channel="wechat") == []
    with pytest.raises(InboxInputError):
        await desk.inbox.conversations(limit=0)


async def test_the_sweeper_duty_sends_queued_followers_back_by_itself(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("human")
    sweeper = QueueTimeoutSweeper(desk.harness.sessions, catalogs=CATALOGS, timeout=timedelta(0),
                                  default_locale="zh_Hans", every=0.05)
    sweeper.start()
    try:
        for _ in range(100):
            if (await desk.follower_row("fan")).paused_by is None:
                break
            await asyncio.sleep(0.05)
    finally:
        await sweeper.stop()
    assert (await desk.follower_row("fan")).paused_by is None
    await desk.sender.sweep_once()
    assert desk.sent_texts("fan") == [BACK_TO_BOT]


async def test_bad_ids_filters_and_text_are_refused_or_cleaned_never_a_driver_error(desk: Desk) -> None:
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    for huge in (2**63, 10**23, 0, -1):
        with pytest.raises(InboxInputError, match="conversation"):
            await desk.inbox.take(huge, "alice")
        with pytest.raises(InboxInputError, match="conversation"):
            await desk.inbox.conversation(huge)
    with pytest.raises(InboxInputError, match="before"):
        await desk.inbox.conversation(follower_id, before=2**64)
    with pytest.raises(InboxInputError, match="offset"):
        await desk.inbox.conversations(offset=2**63)
    for channel in ("\udcff", "we chat", "", "x" * 65):
        with pytest.raises(InboxInputError, match="channel"):
            await desk.inbox.conversations(channel=channel)
    await desk.inbox.take(follower_id, "alice")
    queued = await desk.inbox.reply(follower_id, "alice", "hi \udcff\x00 there")  # lone surrogate, NUL
    [stored] = [m for m in await desk.messages("fan", "out") if m.id == queued.message_id]
    assert stored.text == "hi \ufffd\ufffd there"


async def test_a_reply_the_channel_would_cut_is_refused_with_its_limit(database_url: str) -> None:
    weibo_like = replace(MOCK_CAPABILITIES, max_text_length=300)
    wechat_like = replace(MOCK_CAPABILITIES, max_text_length=2048, text_length_in_bytes=True)
    for caps, text, why in ((weibo_like, "好" * 301, "301 characters; this channel shows at most 300"),
                            (wechat_like, "好" * 683, "2049 bytes in UTF-8; this channel shows at most 2048")):
        async for desk in make_desk(database_url, caps):
            fan = desk.harness.follower("fan", language="zh-CN")
            await fan.say("你好")
            follower_id = (await desk.follower_row("fan")).id
            await desk.inbox.take(follower_id, "alice")
            before = len(await desk.messages("fan", "out"))
            with pytest.raises(InboxInputError, match=why):
                await desk.inbox.reply(follower_id, "alice", text)
            assert len(await desk.messages("fan", "out")) == before
            await desk.inbox.reply(follower_id, "alice", text[:-1])  # at the limit: accepted whole


async def test_replies_still_waiting_count_against_the_windows_sends(windowed_desk: Desk) -> None:
    """WeChat allows 5 sends after a message: a sixth queued reply would end undeliverable, so it is refused now."""
    desk = windowed_desk
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    await desk.inbox.take(follower_id, "alice")  # its notice waits in the outbox too: one of the 5
    waiting = len([m for m in await desk.messages("fan", "out") if m.status == DeliveryStatus.PENDING])
    for i in range(5 - waiting):
        await desk.inbox.reply(follower_id, "alice", f"part {i}")
    with pytest.raises(OutsideReplyWindow):
        await desk.inbox.reply(follower_id, "alice", "one too many")


async def test_an_agents_take_committed_while_the_followers_ask_is_handled_stands(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower's "human" is read before alice's take commits and written after it: the message's
    write of the handoff columns is conditional on what it read, so alice keeps the conversation."""
    fan = desk.harness.follower("fan", language="en")
    await fan.say("hello")
    follower_id = (await desk.follower_row("fan")).id
    store = desk.harness.store
    read = store.load

    async def read_then_alice_takes(msg: Any) -> Any:
        loaded = await read(msg)
        if msg.text == "human":
            await desk.inbox.take(follower_id, "alice")  # commits between the message's read and its write
        return loaded

    monkeypatch.setattr(store, "load", read_then_alice_takes)
    await fan.say("human")
    row = await desk.follower_row("fan")
    assert (row.paused_by, handoff_state(row.paused_by)) == ("agent:alice", HandoffState.TAKEN)
    assert len(await desk.messages("fan", "in")) == 2  # the message itself is stored all the same
    await desk.inbox.reply(follower_id, "alice", "Alice here")  # and alice can answer
