"""The dashboard's activity figures (``bot/admin/stats.py``) from seeded messages: known counts per day,
channel and direction, passive vs deferred replies, and a known median answer time, on SQLite and
PostgreSQL alike (the same SQL)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.admin.roles import Role
from bot.admin.stats import AnswerTime, DayCount, ReplyRoutes, activity
from bot.storage.models import Follower, Message
from tests.admin.conftest import AdminApi

# 2026-11-30 12:00 in Shanghai is 04:00 UTC; the operator's days run from 16:00 UTC the day before.
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
ZONE = "Asia/Shanghai"


def follower(channel: str, external_id: str) -> Follower:
    return Follower(channel=channel, account="main", external_id=external_id, created_at=NOW - timedelta(days=30),
                    tags=[])


def message(f: Follower, direction: str, at: datetime, *, kind: str = "text", status: str | None = None,
            sent_after: float | None = None, broadcast_id: int | None = None, **extra: Any) -> Message:
    return Message(follower_id=f.id, channel=f.channel, account=f.account, direction=direction, kind=kind, text="x",
                   status=status or ("handled" if direction == "in" else "passive"), created_at=at,
                   sent_at=at + timedelta(seconds=sent_after) if sent_after is not None else None,
                   broadcast_id=broadcast_id, **extra)


async def seed(session: AsyncSession) -> None:
    wechat, telegram, other = follower("wechat", "w1"), follower("telegram", "t1"), follower("wechat", "w2")
    session.add_all([wechat, telegram, other])
    await session.flush()
    day = timedelta(days=1)
    t0 = NOW - timedelta(hours=1)  # today (Shanghai), 11:00
    rows = [
        # WeChat today: answered passively in 2 s, then a message answered 60 s later through the outbox.
        message(wechat, "in", t0), message(wechat, "out", t0 + timedelta(seconds=2), sent_after=0),
        message(wechat, "in", t0 + timedelta(minutes=5)),
        message(wechat, "out", t0 + timedelta(minutes=5, seconds=1), status="sent", sent_after=59),
        # Telegram today: answered in 10 s (deferred); a second message is never answered (a failed row only).
        message(telegram, "in", t0), message(telegram, "out", t0, status="sent", sent_after=10),
        message(telegram, "in", t0 + timedelta(minutes=1)),
        message(telegram, "out", t0 + timedelta(minutes=1), status="failed"),
        # WeChat yesterday (Shanghai): answered in 4 s; an unfollow event is not a message to answer.
        message(other, "in", t0 - day), message(other, "out", t0 - day + timedelta(seconds=4), sent_after=0),
        message(other, "in", t0 - day + timedelta(minutes=1), kind="unfollow"),
        # A broadcast's row: counted as a message out, but neither a reply nor an answer.
        message(other, "out", t0 - day + timedelta(minutes=2), status="sent", sent_after=1, broadcast_id=7),
        # Shanghai's days start at 16:00 UTC: 28 Nov 15:59 UTC is 23:59 on the 28th there, 29 Nov 16:00 UTC
        # is midnight on the 30th. 20 days ago is outside the 14 days.
        message(other, "in", datetime(2026, 11, 28, 15, 59, tzinfo=UTC), kind="follow"),
        message(other, "in", datetime(2026, 11, 29, 16, 0, tzinfo=UTC), kind="follow"),
        message(other, "in", NOW - 20 * day),
    ]
    session.add_all(rows)
    await session.commit()


async def test_messages_per_day_replies_and_the_median_answer_time(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        await seed(session)
        figures = await activity(session, timezone=ZONE, now=NOW)
    assert figures.days[0] == date(2026, 11, 17) and figures.days[-1] == date(2026, 11, 30) and len(figures.days) == 14
    assert figures.messages == [
        DayCount(date(2026, 11, 28), "wechat", inbound=1, outbound=0),
        DayCount(date(2026, 11, 29), "wechat", inbound=2, outbound=2),
        DayCount(date(2026, 11, 30), "telegram", inbound=2, outbound=2),
        DayCount(date(2026, 11, 30), "wechat", inbound=3, outbound=2),
    ]
    assert figures.replies == [ReplyRoutes("telegram", passive=0, deferred=1, failed=1),  # a failure is not a reply
                               ReplyRoutes("wechat", passive=2, deferred=1)]
    # Waits: wechat 2, 60, 4; telegram 10 -> all: 2, 4, 10, 60 (median 7); wechat 4; telegram 10.
    assert figures.answer_times == [AnswerTime(None, 4, 7.0), AnswerTime("telegram", 1, 10.0),
                                    AnswerTime("wechat", 3, 4.0)]


async def test_no_messages_no_median(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        figures = await activity(session, timezone="UTC", now=NOW, days=3)
    assert (figures.messages, figures.replies, figures.answer_times) == ([], [], [AnswerTime(None, 0, None)])
    assert figures.days == [date(2026, 11, 28), date(2026, 11, 29), date(2026, 11, 30)]


async def test_the_api_serves_the_figures_to_stats_readers(admin_api: AdminApi) -> None:
    await admin_api.harness.follower("fan", language="en").say("hello")
    for role in Role:
        status, _body, _ = await admin_api.call("GET", "/stats/activity", role.value)
        assert status == (200 if role.value in {"admin", "marketer", "viewer"} else 403), role
    status, figures, _ = await admin_api.call("GET", "/stats/activity?days=2", "viewer")
    assert status == 200 and len(figures["days"]) == 2
    assert [(m["channel"], m["inbound"]) for m in figures["messages"]] == [("mock", 1)]
    assert figures["messages"][0]["outbound"] >= 1 and figures["answer_times"][0]["answered"] == 1
    for bad in ("0", "91", "many"):
        status, answer, _ = await admin_api.call("GET", f"/stats/activity?days={bad}", "viewer")
        assert (status, answer["field"]) == (422, "days"), bad
