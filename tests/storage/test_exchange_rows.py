"""What one message leaves in the database: its inbound row, one row per reply (inline or leased to
the outbox), and the follower's changes, on both write paths (the group writer, and the handler's own
transaction when it wrote something itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot import Context, Inbound, Kind, Reply, Router, TextReply
from bot.core.capabilities import Capabilities
from bot.core.dispatcher import PassiveSlot
from bot.storage.models import Follower, Message, PromptRule
from bot.storage.store import SEND_LEASE_SECONDS
from bot.testing import BotHarness

CAPS = Capabilities(max_passive_replies=1)
router = Router("rows")
RECEIVED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@router.on(command="reply")
async def reply(msg: Inbound, ctx: Context) -> list[Reply]:
    ctx.set_state("replied")
    if msg.payload == "write":  # the handler writes itself: its own transaction carries the exchange
        ctx.session.add(PromptRule(name=f"r-{msg.message_id}", match={"en": ["x"]}, reply={"en": "y"}, priority=0,
                                   regex=False, updated_at=RECEIVED))
    return [TextReply("inline"), TextReply("x" * 5000)]


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@pytest.mark.parametrize("path", ["group writer", "handler's transaction"])
async def test_a_message_leaves_its_rows_and_its_followers_changes(database_url: str, path: str) -> None:
    payload = "write" if path == "handler's transaction" else "plain"
    async with BotHarness(routers=[router], database_url=database_url, capabilities=CAPS) as bot:
        bystander = Inbound(channel="mock", account="mock", external_id="bob", kind=Kind.TEXT, text="hi",
                            message_id="b-1")
        await bot.dispatcher.dispatch(bystander, capabilities=CAPS)
        msg = Inbound(channel="mock", account="mock", external_id="ann", kind=Kind.COMMAND, text="/reply",
                      payload=payload, message_id="a-1", received_at=RECEIVED)
        before = datetime.now(UTC)
        result = await bot.dispatcher.dispatch(msg, capabilities=CAPS, passive=PassiveSlot())
        async with bot.sessions() as s:
            rows = {r.id: r for r in (await s.execute(select(Message))).scalars()}
            followers = {f.external_id: f for f in (await s.execute(select(Follower))).scalars()}
            rules = (await s.execute(select(PromptRule.name))).scalars().all()
    ann = followers["ann"]
    inbound_row = rows[result.exchange.inbound_id]
    assert (inbound_row.direction, inbound_row.kind, inbound_row.text, inbound_row.payload, inbound_row.status,
            inbound_row.dedupe_key, inbound_row.follower_id) == ("in", "command", "/reply", payload, "handled",
                                                                  "a-1", ann.id)
    assert aware(inbound_row.created_at) == RECEIVED
    inline, queued = (rows[i] for i in result.exchange.outbound_ids)
    assert (inline.status, inline.text, inline.in_reply_to, inline.next_attempt_at) == (
        "passive", "inline", inbound_row.id, None)
    assert before <= aware(inline.sent_at) <= datetime.now(UTC)
    assert (queued.status, queued.sent_at, queued.in_reply_to, len(queued.text)) == (
        "pending", None, inbound_row.id, 4000)  # the row's text is cut; its body keeps the whole reply
    lease = aware(queued.next_attempt_at) - before
    assert timedelta(seconds=SEND_LEASE_SECONDS - 1) <= lease <= timedelta(seconds=SEND_LEASE_SECONDS + 5)
    assert (result.exchange.passive_count, result.exchange.follower_id) == (1, ann.id)
    assert ann.state == "replied" and followers["bob"].state is None  # only this follower's row changed
    assert rules == (["r-a-1"] if payload == "write" else [])
