"""Every secret a request carries is compared whole, over real HTTP on loopback.

A check that compared only a prefix, or stopped at the shorter of the two strings, would pass any
test whose wrong secret differs in its first character. Here each guarded endpoint is sent its
genuine request carrying the secret changed in its LAST character only (and in its first, for
good measure), cut short by one, cut to its first eight characters, one character longer, empty
and missing. Every one must be refused with nothing done; then the genuine secret must work, so a
guard that refuses everything cannot pass either.

The guards: WeChat's callback ``signature`` (plain and safe mode), its URL check, the safe-mode
``msg_signature``, Weibo's push ``signature`` and its URL check, Telegram's webhook secret header
and the operator token of ``POST /admin/redeem``. To add a channel: write one
``@asynccontextmanager`` that serves it and yields a :class:`Guard`, and list it in ``GUARDS``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select

from bot.offers import Claim
from bot.offers.admin import admin_plugin
from bot.settings import Settings
from bot.storage.models import Message
from bot.testing import BotHarness
from handlers import default_router
from tests.channels.telegram.conftest import SECRET as TELEGRAM_SECRET
from tests.channels.telegram.conftest import Rig
from tests.channels.wechat.conftest import TOKEN as WECHAT_TOKEN
from tests.channels.wechat.conftest import wechat_env
from tests.channels.weibo.conftest import SECRET as WEIBO_SECRET
from tests.channels.weibo.conftest import message as weibo_message
from tests.channels.weibo.conftest import weibo_env
from tests.offers.conftest import load_into
from tests.support.servers import serve

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

ADMIN_TOKEN = "adm1n-Token-for-the-till"


@dataclass
class Guard:
    """One secret-checked endpoint, served on loopback."""

    secret: str  # what a genuine request carries
    send: Callable[[str | None], Awaitable[int]]  # a genuine request carrying this instead (None: left out)
    effects: Callable[[], Awaitable[int]]  # how many requests took effect so far (rows stored, codes redeemed)
    refused: int  # the status a wrong secret gets


def _other(ch: str) -> str:
    """A different character of the same kind (a hex digit stays a hex digit, a letter keeps its case)."""
    if ch.isdigit():
        return str((int(ch) + 1) % 10)
    if ch in "abcdef":  # hex: stay within a-f, so only the value differs, not the alphabet
        return "abcdef"[("abcdef".index(ch) + 1) % 6]
    if ch.isalpha():
        base = ord("a") if ch.islower() else ord("A")
        return chr(base + (ord(ch) - base + 1) % 26)
    return "x"


def wrong_secrets(secret: str) -> dict[str, str | None]:
    assert len(secret) > 9, "a secret this short could not tell a prefix check from a whole one"
    middle = len(secret) // 2
    return {
        "last character changed": secret[:-1] + _other(secret[-1]),
        "first character changed": _other(secret[0]) + secret[1:],
        "a middle character changed": secret[:middle] + _other(secret[middle]) + secret[middle + 1:],
        "truncated by one": secret[:-1],
        "only the first 8 characters": secret[:8],
        "one character more": secret + secret[-1],
        "empty": "",
        "missing": None,
    }


# --- WeChat -------------------------------------------------------------------------------------


def _sha1(*parts: str) -> str:
    """WeChat's signature, written here: the tests read the protocol independently of the adapter."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def _text_xml(openid: str) -> str:
    return (f"<xml><ToUserName><![CDATA[gh_simulated]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[hello]]></Content><MsgId>{secrets.randbelow(10**15)}</MsgId></xml>")


async def _count_inbound(env: Any) -> int:
    return await env.count(Message, Message.direction == "in")


@asynccontextmanager
async def wechat_callback(database_url: str, _tmp_path: Path, *, safe: bool, vary: str) -> AsyncIterator[Guard]:
    """POST /wechat with a valid body; ``vary`` is the query parameter whose value the test changes."""
    async with wechat_env(database_url, safe=safe) as env, aiohttp.ClientSession() as http:
        openid = env.sim.add_follower(language="en", following=True)
        timestamp = str(int(time.time()))
        fixed_nonce = secrets.token_hex(5)
        plain = _text_xml(openid)
        encrypt = env.sim.cipher.encrypt(plain.encode()) if safe else None
        body = (f"<xml><ToUserName><![CDATA[gh_simulated]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
                if safe else plain)
        genuine = {"signature": _sha1(WECHAT_TOKEN, timestamp, fixed_nonce), "timestamp": timestamp,
                   "nonce": fixed_nonce, "openid": openid}
        if safe:
            genuine.update(encrypt_type="aes", msg_signature=_sha1(WECHAT_TOKEN, timestamp, fixed_nonce, encrypt))

        async def send(presented: str | None) -> int:
            query = dict(genuine)
            if presented is None:
                del query[vary]
            else:
                query[vary] = presented
            async with http.post(f"{env.bot_url}/wechat", params=query, data=body.encode(),
                                 headers={"Content-Type": "text/xml"}) as resp:
                await resp.read()
                return resp.status

        yield Guard(genuine[vary], send, lambda: _count_inbound(env), refused=403)


@asynccontextmanager
async def url_check(url: str, secret: str, timestamp: str) -> AsyncIterator[Guard]:
    """GET ``url``, a platform's check of the callback URL (WeChat's and Weibo's alike): the echo is the effect."""
    nonce, echoed = secrets.token_hex(5), 0
    async with aiohttp.ClientSession() as http:

        async def send(presented: str | None) -> int:
            nonlocal echoed
            echostr = secrets.token_hex(8)
            query = {"timestamp": timestamp, "nonce": nonce, "echostr": echostr}
            if presented is not None:
                query["signature"] = presented
            async with http.get(url, params=query) as resp:
                if resp.status == 200 and await resp.text() == echostr:
                    echoed += 1
                return resp.status

        async def effects() -> int:
            return echoed

        yield Guard(_sha1(secret, timestamp, nonce), send, effects, refused=403)


@asynccontextmanager
async def wechat_url_check(database_url: str, _tmp_path: Path) -> AsyncIterator[Guard]:
    async with wechat_env(database_url) as env, url_check(f"{env.bot_url}/wechat", WECHAT_TOKEN,
                                                          str(int(time.time()))) as guard:
        yield guard


# --- Weibo --------------------------------------------------------------------------------------


@asynccontextmanager
async def weibo_push(database_url: str, _tmp_path: Path) -> AsyncIterator[Guard]:
    """POST /weibo with a fan's direct message; its signature is sha1 of the sorted (secret, timestamp, nonce)."""
    async with weibo_env(database_url) as env, aiohttp.ClientSession() as http:
        timestamp, nonce = str(int(time.time() * 1000)), secrets.token_hex(5)
        body = json.dumps(weibo_message("6000000001", "text", text="hello")).encode()

        async def send(presented: str | None) -> int:
            query = {"timestamp": timestamp, "nonce": nonce}
            if presented is not None:
                query["signature"] = presented
            async with http.post(f"{env.bot_url}/weibo", params=query, data=body,
                                 headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                return resp.status

        async def effects() -> int:
            return await env.count(Message, Message.direction == "in")

        yield Guard(_sha1(WEIBO_SECRET, timestamp, nonce), send, effects, refused=403)


@asynccontextmanager
async def weibo_url_check(database_url: str, _tmp_path: Path) -> AsyncIterator[Guard]:
    async with weibo_env(database_url) as env, url_check(f"{env.bot_url}/weibo", WEIBO_SECRET,
                                                         str(int(time.time() * 1000))) as guard:
        yield guard


# --- Telegram -----------------------------------------------------------------------------------


@asynccontextmanager
async def telegram_webhook(database_url: str, _tmp_path: Path) -> AsyncIterator[Guard]:
    """POST /telegram with an Update and the X-Telegram-Bot-Api-Secret-Token header."""
    async with BotHarness(database_url=database_url, default_locale="en", routers=[default_router()]) as harness:
        rig = Rig(harness, mode="webhook")
        await rig.start()
        try:
            user = rig.user()
            update_ids = iter(range(1, 1000))

            async def send(presented: str | None) -> int:
                n = next(update_ids)
                update = {"update_id": n, "message": {
                    "message_id": n, "date": int(time.time()), "text": "hi",
                    "chat": {"id": user, "type": "private"},
                    "from": {"id": user, "is_bot": False, "first_name": "Eve"}}}
                headers = {} if presented is None else {"X-Telegram-Bot-Api-Secret-Token": presented}
                async with aiohttp.ClientSession() as http, \
                        http.post(f"{rig.base}/telegram", json=update, headers=headers) as resp:
                    return resp.status

            async def effects() -> int:
                # An accepted update is handled in the background: give it a moment to be stored.
                for _ in range(100):
                    async with harness.sessions() as session:
                        count = await session.scalar(select(func.count()).select_from(Message).where(
                            Message.direction == "in"))
                    if count:
                        return count
                    await asyncio.sleep(0.05)
                return 0

            yield Guard(TELEGRAM_SECRET, send, effects, refused=403)
        finally:
            await rig.close()


# --- the operator API ---------------------------------------------------------------------------


@asynccontextmanager
async def admin_redeem(database_url: str, tmp_path: Path) -> AsyncIterator[Guard]:
    """POST /admin/redeem with ``Authorization: Bearer <token>``: the effect is a redeemed code."""
    async with BotHarness(routers=[default_router()], database_url=database_url) as harness:
        await load_into(harness, tmp_path)
        alice = harness.follower("alice", language="en")
        await alice.say("hotpot")
        code = alice.last_text.splitlines()[1]
        app = web.Application()
        admin_plugin(app, SimpleNamespace(settings=Settings(admin_token=ADMIN_TOKEN), sessions=harness.sessions))
        async with serve(app) as base, aiohttp.ClientSession() as http:

            async def send(presented: str | None) -> int:
                headers = {} if presented is None else {"Authorization": f"Bearer {presented}"}
                async with http.post(f"{base}/admin/redeem", json={"code": code}, headers=headers) as resp:
                    await resp.read()
                    return resp.status

            async def effects() -> int:
                async with harness.sessions() as session:
                    return await session.scalar(select(func.count()).select_from(Claim).where(
                        Claim.redeemed_at.is_not(None)))

            yield Guard(ADMIN_TOKEN, send, effects, refused=401)


GuardFactory = Callable[[str, Path], Any]

GUARDS: dict[str, GuardFactory] = {
    "wechat-signature": lambda url, tmp: wechat_callback(url, tmp, safe=False, vary="signature"),
    "wechat-safe-mode-signature": lambda url, tmp: wechat_callback(url, tmp, safe=True, vary="signature"),
    "wechat-msg-signature": lambda url, tmp: wechat_callback(url, tmp, safe=True, vary="msg_signature"),
    "wechat-url-check": wechat_url_check,
    "telegram-webhook-secret": telegram_webhook,
    "admin-token": admin_redeem,
    "weibo-signature": weibo_push,
    "weibo-url-check": weibo_url_check,
}


@pytest.mark.parametrize("guard", list(GUARDS))
async def test_a_secret_wrong_only_in_its_last_character_or_its_length_is_refused(
        guard: str, database_url: str, tmp_path: Path) -> None:
    async with GUARDS[guard](database_url, tmp_path) as g:
        statuses = {name: await g.send(wrong) for name, wrong in wrong_secrets(g.secret).items()}
        assert statuses == {name: g.refused for name in statuses}
        assert await g.effects() == 0
        # The genuine secret still works: the refusals above were the comparison's doing.
        assert await g.send(g.secret) == 200
        assert await g.effects() == 1


def test_the_wrong_secrets_differ_where_they_say() -> None:
    wrong = wrong_secrets("0123456789abcdef")
    assert wrong["last character changed"] == "0123456789abcdea"
    assert wrong["first character changed"] == "1123456789abcdef"
    assert wrong["truncated by one"] == "0123456789abcde"
    assert wrong["only the first 8 characters"] == "01234567"
    assert all(w != "0123456789abcdef" for w in wrong.values())
