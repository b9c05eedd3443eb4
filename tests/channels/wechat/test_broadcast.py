"""A broadcast on WeChat: followers inside the window get a customer-service message, the others
one mass send per language, through the platform simulator."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from bot.broadcast import Audience, BroadcastWorker, create_broadcast, expand_broadcast
from bot.core.clock import utcnow
from bot.storage.models import Follower, Message

SERVICE_ACCOUNT = {"mass_sends_per_period": 4, "mass_send_period_days": 30}


async def _setup(env: Any) -> tuple[str, list[str], list[str], int]:
    recent = await env.following(language="en")
    await env.sim.send_text(recent, "hi")  # opens the 48-hour window
    old_en = [await env.following(language="en") for _ in range(2)]
    old_zh = [await env.following(language="zh_CN") for _ in range(2)]
    async with env.bot.sessions() as s:
        await s.execute(update(Follower).where(Follower.external_id.in_([*old_en, *old_zh])).values(
            last_action_at=utcnow() - timedelta(days=3)))
        broadcast = await create_broadcast(
            s, name="spring", texts={"en": "Spring sale!", "zh_Hans": "春季大促！"}, audience=Audience(),
            default_locale="zh_Hans")
        await s.commit()
    await expand_broadcast(env.bot.sessions, broadcast.id)
    worker = BroadcastWorker(env.bot.sessions, [env.channel], poll_every=0.1)
    await worker.run_until_idle(timeout=20)
    await env.sim.drain()
    return recent, old_en, old_zh, broadcast.id


async def test_with_one_mass_send_a_day_the_second_language_is_reported_not_dropped(make_env: Any) -> None:
    async with make_env(sim_overrides={"mass_delay": 0.01}) as env:
        _recent, old_en, old_zh, broadcast_id = await _setup(env)
        async with env.bot.sessions() as s:
            rows = (await s.execute(select(Message.status, Message.reason).where(
                Message.broadcast_id == broadcast_id, Message.status != "sent"))).all()
        assert len(rows) == 2 and all(r.status == "undeliverable" and "quota" in r.reason for r in rows)


async def test_broadcast_uses_the_window_then_the_mass_api(make_env: Any) -> None:
    async with make_env(sim_overrides={"mass_delay": 0.01, "mass_send_quota": 4},
                        config_overrides=SERVICE_ACCOUNT) as env:
        recent, old_en, old_zh, broadcast_id = await _setup(env)
        by_source = {openid: [(r["source"], r.get("content")) for r in env.sim.replies(openid)
                              if r["source"] in ("custom", "mass")] for openid in [recent, *old_en, *old_zh]}
        assert by_source[recent] == [("custom", "Spring sale!")]
        assert all(by_source[o] == [("mass", "Spring sale!")] for o in old_en)
        assert all(by_source[o] == [("mass", "春季大促！")] for o in old_zh)
        async with env.bot.sessions() as s:
            statuses = (await s.execute(select(Message.status).where(Message.broadcast_id == broadcast_id))).scalars()
            assert sorted(statuses) == ["sent"] * 5


async def test_a_mass_send_cut_short_by_a_crash_is_repeated_with_its_clientmsgid_and_arrives_once(
        make_env: Any) -> None:
    from bot.broadcast.mass import run_mass_sends
    from bot.broadcast.models import MassSend

    async with make_env(sim_overrides={"mass_delay": 0.01, "mass_send_quota": 4},
                        config_overrides=SERVICE_ACCOUNT) as env:
        recent, old_en, old_zh, broadcast_id = await _setup(env)
        assert len(env.sim.mass_jobs) == 2
        # As a SIGKILL right after the platform's answer, before its outcome was written, leaves it:
        async with env.bot.sessions() as s:
            sends = (await s.execute(select(MassSend).order_by(MassSend.id))).scalars().all()
            for mass in sends:
                await s.execute(update(MassSend).where(MassSend.id == mass.id).values(
                    status="sending", platform_id=None, sent_at=utcnow() - timedelta(minutes=2)))
                recipients = old_en if mass.text == "Spring sale!" else old_zh
                await s.execute(update(Message).where(
                    Message.broadcast_id == broadcast_id, Message.follower_id.in_(
                        select(Follower.id).where(Follower.external_id.in_(recipients)))).values(
                    status="held", reason=f"mass:{mass.id}"))
            await s.commit()
        assert await run_mass_sends(env.channel, env.bot.sessions) == 2
        await env.sim.drain()
        assert len(env.sim.mass_jobs) == 2  # the platform knew both by their clientmsgid: nothing sent again
        for openid in [*old_en, *old_zh]:
            assert [r["source"] for r in env.sim.replies(openid) if r["source"] in ("custom", "mass")] == ["mass"]
        async with env.bot.sessions() as s:
            statuses = (await s.execute(select(Message.status).where(Message.broadcast_id == broadcast_id))).scalars()
            assert sorted(statuses) == ["sent"] * 5
            mass_ids = {m.platform_id for m in (await s.execute(select(MassSend))).scalars()}
            assert mass_ids == {str(job["msg_id"]) for job in env.sim.mass_jobs}


async def test_the_api_sends_a_clientmsgid_and_takes_the_platforms_duplicate_answer_as_the_first_send(
        make_env: Any) -> None:
    async with make_env(sim_overrides={"mass_delay": 0.01, "mass_send_quota": 4, "mass_send_min_openids": 1}) as env:
        openids = [await env.following(language="en") for _ in range(2)]
        api = env.channel.api
        first = await api.mass_send(openids, "hello", client_msg_id="mass:1:1700000000")
        again = await api.mass_send(openids, "hello", client_msg_id="mass:1:1700000000")
        other = await api.mass_send(openids, "hello", client_msg_id="mass:2:1700000001")
        assert first == again != other
        assert len(env.sim.mass_jobs) == 2


async def test_a_broadcast_the_platform_refuses_ends_failed_with_its_reason(make_env: Any) -> None:
    async with make_env() as env:
        recent = await env.following(language="en")
        await env.sim.send_text(recent, "hi")  # inside the window: a customer-service message
        env.sim.max_text_bytes = 8  # ... that the platform refuses (errcode 45002)
        async with env.bot.sessions() as s:
            broadcast = await create_broadcast(s, name="too-long", texts={"en": "Spring sale!", "zh_Hans": "春季大促！"},
                                               audience=Audience(), default_locale="zh_Hans")
            await s.commit()
        await expand_broadcast(env.bot.sessions, broadcast.id)
        await BroadcastWorker(env.bot.sessions, [env.channel], poll_every=0.1).run_until_idle(timeout=20)
        async with env.bot.sessions() as s:
            rows = (await s.execute(select(Message.status, Message.reason, Message.sent_at).where(
                Message.broadcast_id == broadcast.id))).all()
        assert [tuple(r) for r in rows] == [("failed", "platform error 45002: content size out of limit (8 bytes)", None)]
        assert [r for r in env.sim.replies(recent) if r["source"] in ("custom", "mass")] == []
