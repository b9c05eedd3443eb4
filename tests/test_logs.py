"""Issue 8, point 6: no secret, follower id or SQL parameter in the logs; the platform's errmsg sanitized.

The end-to-end tests run engagebot against both platforms' simulators over loopback HTTP at log
level DEBUG, capture everything logged, and look for each secret and each follower id.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot import Context, Inbound, Kind, Reply, Router, TextReply
from bot.app import CORE, build_app, create_app
from bot.channels.telegram.plugin import TELEGRAM_CHANNEL
from bot.logs import REDACTED, Redactor, configure_logging, secrets_of
from bot.settings import Settings
from bot.simulators.telegram import TelegramBotAPISimulator
from bot.simulators.wechat import WeChatSimulator
from bot.storage.models import Follower, Message
from tests.channels.wechat.conftest import wechat_env
from tests.support.servers import free_port, serve
from tests.support.wechat import post, signed_query, text_xml

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

WX_TOKEN = "wxTok" + secrets.token_hex(8)
WX_APP_ID = "wx" + secrets.token_hex(8)
WX_SECRET = "wxSecret" + secrets.token_hex(12)
WX_AES_KEY = (secrets.token_hex(22) + "Q")[:43]
TG_TOKEN = f"{700_000 + secrets.randbelow(99_999)}:AA{secrets.token_urlsafe(30)}"[:46]
TG_WEBHOOK_SECRET = "hook_" + secrets.token_hex(10)
ADMIN_TOKEN = "admin-" + secrets.token_hex(16)
DB_PASSWORD = "pw-" + secrets.token_hex(8)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)
    for name in ("httpx", "telegram", "httpcore", "aiosqlite", "hpack", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def _with_password(database_url: str) -> str:
    """The test database's URL with a password (PostgreSQL here trusts loopback, so any password works)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return database_url
    return url.set(password=DB_PASSWORD).render_as_string(hide_password=False)


async def _eventually(check: Any, timeout: float = 15) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    return value


async def test_no_secret_nor_follower_id_reaches_the_logs_even_at_debug(
        database_url: str, restore_logging: None) -> None:
    wechat = WeChatSimulator(token=WX_TOKEN, app_id=WX_APP_ID, app_secret=WX_SECRET, aes_key=WX_AES_KEY)
    telegram = TelegramBotAPISimulator(TG_TOKEN)
    async with serve(wechat.make_app()) as wechat_api, serve(telegram.make_app()) as telegram_api:
        settings = Settings(
            database_url=_with_password(database_url), port=free_port(), log_level="DEBUG", log_format="json",
            admin_token=ADMIN_TOKEN, simulators=False,
            wechat={"token": WX_TOKEN, "app_id": WX_APP_ID, "app_secret": WX_SECRET, "aes_key": WX_AES_KEY,
                    "api_base": wechat_api},
            telegram={"token": TG_TOKEN, "api_base": f"{telegram_api}/bot", "webhook_secret": TG_WEBHOOK_SECRET})
        stream = io.StringIO()
        configure_logging(settings, stream=stream)
        app = build_app(settings)
        async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
            wechat.callback_url = f"{url}/wechat"
            await app[TELEGRAM_CHANNEL].wait_ready(15)
            openids = []
            for language in ("en", "zh_CN"):
                openid = wechat.add_follower(language=language)
                assert (await wechat.follow(openid, scene="poster-1")).ok  # user info: the access token
                assert (await wechat.send_text(openid, "hello")).ok
                openids.append(openid)
            user = telegram.add_user(first_name="Zhao", language_code="zh-hans")
            telegram.start(user, "poster-1")
            telegram.send_text(user, "你好")
            await telegram.wait_for_messages(user, 2)
            telegram.inject_error(400, "Bad Request: chat \x1b[31mnot\nfound FORGED " + "x" * 3000)
            telegram.send_text(user, "again")  # its reply fails with that description
            for token in (ADMIN_TOKEN, "wrong-" + ADMIN_TOKEN):
                async with http.post(f"{url}/admin/redeem", json={"code": "NOPE1234"},
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status in (401, 404, 409, 410, 422)
            core = app[CORE]

            async def failed_row() -> Any:
                async with core.sessions() as s:
                    return await s.scalar(select(Message.reason).where(Message.status == "failed"))

            stored_reason = await _eventually(failed_row)
    logged = stream.getvalue()
    events = [json.loads(line) for line in logged.splitlines()]
    # Every secret is absent, at every level (DEBUG included), whatever logger wrote it.
    for name, secret in (("wechat token", WX_TOKEN), ("app secret", WX_SECRET), ("aes key", WX_AES_KEY),
                         ("telegram token", TG_TOKEN), ("telegram token secret part", TG_TOKEN.split(":")[1]),
                         ("webhook secret", TG_WEBHOOK_SECRET), ("admin token", ADMIN_TOKEN),
                         ("database password", DB_PASSWORD)):
        assert secret not in logged, f"{name} logged"
    # Follower ids never appear: not as ids, not inside message ids.
    for openid in openids:
        assert openid not in logged
    assert re.search(rf"\b{user}\b", logged) is None
    # ... and the logs still say what happened: DEBUG lines with the Bot API URLs (redacted), and
    # one "handled" line per message with the follower hashed.
    assert any(f"/bot{REDACTED}/getUpdates" in e["event"] for e in events if e["logger"] == "httpx")
    handled = [e for e in events if e["event"] == "handled"]
    assert {e["channel"] for e in handled} == {"wechat", "telegram"} and len(handled) >= 7
    assert all(re.fullmatch(r"[0-9a-f]{12}", e["follower"]) and re.fullmatch(r"[0-9a-f]{12}", e["message_id"])
               for e in handled)
    # The platform's error text is sanitized before it is stored or logged.
    assert "\x1b" not in stored_reason and "\n" not in stored_reason and len(stored_reason) <= 255
    assert "forged" in stored_reason.lower()
    logged_reasons = [e["reason"] for e in events if e["event"] == "outbound not delivered"]
    assert logged_reasons and all("\x1b" not in r and "\n" not in r and len(r) < 260 for r in logged_reasons)


poison_router = Router("poison")
MARKER = "PARAM-MARKER-" + secrets.token_hex(6)


@poison_router.on(Kind.TEXT, keywords={"en": ["poison"], "zh_Hans": ["poison"]}, priority=900)
async def poison(msg: Inbound, ctx: Context) -> list[Reply]:
    ctx.follower.state_data = {"note": MARKER, "basket": {"not", "json"}}  # no database stores this row
    return [TextReply("never stored")]


async def test_sql_parameters_never_reach_the_logs_above_debug(database_url: str, restore_logging: None) -> None:
    """At DEBUG the engine puts parameters in its errors; the ERROR line about it must not carry them."""
    settings = Settings(database_url=database_url, port=free_port(), log_level="DEBUG", log_format="json",
                        simulators=False, wechat={"token": WX_TOKEN, "app_id": WX_APP_ID, "app_secret": WX_SECRET})
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    app = build_app(settings, routers=[poison_router])
    async with serve(app, port=settings.port) as url, aiohttp.ClientSession() as http:
        status, _answer = await post(http, f"{url}/wechat", signed_query(WX_TOKEN),
                                     text_xml("oParamVictim", "poison", msg_id=1))
        assert status == 500
        status, _answer = await post(http, f"{url}/wechat", signed_query(WX_TOKEN),
                                     text_xml("oParamOther", "hello", msg_id=2))
        assert status == 200
    logged = stream.getvalue()
    errors = [json.loads(line) for line in logged.splitlines() if '"level": "ERROR"' in line]
    # Hidden by our log filter ("[SQL parameters hidden]") or, for statements of the batch runner's
    # engine, by SQLAlchemy itself ("[SQL parameters hidden due to hide_parameters=True]").
    assert errors and any("[SQL parameters hidden" in e.get("traceback", "") for e in errors), logged[-3000:]
    assert MARKER not in logged


async def test_the_platforms_errmsg_is_sanitized_before_it_is_stored_or_logged(
        database_url: str, restore_logging: None) -> None:
    """A WeChat API (or whoever answers in its place) decides what it says, not what our logs look like."""
    evil = "\x1b[2J\x1b[31mFORGED\r\n{\"level\": \"ERROR\", \"event\": \"fake\"}\u2028" + "y" * 10_000

    async def token(_request: web.Request) -> web.Response:
        return web.json_response({"access_token": "tok", "expires_in": 7200})

    async def send(_request: web.Request) -> web.Response:
        return web.json_response({"errcode": 40099, "errmsg": evil})

    fake = web.Application()
    fake.router.add_get("/cgi-bin/token", token)
    fake.router.add_post("/cgi-bin/message/custom/send", send)
    stream = io.StringIO()
    configure_logging(Settings(log_format="text"), stream=stream)
    async with serve(fake) as fake_api, wechat_env(database_url, config_overrides={"api_base": fake_api}) as env:
        openid = env.sim.add_follower(language="en", following=True)
        await env.sim.send_text(openid, "hi")
        async with env.bot.sessions() as s:
            follower = (await s.execute(select(Follower).where(Follower.external_id == openid))).scalar_one()
            row = Message(follower_id=follower.id, channel="wechat", account="default", direction="out", kind="text",
                          text="x", body={"type": "text", "text": "x"}, status="pending", attempts=0,
                          created_at=follower.created_at)
            s.add(row)
            await s.commit()
        await env.channel.outbox.deliver([row.id])
        async with env.bot.sessions() as s:
            stored = await s.get(Message, row.id)
    assert stored.status == "failed"
    assert stored.reason.startswith("platform error 40099: ") and "FORGED" in stored.reason
    assert not re.search(r"[\x00-\x1f\x7f\u2028]", stored.reason) and len(stored.reason) <= 230
    line = [ln for ln in stream.getvalue().splitlines() if "outbound not delivered" in ln]
    assert line and "\x1b" not in stream.getvalue() and "FORGED" in line[0]
    assert not any(ln.startswith('{"level": "ERROR", "event": "fake"') for ln in stream.getvalue().splitlines())


# --- the filter itself ---------------------------------------------------------------------------


def _record(msg: str, *args: Any, level: int = logging.INFO, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("engagebot.test", level, __file__, 1, msg, args or None, None)
    record.__dict__.update(extra)
    return record


def _emit(redactor: Redactor, record: logging.LogRecord) -> str:
    from bot.logs import JsonFormatter

    redactor.filter(record)
    return JsonFormatter().format(record)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL])
def test_every_configured_secret_is_redacted_at_every_level(level: int) -> None:
    settings = Settings(
        database_url=f"postgresql+asyncpg://bot:{DB_PASSWORD}@db.internal/engagebot", admin_token=ADMIN_TOKEN,
        wechat={"token": WX_TOKEN, "app_id": WX_APP_ID, "app_secret": WX_SECRET, "aes_key": WX_AES_KEY},
        wechat_accounts={"service": {"token": "Svc" + WX_TOKEN, "app_id": "wxsvc", "app_secret": "svc-" + WX_SECRET}},
        telegram={"token": TG_TOKEN, "mode": "webhook", "webhook_url": "https://x.example/telegram",
                  "webhook_secret": TG_WEBHOOK_SECRET})
    redactor = Redactor(secrets_of(settings))
    all_secrets = [WX_TOKEN, WX_SECRET, WX_AES_KEY, "Svc" + WX_TOKEN, "svc-" + WX_SECRET, TG_TOKEN,
                   TG_WEBHOOK_SECRET, ADMIN_TOKEN, DB_PASSWORD]
    text = " | ".join(all_secrets)
    try:
        raise RuntimeError(f"failed with {WX_SECRET} in https://api.weixin.qq.com/cgi-bin/token?secret={WX_SECRET}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = _record("secrets: %s %s", text, TG_TOKEN.replace(":", "%3A"), level=level,
                     error=f"url http://127.0.0.1/bot{TG_TOKEN}/getMe", nested={"k": [ADMIN_TOKEN]})
    record.exc_info = exc_info
    out = _emit(redactor, record)
    for secret in all_secrets:
        assert secret not in out
    assert out.count(REDACTED) >= len(all_secrets)


@pytest.mark.parametrize(("text", "gone"), [
    ("GET https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/getUpdates", "AAHdqTcv"),
    ("token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw seen", "AAHdqTcv"),
    ("GET /cgi-bin/message/custom/send?access_token=ACCESS_TOKEN_VALUE&x=1", "ACCESS_TOKEN_VALUE"),
    ("GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=APPSECRETVALUE", "APPSECRETVALUE"),
    ("could not connect to postgresql+asyncpg://bot:hunter2secret@db:5432/x", "hunter2secret"),
])
def test_secrets_shaped_like_a_token_are_redacted_even_when_not_configured(text: str, gone: str) -> None:
    assert gone not in _emit(Redactor(), _record(text))


def test_sql_parameters_are_stripped_above_debug_and_kept_at_debug() -> None:
    error = ("(builtins.TypeError) Object of type set is not JSON serializable\n"
             "[SQL: UPDATE follower SET state_data=? WHERE follower.id = ?]\n"
             "[parameters: [{'state_data': {'openid': 'oSecretOpenid'}, '_fid': 7}]]")
    asyncpg = ("(sqlalchemy.dialects.postgresql.asyncpg.Error) invalid input for query argument $1 in element #3 "
               "of executemany() sequence: 'oSecretOpenid\\x00' (invalid byte sequence)")
    redactor = Redactor()
    for level in (logging.INFO, logging.WARNING, logging.ERROR):
        out = _emit(redactor, _record("db failed: %s // %s", error, asyncpg, level=level))
        assert "oSecretOpenid" not in out and "[SQL parameters hidden]" in out and "UPDATE follower" in out
    assert "oSecretOpenid" in _emit(redactor, _record("db failed: %s", error, level=logging.DEBUG))


def test_the_dedupe_key_of_a_wechat_event_holds_no_openid() -> None:
    from bot.channels.wechat.protocol import event_message_id

    key = event_message_id("oOpenidOfAFollower", "1700000000", "CLICK", "k" * 2000)
    assert "oOpenid" not in key and len(key) <= 64
    assert key == event_message_id("oOpenidOfAFollower", "1700000000", "CLICK", "k" * 2000)
    assert key != event_message_id("oOpenidOfAFollower", "1700000001", "CLICK", "k" * 2000)


async def test_a_channels_own_credentials_are_redacted_even_when_they_are_not_settings(
        database_url: str, restore_logging: None) -> None:
    """A simulated account's credentials (made by the app, not set by the operator) are secrets too."""
    settings = Settings(database_url=database_url, port=free_port(), log_format="json")
    stream = io.StringIO()
    configure_logging(settings, stream=stream)
    core = (await create_app(settings))[CORE]  # the simulated accounts' stored credentials
    wechat = next(c for c in core.channels if c.name == "wechat")
    telegram = next(c for c in core.channels if c.name == "telegram")
    made = [wechat.config.token.get_secret_value(), wechat.config.app_secret.get_secret_value(),
            wechat.config.aes_key.get_secret_value(), telegram.config.token]
    logging.getLogger("engagebot.test").warning("credentials: %s", " ".join(made))
    await core.engine.dispose()
    assert json.loads(stream.getvalue().splitlines()[-1])["event"].count(REDACTED) == len(made)
