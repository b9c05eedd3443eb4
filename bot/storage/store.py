"""The SQL implementation of the dispatcher's Store: dedupe, followers, the exchange write."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.core.follower import FollowerRecord
from bot.core.inbound import Inbound, Kind
from bot.core.replay_check import ReplayCheck, settle_replay_check
from bot.core.reply import Reply
from bot.core.serialize import reply_from_dict, reply_kind, reply_text, reply_to_dict
from bot.core.store import DuplicateExchange, Exchange
from bot.errors import ReplayError

from .dialect import insert_ignore
from .engine import check_first, hold_write_gate, session_wrote
from .models import Follower, Message
from .notices import record_notice
from .reader import FollowerReader
from .replay import Seen
from .status import DeliveryStatus
from .writer import ExchangeWrite, shared_group_writer, split_handoff

# A pending outbound row is leased to the sender that wrote it; the outbox sweeper retries it after this
# (``ENGAGEBOT_OUTBOX__LEASE_SECONDS``: a killed writer's replies go out that long after its restart).
SEND_LEASE_SECONDS = 60

# Built once: constructing statements per message costs more than running them.
_FOLLOWER = select(Follower).where(
    Follower.channel == bindparam("channel"), Follower.account == bindparam("account"),
    Follower.external_id == bindparam("external_id"))
_INBOUND = select(Message.id, Message.follower_id).where(
    Message.channel == bindparam("channel"), Message.account == bindparam("account"),
    Message.dedupe_key == bindparam("key"), Message.direction == "in")
_REPLIES = select(Message.id, Message.body, Message.status).where(
    Message.in_reply_to == bindparam("inbound_id")).order_by(Message.id)

# Columns every message row written by the group writer carries (executemany wants one shape).
_MESSAGE_COLUMNS = ("follower_id", "channel", "account", "direction", "kind", "text", "payload", "body",
                    "dedupe_key", "status", "attempts", "created_at", "sent_at", "next_attempt_at")


class WriteRoute(StrEnum):
    """The two ways a message's exchange reaches the database."""

    GROUP_WRITER = "group writer"  # the handler wrote nothing: many messages commit in one transaction
    HANDLER_TRANSACTION = "handler's transaction"  # it did (a claim...): the exchange commits with it


class SqlStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine | None = None, *,
                 send_lease: timedelta = timedelta(seconds=SEND_LEASE_SECONDS)) -> None:
        self.sessions = sessions
        self.send_lease = send_lease
        bind = engine or sessions.kw.get("bind")
        self.writer = shared_group_writer(bind) if bind is not None else None
        self.reader = FollowerReader(sessions)

    async def close(self) -> None:
        await self.reader.close()
        if self.writer is not None:
            await self.writer.close()

    def session(self, *, replay_check: ReplayCheck | None = None) -> AsyncSession:
        # The session is its own context manager: no generator wrapped around it per message.
        return check_first(self.sessions(), replay_check)

    async def find_exchange(self, msg: Inbound) -> Exchange | None:
        async with self.sessions() as session:
            inbound = (await session.execute(_INBOUND, {
                "channel": msg.channel, "account": msg.account, "key": msg.message_id})).first()
            if inbound is None:
                return None
            return await self._exchange_of(session, inbound.id, inbound.follower_id)

    async def _exchange_of(self, session: AsyncSession, inbound_id: int, follower_id: int) -> Exchange:
        rows = (await session.execute(_REPLIES, {"inbound_id": inbound_id})).all()
        replies = [reply_from_dict(r.body) for r in rows]
        passive_count = sum(1 for r in rows if r.status == DeliveryStatus.PASSIVE)
        return Exchange(inbound_id, replies, [r.id for r in rows], passive_count, follower_id)

    async def load(self, msg: Inbound) -> tuple[FollowerRecord, Exchange | None]:
        """Return the follower (created on first contact) and, for a platform retry, what was stored.

        The follower comes detached: its changes are written by statement with the exchange.
        """
        lookup = await self.reader.lookup(msg)
        follower = lookup.follower
        if follower is None:  # a first contact: not created for a request that may be a replay
            await settle_replay_check(msg)
            follower = await self.reader.create(msg)
        stored = None
        if lookup.stored_inbound_id is not None:  # a retry: rare, so its own session
            async with self.sessions() as session:
                stored = await self._exchange_of(session, lookup.stored_inbound_id,
                                                 lookup.stored_follower_id or follower.id)
        return follower, stored

    async def record_notice(self, msg: Inbound) -> int | None:
        return await record_notice(self.sessions, msg)

    def apply_action(self, follower: FollowerRecord, msg: Inbound, *, reply_window_kind: str | None) -> None:
        apply_follower_action(follower, msg, utcnow(), reply_window_kind)

    async def record_exchange(
        self, session: AsyncSession | None, msg: Inbound, follower: FollowerRecord, replies: list[Reply], *, passive_count: int,
    ) -> Exchange:
        """Store the message, its replies and the follower's changes; commit.

        When the handler wrote nothing itself (or opened no session), the writes join the group writer's
        next batch; when it did (a claim, a referral), they go in the handler's own transaction so both
        commit together.
        """
        now = utcnow()
        inbound = _message_row(follower.id, msg, direction="in", kind=str(msg.kind), text=msg.text,
                               payload=msg.payload, body=None, dedupe_key=msg.message_id, status=DeliveryStatus.HANDLED,
                               created_at=msg.received_at or now)
        outbound = [
            _message_row(follower.id, msg, direction="out", kind=reply_kind(reply), text=reply_text(reply)[:4000],
                         payload=None, body=reply_to_dict(reply), dedupe_key=None,
                         status=DeliveryStatus.PASSIVE if index < passive_count else DeliveryStatus.PENDING, created_at=now,
                         sent_at=now if index < passive_count else None,
                         next_attempt_at=None if index < passive_count else now + self.send_lease)
            for index, reply in enumerate(replies)
        ]
        route = self.route(session)
        check = msg.replay_check
        if route is WriteRoute.GROUP_WRITER:
            assert self.writer is not None
            # Give the connection back (if the handler read) before waiting: the writer needs one.
            # Only then: a rollback of a session that holds nothing still costs a greenlet switch.
            if session is not None and session.in_transaction():
                await session.rollback()
            # The request's replay check in the same transaction, when no one is checking it already
            # (the checks of our channels are bot.channels.replay's, whose rows are a Seen). Taken only
            # here, where every way out settles or releases it.
            seen = cast(Seen | None, check.take()) if check is not None else None
            try:
                if check is not None and seen is None:
                    await check.wait()
                inbound_id, outbound_ids = await self.writer.write(ExchangeWrite(
                    follower.id, follower_changes(follower), inbound, outbound, follower.pause_was, seen=seen))
            except ReplayError:
                if check is not None:
                    check.settle(False)
                raise
            except BaseException:
                if check is not None and seen is not None:
                    check.release()  # not written: whoever waits for it checks it on its own
                raise
            if check is not None and seen is not None:
                check.settle(True)
            return Exchange(inbound_id, replies, outbound_ids, passive_count, follower.id)
        await settle_replay_check(msg)  # settled at the session's first statement; without a session, not yet
        if session is None:  # no group writer (no engine bound) and no session of the handler's
            async with self.sessions() as own:
                return await self._record_in_session(own, msg, follower, inbound, outbound, replies, passive_count)
        return await self._record_in_session(session, msg, follower, inbound, outbound, replies, passive_count)

    def route(self, session: AsyncSession | None) -> WriteRoute:
        """How this message's exchange is written: with the group writer's next batch, unless the
        handler wrote through the session (then in its transaction, so both commit together)."""
        if self.writer is None or (session is not None and session_wrote(session)):
            return WriteRoute.HANDLER_TRANSACTION
        return WriteRoute.GROUP_WRITER

    async def _record_in_session(self, session: AsyncSession, msg: Inbound, follower: FollowerRecord,
                                 inbound: dict[str, Any], outbound: list[dict[str, Any]], replies: list[Reply],
                                 passive_count: int) -> Exchange:
        await hold_write_gate(session)  # on SQLite: queue for the gate (held already if the handler wrote)
        plain, handoff = split_handoff(follower_changes(follower))
        if plain:
            await session.execute(update(Follower).where(Follower.id == follower.id).values(**plain))
        if handoff:
            await session.execute(update(Follower).where(
                Follower.id == follower.id, Follower.paused_by.is_not_distinct_from(follower.pause_was)).values(**handoff))
        inbound_row = Message(**inbound)
        session.add(inbound_row)
        try:
            await session.flush()
            rows = [Message(**row, in_reply_to=inbound_row.id) for row in outbound]
            session.add_all(rows)
            await session.commit()
        except IntegrityError as exc:
            # The only unique key an exchange can hit is the platform message id; the caller re-reads.
            if msg.message_id is not None:
                raise DuplicateExchange() from exc
            raise
        return Exchange(inbound_row.id, replies, [r.id for r in rows], passive_count, follower.id)


def _message_row(follower_id: int, msg: Inbound, **values: Any) -> dict[str, Any]:
    row = {"follower_id": follower_id, "channel": msg.channel, "account": msg.account, "attempts": 0,
           "sent_at": None, "next_attempt_at": None, **values}
    assert set(row) == set(_MESSAGE_COLUMNS), set(row) ^ set(_MESSAGE_COLUMNS)
    return row


def follower_changes(follower: FollowerRecord) -> dict[str, Any]:
    """The columns of ``follower`` changed since it was loaded, with their new values."""
    return dict(follower.changes)


async def get_or_create_follower(
    session: AsyncSession, *, channel: str, account: str, external_id: str, display_name: str | None = None,
) -> Follower:
    """Return the follower, inserting it on first contact (safe when two instances race)."""
    params = {"channel": channel, "account": account, "external_id": external_id}
    follower = (await session.execute(_FOLLOWER, params)).scalar_one_or_none()
    if follower is not None:
        return follower
    values: dict[str, Any] = dict(channel=channel, account=account, external_id=external_id, display_name=display_name,
                  following=False, tags=[], state_data={}, window_sends=0, created_at=utcnow())
    await session.execute(insert_ignore(session, Follower).values(**values))
    # Committed at once (a tiny transaction): the follower exists whatever happens to this message.
    await session.commit()
    return (await session.execute(_FOLLOWER, params)).scalar_one()


def apply_follower_action(follower: FollowerRecord, msg: Inbound, now: datetime, window_kind: str | None) -> None:
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
