"""enforce_limits=True answers 429 like Telegram's flood control, so a test can check an adapter stays within it."""

from __future__ import annotations

import time

import aiohttp
import pytest

from bot.simulators.telegram import TelegramBotAPISimulator

from .conftest import serve


@pytest.fixture
async def limited():
    sim = TelegramBotAPISimulator(enforce_limits=True)
    runner, url = await serve(sim.make_app())
    async with aiohttp.ClientSession() as http:
        yield sim, f"{url}/bot{sim.token}/sendMessage", http
    await sim.close()
    await runner.cleanup()


async def test_private_chat_allows_a_short_burst_then_429(limited):
    sim, url, http = limited
    user = sim.add_user(started=True)
    statuses = []
    for i in range(7):
        async with http.post(url, json={"chat_id": user, "text": f"m{i}"}) as resp:
            statuses.append(resp.status)
            body = await resp.json()
    assert statuses[:5] == [200] * 5 and statuses[5] == 429
    assert body["parameters"]["retry_after"] >= 1 and body["description"].startswith("Too Many Requests: retry after")
    assert sim.limit_violations[0]["limit"] == "chat" and len(sim.sent(user)) == 5


async def test_more_than_30_per_second_overall_is_refused(limited):
    sim, url, http = limited
    users = [sim.add_user(started=True) for _ in range(31)]
    statuses = []
    for user in users:
        async with http.post(url, json={"chat_id": user, "text": "news"}) as resp:
            statuses.append(resp.status)
    assert statuses.count(200) == 30 and statuses[-1] == 429
    assert sim.limit_violations[-1]["limit"] == "global"


async def test_group_gets_20_per_minute(limited):
    sim, url, http = limited
    group = sim.add_group(title="Fans")
    sim.limit_global_per_second = 1000
    statuses = []
    for _ in range(21):
        async with http.post(url, json={"chat_id": group, "text": "hi all"}) as resp:
            statuses.append(resp.status)
            body = await resp.json()
    assert statuses.count(200) == 20 and statuses[-1] == 429
    assert body["parameters"]["retry_after"] > 50


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB reads its own retry_after
async def test_ptb_rate_limiter_waits_out_a_429_and_retries(sim, base, user):
    from telegram.ext import AIORateLimiter, ExtBot

    bot = ExtBot(sim.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot",
                 rate_limiter=AIORateLimiter(max_retries=2))
    async with bot:
        sim.inject_429(1, retry_after=1)
        started = time.monotonic()
        await bot.send_message(user, "eventually")
    assert time.monotonic() - started >= 1
    assert [c.method for c in sim.calls].count("sendMessage") == 2
    assert [m["text"] for m in sim.sent(user)] == ["eventually"]
