"""The web chat channel: signed JSON webhooks in, replies in the HTTP answer or through the send API.

The platform (a chat widget's server) POSTs each event to ``/webchat`` as JSON, signed with
HMAC-SHA256 of the body under the shared secret (header ``X-Webchat-Signature``, hex). It waits 3 s
for the answer and retries the same event (same ``id``) once when it gets none. An answer may carry
the replies (``{"replies": [...]}``); replies ready later go through ``POST <api_base>/v1/send``
(bearer secret), which drops a second send with the same ``idempotency_key``.

Events: ``message`` (text), ``postback`` (a button pressed: ``payload``), ``join`` / ``leave`` (the
visitor opened or closed the widget), ``receipt`` (the platform reports a reply was read: a
notification, never answered), and anything else (``sticker``, ``file``...) as a kind the bot does not read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any, ClassVar

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.base import Channel, Dispatch
from bot.channels.deadline import PassiveDeadline
from bot.core.capabilities import Capabilities, ReplyWindow
from bot.core.inbound import Inbound, Kind, Notice
from bot.core.reply import ButtonsReply, Reply, TextReply
from bot.delivery.outbox import OutboxSender
from bot.errors import (
    FollowerGone,
    NotSent,
    PayloadError,
    PlatformAPIError,
    QuotaExceeded,
    SignatureError,
    platform_text,
)
from bot.web import read_body

MAX_BODY = 16 * 1024
KINDS = {"message": Kind.TEXT, "postback": Kind.CLICK, "join": Kind.FOLLOW, "leave": Kind.UNFOLLOW,
         "receipt": Kind.NOTIFICATION}


def webchat_capabilities(passive_deadline: float = 2.5) -> Capabilities:
    """What the widget shows and when the bot may speak: text of 1000 characters, buttons, 24 h after an action."""
    day = ReplyWindow(timedelta(hours=24))
    return Capabilities(max_text_length=1000, buttons=True, passive_reply_deadline=passive_deadline,
                        window_after_message=day, window_after_event=day, max_sends_per_second=20,
                        max_sends_per_chat_per_second=2, idempotent_sends=True)


def parse_event(body: bytes, *, account: str) -> Inbound:
    """One webhook body as an Inbound; PayloadError (400) when it is not an event."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("body is not JSON") from None
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object")

    def field(key: str, limit: int, *, required: bool = False) -> str | None:
        value = doc.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not (1 if required else 0) <= len(value) <= limit:
            raise PayloadError(f"field {key!r}: a string of at most {limit} characters expected")
        return value

    event_type = field("type", 32, required=True)
    kind = KINDS.get(event_type or "", Kind.UNKNOWN)
    return Inbound(channel="webchat", account=account, external_id=field("user", 128, required=True) or "",
                   kind=kind, text=field("text", 4000) or "", payload=field("payload", 256),
                   message_id=field("id", 128, required=True), language_hint=field("locale", 35),
                   notice=Notice(event=event_type or "") if kind is Kind.NOTIFICATION else None, raw=doc)


def render(reply: Reply) -> dict[str, Any]:
    """A degraded reply in the widget's form."""
    if isinstance(reply, ButtonsReply):
        return {"text": reply.text, "buttons": [{"label": b.label, "payload": b.payload} for b in reply.buttons]}
    if isinstance(reply, TextReply):
        return {"text": reply.text}
    raise PayloadError(f"cannot show {type(reply).__name__} in the web chat")


class WebChatChannel(Channel):
    name: ClassVar[str] = "webchat"

    def __init__(self, *, dispatch: Dispatch, sessions: async_sessionmaker[AsyncSession], secret: str,
                 api_base: str, account: str = "default", path: str = "/webchat",
                 passive_deadline: float = 2.5) -> None:
        super().__init__(dispatch=dispatch, account=account)
        self.capabilities = webchat_capabilities(passive_deadline)
        self._secret = secret.encode()
        self.api_base = api_base.rstrip("/")
        self.path = path
        self.outbox = OutboxSender(self, sessions)  # windows, pacing, retries, idempotency: the engine's
        self.passive_deadline = PassiveDeadline(self)  # in time inline, else through the outbox
        self._http: aiohttp.ClientSession | None = None

    def routes(self) -> list[web.RouteDef]:
        return [web.post(self.path, self.webhook)]

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.outbox.start()

    async def stop(self) -> None:
        await self.passive_deadline.stop()
        await self.outbox.stop()
        if self._http is not None:
            await self._http.close()

    async def webhook(self, request: web.Request) -> web.Response:
        """Verify the signature before anything is read into the bot, then answer within the deadline."""
        deadline = asyncio.get_running_loop().time() + (self.capabilities.passive_reply_deadline or 2.5)
        body = await read_body(request, MAX_BODY)
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Webchat-Signature", "")):
            raise SignatureError("bad X-Webchat-Signature")
        exchange = await self.passive_deadline.dispatch(parse_event(body, account=self.account), deadline)
        replies = exchange.passive_replies if exchange is not None else []
        return web.json_response({"replies": [render(r) for r in self.degrade(replies)]})

    async def send_reply(self, external_id: str, reply: Reply, *, context: dict[str, Any] | None = None) -> None:
        """``POST /v1/send``; map the platform's answers to what the outbox understands."""
        assert self._http is not None, "start() the channel first"
        doc = {"user": external_id, **render(reply), "idempotency_key": (context or {}).get("idempotency_key")}
        try:
            async with self._http.post(f"{self.api_base}/v1/send", json=doc,
                                       headers={"Authorization": f"Bearer {self._secret.decode()}"}) as resp:
                status = resp.status
                try:
                    answer = await resp.json(content_type=None)
                except ValueError:  # not JSON (a proxy's error page): the status says what happened
                    answer = None
        except aiohttp.ClientConnectorError as exc:  # never left: safe to repeat
            raise NotSent(f"platform unreachable: {type(exc).__name__}", retry_after=5.0) from None
        except (TimeoutError, aiohttp.ClientError) as exc:  # it may have arrived: retry later, in doubt
            raise QuotaExceeded(f"platform did not answer: {type(exc).__name__}", retry_after=5.0) from None
        if not isinstance(answer, dict):
            answer = {}
        if status == 429:
            retry_after = answer.get("retry_after")
            raise QuotaExceeded(retry_after=float(retry_after) if isinstance(retry_after, int | float) else 1.0)
        if status == 410:
            raise FollowerGone(platform_text(answer.get("error", "visitor gone")))
        if status >= 500:
            raise NotSent(f"platform error {status}", retry_after=5.0)
        if status != 200:
            raise PlatformAPIError(status, str(answer.get("error", "")))
