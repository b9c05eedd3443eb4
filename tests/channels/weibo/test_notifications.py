"""A Weibo push that is the platform's news, not a fan's action, is recorded once and never answered."""

from __future__ import annotations

import asyncio

from bot.storage.models import Message, PlatformNotice

from .conftest import message, weibo_env

FAN = "6000000003"


async def test_an_event_weibo_adds_is_recorded_once_and_not_answered(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        assert (await env.text(FAN, "你好"))[0] == 200
        replies_before = await env.count(Message, Message.direction == "out")
        dms_before = len(env.fake.dms())
        doc = message(FAN, "event", data={"subtype": "card_expired"})

        first, retry = await env.push(doc), await env.push(doc)

        assert first == retry == (200, b"")  # an empty 200: nothing to say, inline or later
        await asyncio.sleep(0.2)
        assert await env.count(Message, Message.direction == "out") == replies_before
        assert len(env.fake.dms()) == dms_before
        assert await env.count(PlatformNotice, PlatformNotice.event == "card_expired") == 1
