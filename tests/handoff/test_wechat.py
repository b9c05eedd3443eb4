"""Handoff on WeChat over real HTTP: passive answers to the follower, the agent's reply through the custom
send API within WeChat's 48 hours, refused after them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.admin.inbox import Inbox
from bot.core.clock import utcnow
from bot.core.follower import PERSON_WILL_ANSWER
from bot.errors import OutsideReplyWindow
from bot.i18n import default_catalogs
from bot.storage.models import Follower

CATALOGS = default_catalogs()
QUEUED = "OK, I have asked a person from our team to answer you. Please wait here: they will reply soon."


async def test_an_agent_replies_on_wechat_within_48_hours_and_is_refused_after(make_env: Any) -> None:
    async with make_env() as env:
        async def deliver(channel: str, account: str, ids: Sequence[int]) -> None:
            assert (channel, account) == ("wechat", env.channel.account)
            await env.channel.outbox.deliver(ids)

        inbox = Inbox(env.bot.sessions, CATALOGS, {"wechat": env.channel.capabilities}, deliver=deliver)
        openid = await env.following(language="zh_CN")
        asked = await env.sim.send_text(openid, "转人工")
        assert asked.reply == {"type": "text", "content": CATALOGS.gettext("zh_Hans", QUEUED)}
        later = await env.sim.send_text(openid, "在吗")
        assert later.reply is None  # queued: stored, no answer ("success")

        async with env.bot.sessions() as s:
            follower_id = (await s.execute(select(Follower.id).where(Follower.external_id == openid))).scalar_one()
        await inbox.take(follower_id, "alice")
        queued = await inbox.reply(follower_id, "alice", "您好，我是客服 Alice。")
        assert queued.window.closes_at is not None and queued.window.sends_left == 5
        custom = [r["content"] for r in env.sim.replies(openid) if r["source"] == "custom"]
        assert custom == ["您好，我是客服 Alice。"]

        async with env.bot.sessions() as s, s.begin():
            await s.execute(update(Follower).where(Follower.id == follower_id).values(
                last_action_at=utcnow() - timedelta(hours=48, minutes=1)))
        with pytest.raises(OutsideReplyWindow, match="outside the reply window"):
            await inbox.reply(follower_id, "alice", "too late")
        assert [r["content"] for r in env.sim.replies(openid) if r["source"] == "custom"] == custom

        await inbox.release(follower_id, "alice")
        back = await env.sim.send_text(openid, "随便说点什么")
        assert back.reply is not None and back.reply["content"] != CATALOGS.gettext("zh_Hans", QUEUED)


async def test_taking_a_follower_who_did_not_ask_tells_them_at_once_through_the_send_api(make_env: Any) -> None:
    async with make_env() as env:
        async def deliver(channel: str, account: str, ids: Sequence[int]) -> None:
            await env.channel.outbox.deliver(ids)

        inbox = Inbox(env.bot.sessions, CATALOGS, {"wechat": env.channel.capabilities}, deliver=deliver)
        openid = await env.following(language="zh_TW")
        assert (await env.sim.send_text(openid, "你好")).reply is not None  # the bot answers
        async with env.bot.sessions() as s:
            follower_id = (await s.execute(select(Follower.id).where(Follower.external_id == openid))).scalar_one()
        change = await inbox.take(follower_id, "alice")
        assert change.told
        told = CATALOGS.gettext("zh_Hant", PERSON_WILL_ANSWER)
        assert [r["content"] for r in env.sim.replies(openid) if r["source"] == "custom"] == [told]
        assert (await env.sim.send_text(openid, "你好")).reply is None  # told once, then silent
