"""The simulated users' phones: build, sign (and encrypt) callbacks, POST them to the bot, read the answer.

Delivery follows the platform: a deadline of `callback_timeout` per try, a retry on timeout, connection
error or a non-200 status, `retries` tries in all with the same body (same MsgId and CreateTime) and a
fresh signature. A late answer to a timed-out try is never taken as the reply: the request is cancelled.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import aiohttp

from .platform import PlatformAPI
from .protocol import ProtocolError, build_xml, new_nonce, parse_xml, signature, signatures_match
from .state import WECHAT_ERROR_TEXT, CallbackResult, Follower, SimulatorError, Ticket

__all__ = ["CallbackDriver", "RawResponse"]

MAX_REPLY_BYTES = 64 * 1024
MASS_ASSISTANT = "mphelper"  # the sender of MASSSENDJOBFINISH: WeChat's mass-send assistant, not a follower


@dataclass
class RawResponse:
    """The bot's answer to one `send_raw` try."""

    status: int | None
    body: bytes
    error: str | None = None


def _text(root: ET.Element, tag: str) -> str | None:
    el = root.find(tag)
    return None if el is None else (el.text or "")


class CallbackDriver(PlatformAPI):
    """User actions that reach the bot as signed XML callbacks."""

    # -- user actions -------------------------------------------------------------------------------

    async def send_text(self, openid: str, text: str) -> CallbackResult:
        """The follower types `text` and sends it."""
        return await self._message(openid, "text", [("Content", text)], {"content": text})

    async def send_image(self, openid: str, *, pic_url: str | None = None, media_id: str | None = None) -> CallbackResult:
        pic_url = pic_url or "http://mmbiz.qpic.cn/mmbiz_jpg/simulated/0"
        media_id = media_id or "media_" + new_nonce()
        fields = [("PicUrl", pic_url), ("MediaId", media_id)]
        return await self._message(openid, "image", fields, {"content": pic_url})

    async def send_voice(
        self, openid: str, *, recognition: str | None = None, media_id: str | None = None, fmt: str = "amr"
    ) -> CallbackResult:
        fields: list[tuple[str, str | int]] = [("MediaId", media_id or "media_" + new_nonce()), ("Format", fmt)]
        if recognition is not None:
            fields.append(("Recognition", recognition))
        return await self._message(openid, "voice", fields, {"content": recognition or "[语音 voice]"})

    async def send_location(
        self, openid: str, *, latitude: float = 39.908, longitude: float = 116.397, scale: int = 15, label: str = ""
    ) -> CallbackResult:
        fields: list[tuple[str, str | int]] = [
            ("Location_X", f"{latitude:.6f}"),
            ("Location_Y", f"{longitude:.6f}"),
            ("Scale", scale),
            ("Label", label),
        ]
        data = {"content": label or f"{latitude:.4f},{longitude:.4f}", "latitude": latitude, "longitude": longitude}
        return await self._message(openid, "location", fields, data)

    async def send_link(self, openid: str, *, title: str, description: str = "", url: str) -> CallbackResult:
        fields: list[tuple[str, str | int]] = [("Title", title), ("Description", description), ("Url", url)]
        return await self._message(openid, "link", fields, {"content": title, "url": url})

    async def follow(self, openid: str, scene: str | None = None, *, ticket: str | None = None) -> CallbackResult:
        """Subscribe; with a scene (or a ticket) as if by scanning a QR: EventKey=qrscene_<scene>."""
        follower = self.follower(openid)
        if follower.subscribed:
            raise SimulatorError(f"{openid} is already following")
        self._url()  # fail before changing any state
        qr = self._resolve_ticket(scene, ticket)
        self._subscribe(follower, qr.scene if qr else None)
        self._open_window(follower, after_message=False)
        extra: list[tuple[str, str | int]] = []
        if qr:
            extra = [("EventKey", "qrscene_" + qr.scene), ("Ticket", qr.ticket)]
        return await self._event(follower, "subscribe", extra, key=qr.scene if qr else None)

    async def scan(self, openid: str, scene: str | None = None, *, ticket: str | None = None) -> CallbackResult:
        """Scan a scene QR: SCAN when already following, else a subscribe with qrscene_."""
        follower = self.follower(openid)
        if not follower.subscribed:
            return await self.follow(openid, scene, ticket=ticket)
        self._url()
        qr = self._resolve_ticket(scene, ticket)
        if qr is None:
            raise SimulatorError("scan needs a scene or a ticket")
        self._open_window(follower, after_message=False)
        extra: list[tuple[str, str | int]] = [("EventKey", qr.scene), ("Ticket", qr.ticket)]
        return await self._event(follower, "SCAN", extra, key=qr.scene)

    async def unfollow(self, openid: str) -> CallbackResult:
        follower = self.follower(openid)
        if not follower.subscribed:
            raise SimulatorError(f"{openid} is not following")
        self._url()
        self._unsubscribe(follower)
        return await self._event(follower, "unsubscribe", [], key=None, show_reply=False)

    async def click(self, openid: str, key: str) -> CallbackResult:
        """Tap a menu item of type click."""
        follower = self._following(openid)
        self._open_window(follower, after_message=False)
        return await self._event(follower, "CLICK", [("EventKey", key)], key=key)

    async def view(self, openid: str, url: str) -> CallbackResult:
        """Tap a menu item that opens a URL (does not open the customer-service window)."""
        follower = self._following(openid)
        return await self._event(follower, "VIEW", [("EventKey", url)], key=url)

    async def tap_menu(self, openid: str, path: list[int] | tuple[int, ...], *, scan_result: str = "",
                       latitude: float = 31.2196, longitude: float = 121.4750, label: str = "") -> CallbackResult:
        """Tap a button of the menu this follower sees (``path``: [top] or [top, sub]); what WeChat sends.

        click and view: CLICK / VIEW. A scan button: scancode_push or scancode_waitmsg with the
        ``ScanResult``. A picture button: its event, then the picture as an image message. The place
        picker: location_select with ``SendLocationInfo``, then the place as a location message. The
        result is the answer to what the follower is answered for: the message that follows, if any.
        """
        follower = self._following(openid)
        button = self._menu_button(openid, path)
        kind, key = button["type"], button.get("key", "")
        if kind == "click":
            return await self.click(openid, key)
        if kind == "view":
            return await self.view(openid, button["url"])
        extra: list[tuple[str, Any]] = [("EventKey", key)]
        if kind.startswith("scancode_"):
            if not scan_result:
                raise SimulatorError("a scan button needs what was scanned (scan_result)")
            extra.append(("ScanCodeInfo", [("ScanType", "qrcode"), ("ScanResult", scan_result)]))
            self._open_window(follower, after_message=False)
            return await self._event(follower, kind, extra, key=key)
        if kind.startswith("pic_"):
            md5 = new_nonce() + new_nonce()
            extra.append(("SendPicsInfo", [("Count", 1), ("PicList", [("item", [("PicMd5Sum", md5[:32])])])]))
            await self._event(follower, kind, extra, key=key, show_reply=False)
            return await self.send_image(openid)
        if kind == "location_select":
            extra.append(("SendLocationInfo", [("Location_X", f"{latitude:.6f}"), ("Location_Y", f"{longitude:.6f}"),
                                               ("Scale", 15), ("Label", label), ("Poiname", label)]))
            await self._event(follower, kind, extra, key=key, show_reply=False)
            return await self.send_location(openid, latitude=latitude, longitude=longitude, label=label)
        raise SimulatorError(f"this simulator does not tap {kind} buttons")

    def _menu_button(self, openid: str, path: list[int] | tuple[int, ...]) -> dict[str, Any]:
        buttons = self.menu_for(openid)
        if not buttons:
            raise SimulatorError("the account has no menu")
        if not 1 <= len(path) <= 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in path):
            raise SimulatorError("path is [top] or [top, sub]")
        if not 0 <= path[0] < len(buttons):
            raise SimulatorError(f"the menu has {len(buttons)} top-level buttons")
        button = buttons[path[0]]
        subs = button.get("sub_button")
        if subs and len(path) == 1:
            raise SimulatorError(f"{button['name']!r} opens a sub-menu: tap one of its buttons")
        if len(path) == 2:
            if not subs or not 0 <= path[1] < len(subs):
                raise SimulatorError(f"{button['name']!r} has {len(subs or [])} sub-menu buttons")
            return dict(subs[path[1]])
        return dict(button)

    async def report_location(self, openid: str, *, latitude: float, longitude: float,
                              precision: float = 65.0) -> CallbackResult:
        """The follower opens the chat with location reporting on: WeChat reports where they are."""
        follower = self._following(openid)
        extra: list[tuple[str, str | int]] = [
            ("Latitude", f"{latitude:.6f}"), ("Longitude", f"{longitude:.6f}"), ("Precision", f"{precision:.6f}")]
        return await self._event(follower, "LOCATION", extra, key=None)

    async def customer_service(self, openid: str, action: str, *, kf_account: str = "kf2001@gh_simulated"
                               ) -> CallbackResult:
        """A person of the account's customer-service desk opens ("create"), passes on ("switch") or
        closes ("close") a session with the follower."""
        if action not in ("create", "switch", "close"):
            raise SimulatorError(f"unknown customer-service action {action!r} (create, switch or close)")
        follower = self._following(openid)
        extra: list[tuple[str, str | int]] = [("KfAccount", kf_account)]
        return await self._event(follower, f"kf_{action}_session", extra, key=None)

    async def _report_mass_finished(self, job: dict[str, Any], *, filtered: int, sent: int) -> None:
        """Tell the account how a mass send went (MASSSENDJOBFINISH, from the mass-send assistant)."""
        if not self.callback_url:
            return
        xml = build_xml([
            ("ToUserName", self.account_id), ("FromUserName", MASS_ASSISTANT), ("CreateTime", int(self.clock())),
            ("MsgType", "event"), ("Event", "MASSSENDJOBFINISH"), ("MsgID", job["msg_id"]),
            ("Status", "send success"), ("TotalCount", len(job["recipients"])), ("FilterCount", filtered),
            ("SentCount", sent), ("ErrorCount", filtered - sent),
        ])
        result = CallbackResult(action="MASSSENDJOBFINISH")
        await self._post(xml, None, result)
        job["report"] = {"status": result.status, "error": result.error}

    # -- raw access for hostile-input tests ---------------------------------------------------------

    async def send_raw(self, body: bytes, *, query: dict[str, str] | None = None, sign: bool = True) -> RawResponse:
        """POST `body` once, as is; with `sign`, add a valid signature/timestamp/nonce (query wins)."""
        params = dict(self._signed_query(None, None)) if sign else {}
        params.update(query or {})
        try:
            async with self._http().post(
                self._url(), params=params, data=body, headers={"Content-Type": "text/xml"}, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.callback_timeout),
            ) as resp:
                return RawResponse(resp.status, await resp.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            return RawResponse(None, b"", f"{type(exc).__name__}: {exc}")

    async def verify_callback(self) -> bool:
        """Check the bot's URL as the platform does when it is configured: GET with echostr."""
        echostr = new_nonce() + new_nonce()
        params = {**self._signed_query(None, None), "echostr": echostr}
        params.pop("openid", None)
        try:
            async with self._http().get(
                self._url(), params=params, timeout=aiohttp.ClientTimeout(total=self.callback_timeout)
            ) as resp:
                return resp.status == 200 and (await resp.read()) == echostr.encode()
        except (TimeoutError, aiohttp.ClientError):
            return False

    async def close(self) -> None:
        """Close the callback HTTP session and stop pending mass deliveries."""
        for task in list(self._mass_tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- building ---------------------------------------------------------------------------------

    def _following(self, openid: str) -> Follower:
        follower = self.follower(openid)
        if not follower.subscribed:
            raise SimulatorError(f"{openid} is not following the account")
        self._url()
        return follower

    def _resolve_ticket(self, scene: str | None, ticket: str | None) -> Ticket | None:
        now = self.clock()
        if ticket is not None:
            qr = self.tickets.get(ticket)
            if qr is None or not qr.valid(now):
                raise SimulatorError("unknown or expired ticket")
            return qr
        if scene is None:
            return None
        scene = str(scene)
        for qr in reversed(list(self.tickets.values())):
            if qr.scene == scene and qr.valid(now):
                return qr
        if not 1 <= len(scene) <= 64:
            raise SimulatorError("a scene is 1..64 characters")
        action = "QR_LIMIT_SCENE" if scene.isdigit() and 1 <= int(scene) <= 100_000 else "QR_LIMIT_STR_SCENE"
        return self.tickets[self.create_ticket(action, scene, None)["ticket"]]

    def _head(self, follower: Follower, msgtype: str) -> list[tuple[str, str | int]]:
        return [
            ("ToUserName", self.account_id),
            ("FromUserName", follower.openid),
            ("CreateTime", int(self.clock())),
            ("MsgType", msgtype),
        ]

    async def _message(
        self, openid: str, msgtype: str, fields: list[tuple[str, str | int]], shown: dict[str, Any]
    ) -> CallbackResult:
        follower = self._following(openid)
        msg_id = self._new_msg_id()
        xml = build_xml(self._head(follower, msgtype) + fields + [("MsgId", msg_id)])
        self._record(follower, "in", "user", msgtype, msg_id=msg_id, **shown)
        self._open_window(follower, after_message=True)
        follower.cursor = len(follower.timeline)
        result = CallbackResult(action=msgtype, msg_id=msg_id)
        await self._deliver(follower, xml, result, show_reply=True)
        return result

    async def _event(
        self, follower: Follower, event: str, extra: list[tuple[str, Any]], *, key: str | None,
        show_reply: bool = True,
    ) -> CallbackResult:
        xml = build_xml(self._head(follower, "event") + [("Event", event)] + extra)
        self._record(follower, "in", "user", "event", event=event, key=key)
        follower.cursor = len(follower.timeline)
        result = CallbackResult(action=event)
        await self._deliver(follower, xml, result, show_reply=show_reply)
        return result

    # -- delivery ---------------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _url(self) -> str:
        if not self.callback_url:
            raise SimulatorError("callback_url is not set")
        return self.callback_url

    def _signed_query(self, encrypt: str | None, openid: str | None) -> dict[str, str]:
        # Transport timestamps use the real clock so a bot's freshness check is not fooled by a test clock.
        timestamp, nonce = str(int(time.time())), new_nonce()
        query = {"signature": signature(self.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}
        if openid:
            query["openid"] = openid
        if encrypt is not None:
            query["encrypt_type"] = "aes"
            query["msg_signature"] = signature(self.token, timestamp, nonce, encrypt)
        return query

    def _envelope(self, xml: str) -> tuple[bytes, str | None]:
        if self.encoding_mode == "plain" or self.cipher is None:
            return xml.encode("utf-8"), None
        encrypt = self.cipher.encrypt(xml.encode("utf-8"))
        if self.encoding_mode == "compat":
            return (xml[: -len("</xml>")] + build_xml([("Encrypt", encrypt)])[5:]).encode("utf-8"), encrypt
        outer = build_xml([("ToUserName", self.account_id), ("Encrypt", encrypt)])
        return outer.encode("utf-8"), encrypt

    async def _deliver(self, follower: Follower, xml: str, result: CallbackResult, *, show_reply: bool) -> None:
        raw = await self._post(xml, follower.openid, result)
        if raw is not None:
            self._read_answer(follower, raw, result)
        if not show_reply:
            return
        if result.reply is not None:
            self._record(follower, "out", "passive", result.reply["type"],
                         **{k: v for k, v in result.reply.items() if k != "type"})
        elif result.error is not None:
            self._record(follower, "out", "system", "error", content=WECHAT_ERROR_TEXT, detail=result.error)

    async def _post(self, xml: str, openid: str | None, result: CallbackResult) -> bytes | None:
        """POST a callback, signed (and encrypted in safe mode), retrying as WeChat does; the answer's body."""
        url = self._url()
        body, encrypt = self._envelope(xml)
        started = time.perf_counter()
        answer = None
        for attempt in range(1, self.retries + 1):
            result.attempts = attempt
            query = self._signed_query(encrypt, openid)
            try:
                async with self._http().post(
                    url, params=query, data=body, headers={"Content-Type": "text/xml"}, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=self.callback_timeout),
                ) as resp:
                    status, raw = resp.status, await resp.read()
            except TimeoutError:
                result.error = f"no answer within {self.callback_timeout}s (try {attempt})"
                continue
            except aiohttp.ClientError as exc:
                result.error = f"{type(exc).__name__}: {exc} (try {attempt})"
                continue
            result.status, result.body = status, raw
            if status != 200:
                result.error = f"HTTP {status} (try {attempt})"
                continue
            result.error = None
            answer = raw
            break
        result.latency = time.perf_counter() - started
        return answer

    def _read_answer(self, follower: Follower, raw: bytes, result: CallbackResult) -> None:
        if raw in (b"", b"success"):
            result.acknowledged = True
            return
        try:
            result.reply = self._parse_reply(follower, raw)
        except ProtocolError as exc:
            result.error = f"malformed reply: {exc}"

    def _parse_reply(self, follower: Follower, raw: bytes) -> dict[str, Any]:
        """Check a passive reply the way the platform does; return {"type", "content"|"articles"}."""
        if len(raw) > MAX_REPLY_BYTES:
            raise ProtocolError(f"reply larger than {MAX_REPLY_BYTES} bytes")
        root = parse_xml(raw)
        if self.encoding_mode != "plain" and root.find("Encrypt") is not None:
            root = self._open_reply(root)
        elif self.encoding_mode == "safe":
            raise ProtocolError("safe mode expects an encrypted reply (<Encrypt>)")
        if _text(root, "ToUserName") != follower.openid:
            raise ProtocolError("ToUserName must be the follower's OpenID")
        if _text(root, "FromUserName") != self.account_id:
            raise ProtocolError("FromUserName must be the account id")
        if not (_text(root, "CreateTime") or "").strip().isdigit():
            raise ProtocolError("CreateTime must be unix seconds")
        msgtype = _text(root, "MsgType")
        if msgtype == "text":
            content = _text(root, "Content")
            if not content:
                raise ProtocolError("text reply without Content")
            if len(content.encode("utf-8")) > self.max_text_bytes:
                raise ProtocolError(f"Content longer than {self.max_text_bytes} bytes")
            return {"type": "text", "content": content}
        if msgtype == "news":
            return {"type": "news", "articles": self._read_articles(root)}
        if msgtype == "image":
            media_id = _text(root, "Image/MediaId")
            if not media_id or media_id not in self.media:
                raise ProtocolError("image reply with an unknown Image/MediaId")
            return {"type": "image", "media_id": media_id}
        raise ProtocolError(f"MsgType {msgtype!r} is not text, news or image")

    def _read_articles(self, root: ET.Element) -> list[dict[str, str]]:
        count = (_text(root, "ArticleCount") or "").strip()
        items = root.findall("Articles/item")
        if not count.isdigit() or int(count) != len(items):
            raise ProtocolError("ArticleCount does not match the number of items")
        if len(items) != 1:
            raise ProtocolError("a news reply carries exactly 1 article")
        articles = []
        for item in items:
            title = _text(item, "Title")
            if not title:
                raise ProtocolError("article without Title")
            articles.append({
                "title": title,
                "description": _text(item, "Description") or "",
                "url": _text(item, "Url") or "",
                "picurl": _text(item, "PicUrl") or "",
            })
        return articles

    def _open_reply(self, root: ET.Element) -> ET.Element:
        assert self.cipher is not None
        encrypt, sig = _text(root, "Encrypt"), _text(root, "MsgSignature")
        timestamp, nonce = _text(root, "TimeStamp"), _text(root, "Nonce")
        if not encrypt or sig is None or timestamp is None or nonce is None:
            raise ProtocolError("encrypted reply needs Encrypt, MsgSignature, TimeStamp and Nonce")
        if not signatures_match(signature(self.token, timestamp, nonce, encrypt), sig):
            raise ProtocolError("MsgSignature does not match")
        return parse_xml(self.cipher.decrypt(encrypt))
