"""Who a broadcast reaches, in which language, and that writing its outbox twice writes nothing twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.broadcast import Audience, create_broadcast, expand_broadcast
from bot.broadcast.models import EXPANDING, SENDING, Broadcast
from bot.core.clock import utcnow
from bot.storage.models import Message
from tests.support.broadcast import add_followers, rows_by_external_id

Sessions = async_sessionmaker[AsyncSession]
TEXTS = {"en": "Hello", "zh_Hans": "你好"}


async def broadcast_to(sessions: Sessions, audience: Audience = Audience(), *, texts: dict[str, str] = TEXTS,
                       default_locale: str = "zh_Hans", promotion: str | None = None, batch_size: int = 1000) -> int:
    async with sessions() as session:
        broadcast = await create_broadcast(session, name="test", texts=texts, audience=audience,
                                           default_locale=default_locale, promotion=promotion)
        await session.commit()
        broadcast_id = broadcast.id
    assert await expand_broadcast(sessions, broadcast_id, batch_size=batch_size)
    return broadcast_id


async def recipients(sessions: Sessions, broadcast_id: int) -> set[str]:
    return set(await rows_by_external_id(sessions, broadcast_id))


async def test_only_followers_still_following_are_in_the_audience(sessions: Sessions) -> None:
    await add_followers(sessions, 3)
    await add_followers(sessions, 2, start=3, following=False)
    broadcast_id = await broadcast_to(sessions)
    assert await recipients(sessions, broadcast_id) == {"f0", "f1", "f2"}


async def test_channel_filter_keeps_only_followers_on_those_channels(sessions: Sessions) -> None:
    await add_followers(sessions, 2, channel="wechat")
    await add_followers(sessions, 2, start=2, channel="telegram")
    await add_followers(sessions, 1, start=4, channel="mock")
    broadcast_id = await broadcast_to(sessions, Audience(channels=("telegram", "mock")))
    assert await recipients(sessions, broadcast_id) == {"f2", "f3", "f4"}


async def test_locale_filter_uses_the_locale_each_follower_would_get(sessions: Sessions) -> None:
    await add_followers(sessions, 1, locale="en")
    await add_followers(sessions, 1, start=1, locale_hint="en-US")
    await add_followers(sessions, 1, start=2, locale_hint="zh-CN")
    await add_followers(sessions, 1, start=3)  # no language known: the default, zh_Hans
    broadcast_id = await broadcast_to(sessions, Audience(locales=("en",)))
    assert await recipients(sessions, broadcast_id) == {"f0", "f1"}


async def test_tag_filter_matches_followers_with_any_of_the_tags(sessions: Sessions) -> None:
    await add_followers(sessions, 1, tags=["vip"])
    await add_followers(sessions, 1, start=1, tags=["new", "beijing"])
    await add_followers(sessions, 1, start=2, tags=["other"])
    await add_followers(sessions, 1, start=3)
    broadcast_id = await broadcast_to(sessions, Audience(tags=("vip", "beijing")))
    assert await recipients(sessions, broadcast_id) == {"f0", "f1"}


async def test_source_filter_matches_the_first_campaign_a_follower_came_through(sessions: Sessions) -> None:
    await add_followers(sessions, 2, first_source="poster-2026")
    await add_followers(sessions, 1, start=2, first_source="flyer")
    await add_followers(sessions, 1, start=3)
    broadcast_id = await broadcast_to(sessions, Audience(sources=("poster-2026",)))
    assert await recipients(sessions, broadcast_id) == {"f0", "f1"}


async def test_followed_since_filter_keeps_only_newer_followers(sessions: Sessions) -> None:
    now = utcnow()
    await add_followers(sessions, 1, followed_at=now - timedelta(days=10))
    await add_followers(sessions, 1, start=1, followed_at=now - timedelta(days=1))
    await add_followers(sessions, 1, start=2, followed_at=now)
    broadcast_id = await broadcast_to(sessions, Audience(followed_since=now - timedelta(days=2)))
    assert await recipients(sessions, broadcast_id) == {"f1", "f2"}


async def test_filters_combine(sessions: Sessions) -> None:
    await add_followers(sessions, 1, tags=["vip"], locale="en")
    await add_followers(sessions, 1, start=1, tags=["vip"], locale="zh_Hans")
    await add_followers(sessions, 1, start=2, tags=["vip"], locale="en", channel="other")
    broadcast_id = await broadcast_to(sessions, Audience(channels=("fake",), tags=("vip",), locales=("en",)))
    assert await recipients(sessions, broadcast_id) == {"f0"}


async def test_each_follower_gets_the_text_in_its_own_language(sessions: Sessions) -> None:
    await add_followers(sessions, 1, locale="en", locale_hint="zh-CN")  # its own choice wins over the hint
    await add_followers(sessions, 1, start=1, locale_hint="zh-hans")
    await add_followers(sessions, 1, start=2, locale_hint="en-GB")
    await add_followers(sessions, 1, start=3, locale_hint="pt-br")  # no catalog: the international locale (en)
    await add_followers(sessions, 1, start=4)
    broadcast_id = await broadcast_to(sessions)
    texts = {k: r.text for k, r in (await rows_by_external_id(sessions, broadcast_id)).items()}
    assert texts == {"f0": "Hello", "f1": "你好", "f2": "Hello", "f3": "Hello", "f4": "你好"}


async def test_the_account_default_decides_for_followers_with_no_language(sessions: Sessions) -> None:
    await add_followers(sessions, 1)
    broadcast_id = await broadcast_to(sessions, default_locale="en")
    assert {k: r.text for k, r in (await rows_by_external_id(sessions, broadcast_id)).items()} == {"f0": "Hello"}


async def test_a_missing_translation_falls_back_to_the_default_locale_text(sessions: Sessions) -> None:
    await add_followers(sessions, 1, locale="en")
    broadcast_id = await broadcast_to(sessions, texts={"zh_Hans": "只有中文"})
    assert {k: r.text for k, r in (await rows_by_external_id(sessions, broadcast_id)).items()} == {"f0": "只有中文"}


async def test_a_promotion_adds_a_claim_button_in_the_followers_language(sessions: Sessions) -> None:
    await add_followers(sessions, 1, locale="en")
    await add_followers(sessions, 1, start=1, locale="zh_Hans")
    broadcast_id = await broadcast_to(sessions, promotion="spring")
    async with sessions() as session:
        bodies = (await session.execute(select(Message.body).where(Message.broadcast_id == broadcast_id)
                                        .order_by(Message.follower_id))).scalars().all()
    assert [b["buttons"] for b in bodies] == [
        [{"label": "Get the offer", "payload": "offer:spring"}],
        [{"label": "领取优惠", "payload": "offer:spring"}],
    ]


async def test_expansion_writes_every_row_before_anything_is_sent(sessions: Sessions) -> None:
    await add_followers(sessions, 2500)
    broadcast_id = await broadcast_to(sessions, batch_size=1000)
    async with sessions() as session:
        broadcast = await session.get(Broadcast, broadcast_id)
        assert broadcast is not None
        assert (broadcast.status, broadcast.total) == (SENDING, 2500)
        by_status = dict((await session.execute(select(Message.status, func.count()).where(
            Message.broadcast_id == broadcast_id).group_by(Message.status))).all())
    assert by_status == {"pending": 2500}


async def test_expanding_again_after_a_crash_writes_nothing_twice(sessions: Sessions) -> None:
    await add_followers(sessions, 1200)
    broadcast_id = await broadcast_to(sessions, batch_size=500)
    # As if the expander died after writing rows but before moving its cursor: start over from zero.
    async with sessions() as session:
        await session.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(
            status=EXPANDING, cursor=0, lease_until=None))
        await session.commit()
    assert await expand_broadcast(sessions, broadcast_id, batch_size=500)
    assert await expand_broadcast(sessions, broadcast_id) is False  # over: nothing to claim
    async with sessions() as session:
        rows = (await session.execute(select(func.count(), func.count(func.distinct(Message.follower_id))).where(
            Message.broadcast_id == broadcast_id))).one()
        broadcast = await session.get(Broadcast, broadcast_id)
    assert tuple(rows) == (1200, 1200)
    assert broadcast is not None and broadcast.status == SENDING


async def test_a_follower_who_arrives_during_expansion_is_not_lost_nor_doubled(sessions: Sessions) -> None:
    await add_followers(sessions, 10)
    broadcast_id = await broadcast_to(sessions)
    await add_followers(sessions, 5, start=10)
    async with sessions() as session:
        await session.execute(update(Broadcast).where(Broadcast.id == broadcast_id).values(
            status=EXPANDING, lease_until=None))
        await session.commit()
    assert await expand_broadcast(sessions, broadcast_id)
    assert len(await recipients(sessions, broadcast_id)) == 15
