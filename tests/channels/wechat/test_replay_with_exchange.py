"""The replay check written with the exchange: one write per message, and a replay still changes nothing.

A signed request's (timestamp, nonce, signature) row is written in the transaction that stores the
message's exchange (bot/core/replay_check.py). These tests play what that must not open: a forged body
sent at the same moment as the real one, a forged body whose handler writes or calls out, a retry
arriving while the first try runs.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import OperationalError

from bot import Context, Inbound, Reply, Router, TextReply
from bot.channels.replay import PendingCheck
from bot.core.clock import utcnow
from bot.errors import ReplayError
from bot.storage import writer as writer_module
from bot.storage.models import Follower, Message, SeenRequest, SharedToken
from bot.storage.replay import Seen
from tests.support.wechat import post, reason, signed_query, text_xml

from .conftest import TOKEN

_ids = itertools.count(10_000)  # platform message ids of the messages that only set a test up


async def _known(env: Any, http: aiohttp.ClientSession, count: int) -> list[str]:
    """``count`` followers who wrote once already and chose their language: their next messages are no
    first contact and ask the platform nothing."""
    openids = [env.follower(language="en") for _ in range(count)]
    for openid in openids:
        status, _ = await post(http, f"{env.bot_url}/wechat", signed_query(TOKEN),
                               text_xml(openid, "/lang en", msg_id=next(_ids)))
        assert status == 200
    return openids


async def test_a_forged_body_sent_with_the_real_one_is_refused_and_only_one_is_stored(make_env: Any) -> None:
    """Both bodies under one signature at the same moment: whichever is written first wins, the other is
    refused, every time; followers known or new."""
    async with make_env() as env, aiohttp.ClientSession() as http:
        real, known_forger = await _known(env, http, 2)
        forged_stored = []
        for round_ in range(8):
            query = signed_query(TOKEN)
            forger = known_forger if round_ % 2 else f"oNew{round_}"  # a first contact, every other round
            real_id, forged_id = str(100 + round_), str(200 + round_)
            answers = await asyncio.gather(
                post(http, f"{env.bot_url}/wechat", query, text_xml(real, f"hello {round_}", msg_id=real_id)),
                post(http, f"{env.bot_url}/wechat", query, text_xml(forger, "hotpot", msg_id=forged_id)))
            assert sorted(status for status, _ in answers) == [200, 403], answers
            refused = next(answer for status, answer in answers if status == 403)
            assert "signature already used" in reason(refused)
            stored = {key for key in (real_id, forged_id)
                      if await env.count(Message, Message.direction == "in", Message.dedupe_key == key)}
            assert len(stored) == 1
            forged_stored.append(forged_id in stored)
            if forger != known_forger:  # a refused first contact leaves no follower behind
                assert await env.count(Follower, Follower.external_id == forger) == int(forged_id in stored)
        assert await env.count(SeenRequest) == 2 + 8


async def test_a_replayed_body_runs_no_handler_with_effects_of_its_own_and_writes_nothing(make_env: Any) -> None:
    calls: list[str] = []
    effects = Router("effects")  # not ctx_only: it could call out, so it runs only for admitted requests
    writes = Router("writes", ctx_only=True)  # writes through ctx.session: its first write waits for the check

    @effects.on(command="effect")
    async def effect(msg: Inbound, ctx: Context) -> list[Reply]:
        calls.append(msg.external_id)
        return [TextReply("done")]

    @writes.on(command="save")
    async def save(msg: Inbound, ctx: Context) -> list[Reply]:
        await ctx.session.execute(insert(SharedToken).values(
            name=msg.external_id, value="x", expires_at=utcnow(), updated_at=utcnow()))
        return [TextReply("saved")]

    async with make_env(routers=[effects, writes]) as env, aiohttp.ClientSession() as http:
        alice, mallory = await _known(env, http, 2)
        url = f"{env.bot_url}/wechat"
        for command in ("/effect", "/save"):
            query = signed_query(TOKEN)
            status, _ = await post(http, url, query, text_xml(alice, "hello", msg_id=next(_ids)))
            assert status == 200
            before = await env.count(Message)
            status, answer = await post(http, url, query, text_xml(mallory, command, msg_id=next(_ids)))
            assert status == 403 and "signature already used" in reason(answer)
            assert await env.count(Message) == before
        assert calls == []
        assert await env.count(SharedToken, SharedToken.name == mallory) == 0
        # Admitted requests run both.
        for command in ("/effect", "/save"):
            status, answer = await post(http, url, signed_query(TOKEN), text_xml(mallory, command, msg_id=next(_ids)))
            assert status == 200 and "<Content>" in answer
        assert calls == [mallory]
        assert await env.count(SharedToken, SharedToken.name == mallory) == 1


async def test_each_message_is_one_write_of_the_group_writer_with_its_check(make_env: Any) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        fans = await _known(env, http, 20)
        batcher = env.bot.store.writer._batcher
        done_before, seen_before = batcher.done, await env.count(SeenRequest)
        answers = await asyncio.gather(*(
            post(http, f"{env.bot_url}/wechat", signed_query(TOKEN), text_xml(fans[i], "hello", msg_id=300 + i))
            for i in range(20)))
        assert all(status == 200 for status, _ in answers)
        assert batcher.done - done_before == 20  # one item per message: its exchange, with its check
        assert await env.count(SeenRequest) - seen_before == 20


async def test_a_retry_arriving_while_the_first_try_runs_gets_the_same_reply(make_env: Any) -> None:
    async with make_env() as env, aiohttp.ClientSession() as http:
        (fan,) = await _known(env, http, 1)
        query, body = signed_query(TOKEN), text_xml(fan, "hello", msg_id=400)
        answers = await asyncio.gather(*(post(http, f"{env.bot_url}/wechat", query, body) for _ in range(3)))
        assert [status for status, _ in answers] == [200, 200, 200]
        assert len({answer.split("<CreateTime>")[0] for _, answer in answers}) == 1
        assert await env.count(Message, Message.direction == "in", Message.dedupe_key == "400") == 1


async def test_a_request_whose_handling_failed_still_uses_up_its_signature(make_env: Any, monkeypatch: Any) -> None:
    """Answered 500 (the exchange's write failed), the genuine request's signature must not be left
    free for a forged body while the platform retries."""
    async with make_env() as env, aiohttp.ClientSession() as http:
        alice, mallory = await _known(env, http, 2)
        write_exchanges, failures = writer_module._write_exchanges, [1]

        def fails_once(conn: Any, batch: Any) -> Any:
            if failures:
                failures.pop()
                raise OperationalError("INSERT", {}, Exception("disk I/O error"))
            return write_exchanges(conn, batch)

        monkeypatch.setattr(writer_module, "_write_exchanges", fails_once)
        # The platform's retry is the same body, byte for byte (built once: its CreateTime must not move).
        query, genuine = signed_query(TOKEN), text_xml(alice, "hello", msg_id=500)
        status, _ = await post(http, f"{env.bot_url}/wechat", query, genuine)
        assert status >= 500
        status, answer = await post(http, f"{env.bot_url}/wechat", query, text_xml(mallory, "hotpot", msg_id=501))
        assert status == 403 and "signature already used" in reason(answer)
        assert await env.count(Message, Message.dedupe_key == "501") == 0
        retry = await post(http, f"{env.bot_url}/wechat", query, genuine)
        assert retry[0] == 200 and "<Content>" in retry[1]  # the platform's retry is answered


async def test_the_apps_error_handlers_run_only_for_admitted_requests(make_env: Any) -> None:
    alerted: list[str] = []
    failing = Router("failing", ctx_only=True)

    @failing.on(command="boom")
    async def boom(msg: Inbound, ctx: Context) -> list[Reply]:
        raise RuntimeError("a bug")

    async with make_env(routers=[failing]) as env, aiohttp.ClientSession() as http:
        @env.bot.dispatcher.error_handler
        async def alert(msg: Inbound, ctx: Context, exc: BaseException) -> list[Reply]:
            alerted.append(msg.external_id)  # e.g. pages an operator: an effect of the app's own
            return [TextReply("sorry")]

        alice, mallory = await _known(env, http, 2)
        query = signed_query(TOKEN)
        assert (await post(http, f"{env.bot_url}/wechat", query, text_xml(alice, "hello", msg_id=600)))[0] == 200
        status, _ = await post(http, f"{env.bot_url}/wechat", query, text_xml(mallory, "/boom", msg_id=601))
        assert status == 403 and alerted == []
        status, _ = await post(http, f"{env.bot_url}/wechat", signed_query(TOKEN), text_xml(mallory, "/boom", msg_id=602))
        assert status == 200 and alerted == [mallory]


async def test_a_forged_twin_in_flight_does_not_get_the_real_message_refused(make_env: Any) -> None:
    """A forged body under a used signature, naming the platform message id a real request carries
    while it is still being handled: the real one waits for it, and is then handled itself."""
    slow = Router("slow", ctx_only=True)

    @slow.on(command="slow")
    async def take_time(msg: Inbound, ctx: Context) -> list[Reply]:
        await asyncio.sleep(0.3)
        return [TextReply("done")]

    async with make_env(routers=[slow]) as env, aiohttp.ClientSession() as http:
        (alice,) = await _known(env, http, 1)
        used = signed_query(TOKEN)
        assert (await post(http, f"{env.bot_url}/wechat", used, text_xml(alice, "hello", msg_id=700)))[0] == 200
        forged = asyncio.ensure_future(post(http, f"{env.bot_url}/wechat", used, text_xml(alice, "/slow", msg_id=701)))
        await asyncio.sleep(0.1)
        real = await post(http, f"{env.bot_url}/wechat", signed_query(TOKEN), text_xml(alice, "/slow", msg_id=701))
        assert (await forged)[0] == 403
        assert real[0] == 200 and "done" in real[1]
        assert await env.count(Message, Message.dedupe_key == "701") == 1


async def test_handlers_that_read_then_write_all_get_through_at_once(make_env: Any) -> None:
    """More such handlers at once than the pool has connections: none waits for its check holding one
    (the check's own write needs the pool on PostgreSQL)."""
    read_write = Router("read-write", ctx_only=True)

    @read_write.on(command="rw")
    async def read_then_write(msg: Inbound, ctx: Context) -> list[Reply]:
        await ctx.session.execute(select(Follower.id).limit(1))  # as a claim reads the follower's codes first
        await asyncio.sleep(0.2)
        await ctx.session.execute(insert(SharedToken).values(
            name=msg.external_id, value="x", expires_at=utcnow(), updated_at=utcnow()))
        return [TextReply("ok")]

    async with make_env(routers=[read_write]) as env, aiohttp.ClientSession() as http:
        fans = await _known(env, http, 40)
        answers = await asyncio.wait_for(asyncio.gather(*(
            post(http, f"{env.bot_url}/wechat", signed_query(TOKEN), text_xml(fan, "/rw", msg_id=800 + i))
            for i, fan in enumerate(fans))), 20)
        assert [status for status, _ in answers] == [200] * 40
        assert await env.count(SharedToken, SharedToken.name.in_(fans)) == 40


# --- the check itself ------------------------------------------------------------------------


class _Ledger:
    """Admits a key with its first body hash only, as the database does; counts its writes."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}
        self.writes = 0

    async def admit(self, seen: Seen) -> bool:
        self.writes += 1
        await asyncio.sleep(0)
        return self.stored.setdefault(seen.key, seen.body_hash) == seen.body_hash


def _check(ledger: _Ledger, body: str = "a") -> PendingCheck:
    return PendingCheck(ledger, Seen("wechat", "key", body, utcnow()))  # type: ignore[arg-type]


async def test_a_check_taken_by_an_exchange_is_answered_by_its_write() -> None:
    ledger = _Ledger()
    admitted, refused = _check(ledger), _check(ledger)
    assert admitted.take() is not None and admitted.take() is None  # taken once
    refused.take()
    waiters = [asyncio.ensure_future(admitted.wait()), asyncio.ensure_future(refused.wait())]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)  # they wait for the exchange's write
    admitted.settle(True)
    refused.settle(False)
    await waiters[0]
    with pytest.raises(ReplayError, match="signature already used"):
        await waiters[1]
    assert ledger.writes == 0


async def test_a_check_nobody_took_or_whose_write_failed_is_written_on_its_own_once() -> None:
    ledger = _Ledger()
    alone = _check(ledger)
    await asyncio.gather(alone.wait(), alone.wait())  # two waiters, one write
    assert ledger.writes == 1 and alone.take() is None  # settled: no exchange takes it any more
    released = _check(ledger)
    assert released.take() is not None
    waiter = asyncio.ensure_future(released.wait())
    await asyncio.sleep(0)
    released.release()  # the exchange's transaction failed: nothing of it was written
    await waiter
    assert ledger.writes == 2
    replay = _check(ledger, body="b")
    with pytest.raises(ReplayError):
        await replay.wait()
