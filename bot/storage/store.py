"""The SQL implementation of the dispatcher's Store: dedupe, followers, the exchange write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.inbound import Inbound, Kind, utcnow
from bot.core.reply import Reply
from bot.core.serialize import reply_from_dict, reply_text, reply_to_dict, reply_kind
from bot.core.store import DuplicateExchange, Exchange

from .models import Follower, Message

# A pending outbound row is leased to the sender that wrote it; the outbox sweeper retries it after this.
SEND_LEASE_SECONDS = 60


class SqlStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def find_exchange(self, session: AsyncSession, msg: Inbound) -> Exchange | None:
        inbound = (await session.execute(
            select(Message.id, Message.follower_id).where(
                Message.channel == msg.channel, Message.account == msg.account,
                Message.dedupe_key == msg.message_id, Message.direction == "in")
        )).first()
        if inbound is None:
            return None
        rows = (await session.execute(
            select(Message.id, Message.body, Message.status).where(Message.in_reply_to == inbound.id)
            .order_by(Message.id)
        )).all()
        replies = [reply_from_dict(r.body) for r in rows]
        passive_count = sum(1 for r in rows if r.status == "passive")
        return Exchange(inbound.id, replies, [r.id for r in rows], passive_count, inbound.follower_id)

    async def load_follower(self, session: AsyncSession, msg: Inbound) -> Follower:
        return await get_or_create_follower(session, channel=msg.channel, account=msg.account,
                                            external_id=msg.external_id, display_name=msg.display_name)

    def apply_action(self, follower: Follower, msg: Inbound, *, reply_window_kind: str | None) -> None:
        apply_follower_action(follower, msg, utcnow(), reply_window_kind)

    async def record_exchange(
        self, session: AsyncSession, msg: Inbound, follower: Follower, replies: list[Reply], *, passive_count: int,
    ) -> Exchange:
        now = utcnow()
        inbound = Message(
            follower_id=follower.id, channel=msg.channel, account=msg.account, direction="in",
            kind=str(msg.kind), text=msg.text, payload=msg.payload, dedupe_key=msg.message_id,
            status="handled", attempts=0, created_at=msg.received_at or now,
        )
        session.add(inbound)
        try:
            await session.flush()
            outbound = [
                Message(
                    follower_id=follower.id, channel=msg.channel, account=msg.account, direction="out",
                    kind=reply_kind(reply), text=reply_text(reply)[:4000], body=reply_to_dict(reply),
                    in_reply_to=inbound.id, status="passive" if index < passive_count else "pending",
                    attempts=0, created_at=now,
                    sent_at=now if index < passive_count else None,
                    next_attempt_at=None if index < passive_count else _lease(now),
                )
                for index, reply in enumerate(replies)
            ]
            session.add_all(outbound)
            await session.commit()
        except IntegrityError as exc:
            # The only unique key an exchange can hit is the platform message id; the caller re-reads.
            if msg.message_id is not None:
                raise DuplicateExchange() from exc
            raise
        return Exchange(inbound.id, replies, [o.id for o in outbound], passive_count, follower.id)


def _lease(now: datetime) -> datetime:
    return now + timedelta(seconds=SEND_LEASE_SECONDS)


async def get_or_create_follower(
    session: AsyncSession, *, channel: str, account: str, external_id: str, display_name: str | None = None,
) -> Follower:
    """Return the follower, inserting it on first contact (safe when two instances race)."""
    query = select(Follower).where(
        Follower.channel == channel, Follower.account == account, Follower.external_id == external_id)
    follower = (await session.execute(query)).scalar_one_or_none()
    if follower is not None:
        return follower
    values = dict(channel=channel, account=account, external_id=external_id, display_name=display_name,
                  following=False, tags=[], state_data={}, window_sends=0, created_at=utcnow())
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    await session.execute(insert(Follower).values(**values).on_conflict_do_nothing())
    return (await session.execute(query)).scalar_one()


def apply_follower_action(follower: Follower, msg: Inbound, now: datetime, window_kind: str | None) -> None:
    """Record what the follower's action changes: following, first touch, the reply window."""
    if msg.kind is Kind.UNFOLLOW:
        follower.following = False
        follower.unfollowed_at = now
    elif not follower.following and (msg.kind is Kind.FOLLOW or follower.unfollowed_at is None):
        # A first contact of any kind counts as following: WeChat lets only followers write, and on
        # Telegram the first /start is the follow. After an unfollow only a new follow counts.
        follower.following = True
        follower.followed_at = now
    if msg.kind in (Kind.FOLLOW, Kind.SCAN) and msg.payload and follower.first_source is None:
        follower.first_source = msg.payload[:128]
        follower.first_touch_at = now
    if window_kind is not None:
        follower.last_action_at = now
        follower.last_action_kind = window_kind
        follower.window_sends = 0
