"""The Weibo adapter behind a real loopback server, and a small fake of the platform's API behind another.

The fake answers like PROTOCOLS.md says (form POSTs, JSON answers, ``{"error", "error_code",
"request"}`` errors); pushes are signed here from the formula, not with the adapter's helper.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from typing import Any
from urllib.parse import unquote

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from sqlalchemy import func, select

from bot.channels.weibo.adapter import WeiboChannel
from bot.core.router import Router
from bot.settings import WeiboSettings
from bot.testing import BotHarness
from handlers import default_router
from tests.support.servers import serve, serve_channel

SECRET = "weibo-app-secret-42"
TOKEN = "2.00weibo-access-token"
BRAND = "5000000001"
_nonces = count(1)


def sign(timestamp: str, nonce: str, secret: str = SECRET) -> str:
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode()).hexdigest()


def created_at(offset: int = 0) -> str:
    return time.strftime("%a %b %d %H:%M:%S +0000 %Y", time.gmtime(time.time() + offset))


@dataclass
class FakeWeibo:
    """The platform's API side: records every call; ``errors`` scripts error codes for the next calls."""

    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    errors: dict[str, list[int]] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)
    mentions: list[dict[str, Any]] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)  # the brand's own comments
    sendall_status: str = "reviewing"
    _ids: Any = field(default_factory=lambda: count(9_000_000_000_000_000))

    def sent(self, path: str) -> list[dict[str, str]]:
        return [form for p, form in self.calls if p == path]

    def dms(self) -> list[dict[str, Any]]:
        return [{"to": f["receiver_id"], "type": f["type"], "data": json.loads(unquote(f["data"]))}
                for f in self.sent("/2/messages/reply.json")]

    def make_app(self) -> web.Application:
        app = web.Application()

        async def handle(request: web.Request) -> web.Response:
            form = dict(await request.post()) if request.method == "POST" else dict(request.query)
            path = request.path
            self.calls.append((path, {k: str(v) for k, v in form.items()}))
            if form.get("access_token") != TOKEN:
                return web.json_response({"error": "expired_token", "error_code": 21327, "request": path}, status=403)
            queued = self.errors.get(path)
            if queued:
                code = queued.pop(0)
                return web.json_response({"error": f"error {code}", "error_code": code, "request": path}, status=400)
            if path == "/2/mss/upload.json":
                return web.json_response({"tovfid": f"tovfid-{next(self._ids)}"})
            if path == "/2/messages/reply.json":
                return web.json_response({"result": True, "sender_id": int(BRAND), "receiver_id": int(form["receiver_id"])})
            if path == "/2/messages/sendall.json":
                return web.json_response({"result": True, "msg_id": next(self._ids), "status": self.sendall_status})
            if path == "/2/comments/to_me.json":
                since = int(form.get("since_id") or 0)
                return web.json_response({"comments": [c for c in self.comments if int(c["id"]) > since][::-1],
                                          "total_number": len(self.comments)})
            if path == "/2/statuses/mentions.json":
                since = int(form.get("since_id") or 0)
                return web.json_response({"statuses": [s for s in self.mentions if int(s["id"]) > since][::-1]})
            if path == "/2/eps/qrcode/create.json":
                return web.json_response({"result": True, "ticket": "t1", "scene": form["scene_str"],
                                          "url": f"https://weibo.cn/qr/{BRAND}/{form['scene_str']}"})
            if path == "/2/comments/show.json":
                return web.json_response({"comments": [c for c in self.posted if c["status"]["id"] == int(form["id"])]})
            if path in ("/2/comments/reply.json", "/2/comments/create.json"):
                comment = {"id": next(self._ids), "text": form["comment"], "created_at": created_at(),
                           "user": {"id": int(BRAND), "screen_name": "brand"}, "status": {"id": int(form["id"])}}
                if "cid" in form:
                    comment["reply_comment"] = {"id": int(form["cid"])}
                self.posted.append(comment)
                return web.json_response(comment)
            return web.json_response({"error": "not found", "error_code": 10003, "request": path}, status=404)

        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@dataclass
class WeiboEnv:
    fake: FakeWeibo
    channel: WeiboChannel
    bot: BotHarness
    bot_url: str
    api_url: str

    async def push(self, doc: dict[str, Any] | bytes, *, timestamp: str | None = None, nonce: str | None = None,
                   signature: str | None = None, signed: bool = True) -> tuple[int, bytes]:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        ts = timestamp or str(int(time.time() * 1000))
        nonce = nonce or f"n{next(_nonces)}"
        query = {"timestamp": ts, "nonce": nonce}
        if signed:
            query["signature"] = signature or sign(ts, nonce)
        async with aiohttp.ClientSession() as http, http.post(
                f"{self.bot_url}/weibo", params=query, data=body,
                headers={"Content-Type": "application/json"}) as resp:
            return resp.status, await resp.read()

    async def text(self, fan: str, text: str, **kw: Any) -> tuple[int, bytes]:
        return await self.push(message(fan, "text", text=text), **kw)

    async def event(self, fan: str, subtype: str, key: str | None = None, text: str = "") -> tuple[int, bytes]:
        data = {"subtype": subtype, **({"key": key} if key else {})}
        return await self.push(message(fan, "event", text=text, data=data))

    async def count(self, model: Any, *conditions: Any) -> int:
        async with self.bot.sessions() as s:
            return int(await s.scalar(select(func.count()).select_from(model).where(*conditions)) or 0)


def message(fan: str, msg_type: str, *, text: str = "", data: dict[str, Any] | None = None,
            at: str | None = None) -> dict[str, Any]:
    return {"type": msg_type, "receiver_id": int(BRAND), "sender_id": int(fan), "created_at": at or created_at(),
            "text": text, "data": data or {}}


def passive(body: bytes) -> dict[str, Any]:
    doc = json.loads(body)
    doc["data"] = json.loads(unquote(doc["data"]))
    return doc


@asynccontextmanager
async def weibo_env(database_url: str, *, routers: list[Router] | None = None,
                    overrides: dict[str, Any] | None = None) -> AsyncIterator[WeiboEnv]:
    fake = FakeWeibo()
    async with serve(fake.make_app()) as api_url, BotHarness(
            routers=[*(routers or []), default_router()], database_url=database_url) as bot:
        cfg: dict[str, Any] = dict(app_key="123456", app_secret=SecretStr(SECRET), access_token=SecretStr(TOKEN),
                                   brand_uid=BRAND, api_base=api_url)
        cfg.update(overrides or {})
        channel = WeiboChannel(dispatch=bot.dispatcher.dispatch, account="default", config=WeiboSettings(**cfg),
                               sessions=bot.sessions)
        async with serve_channel(channel) as bot_url:
            yield WeiboEnv(fake, channel, bot, bot_url, api_url)
