"""The Weibo active APIs: fan-service messages (reply, sendall) and the Open API v2 comments.

Every call is a form-encoded POST or a GET with ``access_token``; answers are JSON, errors HTTP 4xx
with ``{"error", "error_code", "request"}``, mapped to typed errors by ``protocol.raise_for_error``.
A request that never reached the platform (connection refused) raises ``NotSent``: the outbox may
repeat it; a timeout after the request left is in doubt and raises ``QuotaExceeded`` (retry later;
the outbox's journal decides what a doubtful send means).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import aiohttp

from bot.channels.images import Image
from bot.errors import NotSent, PlatformAPIError, QuotaExceeded

from . import protocol

log = logging.getLogger("engagebot.weibo.api")

REPLY_PATH = "/2/messages/reply.json"
SENDALL_PATH = "/2/messages/sendall.json"
COMMENTS_TO_ME_PATH = "/2/comments/to_me.json"
MENTIONS_PATH = "/2/statuses/mentions.json"
COMMENTS_SHOW_PATH = "/2/comments/show.json"
COMMENT_REPLY_PATH = "/2/comments/reply.json"
COMMENT_CREATE_PATH = "/2/comments/create.json"
QRCODE_CREATE_PATH = "/2/eps/qrcode/create.json"
MENU_CREATE_PATH = "/2/messages/menu/create.json"
UPLOAD_PATH = "/2/mss/upload.json"
# How long an uploaded image's tovfid is reused (the platform does not say; kept short to be safe).
MEDIA_LIFETIME = timedelta(days=1)
# A temporary scene QR lives at most 30 days on the fan-service platform.
TEMPORARY_QR_SECONDS = 2_592_000


class WeiboAPI:
    """A client of one brand account's APIs; safe to share between tasks."""

    def __init__(self, *, api_base: str, access_token: str, timeout: float = 10.0) -> None:
        self.api_base = api_base.rstrip("/")
        self._token = access_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                      form: dict[str, str] | None = None, image: Image | None = None) -> dict[str, Any]:
        url = self.api_base + path
        try:
            if method == "GET":
                ctx = self._client().get(url, params={**(params or {}), "access_token": self._token})
            elif image is not None:  # multipart: the form's fields, then the file as ``media``
                body = aiohttp.FormData({**(form or {}), "access_token": self._token})
                body.add_field("media", image.data, filename=image.filename, content_type=image.mime_type)
                ctx = self._client().post(url, data=body)
            else:
                ctx = self._client().post(url, data={**(form or {}), "access_token": self._token})
            async with ctx as resp:
                status = resp.status
                try:
                    doc = await resp.json(content_type=None)
                except ValueError:
                    doc = None
        except aiohttp.ClientConnectorError as exc:
            raise NotSent(f"Weibo unreachable: {type(exc).__name__}", retry_after=5.0) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise QuotaExceeded(f"Weibo did not answer: {type(exc).__name__}", retry_after=5.0) from None
        protocol.raise_for_error(status, doc, path)
        if not isinstance(doc, dict):
            raise PlatformAPIError(-2, f"unexpected answer from {path}")
        return doc

    async def reply(self, fan_uid: str, msg_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /2/messages/reply.json``: one message to a fan within the window."""
        form = protocol.reply_form(access_token=self._token, fan_uid=fan_uid, msg_type=msg_type, data=data)
        form.pop("access_token")
        return await self.request("POST", REPLY_PATH, form=form)

    async def upload_image(self, image: Image) -> tuple[str, timedelta]:
        """``POST /2/mss/upload.json`` (multipart ``media``, ``type=image``): the ``tovfid`` an image message names."""
        tovfid = (await self.request("POST", UPLOAD_PATH, form={"type": "image"}, image=image)).get("tovfid")
        if not isinstance(tovfid, str) or not tovfid:
            raise PlatformAPIError(-2, f"no tovfid in the answer from {UPLOAD_PATH}")
        return tovfid, MEDIA_LIFETIME

    async def sendall(self, uids: list[str], msg_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """``POST /2/messages/sendall.json``: asynchronous; the answer may say it is held for review."""
        form = protocol.sendall_form(access_token=self._token, uids=uids, msg_type=msg_type, data=data)
        form.pop("access_token")
        return await self.request("POST", SENDALL_PATH, form=form)

    async def comments_to_me(self, since_id: str, count: int = 50) -> list[protocol.PublicPost]:
        return protocol.parse_comments(await self.request(
            "GET", COMMENTS_TO_ME_PATH, params={"since_id": since_id, "count": str(count)}))

    async def mentions(self, since_id: str, count: int = 50) -> list[protocol.PublicPost]:
        return protocol.parse_mentions(await self.request(
            "GET", MENTIONS_PATH, params={"since_id": since_id, "count": str(count)}))

    async def brand_comments_on(self, post_id: str, count: int = 200) -> list[dict[str, Any]]:
        """The comments under a post (the brand's own among them): did a reply go out before a crash?"""
        doc = await self.request("GET", COMMENTS_SHOW_PATH, params={"id": post_id, "count": str(count)})
        items = doc.get("comments")
        return [c for c in items if isinstance(c, dict)] if isinstance(items, list) else []

    async def comment_reply(self, *, cid: str, post_id: str, comment: str) -> dict[str, Any]:
        return await self.request("POST", COMMENT_REPLY_PATH,
                                  form={"cid": cid, "id": post_id, "comment": comment, "without_mention": "0"})

    async def comment_create(self, *, post_id: str, comment: str) -> dict[str, Any]:
        return await self.request("POST", COMMENT_CREATE_PATH, form={"id": post_id, "comment": comment})

    async def create_scene_qr(self, scene: str, *, permanent: bool = True) -> str:
        """``POST /2/eps/qrcode/create.json``: the URL a campaign QR encodes (scanning it follows through it)."""
        form = {"scene_str": scene}
        if not permanent:
            form["expire_seconds"] = str(TEMPORARY_QR_SECONDS)
        url = (await self.request("POST", QRCODE_CREATE_PATH, form=form)).get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise PlatformAPIError(-2, f"no QR URL in the answer from {QRCODE_CREATE_PATH}")
        return url

    async def create_menu(self, menus: dict[str, Any]) -> None:
        """``POST /2/messages/menu/create.json``: replace the fan-service menu (``menus``: JSON, form-encoded)."""
        await self.request("POST", MENU_CREATE_PATH, form={"menus": json.dumps(menus, ensure_ascii=False)})
