"""Redeeming codes once, from the CLI and the admin HTTP API (token-protected)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.cli import main
from bot.core.inbound import utcnow
from bot.offers import Claim
from bot.offers.admin import admin_plugin
from bot.settings import Settings
from bot.testing import BotHarness

TOKEN = "s3cret-admin-token"


async def _claim_code(h: BotHarness, who: str = "alice") -> str:
    f = h.follower(who, language="en")
    await f.say("hotpot")
    return f.last_text.splitlines()[1]


async def test_cli_redeems_a_code_once(offers: BotHarness, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code = await _claim_code(offers)
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", offers.database_url)
    assert await asyncio.to_thread(main, ["promo", "redeem", code.lower(), "--by", "store-12"]) == 0
    assert capsys.readouterr().out == f"code {code} (hotpot-50) redeemed\n"
    assert await asyncio.to_thread(main, ["promo", "redeem", code]) == 1
    assert capsys.readouterr().out.startswith(f"code {code} (hotpot-50) was already redeemed at ")
    assert await asyncio.to_thread(main, ["promo", "redeem", "NOSUCHCODE"]) == 1
    assert capsys.readouterr().out == "code NOSUCHCODE is unknown\n"
    async with offers.sessions() as session:
        row = (await session.execute(select(Claim.redeemed_by).where(Claim.code == code))).scalar_one()
    assert row == "store-12"


async def test_cli_reports_an_expired_code(offers: BotHarness, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = await _claim_code(offers)
    async with offers.sessions() as session:
        await session.execute(update(Claim).values(valid_until=utcnow() - timedelta(days=1)))
        await session.commit()
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", offers.database_url)
    assert await asyncio.to_thread(main, ["promo", "redeem", code]) == 1
    assert capsys.readouterr().out.startswith(f"code {code} (hotpot-50) expired at ")


async def _client(h: BotHarness, token: str | None) -> TestClient:
    app = web.Application()
    core = SimpleNamespace(settings=Settings(admin_token=token), sessions=h.sessions)
    assert admin_plugin(app, core) is None
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_http_redeem_needs_the_bearer_token(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    client = await _client(offers, TOKEN)
    try:
        no_token = await client.post("/admin/redeem", json={"code": code})
        assert no_token.status == 401
        wrong = await client.post("/admin/redeem", json={"code": code}, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = await client.post("/admin/redeem", json={"code": code, "by": "till-3"}, headers=auth)
        assert ok.status == 200
        assert (await ok.json())["outcome"] == "redeemed"
        again = await client.post("/admin/redeem", json={"code": code}, headers=auth)
        assert again.status == 409
        assert (await again.json())["outcome"] == "already_redeemed"
        unknown = await client.post("/admin/redeem", json={"code": "ZZZZZZZZ"}, headers=auth)
        assert unknown.status == 404
        bad = await client.post("/admin/redeem", json={"code": ""}, headers=auth)
        assert bad.status == 422
        assert (await bad.json())["error"].startswith("code:")
        extra = await client.post("/admin/redeem", json={"code": code, "admin": True}, headers=auth)
        assert extra.status == 422
        not_json = await client.post("/admin/redeem", data=b"code=1", headers=auth)
        assert not_json.status == 400
    finally:
        await client.close()


async def test_http_redeem_is_disabled_without_an_admin_token(offers: BotHarness) -> None:
    client = await _client(offers, None)
    try:
        response = await client.post("/admin/redeem", json={"code": "ABC"}, headers={"Authorization": "Bearer x"})
        assert response.status == 503
        assert await response.json() == {"error": "admin API disabled"}
    finally:
        await client.close()


async def test_concurrent_redemptions_of_one_code_succeed_once(offers: BotHarness) -> None:
    from bot.offers import RedeemOutcome, redeem

    code = await _claim_code(offers)

    async def once() -> RedeemOutcome:
        async with offers.sessions() as session:
            result = await redeem(session, code)
            await session.commit()
            return result.outcome

    outcomes = await asyncio.gather(*(once() for _ in range(10)))
    assert sorted(outcomes) == sorted([RedeemOutcome.REDEEMED] + [RedeemOutcome.ALREADY_REDEEMED] * 9)
