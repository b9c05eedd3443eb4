"""A broadcast on Weibo: fans inside the 48 h window get messages/reply.json, the others one sendall per
language; a sendall held for review is a status, not a failure."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from urllib.parse import unquote

from sqlalchemy import select, update

from bot.broadcast import Audience, BroadcastWorker, create_broadcast, expand_broadcast
from bot.core.capabilities import MassSendQuota
from bot.core.clock import utcnow
from bot.storage.models import Follower, Message

from .conftest import weibo_env


async def test_broadcast_uses_the_window_then_sendall(database_url: str) -> None:
    async with weibo_env(database_url) as env:
        recent, old_en, old_zh = "6200000001", "6200000002", "6200000003"
        for fan, text in ((recent, "hello"), (old_en, "hello"), (old_zh, "你好")):
            assert (await env.text(fan, text))[0] == 200
        async with env.bot.sessions() as s:
            await s.execute(update(Follower).where(Follower.external_id.in_([old_en, old_zh])).values(
                last_action_at=utcnow() - timedelta(days=3)))
            await s.execute(update(Follower).where(Follower.external_id.in_([recent, old_en])).values(locale="en"))
            broadcast = await create_broadcast(s, name="spring", texts={"en": "Spring sale!", "zh_Hans": "春季大促！"},
                                               audience=Audience(), default_locale="zh_Hans")
            await s.commit()
        await expand_broadcast(env.bot.sessions, broadcast.id)
        # One sendall a day is the default; this account may send two (one per language).
        env.channel.capabilities = replace(env.channel.capabilities,
                                           mass_send=MassSendQuota(per_period=2, period=timedelta(days=1)))
        await BroadcastWorker(env.bot.sessions, [env.channel], poll_every=0.1).run_until_idle(timeout=20)
        assert [d["data"]["text"] for d in env.fake.dms() if d["to"] == recent][-1] == "Spring sale!"
        sendalls = {f["touser"]: unquote(f["data"]) for f in env.fake.sent("/2/messages/sendall.json")}
        assert set(sendalls) == {old_en, old_zh}
        assert "Spring sale!" in sendalls[old_en] and "春季大促！" in sendalls[old_zh]
        async with env.bot.sessions() as s:
            rows = (await s.execute(select(Message.status, Message.reason).where(
                Message.broadcast_id == broadcast.id))).all()
        assert sorted(r.status for r in rows) == ["sent"] * 3
        assert sum("held for review" in (r.reason or "") for r in rows) == 2
