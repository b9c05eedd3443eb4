"""A fake web chat platform: it signs and posts visitors' events to the bot and keeps what the bot sent.

It shares no code with the adapter (a simulator that reused the adapter's signing would agree with
its bugs): the signature is computed here from the platform's rule. Serve :meth:`routes` on any
aiohttp app (engagebot mounts it at ``/simulator/webchat`` when no real widget is configured).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

PREFIX = "/simulator/webchat"


@dataclass
class Answer:
    """The bot's HTTP answer to one event."""

    status: int
    replies: list[dict[str, Any]] = field(default_factory=list)


class WebChatPlatform:
    def __init__(self, *, secret: str, callback_url: str) -> None:
        self.secret = secret
        self.callback_url = callback_url
        self.sent: dict[str, list[dict[str, Any]]] = defaultdict(list)  # through /v1/send, by visitor
        self.inline: dict[str, list[dict[str, Any]]] = defaultdict(list)  # in the webhooks' answers
        self.send_calls = 0
        self._keys: set[str] = set()
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{PREFIX}/v1/send", self._send)]

    async def _send(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.secret}":
            return web.json_response({"error": "bad token"}, status=401)
        self.send_calls += 1
        doc = await request.json()
        key = doc.get("idempotency_key")
        if key is not None and key in self._keys:
            return web.json_response({"ok": True, "duplicate": True})  # sent already: dropped
        if key is not None:
            self._keys.add(key)
        self.sent[doc["user"]].append({k: v for k, v in doc.items() if k in ("text", "buttons")})
        return web.json_response({"ok": True})

    def received(self, user: str) -> list[dict[str, Any]]:
        """Everything the visitor was shown: inline answers, then what came through the send API."""
        return [*self.inline[user], *self.sent[user]]

    async def post(self, event: dict[str, Any], *, secret: str | None = None) -> Answer:
        """Post one event, signed (with ``secret`` when given: a wrong one), as the platform does."""
        body = json.dumps(event).encode()
        signature = hmac.new((secret or self.secret).encode(), body, hashlib.sha256).hexdigest()
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))  # the platform waits 3 s
        async with self._http.post(self.callback_url, data=body, headers={
                "Content-Type": "application/json", "X-Webchat-Signature": signature}) as resp:
            doc = await resp.json(content_type=None) if resp.status == 200 else {}
        answer = Answer(resp.status, doc.get("replies", []))
        self.inline[event.get("user", "")].extend(answer.replies)
        return answer

    def event(self, user: str, type: str = "message", **fields: Any) -> dict[str, Any]:
        """A new event (a fresh ``id``) of ``user``."""
        return {"id": f"evt-{next(self._ids)}", "type": type, "user": user, **fields}

    async def say(self, user: str, text: str, *, locale: str | None = None) -> Answer:
        return await self.post(self.event(user, text=text, **({"locale": locale} if locale else {})))

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
