"""The simulated active API under /cgi-bin: tokens, customer-service and mass sends, QR codes, user info,
temporary media (``media/upload``: images as bmp/png/jpeg/jpg/gif up to 10 MB; 40004 invalid media type,
40005 invalid file type, 40006 invalid size, 40007 invalid or expired media id after 3 days).

Errors are JSON `{"errcode", "errmsg"}` with HTTP 200, as the real platform answers.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import secrets
from typing import Any

import segno
from aiohttp import BodyPartReader, web

from .menus import MenuError, check_buttons, check_matchrule
from .state import SimulatorState, Ticket

__all__ = ["PlatformAPI"]

QR_MAX_EXPIRE = 2_592_000
QR_DEFAULT_EXPIRE = 30
MEDIA_LIFETIME = 3 * 86400  # a temporary media id lives 3 days
MEDIA_TYPES = ("image", "voice", "video", "thumb")
MEDIA_PAGE_PATH = "/simulator/wechat/media"  # the phone page shows uploaded images from here
# What the platform accepts as a temporary image: its format, by the file's first bytes.
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"), (b"BM", "image/bmp"))
IMAGE_EXTENSIONS = ("bmp", "png", "jpeg", "jpg", "gif")
_QR_ACTIONS = ("QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE")


def _err(code: int, msg: str) -> web.Response:
    return web.json_response({"errcode": code, "errmsg": msg})


class _Reject(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class PlatformAPI(SimulatorState):
    """Route handlers of the platform's JSON API."""

    def _api_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/cgi-bin/token", self._h_token),
            web.post("/cgi-bin/message/custom/send", self._h_custom_send),
            web.post("/cgi-bin/message/mass/sendall", self._h_mass_sendall),
            web.post("/cgi-bin/message/mass/send", self._h_mass_send),
            web.post("/cgi-bin/qrcode/create", self._h_qrcode_create),
            web.get("/cgi-bin/showqrcode", self._h_showqrcode),
            web.get("/cgi-bin/user/info", self._h_user_info),
            web.post("/cgi-bin/menu/create", self._h_menu_create),
            web.post("/cgi-bin/menu/addconditional", self._h_menu_addconditional),
            web.get("/cgi-bin/menu/get", self._h_menu_get),
            web.get("/cgi-bin/menu/delete", self._h_menu_delete),
            web.post("/cgi-bin/menu/delconditional", self._h_menu_delconditional),
            web.post("/cgi-bin/menu/trymatch", self._h_menu_trymatch),
            web.post("/cgi-bin/media/upload", self._h_media_upload),
            web.get("/cgi-bin/media/get", self._h_media_get),
            web.get(MEDIA_PAGE_PATH + "/{media_id}", self._h_media_view),
        ]

    async def _json_body(self, request: web.Request) -> dict[str, Any]:
        token_error = self._check_token(request.query.get("access_token"))
        if token_error:
            raise _Reject(*token_error)
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise _Reject(47001, "data format error: body is not UTF-8 JSON") from None
        if not isinstance(body, dict):
            raise _Reject(47001, "data format error: body must be a JSON object")
        return body

    # -- token ------------------------------------------------------------------------------------

    async def _h_token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential":
            return _err(40002, "invalid grant_type")
        if not hmac.compare_digest(q.get("appid", "").encode(), self.app_id.encode()):
            return _err(40013, "invalid appid")
        if not hmac.compare_digest(q.get("secret", "").encode(), self.app_secret.encode()):
            return _err(40125, "invalid appsecret")
        return web.json_response({"access_token": self._issue_token(), "expires_in": self.token_ttl})

    # -- customer-service messages ----------------------------------------------------------------

    def _parse_message(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a text/news message body; return the timeline fields for it."""
        msgtype = body.get("msgtype")
        if msgtype == "text":
            text = body.get("text")
            content = text.get("content") if isinstance(text, dict) else None
            if not isinstance(content, str) or not content:
                raise _Reject(44004, "empty content: text.content is required")
            if len(content.encode("utf-8")) > self.max_text_bytes:
                raise _Reject(45002, f"content size out of limit ({self.max_text_bytes} bytes)")
            return {"type": "text", "content": content}
        if msgtype == "news":
            news = body.get("news")
            articles = news.get("articles") if isinstance(news, dict) else None
            if not isinstance(articles, list) or not articles:
                raise _Reject(44003, "empty news data: news.articles is required")
            if len(articles) > 1:
                raise _Reject(45008, "article size out of limit: 1 article at most")
            out = []
            for art in articles:
                if not isinstance(art, dict) or not isinstance(art.get("title"), str):
                    raise _Reject(47001, "data format error: each article needs a title")
                for key in ("description", "url", "picurl"):
                    if key in art and not isinstance(art[key], str):
                        raise _Reject(47001, f"data format error: article {key} must be a string")
                out.append({k: art.get(k, "") for k in ("title", "description", "url", "picurl")})
            return {"type": "news", "articles": out}
        if msgtype == "image":
            image = body.get("image")
            media_id = image.get("media_id") if isinstance(image, dict) else None
            if not isinstance(media_id, str) or not media_id:
                raise _Reject(40007, "invalid media_id: image.media_id is required")
            self._live_media(media_id)
            return {"type": "image", "media_id": media_id}
        raise _Reject(40008, f"invalid message type: {msgtype!r} (text, news or image)")

    def _live_media(self, media_id: str) -> dict[str, Any]:
        media = self.media.get(media_id)
        if media is None or self.clock() >= media["created_at"] + MEDIA_LIFETIME:
            raise _Reject(40007, "invalid media_id")
        return media

    async def _h_custom_send(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
            openid = body.get("touser")
            follower = self.followers.get(openid) if isinstance(openid, str) else None
            if follower is None or not follower.ever_subscribed:
                raise _Reject(40003, "invalid openid")
            if not follower.subscribed:
                raise _Reject(43004, "require subscribe: the user has unfollowed")
            message = self._parse_message(body)
            if self.clock() >= follower.window_until:
                raise _Reject(45015, "response out of time limit or subscription is canceled")
            if follower.window_left <= 0:
                raise _Reject(45047, "out of response count limit")
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        follower.window_left -= 1
        self._record(follower, "out", "custom", **_timeline_fields(message))
        return _err(0, "ok")

    # -- mass messages ----------------------------------------------------------------------------

    def _mass_quota_used(self) -> int:
        day = int((self.clock() + 8 * 3600) // 86400)  # the platform counts days in Beijing time
        return sum(1 for job in self.mass_jobs if job["day"] == day)

    def _submit_mass(self, openids: list[str], message: dict[str, Any], client_msg_id: str | None = None
                     ) -> web.Response:
        # clientmsgid: within 24 hours a second mass send with the same one is refused, naming the first.
        if client_msg_id is not None:
            for job in self.mass_jobs:
                if job.get("client_msg_id") == client_msg_id and self.clock() - job["at"] < 86400:
                    return web.json_response({"errcode": 45065, "errmsg": "clientmsgid exist",
                                              "msg_id": job["msg_id"]})
        if self._mass_quota_used() >= self.mass_send_quota:
            return _err(45009, f"reach max api daily quota limit ({self.mass_send_quota} mass sends/day)")
        msg_id = self._new_msg_id() % 10**10
        job = {
            "msg_id": msg_id,
            "day": int((self.clock() + 8 * 3600) // 86400),
            "recipients": openids,
            "message": message,
            "delivered": False,
            "client_msg_id": client_msg_id,
            "at": self.clock(),
        }
        self.mass_jobs.append(job)
        self._schedule_mass(job)
        return web.json_response(
            {"errcode": 0, "errmsg": "send job submission success", "msg_id": msg_id, "msg_data_id": msg_id}
        )

    def _schedule_mass(self, job: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver_mass(job))
        self._mass_tasks.add(task)
        task.add_done_callback(self._mass_tasks.discard)

    async def _deliver_mass(self, job: dict[str, Any]) -> None:
        await asyncio.sleep(self.mass_delay)
        sent = 0
        for openid in job["recipients"]:
            follower = self.followers.get(openid)
            if follower is not None and follower.subscribed:
                self._record(follower, "out", "mass", **_timeline_fields(job["message"]), msg_id=job["msg_id"])
                sent += 1
        job["delivered"] = True
        # Only followers get it (the platform's filter); each one reached counts as sent.
        await self._report_mass_finished(job, filtered=sent, sent=sent)

    async def _report_mass_finished(self, job: dict[str, Any], *, filtered: int, sent: int) -> None:
        """Report a finished mass send to the account; the callback driver posts it (none here)."""

    async def drain(self) -> None:
        """Wait until every submitted mass send has been delivered."""
        while self._mass_tasks:
            await asyncio.gather(*list(self._mass_tasks), return_exceptions=True)

    @staticmethod
    def _client_msg_id(body: dict[str, Any]) -> str | None:
        value = body.get("clientmsgid")
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise _Reject(47001, "data format error: clientmsgid must be a string")
        if len(value.encode("utf-8")) > 64:
            raise _Reject(45067, "clientmsgid size out of limit")
        return value

    def _mass_message(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("msgtype") != "text":
            raise _Reject(40008, f"invalid message type: {body.get('msgtype')!r} (this simulator mass-sends text)")
        return self._parse_message(body)

    async def _h_mass_sendall(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
            filt = body.get("filter")
            if not isinstance(filt, dict):
                raise _Reject(47001, "data format error: filter is required")
            message = self._mass_message(body)
            client_msg_id = self._client_msg_id(body)
            if filt.get("is_to_all") is True:
                openids = [f.openid for f in self.followers.values() if f.subscribed]
            elif _is_int(filt.get("tag_id")):
                tag = filt["tag_id"]
                openids = [f.openid for f in self.followers.values() if f.subscribed and tag in f.tags]
            else:
                raise _Reject(40050, "invalid filter: is_to_all true or an integer tag_id is required")
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        return self._submit_mass(openids, message, client_msg_id)

    async def _h_mass_send(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
            touser = body.get("touser")
            if not isinstance(touser, list) or not all(isinstance(o, str) for o in touser):
                raise _Reject(47001, "data format error: touser must be a list of openids")
            if not self.mass_send_min_openids <= len(touser) <= 10000:
                raise _Reject(
                    40130, f"invalid openid list size, at least {self.mass_send_min_openids} openid(s), 10000 at most"
                )
            message = self._mass_message(body)
            client_msg_id = self._client_msg_id(body)
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        return self._submit_mass(list(dict.fromkeys(touser)), message, client_msg_id)

    # -- QR codes -----------------------------------------------------------------------------------

    def _validate_qr(self, body: dict[str, Any]) -> tuple[str, str, int | None]:
        action = body.get("action_name")
        if action not in _QR_ACTIONS:
            raise _Reject(40053, f"invalid action_name {action!r}: expected one of {', '.join(_QR_ACTIONS)}")
        info = body.get("action_info")
        scene = info.get("scene") if isinstance(info, dict) else None
        if not isinstance(scene, dict):
            raise _Reject(40053, "invalid action_info: action_info.scene is required")
        if action.endswith("STR_SCENE"):
            value = scene.get("scene_str")
            if not isinstance(value, str) or not 1 <= len(value) <= 64:
                raise _Reject(40053, "invalid action_info: scene_str must be a string of 1..64 characters")
            scene_text = value
        else:
            value = scene.get("scene_id")
            if not _is_int(value):
                raise _Reject(40053, "invalid action_info: scene_id must be an integer")
            if action == "QR_LIMIT_SCENE" and not 1 <= value <= 100_000:
                raise _Reject(40053, "invalid action_info: permanent scene_id must be in 1..100000")
            if action == "QR_SCENE" and not 0 < value < 2**32:
                raise _Reject(40053, "invalid action_info: temporary scene_id must be a non-zero 32-bit integer")
            scene_text = str(value)
        expire: int | None = None
        if not action.startswith("QR_LIMIT"):
            expire = body.get("expire_seconds", QR_DEFAULT_EXPIRE)
            if not _is_int(expire) or not 1 <= expire <= QR_MAX_EXPIRE:
                raise _Reject(40053, f"invalid expire_seconds: an integer in 1..{QR_MAX_EXPIRE}")
        return action, scene_text, expire

    def create_ticket(self, action: str, scene: str, expire: int | None) -> dict[str, Any]:
        """Create a QR ticket (also used when a simulated user scans a scene nobody created)."""
        ticket = "gQ" + secrets.token_urlsafe(36)
        url = "http://weixin.qq.com/q/" + secrets.token_urlsafe(16)
        expires_at = None if expire is None else self.clock() + expire
        self.tickets[ticket] = Ticket(ticket, action, scene, url, expires_at)
        self._mark("ticket", ticket)
        out: dict[str, Any] = {"ticket": ticket, "url": url}
        if expire is not None:
            out["expire_seconds"] = expire
        return out

    async def _h_qrcode_create(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
            action, scene, expire = self._validate_qr(body)
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        return web.json_response(self.create_ticket(action, scene, expire))

    async def _h_showqrcode(self, request: web.Request) -> web.Response:
        ticket = self.tickets.get(request.query.get("ticket", ""))
        if ticket is None or not ticket.valid(self.clock()):
            raise web.HTTPNotFound(text="ticket not found or expired")
        png = await asyncio.to_thread(_qr_png, ticket.url)
        return web.Response(body=png, content_type="image/png")

    # -- custom menus -------------------------------------------------------------------------------

    async def _h_menu_create(self, request: web.Request) -> web.Response:
        try:
            buttons = check_buttons(await self._json_body(request))
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        except MenuError as exc:
            return _err(exc.code, exc.msg)
        self.default_menu = {"button": buttons, "menuid": _menu_id()}
        return _err(0, "ok")

    async def _h_menu_addconditional(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
            if self.default_menu is None:
                raise MenuError(65303, "there is no default menu: create it (menu/create) first")
            buttons = check_buttons(body)
            rule = check_matchrule(body, language_rules=self.menu_language_rules)
            if self.max_conditional_menus is not None and len(self.conditional_menus) >= self.max_conditional_menus:
                raise MenuError(65305, "personalized menu count limit reached")
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        except MenuError as exc:
            return _err(exc.code, exc.msg)
        menu = {"button": buttons, "matchrule": rule, "menuid": _menu_id()}
        self.conditional_menus.append(menu)
        return web.json_response({"menuid": str(menu["menuid"])})

    async def _h_menu_get(self, request: web.Request) -> web.Response:
        token_error = self._check_token(request.query.get("access_token"))
        if token_error:
            return _err(*token_error)
        if self.default_menu is None:
            return _err(46003, "menu no exist")
        return web.json_response({"menu": self.default_menu, "conditionalmenu": self.conditional_menus})

    async def _h_menu_delete(self, request: web.Request) -> web.Response:
        """Delete every menu: the default one and, with it, the personalized ones."""
        token_error = self._check_token(request.query.get("access_token"))
        if token_error:
            return _err(*token_error)
        self.default_menu, self.conditional_menus = None, []
        return _err(0, "ok")

    async def _h_menu_delconditional(self, request: web.Request) -> web.Response:
        """Delete one personalized menu by its ``menuid``; the default menu and the others stay."""
        try:
            menuid = str((await self._json_body(request)).get("menuid"))
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        kept = [m for m in self.conditional_menus if str(m["menuid"]) != menuid]
        if len(kept) == len(self.conditional_menus):
            return _err(65301, "no personalized menu with this menuid")
        self.conditional_menus = kept
        return _err(0, "ok")

    async def _h_menu_trymatch(self, request: web.Request) -> web.Response:
        try:
            body = await self._json_body(request)
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        user = body.get("user_id")
        if not isinstance(user, str) or user not in self.followers:
            return _err(40003, "invalid openid")
        if self.default_menu is None:
            return _err(46003, "menu no exist")
        return web.json_response({"button": self.menu_for(user)})

    # -- temporary media --------------------------------------------------------------------------

    async def _h_media_upload(self, request: web.Request) -> web.Response:
        """``media/upload?type=image``: a multipart ``media`` file; bmp/png/jpeg/jpg/gif up to the limit."""
        token_error = self._check_token(request.query.get("access_token"))
        if token_error:
            return _err(*token_error)
        kind = request.query.get("type")
        if kind not in MEDIA_TYPES:
            return _err(40004, f"invalid media type {kind!r}")
        if kind not in ("image", "thumb"):
            return _err(40004, f"invalid media type {kind!r}: this simulator keeps images only")
        filename, data = "", bytearray()
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == "media":
                    filename = part.filename or ""
                    while len(data) <= self.max_image_bytes and (chunk := await part.read_chunk()):
                        data += chunk
                    break
        except (ValueError, AssertionError, KeyError):
            return _err(41005, "media data missing: a multipart/form-data body is required")
        if not data:
            return _err(41005, "media data missing: the form has no media file")
        if len(data) > self.max_image_bytes:
            return _err(40006, f"invalid media size: an image is at most {self.max_image_bytes} bytes")
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        mime = next((m for magic, m in IMAGE_MAGIC if data.startswith(magic)), None)
        if mime is None or extension not in IMAGE_EXTENSIONS:
            return _err(40005, "invalid file type: bmp, png, jpeg, jpg or gif")
        media_id = secrets.token_urlsafe(48)
        self._keep_media(self.media, media_id, {"data": bytes(data), "mime": mime, "created_at": self.clock()})
        self.media_uploads += 1
        return web.json_response({"type": kind, "media_id": media_id, "created_at": int(self.clock())})

    async def _h_media_get(self, request: web.Request) -> web.Response:
        token_error = self._check_token(request.query.get("access_token"))
        if token_error:
            return _err(*token_error)
        try:
            media = self._live_media(request.query.get("media_id", ""))
        except _Reject as exc:
            return _err(exc.code, exc.msg)
        return web.Response(body=media["data"], content_type=media["mime"])

    async def _h_media_view(self, request: web.Request) -> web.Response:
        """The bytes of an image a follower received, for the phone page (no token: it is the follower's)."""
        media = self.media.get(request.match_info["media_id"])
        if media is None:
            raise web.HTTPNotFound(text="no such media")
        return web.Response(body=media["data"], content_type=media["mime"])

    def media_bytes(self, media_id: str) -> bytes:
        """The bytes uploaded as ``media_id`` (KeyError when none): what the follower saw."""
        return bytes(self.media[media_id]["data"])

    # -- user info --------------------------------------------------------------------------------

    async def _h_user_info(self, request: web.Request) -> web.Response:
        q = request.query
        token_error = self._check_token(q.get("access_token"))
        if token_error:
            return _err(*token_error)
        lang = q.get("lang", "zh_CN")
        if lang not in ("zh_CN", "zh_TW", "en"):
            return _err(40005, f"invalid lang {lang!r}: zh_CN, zh_TW or en")
        follower = self.followers.get(q.get("openid", ""))
        if follower is None or not follower.ever_subscribed:
            return _err(40003, "invalid openid")
        if not follower.subscribed:
            return web.json_response({"subscribe": 0, "openid": follower.openid})
        info: dict[str, Any] = {"subscribe": 1, "openid": follower.openid}
        if follower.language is not None:
            info["language"] = follower.language
        info.update(
            subscribe_time=follower.subscribe_time,
            unionid=follower.unionid,
            remark="",
            groupid=0,
            tagid_list=list(follower.tags),
            subscribe_scene=follower.subscribe_scene,
            qr_scene=follower.qr_scene,
            qr_scene_str=follower.qr_scene_str,
        )
        return web.json_response(info)


def _menu_id() -> int:
    return 400_000_000 + secrets.randbelow(100_000_000)


def _timeline_fields(message: dict[str, Any]) -> dict[str, Any]:
    return {"type_": message["type"], **{k: v for k, v in message.items() if k != "type"}}


def _qr_png(url: str) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()
