"""A channel with no platform: tests and the terminal console talk to the bot through it.

Replies are answered inline (like a passive reply), degraded to the declared capabilities, and
collected per follower so a test can read them. Sends through the API (outbox, broadcasts) go to
``sent``, or to a ``DeliverySink`` standing in for the platform: ``SqlDeliverySink`` keeps them in a
durable table keyed by the idempotency key (a resend of the same key is counted, not delivered again),
``CountingSink`` only counts them (benchmarks).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from dataclasses import replace
from typing import Any, ClassVar, Protocol

from aiohttp import web
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.core.capabilities import Capabilities
from bot.core.dispatcher import PassiveSlot
from bot.core.inbound import Inbound, Kind
from bot.core.reply import Reply
from bot.core.serialize import reply_text
from bot.errors import PayloadError
from bot.storage.dialect import SQLITE, dialect_name, upsert
from bot.storage.engine import create_engine
from bot.web import read_body

from .base import Channel, Dispatch

MOCK_CAPABILITIES = Capabilities(
    max_text_length=4096, buttons=True, max_articles=10, images=True, image_captions=True,
    not_met=(("signature", "no platform: followers' actions are calls in the same process, nothing is signed"),
             ("windows", "no platform: the mock answers inline and keeps its sends, with no window to keep"),
             ("rates", "no platform: the mock's sends are calls in the same process, with no pace to keep"),
             ("crash", "no send engine: the mock's sends are calls in the same process (or rows of its sink)")))


class DeliverySink(Protocol):
    """Where the mock "platform" puts what it was asked to send."""

    deduplicates: bool  # a second delivery with the same idempotency key is dropped

    async def deliver(self, external_id: str, reply: Reply, *, idempotency_key: str | None) -> None: ...


class CountingSink:
    """Count deliveries and keep nothing: memory stays flat however many are sent."""

    deduplicates = False

    def __init__(self) -> None:
        self.count = 0

    async def deliver(self, external_id: str, reply: Reply, *, idempotency_key: str | None) -> None:
        self.count += 1


_sink_metadata = MetaData()
MOCK_DELIVERY = Table(
    "mock_delivery", _sink_metadata,
    Column("idempotency_key", String(160), primary_key=True),
    Column("external_id", String(128), nullable=False, index=True),
    Column("text", Text, nullable=False),
    Column("attempts", Integer, nullable=False),  # > 1: the platform saw a resend and dropped it
    Column("delivered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class SqlDeliverySink:
    """A durable "platform" in a table ``mock_delivery`` (SQLite or PostgreSQL), deduplicating by key.

    Each delivery commits before ``deliver`` returns, as a platform that answered 200 has the message.
    The crash tests count what reached it after the sending process was killed.
    """

    deduplicates = True

    def __init__(self, url: str) -> None:
        # NORMAL: durable across a process crash (what the tests kill), cheaper than FULL.
        self.engine = create_engine(url, sqlite_synchronous="NORMAL")
        # SQLite has one writer: queue here rather than in its busy handler, which sleeps up to 100 ms.
        self._write_lock = asyncio.Lock() if dialect_name(self.engine) == SQLITE else None
        self._conn: AsyncConnection | None = None
        self._upsert = upsert(self.engine, MOCK_DELIVERY, index_elements=["idempotency_key"],
                              set_={"attempts": MOCK_DELIVERY.c.attempts + 1})

    async def open(self) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_sink_metadata.create_all)
        except DBAPIError:
            # The workers of one `run --workers N` open the sink at the same moment: another one created the
            # table between this one's check and its CREATE. A second pass finds it; any other error stays.
            async with self.engine.begin() as conn:
                await conn.run_sync(_sink_metadata.create_all)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        await self.engine.dispose()

    async def deliver(self, external_id: str, reply: Reply, *, idempotency_key: str | None) -> None:
        params = {"idempotency_key": idempotency_key or f"nokey:{uuid.uuid4().hex}", "external_id": external_id,
                  "text": reply_text(reply), "attempts": 1}
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                await conn.execute(self._upsert, params)
            return
        async with self._write_lock:  # one held connection: a pool checkout per write costs more than the write
            if self._conn is None:
                self._conn = await self.engine.connect()
            await self._conn.execute(self._upsert, params)
            await self._conn.commit()

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return (await conn.execute(select(func.count()).select_from(MOCK_DELIVERY))).scalar_one()


HTTP_KINDS = frozenset({Kind.TEXT, Kind.COMMAND, Kind.CLICK, Kind.FOLLOW, Kind.UNFOLLOW, Kind.SCAN})
MAX_HTTP_BODY = 16 * 1024


class MockChannel(Channel):
    """The mock channel; with ``path`` it also takes followers' actions over HTTP (``POST path``, JSON).

    The HTTP form (``engagebot run`` with ``ENGAGEBOT_MOCK_SINK``) lets a test drive a real server
    process without any platform: ``{"from": "amy", "text": "hi", "message_id": "m1"}`` (optional
    ``kind``, ``payload``, ``language``) is answered ``{"replies": [...], "duplicate": false}`` once
    the message and its replies are stored.
    """

    name: ClassVar[str] = "mock"

    def __init__(self, *, dispatch: Dispatch, account: str = "mock", capabilities: Capabilities = MOCK_CAPABILITIES,
                 channel_name: str = "mock", sink: DeliverySink | None = None, path: str | None = None) -> None:
        super().__init__(dispatch=dispatch, account=account)
        self.capabilities = capabilities
        self.channel_name = channel_name
        self.transcripts: dict[str, list[Reply]] = defaultdict(list)
        self.sent: dict[str, list[Reply]] = defaultdict(list)  # through send_reply (outbox, broadcasts)
        self.sink = sink  # when set, send_reply delivers there instead of into ``sent``
        if sink is not None and sink.deduplicates:
            self.capabilities = replace(capabilities, idempotent_sends=True)
        self._ids = itertools.count(1)
        self.path = path

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.handle_http)] if self.path else []

    async def handle_http(self, request: web.Request) -> web.Response:
        """``POST <path>``: one follower action as JSON; answered with the replies once they are stored."""
        import json

        try:
            body = json.loads(await read_body(request, MAX_HTTP_BODY))
        except (ValueError, RecursionError):
            raise PayloadError("body is not JSON") from None
        if not isinstance(body, dict):
            raise PayloadError("body must be a JSON object")

        def text_field(key: str, limit: int, *, required: bool = False) -> str | None:
            value = body.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not (0 if key == "text" else 1) <= len(value) <= limit:
                raise PayloadError(f"field {key!r}: a string of at most {limit} characters expected")
            return value

        try:
            kind = Kind(body.get("kind", "text"))
        except ValueError:
            kind = None
        if kind not in HTTP_KINDS:
            raise PayloadError(f"field 'kind': one of {', '.join(sorted(HTTP_KINDS))}")
        follower = text_field("from", 128, required=True)
        assert follower is not None
        result = await self.dispatch(Inbound(
            channel=self.channel_name, account=self.account, external_id=follower, kind=kind,
            text=text_field("text", 4096) or "", payload=text_field("payload", 512),
            language_hint=text_field("language", 35), message_id=text_field("message_id", 128),
        ), passive=PassiveSlot())
        return web.json_response({"replies": [reply_text(r) for r in self.degrade(result.replies)],
                                  "duplicate": result.duplicate})

    async def receive(
        self, external_id: str, kind: Kind, text: str = "", *, payload: str | None = None,
        language_hint: str | None = None, message_id: str | None = None, display_name: str | None = None,
    ) -> list[Reply]:
        """Play one action of a follower and return the replies as this channel shows them."""
        msg = Inbound(
            channel=self.channel_name, account=self.account, external_id=external_id, kind=kind, text=text,
            payload=payload, language_hint=language_hint, display_name=display_name,
            message_id=message_id if message_id is not None else f"mock-{next(self._ids)}-{id(self)}",
        )
        result = await self.dispatch(msg, passive=PassiveSlot())
        replies = self.degrade(result.replies)
        self.transcripts[external_id].extend(replies)
        return replies

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        if self.sink is not None:
            await self.sink.deliver(external_id, reply, idempotency_key=(context or {}).get("idempotency_key"))
            return
        self.sent[external_id].append(reply)
