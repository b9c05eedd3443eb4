"""The dashboard's activity figures: messages per day, passive vs deferred replies, median answer time.

Counted by the database (SQLite and PostgreSQL alike) from the ``message`` table, the same rows the
bot writes as it works:

- a message in is a row ``direction = 'in'``; out, ``direction = 'out'`` (broadcasts included);
- a reply is an outbound row that is not a broadcast's (``broadcast_id IS NULL``): **passive** when it
  went in the HTTP answer to the platform's own request (status ``passive``, ``bot.storage.store``),
  **deferred** when it was written to the outbox and sent later through the platform's send API (status
  ``sent``: an agent's reply, a reply past the platform's deadline, a notice). The outbox's other rows are
  counted apart: **pending** (``pending``, ``sending``: not sent yet), **failed** (given up after retries)
  and **undeliverable** (refused before sending: window closed, follower gone);
- a follower's message is answered by the first reply to that follower written after it that reached
  them (``passive`` or ``sent``); its answer time runs from the message's arrival to that reply's sending.
  The median of those over the period is the figure (messages never answered are not in it).

Days are the operator's (``ENGAGEBOT_TIMEZONE``): their boundaries are computed here, in that zone, and
the database only compares timestamps with them, so no date function differs between the backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, String, Subquery, and_, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.core.clock import utcnow
from bot.core.inbound import Kind
from bot.storage.dialect import seconds_between
from bot.storage.models import Message
from bot.storage.status import DeliveryStatus

DEFAULT_DAYS = 14
MAX_DAYS = 90
# What a follower says (the kinds a reply answers); follows, scans, unfollows and notices are events.
SPOKEN = (Kind.TEXT, Kind.COMMAND, Kind.CLICK, Kind.IMAGE, Kind.VOICE, Kind.LOCATION, Kind.LINK)
DELIVERED = (DeliveryStatus.PASSIVE, DeliveryStatus.SENT)
# A reply's status -> its column in ``ReplyRoutes`` (held and cancelled rows are broadcasts', not counted).
REPLY_COLUMNS: dict[str, str] = {DeliveryStatus.PASSIVE: "passive", DeliveryStatus.SENT: "deferred", DeliveryStatus.PENDING: "pending",
                 DeliveryStatus.SENDING: "pending", DeliveryStatus.FAILED: "failed",
                 DeliveryStatus.UNDELIVERABLE: "undeliverable"}


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    channel: str
    inbound: int
    outbound: int


@dataclass(frozen=True, slots=True)
class ReplyRoutes:
    channel: str
    passive: int  # in the HTTP answer to the platform's request
    deferred: int  # sent through the outbox and the platform's send API, later
    pending: int = 0  # in the outbox, not sent yet (pending, sending)
    failed: int = 0  # given up
    undeliverable: int = 0  # refused before sending (window closed, follower gone)


@dataclass(frozen=True, slots=True)
class AnswerTime:
    channel: str | None  # None: every channel together
    answered: int  # the follower's messages that got an answer
    median_seconds: float | None  # None: none answered


@dataclass(frozen=True, slots=True)
class Activity:
    days: list[date]  # the period, oldest first, in the operator's time zone
    since: datetime
    messages: list[DayCount] = field(default_factory=list)  # (day, channel) with any message, oldest first
    replies: list[ReplyRoutes] = field(default_factory=list)
    answer_times: list[AnswerTime] = field(default_factory=list)  # every channel first, then each channel


def day_starts(timezone: str, days: int, now: datetime) -> list[datetime]:
    """The start (aware UTC) of each of the last ``days`` days in ``timezone``, oldest first, today last."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    return [datetime.combine(today - timedelta(days=n), time(0), tzinfo=zone).astimezone(ZoneInfo("UTC"))
            for n in range(days - 1, -1, -1)]


async def activity(session: AsyncSession, *, timezone: str, days: int = DEFAULT_DAYS,
                   now: datetime | None = None) -> Activity:
    """The dashboard's figures over the last ``days`` days (today included) in the operator's time zone."""
    now = now or utcnow()
    starts = day_starts(timezone, days, now)
    local = ZoneInfo(timezone)
    day_list = [s.astimezone(local).date() for s in starts]
    return Activity(days=day_list, since=starts[0], messages=await _per_day(session, starts, day_list),
                    replies=await _reply_routes(session, starts[0]),
                    answer_times=await _answer_times(session, starts[0]))


async def _per_day(session: AsyncSession, starts: list[datetime], day_list: list[date]) -> list[DayCount]:
    # The day's index: the latest start the message is not before (CASE tries the newest day first).
    index = case(*[(Message.created_at >= start, literal(n, Integer)) for n, start in reversed(list(enumerate(starts)))],
                 else_=literal(-1, Integer))
    rows = select(index.label("day"), Message.channel.label("channel"), Message.direction.label("direction")) \
        .where(Message.created_at >= starts[0]).subquery()
    query = (select(rows.c.day, rows.c.channel, rows.c.direction, func.count())
             .group_by(rows.c.day, rows.c.channel, rows.c.direction))
    counts: dict[tuple[int, str], list[int]] = {}
    for day, channel, direction, n in (await session.execute(query)).all():
        if 0 <= day < len(day_list):
            counts.setdefault((day, channel), [0, 0])[0 if direction == "in" else 1] += n
    return [DayCount(day_list[day], channel, inbound, outbound)
            for (day, channel), (inbound, outbound) in sorted(counts.items())]


async def _reply_routes(session: AsyncSession, since: datetime) -> list[ReplyRoutes]:
    query = (select(Message.channel, Message.status, func.count())
             .where(Message.direction == "out", Message.broadcast_id.is_(None), Message.created_at >= since)
             .group_by(Message.channel, Message.status))
    routes: dict[str, dict[str, int]] = {}
    for channel, status, n in (await session.execute(query)).all():
        column = REPLY_COLUMNS.get(status)
        if column is not None:
            counts = routes.setdefault(channel, dict.fromkeys(REPLY_COLUMNS.values(), 0))
            counts[column] += n
    return [ReplyRoutes(channel, **counts) for channel, counts in sorted(routes.items())]


async def _answer_times(session: AsyncSession, since: datetime) -> list[AnswerTime]:
    asked = aliased(Message, name="asked")
    answer = aliased(Message, name="answer")
    # The first delivered reply written after the message: the (follower_id, id) index finds it at once.
    answered_at = (select(func.coalesce(answer.sent_at, answer.created_at))
                   .where(answer.follower_id == asked.follower_id, answer.direction == "out", answer.id > asked.id,
                          answer.broadcast_id.is_(None), answer.status.in_(DELIVERED))
                   .order_by(answer.id).limit(1).scalar_subquery())
    waits = (select(asked.channel.label("channel"), seconds_between(session, answered_at, asked.created_at)
                    .label("wait"))
             .where(asked.direction == "in", asked.kind.in_(SPOKEN), asked.created_at >= since)
             .subquery())
    answered = select(waits.c.channel, waits.c.wait).where(waits.c.wait.is_not(None)).subquery()
    overall = await _median(session, answered, per_channel=False)
    return overall + await _median(session, answered, per_channel=True)


async def _median(session: AsyncSession, waits: Subquery, *, per_channel: bool) -> list[AnswerTime]:
    """The median ``wait`` (per channel): the middle row, or the mean of the middle two, by row_number."""
    partition = [waits.c.channel] if per_channel else None
    ranked = select(waits.c.channel, waits.c.wait,
                    func.row_number().over(partition_by=partition, order_by=waits.c.wait).label("rn"),
                    func.count().over(partition_by=partition).label("n")).subquery()
    # Rows (n + 1) // 2 and (n + 2) // 2: the same row when n is odd, the middle two when it is even.
    middle = and_(ranked.c.rn >= (ranked.c.n + 1) // 2, ranked.c.rn <= (ranked.c.n + 2) // 2)
    if per_channel:
        query = (select(ranked.c.channel, func.max(ranked.c.n), func.avg(ranked.c.wait)).where(middle)
                 .group_by(ranked.c.channel).order_by(ranked.c.channel))
    else:
        query = select(literal(None, String).label("channel"), func.max(ranked.c.n), func.avg(ranked.c.wait)) \
            .where(middle)
    rows: list[Any] = list((await session.execute(query)).all())
    found = [AnswerTime(row[0] if per_channel else None, int(row[1]), round(float(row[2]), 3))
             for row in rows if row[1]]
    if not per_channel and not found:
        return [AnswerTime(None, 0, None)]
    return found
