"""The fans' side: what they do reaches the bot as signed JSON pushes; the passive reply is read back.

Delivery follows the platform: ``callback_timeout`` per try, another try on a timeout, a connection
error or a 5xx, ``retries`` tries in all with the same body and a fresh signature (timestamp in
milliseconds). An empty body is an acknowledgement and stops the retries; a 4xx stops them too (the bot
refused this body). A late answer to a timed-out try is never taken as the reply.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp

from ..bodies import read_upto
from .platform import PlatformAPI
from .protocol import ProtocolError, created_at, decode_data, new_nonce, signature
from .state import SCENE_RE, WEIBO_ERROR_TEXT, Comment, Fan, Post, PushResult, Scene, SimulatorError

__all__ = ["PushDriver", "RawResponse"]

MAX_REPLY_BYTES = 64 * 1024
_EVENT_TEXT = {"follow": "关注", "unfollow": "取消关注", "subscribe": "订阅", "unsubscribe": "取消订阅",
               "scan": "扫码", "scan_follow": "扫码关注", "click": "点击菜单", "view": "打开链接", "mention": "提到了你"}


class RawResponse:
    """The bot's answer to one ``send_raw`` try."""

    def __init__(self, status: int | None, body: bytes, error: str | None = None) -> None:
        self.status, self.body, self.error = status, body, error


class PushDriver(PlatformAPI):
    """Fan actions that reach the bot as signed pushes."""

    # -- messages ------------------------------------------------------------------------------------
    async def send_text(self, uid: int, text: str) -> PushResult:
        """The fan sends the brand a direct message."""
        return await self._message(uid, "text", text, {}, {"text": text})

    async def send_position(self, uid: int, *, longitude: float = 116.397, latitude: float = 39.908) -> PushResult:
        data = {"longitude": f"{longitude:.6f}", "latitude": f"{latitude:.6f}"}
        return await self._message(uid, "position", "我在这里", data, {"text": f"{latitude:.4f},{longitude:.4f}"})

    async def send_image(self, uid: int) -> PushResult:
        data = {"vfid": int(new_nonce()), "tovfid": int(new_nonce())}
        return await self._message(uid, "image", "分享图片", data, {"text": "[图片 image]"})

    async def send_voice(self, uid: int) -> PushResult:
        data = {"vfid": int(new_nonce()), "tovfid": int(new_nonce())}
        return await self._message(uid, "voice", "分享语音", data, {"text": "[语音 voice]"})

    # -- events ----------------------------------------------------------------------------------------
    async def follow(self, uid: int) -> PushResult:
        fan = self.fan(uid)
        if fan.following:
            raise SimulatorError(f"{uid} is already following")
        self._url()
        fan.following = fan.ever_followed = True
        return await self._event(fan, "follow")

    async def unfollow(self, uid: int) -> PushResult:
        fan = self.fan(uid)
        if not fan.following:
            raise SimulatorError(f"{uid} is not following")
        self._url()
        fan.following = False
        fan.unfollowed = True
        if not self.reply_after_unfollow:
            fan.window_until = fan.mention_until = 0.0
            fan.mention_left = 0
        self._mark("fan", uid)
        return await self._event(fan, "unfollow", acted=False, show_reply=False)

    async def subscribe(self, uid: int) -> PushResult:
        """Turn on the account's message subscription (the fan-service 订阅)."""
        return await self._event(self._fan(uid), "subscribe")

    async def unsubscribe(self, uid: int) -> PushResult:
        return await self._event(self._fan(uid), "unsubscribe", acted=False, show_reply=False)

    async def scan(self, uid: int, scene: str) -> PushResult:
        """Scan a campaign QR: ``scan`` when already following, else ``scan_follow`` (and now following)."""
        fan = self._fan(uid)
        qr = self._scene(scene)
        data = {"key": qr.key, "ticket": qr.ticket}
        if fan.following:
            return await self._event(fan, "scan", data)
        fan.following = fan.ever_followed = True
        return await self._event(fan, "scan_follow", data)

    async def click(self, uid: int, key: str) -> PushResult:
        return await self._event(self._fan(uid), "click", {"key": key})

    async def view(self, uid: int, url: str) -> PushResult:
        return await self._event(self._fan(uid), "view", {"key": url, "url": url})

    # -- public: comments and posts ----------------------------------------------------------------------
    async def comment(self, uid: int, post_id: int, text: str) -> tuple[int, PushResult | None]:
        """The fan comments under a post; an @mention of the brand is pushed as a ``mention`` event."""
        fan = self._fan(uid, need_url=False)
        if post_id not in self.posts:
            raise SimulatorError("no such post")
        comment = Comment(id=self._new_id(), post_id=post_id, uid=fan.uid, text=text, at=self.clock())
        self.comments[comment.id] = comment
        self._mark("comment", comment.id)
        self._wake()
        return comment.id, await self._mention_push(fan, text, comment.id, post_id)

    async def post_status(self, uid: int, text: str) -> tuple[int, PushResult | None]:
        """The fan publishes a post of their own (listed by mentions.json when it @mentions the brand)."""
        fan = self._fan(uid, need_url=False)
        post_id = self.brand_post_as(fan.uid, text)
        return post_id, await self._mention_push(fan, text, None, post_id)

    def brand_post_as(self, uid: int, text: str) -> int:
        post = Post(id=self._new_id(), uid=uid, text=text, at=self.clock())
        self.posts[post.id] = post
        self._mark("post", post.id)
        self._wake()
        return post.id

    async def _mention_push(self, fan: Fan, text: str, comment_id: int | None, post_id: int) -> PushResult | None:
        if not self.mentions_brand(text):
            return None
        self._mentioned(fan)
        if not self.push_mentions or not self.callback_url:
            return None
        data: dict[str, Any] = {"subtype": "mention", "status_id": str(post_id)}
        if comment_id is not None:
            data["comment_id"] = str(comment_id)
        return await self._event(fan, "mention", data, acted=False, text=text)

    # -- raw access for hostile-input tests ------------------------------------------------------------
    async def send_raw(self, body: bytes, *, query: dict[str, str] | None = None, sign: bool = True,
                       content_type: str = "application/json") -> RawResponse:
        """POST ``body`` once, as is; with ``sign``, a valid signature/timestamp/nonce (``query`` wins)."""
        params = self._signed_query() if sign else {}
        params.update(query or {})
        try:
            async with self._http().post(self._url(), params=params, data=body, allow_redirects=False,
                                         headers={"Content-Type": content_type},
                                         timeout=aiohttp.ClientTimeout(total=self.callback_timeout)) as resp:
                return RawResponse(resp.status, await resp.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            return RawResponse(None, b"", f"{type(exc).__name__}: {exc}")

    async def verify_callback(self) -> bool:
        """Check the bot's URL as the platform does when it is configured: GET with echostr."""
        echostr = new_nonce() + new_nonce()
        params = {**self._signed_query(), "echostr": echostr}
        try:
            async with self._http().get(self._url(), params=params,
                                        timeout=aiohttp.ClientTimeout(total=self.callback_timeout)) as resp:
                return resp.status == 200 and (await resp.read()).strip() == echostr.encode()
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def close(self) -> None:
        """Close the push HTTP session and stop pending broadcast deliveries."""
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- building --------------------------------------------------------------------------------------
    def _fan(self, uid: int, *, need_url: bool = True) -> Fan:
        fan = self.fan(uid)
        if need_url:
            self._url()
        return fan

    def _scene(self, key: str) -> Scene:
        key = str(key)
        found = self.scenes.get(key)
        if found is not None and found.valid(self.clock()):
            return found
        if found is not None:
            raise SimulatorError("this QR code has expired")
        if not SCENE_RE.match(key):
            raise SimulatorError("a scene is 1..64 characters of [A-Za-z0-9_-]")
        return self.create_scene(key)

    def _body(self, fan: Fan, kind: str, text: str, data: dict[str, Any]) -> dict[str, Any]:
        # created_at has whole seconds and a bot deduplicates on sender_id + created_at (+ type): two pushes
        # of one fan never share a second here, so a fast test (or a frozen clock) is not taken for a retry.
        at = max(int(self.clock()), fan.last_push_at + 1)
        fan.last_push_at = at
        self._mark("fan", fan.uid)
        return {"type": kind, "receiver_id": self.brand_uid, "sender_id": fan.uid,
                "created_at": created_at(at), "text": text, "data": data}

    async def _message(self, uid: int, kind: str, text: str, data: dict[str, Any],
                       shown: dict[str, Any]) -> PushResult:
        fan = self._fan(uid)
        self._record(fan, "in", "fan", kind, **shown)
        self._acted(fan)
        return await self._deliver(fan, self._body(fan, kind, text, data), kind, show_reply=True)

    async def _event(self, fan: Fan, subtype: str, extra: dict[str, Any] | None = None, *, acted: bool = True,
                     show_reply: bool = True, text: str | None = None) -> PushResult:
        self._url()
        data = {"subtype": subtype, **(extra or {})}
        self._record(fan, "in", "fan", "event", event=subtype, key=data.get("key"))
        if acted:
            self._acted(fan)
        else:
            fan.cursor = len(fan.timeline)
        body = self._body(fan, "event", text if text is not None else _EVENT_TEXT[subtype], data)
        return await self._deliver(fan, body, subtype, show_reply=show_reply)

    # -- delivery -----------------------------------------------------------------------------------------
    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _url(self) -> str:
        if not self.callback_url:
            raise SimulatorError("callback_url is not set")
        return self.callback_url

    def _signed_query(self) -> dict[str, str]:
        # Transport timestamps use the real clock (milliseconds) so a bot's freshness check is not fooled.
        timestamp, nonce = str(int(time.time() * 1000)), new_nonce()
        return {"signature": signature(self.app_secret, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}

    async def _deliver(self, fan: Fan, payload: dict[str, Any], action: str, *, show_reply: bool) -> PushResult:
        url = self._url()
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        result = PushResult(action=action, payload=payload)
        started = time.perf_counter()
        for attempt in range(1, self.retries + 1):
            result.attempts = attempt
            try:
                async with self._http().post(url, params=self._signed_query(), data=body, allow_redirects=False,
                                             headers={"Content-Type": "application/json"},
                                             timeout=aiohttp.ClientTimeout(total=self.callback_timeout)) as resp:
                    status, raw = resp.status, await read_upto(resp.content, MAX_REPLY_BYTES)
            except TimeoutError:
                result.error = f"no answer within {self.callback_timeout}s (try {attempt})"
                continue
            except aiohttp.ClientError as exc:
                result.error = f"{type(exc).__name__}: {exc} (try {attempt})"
                continue
            result.status, result.body = status, raw
            if status >= 500:
                result.error = f"HTTP {status} (try {attempt})"
                continue
            if status != 200:
                result.error = f"HTTP {status}"
                break
            result.error = None
            self._read_answer(fan, raw, result)
            break
        result.latency = time.perf_counter() - started
        if show_reply:
            if result.reply is not None:
                self._record(fan, "out", "passive", result.reply["type"],
                             **{k: v for k, v in result.reply.items() if k != "type"})
            elif result.error is not None:
                self._record(fan, "out", "system", "error", text=WEIBO_ERROR_TEXT, detail=result.error)
        return result

    def _read_answer(self, fan: Fan, raw: bytes, result: PushResult) -> None:
        if not raw.strip():
            result.acknowledged = True
            return
        try:
            result.reply = self.parse_reply(fan, raw)
        except ProtocolError as exc:
            result.error = f"malformed reply: {exc}"

    def parse_reply(self, fan: Fan, raw: bytes) -> dict[str, Any]:
        """Check a passive reply as the platform does; return {"type": "text", "text"} or {"type": "articles", ...}."""
        if len(raw) > MAX_REPLY_BYTES:
            raise ProtocolError(f"reply larger than {MAX_REPLY_BYTES} bytes")
        try:
            reply = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ProtocolError("reply is not UTF-8 JSON") from None
        if not isinstance(reply, dict):
            raise ProtocolError("reply must be a JSON object")
        if reply.get("result") is not True:
            raise ProtocolError('reply needs "result": true')
        if not _same_id(reply.get("sender_id"), self.brand_uid):
            raise ProtocolError("sender_id must be the brand's uid")
        if not _same_id(reply.get("receiver_id"), fan.uid):
            raise ProtocolError("receiver_id must be the fan's uid")
        kind = reply.get("type")
        data = decode_data(reply.get("data"))
        if kind == "text":
            text = data.get("text")
            if not isinstance(text, str) or not text:
                raise ProtocolError("data.text must be a non-empty string")
            if len(text) > self.max_dm_chars:
                raise ProtocolError(f"text longer than {self.max_dm_chars} characters")
            return {"type": "text", "text": text}
        if kind == "articles":
            articles = data.get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                raise ProtocolError("data.articles must be a list of 1..8 articles")
            if not all(isinstance(a, dict) and isinstance(a.get("display_name"), str) for a in articles):
                raise ProtocolError("each article needs a display_name")
            return {"type": "articles",
                    "articles": [{k: str(a.get(k, "")) for k in ("display_name", "summary", "image", "url")}
                                 for a in articles]}
        raise ProtocolError(f"type must be text or articles, not {kind!r}")


def _same_id(value: Any, expected: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value == expected
    return isinstance(value, str) and value == str(expected)
