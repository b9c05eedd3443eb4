"""``engagebot operator ...``: accounts and tokens from the terminal, through the API's own service layer."""

from __future__ import annotations

import asyncio
import io

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.admin.audit import list_entries
from bot.admin.plugin import admin_api_plugin
from bot.admin.secrets import verify_password
from bot.app import build_app
from bot.cli import main
from bot.storage.engine import create_engine, make_sessionmaker
from tests.admin.conftest import BOOTSTRAP, settings_for


async def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str,
               stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_an_operator_is_added_given_a_token_and_disabled(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    code, out, _ = await _cli(monkeypatch, capsys, "operator", "add", "mei", "--role", "staff", "--password-stdin",
                              stdin="a long enough password\n")
    assert (code, out) == (0, "added operator mei (staff); make an API token with: engagebot operator token create mei\n")
    code, token, err = await _cli(monkeypatch, capsys, "operator", "token", "create", "mei", "--label", "till 1")
    token = token.strip()
    assert code == 0 and token.startswith("ebo_") and "shown this once" in err
    code, out, _ = await _cli(monkeypatch, capsys, "operator", "list")
    assert out.split()[:3] == ["mei", "staff", "active"]

    app = build_app(settings_for(database_url), plugins=[admin_api_plugin])
    async with TestClient(TestServer(app)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        async with client.get("/admin/api/v1/me", headers=headers) as r:
            assert (r.status, (await r.json())["role"]) == (200, "staff")
        code, out, _ = await _cli(monkeypatch, capsys, "operator", "disable", "mei")
        assert (code, out) == (0, "operator mei disabled: its tokens stop working now\n")
        async with client.get("/admin/api/v1/me", headers=headers) as r:
            assert r.status == 401  # the running server, with no restart
        assert (await _cli(monkeypatch, capsys, "operator", "enable", "mei"))[0] == 0
        async with client.get("/admin/api/v1/me", headers=headers) as r:
            assert r.status == 200
        code, out, _ = await _cli(monkeypatch, capsys, "operator", "token", "list", "mei")
        token_id = out.split()[0]
        assert (await _cli(monkeypatch, capsys, "operator", "token", "revoke", token_id))[0] == 0
        async with client.get("/admin/api/v1/me", headers=headers) as r:
            assert r.status == 401
        async with client.get("/admin/api/v1/audit", headers={"Authorization": f"Bearer {BOOTSTRAP}"}) as r:
            actions = [(e["actor"], e["action"]) for e in (await r.json())["items"]]
    assert actions[:3] == [("cli", "token.revoke"), ("cli", "operator.update"), ("cli", "operator.update")]


async def test_reset_password_replaces_the_hash(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from bot.admin.operators import get_operator
    from bot.storage.engine import create_engine, make_sessionmaker

    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    await _cli(monkeypatch, capsys, "operator", "add", "li", "--role", "viewer", "--password-stdin",
               stdin="first password 1\n")
    code, out, _ = await _cli(monkeypatch, capsys, "operator", "reset-password", "li", "--password-stdin",
                              stdin="second password 2\n")
    assert (code, out) == (0, "password of li changed; its console sessions ended\n")
    code, token, _ = await _cli(monkeypatch, capsys, "operator", "token", "create", "li")
    code, out, _ = await _cli(monkeypatch, capsys, "operator", "reset-password", "li", "--password-stdin",
                              "--revoke-tokens", stdin="second password 2\n")
    assert (code, out) == (0, "password of li changed; its console sessions ended; its API tokens revoked\n")
    code, out, _ = await _cli(monkeypatch, capsys, "operator", "token", "list", "li")
    assert code == 0 and "revoked" in out and "live" not in out
    engine = create_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            op = await get_operator(session, "li")
    finally:
        await engine.dispose()
    assert verify_password(op.password_hash, "second password 2")
    assert not verify_password(op.password_hash, "first password 1")
    assert op.password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(("args", "stdin", "error"), [
    (["operator", "add", "Bad Name", "--role", "staff", "--password-stdin"], "long enough pw\n",
     "engagebot: name: String should match pattern '^[a-z0-9][a-z0-9_.@-]{1,63}$'"),
    (["operator", "add", "ok", "--role", "staff", "--password-stdin"], "short\n",
     "engagebot: password: String should have at least 10 characters"),
    (["operator", "disable", "nobody"], "", "engagebot: no operator 'nobody'"),
    (["operator", "token", "create", "nobody"], "", "engagebot: no operator 'nobody'"),
    (["operator", "token", "revoke", "77"], "", "engagebot: no token 77"),
])
async def test_refusals_are_one_line(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str], args: list[str], stdin: str,
                                     error: str) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    code, out, err = await _cli(monkeypatch, capsys, *args, stdin=stdin)
    assert (code, out, err) == (2, "", error + "\n")


async def test_adding_a_name_twice_is_refused(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    args = ("operator", "add", "wu", "--role", "agent", "--password-stdin")
    assert (await _cli(monkeypatch, capsys, *args, stdin="a long password\n"))[0] == 0
    assert await _cli(monkeypatch, capsys, *args, stdin="a long password\n") == (
        2, "", "engagebot: an operator named 'wu' exists\n")


async def test_broadcast_start_and_cancel_share_the_api_service_and_are_audited(
        database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    code, _, err = await _cli(monkeypatch, capsys, "broadcast", "start", "--name", "bad", "--text-en", "hi",
                              "--locale", "klingon")
    assert code == 2 and err.startswith("engagebot: locales: ")
    code, _, err = await _cli(monkeypatch, capsys, "broadcast", "start", "--name", "bad", "--text-en", "hi",
                              "--promotion", "no-such-promotion")
    assert (code, err.strip()) == (2, "engagebot: promotion: no promotion 'no-such-promotion'; load it first")
    code, out, _ = await _cli(monkeypatch, capsys, "broadcast", "start", "--name", "spring", "--text-en", "Spring!")
    assert code == 0 and out.startswith("broadcast #1 'spring' to every follower")
    code, out, _ = await _cli(monkeypatch, capsys, "broadcast", "cancel", "1")
    assert code == 0
    engine = create_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = await list_entries(session, limit=10)
    finally:
        await engine.dispose()
    assert [(r.action, r.actor, r.target) for r in rows] == [("broadcast.cancel", "cli", "broadcast:1"),
                                                            ("broadcast.start", "cli", "broadcast:1")]
