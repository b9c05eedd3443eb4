"""SQLAlchemy models: followers, messages in and out (the outbox), prompt rules, shared tokens, seen
requests (the replay cache), and what the embedded platform simulators keep across restarts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Double,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Predictable constraint names, so migrations can drop them on SQLite (batch mode) and PostgreSQL alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend: SQLite hands back naive values, PostgreSQL aware ones.

    Storage owns time: code above it reads aware UTC and never converts. A naive value is UTC going
    in as coming out (asyncpg alone would read a naive value in the server's zone).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None:
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[str]: JSON}


class Follower(Base):
    """One person on one channel account; conversation state lives here to save a round trip."""

    __tablename__ = "follower"
    __table_args__ = (
        UniqueConstraint("channel", "account", "external_id"),
        # The inbox: conversations newest first, and the queued ones by age (migration 0016).
        Index("ix_follower_last_action_at", "last_action_at"),
        Index("ix_follower_paused_by", "paused_by", "paused_at"),
        Index("ix_follower_owed_since", "owed_since"),  # the inbox's "owed an answer" (migration 0018)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str | None] = mapped_column(String(128))
    locale: Mapped[str | None] = mapped_column(String(16))  # the follower's explicit choice
    locale_hint: Mapped[str | None] = mapped_column(String(35))  # the platform's hint, as given
    following: Mapped[bool] = mapped_column(Boolean, default=False)
    followed_at: Mapped[datetime | None]
    unfollowed_at: Mapped[datetime | None]
    first_source: Mapped[str | None] = mapped_column(String(128))  # first-touch campaign scene
    first_touch_at: Mapped[datetime | None]
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str | None] = mapped_column(String(64))
    state_data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The platform's reply window: opened by the follower's last action, counted per send.
    last_action_at: Mapped[datetime | None]
    last_action_kind: Mapped[str | None] = mapped_column(String(16))
    window_sends: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    # Set while someone else answers this follower: messages are stored, no handler runs. "platform":
    # the platform's own customer-service session; "queue": asked for a person, waiting for an agent;
    # "agent:<id>": an agent of ours has the conversation (bot.core.follower, docs/inbox.md).
    paused_by: Mapped[str | None] = mapped_column(String(80))
    paused_at: Mapped[datetime | None]  # when the pause last changed: a late, older event changes nothing
    # When the follower was told that a person will answer, during this queue or agent pause (migration 0016).
    handoff_told_at: Mapped[datetime | None]
    # Asked for a person, and the queue's timeout gave them back to the bot before an agent answered:
    # still owed a person's answer, since they asked (migration 0018). Cleared by an agent's reply or dismissal.
    owed_since: Mapped[datetime | None]
    # The last location the platform reported (WeChat's location reports): not a message to answer.
    last_latitude: Mapped[float | None] = mapped_column(Float)
    last_longitude: Mapped[float | None] = mapped_column(Float)
    last_located_at: Mapped[datetime | None]


class Message(Base):
    """A message in or out. Outbound rows double as the outbox: written before any send."""

    __tablename__ = "message"
    __table_args__ = (
        UniqueConstraint("channel", "account", "dedupe_key"),
        Index("ix_message_outbox", "status", "channel", "next_attempt_at"),
        Index("ix_message_follower", "follower_id", "id"),
        Index("ix_message_broadcast", "broadcast_id", "status"),
        Index("ix_message_created_at", "created_at"),  # retention (bot/storage/retention.py, migration 0009)
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str | None] = mapped_column(String(512))
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # a serialized Reply, for outbound
    # Inbound: the platform's message id or event key, unique per account (drops platform retries).
    # Outbound: an idempotency key (broadcast id + follower), unique too.
    dedupe_key: Mapped[str | None] = mapped_column(String(160))
    in_reply_to: Mapped[int | None] = mapped_column(BigId)
    broadcast_id: Mapped[int | None] = mapped_column(BigId)  # outbound rows of a broadcast (migration 0003)
    # A ``bot.storage.status.DeliveryStatus``, stored as its string. Inbound: "handled". Outbound:
    # "passive" (went in the HTTP answer), "pending", "sending" (handed to the platform, its answer
    # not yet recorded: in doubt if the process dies now), "sent", "failed" (will not retry) or
    # "undeliverable" (the platform would refuse it); broadcasts add "held" (outside the reply
    # window, waiting for a mass send) and "cancelled".
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]  # pending/sending: the lease (or retry time); NULL: due now
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # Sent again after a try whose outcome was lost (the sender died while it was "sending") on a
    # platform that cannot drop the repeat: the follower may have it twice (migration 0006).
    resent_in_doubt: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Outbound: the agent who wrote it (the inbox, migration 0016); None: the bot.
    sent_by: Mapped[str | None] = mapped_column(String(64))


class SenderPresence(Base):
    """A process able to send one channel account's outbox, seen alive at ``seen_at`` (a heartbeat).

    Rows of an account nobody has served for a while are given up (``bot.delivery.presence``).
    """

    __tablename__ = "outbox_sender"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]


class PromptRule(Base):
    """An operator's prompt-reply rule: keywords (or regexes) per locale and a reply per locale."""

    __tablename__ = "prompt_rule"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    match: Mapped[dict[str, Any]] = mapped_column(JSON)
    reply: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    regex: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime]
    # Bumped by every ORM update (migration 0015): the admin API's ETag; a stale edit fails, never overwrites.
    version: Mapped[int] = mapped_column(Integer, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class SeenRequest(Base):
    """A signed platform request accepted recently (the replay cache, migration 0004).

    WeChat and Weibo sign (timestamp, nonce), not the body: the same signature must not come back
    with another body. Kept until the timestamp leaves the accepted window, then pruned.
    """

    __tablename__ = "seen_request"
    __table_args__ = (Index("ix_seen_request_expires_at", "expires_at"),)

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)  # the channel ("wechat", "weibo")
    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of timestamp, nonce, signature
    body_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the body as received
    expires_at: Mapped[datetime]


class PlatformNotice(Base):
    """A platform notification, recorded once and never answered (migration 0011).

    Location reports, a mass send's report, customer-service sessions opening and closing, card and
    verification events: what the platform told the account, kept for reports (``broadcast status``
    reads mass-send reports here by ``subject``, the mass send's platform id).
    """

    __tablename__ = "platform_notice"
    __table_args__ = (
        UniqueConstraint("channel", "account", "dedupe_key"),
        Index("ix_platform_notice_subject", "channel", "account", "event", "subject"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    account: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(128))
    follower_id: Mapped[int | None] = mapped_column(ForeignKey("follower.id", ondelete="CASCADE"))
    subject: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime]


class SharedToken(Base):
    """A platform access token shared by every instance (WeChat allows one live token per app)."""

    __tablename__ = "shared_token"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024))
    expires_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SimulatorRecord(Base):
    """One piece of an embedded simulator's world (a user, a chat, a file, its counters, its credentials).

    The simulators served by ``engagebot run`` keep their state here, so a restart is invisible to
    their users: ids continue, chats and followers are still there, credentials stay the same.
    """

    __tablename__ = "simulator_record"

    simulator: Mapped[str] = mapped_column(String(16), primary_key=True)  # "wechat" | "telegram"
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # "user", "chat", "meta", ...
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime]


class WeiboPublicReply(Base):
    """One public comment or @mention the Weibo megaphone saw, and what it did about it (once).

    Recorded before the poll's cursor moves past the item; ``attempted`` is set (committed) before
    the reply is posted, so after a crash the poller checks the platform before posting again.
    ``status``: ``recorded`` (not settled yet), ``sent``, ``skipped`` or ``failed`` (with ``reason``).
    """

    __tablename__ = "weibo_public_reply"
    __table_args__ = (UniqueConstraint("account", "item_key"), Index("ix_weibo_public_reply_sent", "account", "sent_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account: Mapped[str] = mapped_column(String(64))
    item_key: Mapped[str] = mapped_column(String(48))  # "c:<comment id>" or "s:<post id>"
    post_id: Mapped[str] = mapped_column(String(24))
    cid: Mapped[str | None] = mapped_column(String(24))
    user_id: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(16))
    reply_text: Mapped[str | None] = mapped_column(String(160))
    attempted: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class WeiboPollState(Base):
    """The megaphone's cursors (``since_id`` per listing) and the lease of the one instance that polls."""

    __tablename__ = "weibo_poll_state"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    since_comments: Mapped[str] = mapped_column(String(24), default="0")
    since_mentions: Mapped[str] = mapped_column(String(24), default="0")
    holder: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Lease(Base):
    """Who runs a duty that must run once in the deployment (``bot.storage.leases``), and until when.

    ``generation`` grows each time the lease changes hands: a fencing token, so a holder that was
    paused past its expiry cannot renew what another has taken since.
    """

    __tablename__ = "lease"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]
    generation: Mapped[int] = mapped_column(BigInteger)


class SendPace(Base):
    """The next free send slot of one channel account, shared by every instance on PostgreSQL
    (``bot.delivery.ratelimit.SharedPace``): together they never exceed the account's rate."""

    __tablename__ = "send_pace"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # "<channel>:<account>"
    next_at: Mapped[float] = mapped_column(Double)  # seconds since the epoch (the instances' synced clocks)


class MenuDefinition(Base):
    """The brand's menu as loaded (``engagebot menu load``) and what each platform said to it (migration 0013).

    One row per name (``default``): ``definition`` is ``bot.core.menu.Menu.to_json()``, ``pushed`` maps a
    channel (``wechat``, ``telegram:mybot``) to the outcome of its last push.
    """

    __tablename__ = "menu_definition"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    pushed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    loaded_at: Mapped[datetime]
