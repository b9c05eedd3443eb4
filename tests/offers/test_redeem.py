"""Redeeming codes once, from the CLI and the admin HTTP API (token-protected)."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update

from bot.cli import main
from bot.core.clock import utcnow
from bot.errors import RulesFileError
from bot.offers import Claim
from bot.offers.admin import Authorize, admin_plugin
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


async def _client(h: BotHarness, token: str | None, *, authorize: Authorize | None = None,
                  **settings: Any) -> TestClient:
    app = web.Application()
    core = SimpleNamespace(settings=Settings(admin_token=token, **settings), sessions=h.sessions)
    assert admin_plugin(app, core, authorize=authorize) is None
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


async def _statuses(client: TestClient, count: int, *, code: str = "WRONG234", token: str = "nope",
                    headers: dict[str, str] | None = None) -> list[int]:
    async def once() -> int:
        response = await client.post("/admin/redeem", json={"code": code},
                                     headers={"Authorization": f"Bearer {token}", **(headers or {})})
        if response.status == 429:
            assert int(response.headers["Retry-After"]) >= 1
        return response.status

    return list(await asyncio.gather(*(once() for _ in range(count))))


async def test_a_burst_of_wrong_tokens_gets_429_with_retry_after_past_the_limit(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    client = await _client(offers, TOKEN, admin_failure_limit="10/minute")
    try:
        statuses = await _statuses(client, 300)
        assert sorted(statuses) == [401] * 10 + [429] * 290
        # The address is throttled whatever it sends now, the right token included.
        blocked = await client.post("/admin/redeem", json={"code": code}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert blocked.status == 429 and 50 <= int(blocked.headers["Retry-After"]) <= 60
        assert await blocked.json() == {"error": "too many failed attempts",
                                        "retry_after": int(blocked.headers["Retry-After"])}
    finally:
        await client.close()


async def test_a_burst_of_code_guesses_with_the_token_is_throttled(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    client = await _client(offers, TOKEN, admin_failure_limit="10/minute")
    try:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = await client.post("/admin/redeem", json={"code": code}, headers=auth)
        assert ok.status == 200  # a success is not a failure: it costs nothing
        statuses = await _statuses(client, 200, token=TOKEN)
        assert sorted(statuses) == [404] * 10 + [429] * 190
    finally:
        await client.close()


async def test_the_throttle_is_per_client_address_behind_a_trusted_proxy(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    client = await _client(offers, TOKEN, admin_failure_limit="3 per 2 seconds",
                           http={"trusted_proxies": "127.0.0.0/8"})
    try:
        guesser = {"X-Forwarded-For": "203.0.113.9"}
        assert sorted(await _statuses(client, 6, headers=guesser)) == [401] * 3 + [429] * 3
        # The till behind the same proxy is another client; a forged header cannot pose as it either.
        till = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "198.51.100.7"}
        ok = await client.post("/admin/redeem", json={"code": code}, headers=till)
        assert ok.status == 200
        forged = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9"}
        assert await _statuses(client, 1, headers=forged) == [429]
        await asyncio.sleep(2.1)  # the window passes: the guesser may try again
        assert await _statuses(client, 1, headers=guesser) == [401]
    finally:
        await client.close()


async def test_an_untrusted_peer_cannot_choose_its_address_with_x_forwarded_for(offers: BotHarness) -> None:
    client = await _client(offers, TOKEN, admin_failure_limit="3/minute")
    try:
        spoofed = [{"X-Forwarded-For": f"192.0.2.{i}"} for i in range(6)]
        statuses = [(await _statuses(client, 1, headers=h))[0] for h in spoofed]
        assert statuses == [401, 401, 401, 429, 429, 429]
    finally:
        await client.close()


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"code": ' + b"[" * 100_000, b"{", b"\xff\xfe",
                                  b'{"code": "ABC"', b""])
async def test_malformed_or_deeply_nested_json_is_400_not_500(offers: BotHarness, body: bytes) -> None:
    client = await _client(offers, TOKEN)
    try:
        response = await client.post("/admin/redeem", data=body,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        assert response.status == 400
        assert await response.json() == {"error": "body must be JSON"}
    finally:
        await client.close()


async def test_http_redeem_answers_with_the_whole_record(offers: BotHarness) -> None:
    code, other = await _claim_code(offers), await _claim_code(offers, "bob")
    client = await _client(offers, TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        ok = await client.post("/admin/redeem", json={"code": code, "by": "till-3"}, headers=auth)
        async with offers.sessions() as session:
            row = (await session.execute(select(Claim).where(Claim.code == code))).scalar_one()
        redeemed_at = row.redeemed_at.replace(tzinfo=UTC) if row.redeemed_at.tzinfo is None else row.redeemed_at
        valid_until = row.valid_until.replace(tzinfo=UTC) if row.valid_until.tzinfo is None else row.valid_until
        assert (ok.status, await ok.json()) == (200, {
            "outcome": "redeemed", "code": code, "promotion": "hotpot-50", "message": f"code {code} (hotpot-50) redeemed",
            "redeemed_at": redeemed_at.isoformat(), "valid_until": valid_until.isoformat()})
        assert row.redeemed_by == "till-3"
        again = await client.post("/admin/redeem", json={"code": code}, headers=auth)
        body = await again.json()
        assert (again.status, body["outcome"], body["redeemed_at"]) == (409, "already_redeemed", redeemed_at.isoformat())
        assert body["message"].endswith(" by till-3")
        # The promotion, when named, must be the code's own.
        wrong = await client.post("/admin/redeem", json={"code": other, "promotion": "tea"}, headers=auth)
        assert (wrong.status, (await wrong.json())["outcome"]) == (404, "unknown")
        right = await client.post("/admin/redeem", json={"code": other, "promotion": "hotpot-50"}, headers=auth)
        assert right.status == 200
        async with offers.sessions() as session:
            by = (await session.execute(select(Claim.redeemed_by).where(Claim.code == other))).scalar_one()
        assert by == "admin-api"  # who redeemed it, when the till did not say
    finally:
        await client.close()


async def test_http_redeem_of_an_expired_code_says_until_when(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    until = utcnow() - timedelta(days=1)
    async with offers.sessions() as session:
        await session.execute(update(Claim).values(valid_until=until))
        await session.commit()
    client = await _client(offers, TOKEN)
    try:
        expired = await client.post("/admin/redeem", json={"code": code}, headers={"Authorization": f"Bearer {TOKEN}"})
        body = await expired.json()
        assert (expired.status, body["outcome"], body["redeemed_at"]) == (410, "expired", None)
        assert body["valid_until"] == until.isoformat()
    finally:
        await client.close()


def test_codes_are_at_least_8_characters_from_the_generator_and_the_file(tmp_path: Path) -> None:
    from bot.offers.codes import ALPHABET, generate_code
    from bot.offers.spec import read_promo_file

    for length in (1, 6, 8, 12):
        code = generate_code(length, "F")
        assert len(code) == 1 + max(length, 8) and set(code[1:]) <= set(ALPHABET)
    path = tmp_path / "short.yaml"
    path.write_text("promotions:\n  - slug: x\n    title: {en: X}\n    code: {strategy: unique, length: 7}\n", "utf-8")
    with pytest.raises(RulesFileError, match=r"\('x'\) field code.length: .*greater than or equal to 8"):
        read_promo_file(path)
    path.write_text("promotions:\n  - slug: x\n    title: {en: X}\n    code: {strategy: pool, codes_csv: p.csv}\n",
                    "utf-8")
    (tmp_path / "p.csv").write_text("code\nABCDEFGH\nABC1234\n", "utf-8")
    with pytest.raises(RulesFileError, match="p.csv line 3: code 'ABC1234' must be 8 to 32 of"):
        read_promo_file(path)


async def test_http_redeem_refusals_say_why(offers: BotHarness) -> None:
    client = await _client(offers, TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        refused = await client.post("/admin/redeem", json={"code": "ABC"})
        assert (refused.status, await refused.json()) == (401, {"error": "unauthorized"})
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="engagebot"'
        not_json = await client.post("/admin/redeem", data=b"code=1", headers=auth)
        assert (not_json.status, await not_json.json()) == (400, {"error": "body must be JSON"})
        not_an_object = await client.post("/admin/redeem", json=["ABC"], headers=auth)
        assert not_an_object.status == 422 and (await not_an_object.json())["error"].startswith("body: ")
    finally:
        await client.close()


@pytest.mark.parametrize(("header", "status"), [
    (f"bearer {TOKEN}", 404), (f"BEARER  {TOKEN}", 404), (f"Bearer {TOKEN} ", 404),  # scheme in any case, spaces
    (f"Basic {TOKEN}", 401), (TOKEN, 401), ("Bearer", 401), (f"Bearer {TOKEN} extra", 401), (f"{TOKEN} Bearer", 401),
])
async def test_http_redeem_reads_the_bearer_scheme_as_http_defines_it(offers: BotHarness, header: str,
                                                                      status: int) -> None:
    client = await _client(offers, TOKEN)
    try:
        response = await client.post("/admin/redeem", json={"code": "NOSUCHCODE"}, headers={"Authorization": header})
        assert response.status == status  # 404: let in, and the code is unknown
    finally:
        await client.close()


async def test_an_already_redeemed_code_says_when_in_the_configured_zone(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    client = await _client(offers, TOKEN, timezone="America/New_York")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        assert (await client.post("/admin/redeem", json={"code": code, "by": "till-3"}, headers=auth)).status == 200
        again = await client.post("/admin/redeem", json={"code": code}, headers=auth)
        async with offers.sessions() as session:
            at = (await session.execute(select(Claim.redeemed_at).where(Claim.code == code))).scalar_one()
        assert at is not None
        local = at.replace(tzinfo=UTC).astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M %Z")
        assert local.endswith((" EST", " EDT"))
        assert (again.status, (await again.json())["message"]) == (
            409, f"code {code} (hotpot-50) was already redeemed at {local} by till-3")
    finally:
        await client.close()


class Operators:
    """An ``authorize`` hook as the operators' API gives one: a token stands for a principal, or for no one."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, token: str) -> Any:
        self.asked.append(token)
        return "till-7" if token == "op-token" else None


async def test_with_an_authorize_hook_its_principal_redeems_without_an_admin_token(offers: BotHarness) -> None:
    code = await _claim_code(offers)
    operators = Operators()
    client = await _client(offers, None, authorize=operators)
    try:
        ok = await client.post("/admin/redeem", json={"code": code}, headers={"Authorization": "Bearer op-token"})
        assert (ok.status, (await ok.json())["outcome"]) == (200, "redeemed")
    finally:
        await client.close()
    assert operators.asked == ["op-token"]
    async with offers.sessions() as session:
        by = (await session.execute(select(Claim.redeemed_by).where(Claim.code == code))).scalar_one()
    assert by == "till-7"  # the principal the hook named, the till not saying otherwise


@pytest.mark.parametrize(("header", "status", "asked"), [
    ("Bearer op-token", 404, ["op-token"]), ("bearer op-token", 404, ["op-token"]),
    ("BEARER  op-token ", 404, ["op-token"]),  # scheme in any case, spaces around the token
    ("Bearer someone-else", 401, ["someone-else"]),
    ("Basic op-token", 401, []), ("op-token", 401, []), ("Bearer", 401, []), (None, 401, []),
])
async def test_an_authorize_hook_is_asked_only_about_a_bearer_token(offers: BotHarness, header: str | None,
                                                                    status: int, asked: list[str]) -> None:
    operators = Operators()
    client = await _client(offers, TOKEN, authorize=operators)
    try:
        response = await client.post("/admin/redeem", json={"code": "NOSUCHCODE"},
                                     headers={} if header is None else {"Authorization": header})
        assert response.status == status  # 404: let in, and the code is unknown
    finally:
        await client.close()
    assert operators.asked == asked  # the admin token is not the hook's: TOKEN itself is never asked about
