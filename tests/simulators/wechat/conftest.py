"""Fixtures: the simulator behind a real loopback server, and a tiny fake bot that checks what it receives.

The fake bot has its own signature and AES code (written here, not imported from the simulator), so the
tests check the simulator against an independent reading of the protocol.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.simulators.wechat import ManualClock, WeChatSimulator

TOKEN = "simtoken123"
APP_ID = "wx0123456789abcdef"
APP_SECRET = "s3cr3t-app-secret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ACCOUNT = "gh_simulated"


def sha1_sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class BotCrypto:
    """The test's own implementation of the safe-mode envelope."""

    def __init__(self, aes_key: str, app_id: str) -> None:
        self.key = base64.b64decode(aes_key + "=")
        self.app_id = app_id.encode()

    def decrypt(self, text: str) -> bytes:
        d = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).decryptor()
        plain = d.update(base64.b64decode(text)) + d.finalize()
        pad = plain[-1]
        assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad
        assert len(plain) % 32 == 0
        body = plain[16:-pad]
        (n,) = struct.unpack(">I", body[:4])
        assert body[4 + n :] == self.app_id
        return body[4 : 4 + n]

    def encrypt(self, message: bytes) -> str:
        plain = secrets.token_bytes(16) + struct.pack(">I", len(message)) + message + self.app_id
        pad = 32 - len(plain) % 32
        plain += bytes([pad]) * pad
        e = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16])).encryptor()
        return base64.b64encode(e.update(plain) + e.finalize()).decode()


def fields_of(xml: bytes) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ET.fromstring(xml)}


def text_reply(to: str, content: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><FromUserName><![CDATA[{ACCOUNT}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content.replace(']]>', ']]]]><![CDATA[>')}]]></Content></xml>"
    )


@dataclass
class FakeBot:
    """Checks signatures, decrypts, records each request and answers with `answer(fields, try_no)`."""

    crypto: BotCrypto | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[dict[str, str], int], Any] = lambda f, n: text_reply(f["FromUserName"], "echo: " + f.get("Content", f.get("Event", "")))
    delays: list[float] = field(default_factory=list)  # sleep before answering try n (0-based)
    encrypt_replies: bool = True
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if not hmac.compare_digest(sha1_sign(TOKEN, q.get("timestamp", ""), q.get("nonce", "")), q.get("signature", "")):
            return web.Response(status=403, text="bad signature")
        if request.method == "GET":
            return web.Response(text=q["echostr"])
        raw = await request.read()
        outer = fields_of(raw)
        inner = outer
        if q.get("encrypt_type") == "aes":
            expected = sha1_sign(TOKEN, q["timestamp"], q["nonce"], outer["Encrypt"])
            if not hmac.compare_digest(expected, q.get("msg_signature", "")):
                return web.Response(status=403, text="bad msg_signature")
            inner = fields_of(self.crypto.decrypt(outer["Encrypt"]))
        n = len(self.requests)
        self.requests.append({"query": dict(q), "raw": raw, "outer": outer, "fields": inner})
        if n < len(self.delays) and self.delays[n]:
            await asyncio.sleep(self.delays[n])
        answer = self.answer(inner, n)
        if isinstance(answer, web.StreamResponse):
            return answer
        if isinstance(answer, str) and answer.startswith("<xml>") and self.crypto and self.encrypt_replies:
            enc = self.crypto.encrypt(answer.encode())
            ts, nonce = str(int(time.time())), "12345"
            answer = (
                f"<xml><Encrypt><![CDATA[{enc}]]></Encrypt><MsgSignature><![CDATA[{sha1_sign(TOKEN, ts, nonce, enc)}]]>"
                f"</MsgSignature><TimeStamp>{ts}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
            )
        return web.Response(body=answer.encode() if isinstance(answer, str) else answer)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_700_000_000.0)


def make_sim(clock: ManualClock, **options: Any) -> WeChatSimulator:
    return WeChatSimulator(token=TOKEN, app_id=APP_ID, app_secret=APP_SECRET, clock=clock, **options)


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[WeChatSimulator]:
    s = make_sim(clock, callback_timeout=1.0)
    yield s
    await s.close()


@pytest.fixture
async def api(sim: WeChatSimulator) -> AsyncIterator[TestClient]:
    client = TestClient(TestServer(sim.make_app()))
    await client.start_server()
    yield client
    await client.close()


async def start_bot(bot: FakeBot) -> TestServer:
    app = web.Application()
    app.router.add_route("*", "/wechat", bot.handle)
    server = TestServer(app)
    await server.start_server()
    bot.url = str(server.make_url("/wechat"))
    return server


@pytest.fixture
async def bot(sim: WeChatSimulator) -> AsyncIterator[FakeBot]:
    """A fake bot in plain mode, wired to the `sim` fixture."""
    fake = FakeBot()
    server = await start_bot(fake)
    sim.callback_url = fake.url
    yield fake
    await server.close()


async def get_token(api: TestClient) -> str:
    r = await api.get("/cgi-bin/token", params={"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET})
    return (await r.json())["access_token"]
