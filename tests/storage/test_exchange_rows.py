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


@router.on(command="person")
async def person_and_a_write(msg: Inbound, ctx: Context) -> list[Reply]:
    # Asks for a person (the handoff columns); with "write", writes itself too (the handler's transaction).
    if msg.payload == "write":
        ctx.session.add(PromptRule(name=f"p-{msg.message_id}", match={"en": ["x"]}, reply={"en": "y"}, priority=0,
                                   regex=False, updated_at=RECEIVED))
    ctx.follower.queue_for_agent(ctx.now, told=True)
    return [TextReply("queued")]


@pytest.mark.parametrize("path", ["group writer", "handler's transaction"])
async def test_the_handoff_is_written_only_if_paused_by_is_as_read(database_url: str, path: str) -> None:
    """The handoff columns, on both write paths: written to this follower only, and only while
    ``paused_by`` is what the message read (a lapsed platform pause included); an agent's take
    committed between the read and the write stands."""
    payload = "write" if path == "handler's transaction" else "plain"
    from sqlalchemy import update

    from bot.core.clock import utcnow
    from bot.core.follower import PLATFORM_DESK, PLATFORM_PAUSE_LAPSES

    def person(external_id: str) -> Inbound:
        return Inbound(channel="mock", account="mock", external_id=external_id, kind=Kind.COMMAND, text="/person",
                       payload=payload, message_id=f"{external_id}-1")

    async with BotHarness(routers=[router], database_url=database_url, capabilities=CAPS) as bot:
        for name in ("bob", "cat", "dan"):  # known followers, none paused
            await bot.dispatcher.dispatch(Inbound(channel="mock", account="mock", external_id=name, kind=Kind.TEXT,
                                                  text="hi", message_id=f"{name}-0"), capabilities=CAPS)
        async with bot.sessions() as s:
            await s.execute(update(Follower).where(Follower.external_id == "cat").values(
                paused_by=PLATFORM_DESK, paused_at=utcnow() - PLATFORM_PAUSE_LAPSES - timedelta(minutes=1)))
            await s.commit()
        read = bot.store.load

        async def dan_taken_meanwhile(msg):  # type: ignore[no-untyped-def]
            loaded = await read(msg)
            if msg.external_id == "dan":
                async with bot.sessions() as other:
                    await other.execute(update(Follower).where(Follower.external_id == "dan").values(
                        paused_by="agent:alice", paused_at=utcnow()))
                    await other.commit()
            return loaded

        bot.store.load = dan_taken_meanwhile  # type: ignore[method-assign]
        results = [await bot.dispatcher.dispatch(person(name), capabilities=CAPS) for name in ("ann", "cat", "dan")]
        async with bot.sessions() as s:
            rows = {f.external_id: f for f in (await s.execute(select(Follower))).scalars()}
            rules = sorted((await s.execute(select(PromptRule.name))).scalars())
    assert [[r.text for r in result.replies] for result in results] == [["queued"]] * 3
    # Each handler's own write committed with its message: the path was the one named.
    assert rules == (["p-ann-1", "p-cat-1", "p-dan-1"] if payload == "write" else [])
    paused = {name: (row.paused_by, row.handoff_told_at is not None) for name, row in rows.items()}
    assert paused == {"ann": ("queue", True), "cat": ("queue", True), "dan": ("agent:alice", False),
                      "bob": (None, False)}
