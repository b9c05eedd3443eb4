"""The simulated Weibo APIs under ``/2/``: fan-service messages (text, articles, and images uploaded
through ``/2/mss/upload.json`` and named by their ``tovfid``), comments and mentions, QR scenes.

Errors answer HTTP 4xx with ``{"error", "error_code", "request"}`` as Weibo does. Codes used:
10008 bad parameter, 10016 missing parameter, 10022/10023/10024 rate limits, 20003 unknown user,
20012 comment longer than 140, 20013 message longer than 300, 20019 repeated content, 20101 no such
post, 20201 no such comment, 21327 expired token, 21332 invalid token; the reply windows (the
simulator's own numbers): 21606 no interaction within 48 h, 21607 the one reply after an @mention is
used, 21608 the fan unfollowed.
"""

from __future__ import annotations

import asyncio
import hmac
import io
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qsl, quote

import segno
from aiohttp import BodyPartReader, web

from ..bodies import read_upto
from .protocol import ProtocolError, decode_data
from .state import SCENE_RE, Comment, Fan, Scene, WeiboState

__all__ = ["PlatformAPI", "WeiboError"]

MAX_FORM_BYTES = 256 * 1024
_STATUS = {10022: 403, 10023: 403, 10024: 403, 21327: 401, 21332: 401, 20003: 400}
_INT = re.compile(r"^[0-9]{1,19}$")
SCENE_EXPIRE_MAX = 2_592_000
UPLOAD_PATH = "/2/mss/upload.json"
MEDIA_PAGE_PATH = "/simulator/weibo/media"  # the fan page shows received images from here
IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"), (b"BM", "image/bmp"))


class WeiboError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _error(request: web.Request, code: int, message: str) -> web.Response:
    return web.json_response({"error": message, "error_code": code, "request": request.path},
                             status=_STATUS.get(code, 400))


def _int(params: Any, name: str, *, required: bool = True) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise WeiboError(10016, f"miss required parameter ({name})")
        return None
    if not isinstance(value, str) or not _INT.match(value) or int(value) >= 2**63:
        raise WeiboError(10008, f"param error: {name} must be a non-negative int64")
    return int(value)


def _checked_menu(menus: Any) -> list[dict[str, Any]]:
    buttons = menus.get("button") if isinstance(menus, dict) else None
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise WeiboError(10008, "param error: menus.button must hold 1..3 buttons")
    out = []
    for button in buttons:
        subs = button.get("sub_button") if isinstance(button, dict) else None
        if isinstance(subs, list):
            if not 1 <= len(subs) <= 5:
                raise WeiboError(10008, "param error: a sub_button holds 1..5 buttons")
            out.append({"name": _menu_name(button), "sub_button": [_menu_action(s, 60) for s in subs]})
        else:
            out.append(_menu_action(button))
    return out


def _menu_name(item: Any, longest: int = 16) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    if not isinstance(name, str) or not 1 <= len(name) <= longest:
        raise WeiboError(10008, f"param error: a menu name is 1..{longest} characters")
    return name


def _menu_action(item: Any, longest: int = 16) -> dict[str, str]:
    name = _menu_name(item, longest)
    kind = item.get("type")
    if kind == "click" and isinstance(item.get("key"), str) and 1 <= len(item["key"]) <= 128:
        return {"type": "click", "name": name, "key": item["key"]}
    if kind == "view" and isinstance(item.get("url"), str) and item["url"].startswith(("http://", "https://")):
        return {"type": "view", "name": name, "url": item["url"]}
    raise WeiboError(10008, f"param error: a menu button is click (with a key) or view (with a url), not {kind!r}")


class PlatformAPI(WeiboState):
    """Route handlers of the platform's HTTP API."""

    def _api_routes(self) -> list[web.RouteDef]:
        routes = {
            ("POST", "/2/messages/reply.json"): self._h_reply,
            ("POST", "/2/messages/sendall.json"): self._h_sendall,
            ("GET", "/2/messages/sendall_status.json"): self._h_sendall_status,
            ("GET", "/2/comments/to_me.json"): self._h_to_me,
            ("GET", "/2/comments/by_me.json"): self._h_by_me,
            ("GET", "/2/comments/show.json"): self._h_show,
            ("GET", "/2/statuses/mentions.json"): self._h_mentions,
            ("POST", "/2/comments/reply.json"): self._h_comment_reply,
            ("POST", "/2/comments/create.json"): self._h_comment_create,
            ("POST", "/2/eps/qrcode/create.json"): self._h_qr_create,
            ("POST", "/2/messages/menu/create.json"): self._h_menu_create,
            ("GET", "/2/messages/menu/show.json"): self._h_menu_show,
            ("POST", "/2/messages/menu/delete.json"): self._h_menu_delete,
        }
        out = [web.route(method, path, self._guarded(handler)) for (method, path), handler in routes.items()]
        out.append(web.get("/2/eps/qrcode/show", self._h_qr_show))
        out.append(web.post(UPLOAD_PATH, self._h_upload))
        out.append(web.get(MEDIA_PAGE_PATH + "/{tovfid}", self._h_media_view))
        return out

    # -- the fan-service menu ------------------------------------------------------------------------
    async def _h_menu_create(self, request: web.Request, params: dict[str, str]) -> web.Response:
        """``menus``: the menu as JSON (1..3 buttons, 1..5 under each; click with a key, view with a url)."""
        raw = params.get("menus")
        if not raw:
            raise WeiboError(10016, "miss required parameter (menus)")
        try:
            menus = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            raise WeiboError(10008, "param error: menus must be JSON") from None
        self.fan_menu = {"button": _checked_menu(menus)}
        return web.json_response({"result": True})

    async def _h_menu_show(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({"menu": self.fan_menu or {"button": []}})

    async def _h_menu_delete(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self.fan_menu = None
        return web.json_response({"result": True})

    # -- plumbing -----------------------------------------------------------------------------------
    def _guarded(self, handler: Any) -> Any:
        async def run(request: web.Request) -> web.Response:
            try:
                params = await self._params(request)
                self._check_token(params, request)
                self._check_limits(request.path)
                response = await handler(request, params)
            except WeiboError as exc:
                return _error(request, exc.code, exc.message)
            if request.path in self.hourly_limits:  # only the limited APIs are counted
                self.api_calls.append((self.clock(), request.path))
            return response
        return run

    async def _params(self, request: web.Request) -> dict[str, str]:
        params: dict[str, str] = {}
        for key, value in request.query.items():
            params.setdefault(key, value)
        if request.method == "POST":
            if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
                raise WeiboError(10008, "param error: body too large")
            raw = await read_upto(request.content, MAX_FORM_BYTES)
            if len(raw) > MAX_FORM_BYTES:
                raise WeiboError(10008, "param error: body too large")
            if request.content_type not in ("application/x-www-form-urlencoded",):
                raise WeiboError(10008, "param error: the body must be form-encoded")
            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                                  max_num_fields=100, errors="strict")
            except (UnicodeDecodeError, ValueError):
                raise WeiboError(10008, "param error: the body is not UTF-8 form data") from None
            for key, value in pairs:
                params[key] = value
        return params

    def _check_token(self, params: dict[str, str], request: web.Request) -> None:
        token = params.get("access_token")
        header = request.headers.get("Authorization", "")
        if not token and header.startswith("OAuth2 "):
            token = header[7:].strip()
        if not token:
            raise WeiboError(10006, "source paramter (appkey) is missing: access_token is required")
        if not hmac.compare_digest(token.encode("utf-8", "replace"), self.access_token.encode()):
            raise WeiboError(21332, "invalid_access_token")
        if self.token_expired:
            raise WeiboError(21327, "expired_token")

    def _check_limits(self, path: str) -> None:
        for key in (path, "*"):
            queue = self._injected.get(key)
            if queue:
                code = queue.pop(0)
                raise WeiboError(code, _MESSAGES.get(code, "injected error"))
        limit = self.hourly_limits.get(path)
        if limit is not None:
            since = self.clock() - 3600
            self.api_calls = [(at, p) for at, p in self.api_calls if at > since]
            if sum(1 for _at, p in self.api_calls if p == path) >= limit:
                raise WeiboError(10024, f"User requests for ({path}) out of rate limit")

    def _fan_param(self, params: dict[str, str], name: str) -> Fan:
        uid = _int(params, name)
        fan = self.fans.get(uid or 0)
        if fan is None:
            raise WeiboError(20003, "User does not exists")
        return fan

    def _dm_params(self, params: dict[str, str]) -> dict[str, Any]:
        """Read ``type`` and ``data`` of a DM: {"type": "text", "text"} or {"type": "articles", "articles"}."""
        kind = params.get("type")
        try:
            data = decode_data(params.get("data"))
        except ProtocolError as exc:
            raise WeiboError(10008, f"param error: {exc}") from None
        if kind == "text":
            text = data.get("text")
            if not isinstance(text, str) or not text.strip():
                raise WeiboError(10008, "param error: data.text must be a non-empty string")
            if len(text) > self.max_dm_chars:
                raise WeiboError(20013, f"Text too long, please input text less than {self.max_dm_chars} characters!")
            return {"type": "text", "text": text}
        if kind == "articles":
            articles = data.get("articles")
            if not isinstance(articles, list) or not 1 <= len(articles) <= 8:
                raise WeiboError(10008, "param error: data.articles must be a list of 1..8 articles")
            out = []
            for art in articles:
                if not isinstance(art, dict) or not isinstance(art.get("display_name"), str):
                    raise WeiboError(10008, "param error: each article needs a display_name")
                for key in ("summary", "image", "url"):
                    if key in art and not isinstance(art[key], str):
                        raise WeiboError(10008, f"param error: article {key} must be a string")
                out.append({k: art.get(k, "") for k in ("display_name", "summary", "image", "url")})
            return {"type": "articles", "articles": out}
        if kind == "image":
            tovfid = data.get("tovfid")
            if not isinstance(tovfid, str) or tovfid not in self.media:
                raise WeiboError(10008, "param error: data.tovfid must name an uploaded image (/2/mss/upload.json)")
            return {"type": "image", "tovfid": tovfid}
        raise WeiboError(10008, f"param error: type must be text, articles or image, not {kind!r}")

    # -- images ---------------------------------------------------------------------------------------
    async def _h_upload(self, request: web.Request) -> web.Response:
        """``/2/mss/upload.json``: multipart ``access_token``, ``type=image`` and the ``media`` file."""
        fields: dict[str, str] = dict(request.query)
        data, filename = bytearray(), ""
        try:
            try:
                reader = await request.multipart()
                while (part := await reader.next()) is not None:
                    if not isinstance(part, BodyPartReader) or part.name is None:
                        continue
                    if part.name == "media":
                        filename = part.filename or ""
                        while len(data) <= self.max_image_bytes and (chunk := await part.read_chunk()):
                            data += chunk
                    else:
                        fields[part.name] = (await part.read_chunk(1024)).decode("utf-8", "replace")
            except (ValueError, AssertionError, KeyError):
                raise WeiboError(10008, "param error: the body must be multipart/form-data") from None
            self._check_token(fields, request)
            self._check_limits(request.path)
            if fields.get("type") != "image":
                raise WeiboError(10008, "param error: type must be image")
            if not data:
                raise WeiboError(10016, "miss required parameter (media)")
            if len(data) > self.max_image_bytes:
                raise WeiboError(10008, f"param error: an image is at most {self.max_image_bytes} bytes")
            mime = next((m for magic, m in IMAGE_MAGIC if data.startswith(magic)), None)
            if mime is None:
                raise WeiboError(10008, f"param error: {filename or 'media'} is not a png, jpeg, gif or bmp image")
        except WeiboError as exc:
            return _error(request, exc.code, exc.message)
        tovfid = str(self._new_id())
        self._keep_media(self.media, tovfid, {"data": bytes(data), "mime": mime})
        self.media_uploads += 1
        return web.json_response({"result": True, "tovfid": tovfid, "type": "image"})

    async def _h_media_view(self, request: web.Request) -> web.Response:
        media = self.media.get(request.match_info["tovfid"])
        if media is None:
            raise web.HTTPNotFound(text="no such image")
        return web.Response(body=media["data"], content_type=media["mime"])

    def media_bytes(self, tovfid: str) -> bytes:
        """The bytes uploaded as ``tovfid`` (KeyError when none): what the fan saw."""
        return bytes(self.media[tovfid]["data"])

    # -- fan-service messages ---------------------------------------------------------------------------
    async def _h_reply(self, request: web.Request, params: dict[str, str]) -> web.Response:
        fan = self._fan_param(params, "receiver_id")
        message = self._dm_params(params)
        refused = self.refusal(fan)
        if refused:
            raise WeiboError(*refused)
        self._spend_reply(fan)
        msg_id = self._new_id()
        self._record(fan, "out", "active", message["type"], msg_id=msg_id,
                     **{k: v for k, v in message.items() if k != "type"})
        return web.json_response({"result": True, "id": msg_id, "idstr": str(msg_id), "receiver_id": fan.uid,
                                  "sender_id": self.brand_uid})

    async def _h_sendall(self, request: web.Request, params: dict[str, str]) -> web.Response:
        message = self._dm_params(params)
        touser = params.get("touser") or params.get("uids")
        group_id = _int(params, "group_id", required=False)
        if touser:
            uids = []
            for part in touser.split(","):
                if not _INT.match(part.strip()):
                    raise WeiboError(10008, "param error: touser must be comma-separated uids")
                uids.append(int(part.strip()))
            if len(uids) > 10000:
                raise WeiboError(10008, "param error: at most 10000 uids")
            uids = list(dict.fromkeys(uids))
        elif group_id is not None:
            uids = [f.uid for f in self.fans.values() if f.following and group_id in f.groups]
        else:
            uids = [f.uid for f in self.fans.values() if f.following]
        msg_id = self._new_id()
        status = "held_for_review" if self.sendall_review == "always" else "queued"
        job = {"msg_id": msg_id, "recipients": uids, "message": message, "status": status, "at": self.clock()}
        self.broadcasts.append(job)
        if status == "queued":
            self._schedule_broadcast(job)
        return web.json_response({"result": True, "msg_id": msg_id, "idstr": str(msg_id), "status": status,
                                  "held_for_review": status == "held_for_review"})

    async def _h_sendall_status(self, request: web.Request, params: dict[str, str]) -> web.Response:
        msg_id = _int(params, "msg_id")
        for job in self.broadcasts:
            if job["msg_id"] == msg_id:
                return web.json_response({"msg_id": msg_id, "idstr": str(msg_id), "status": job["status"],
                                          "recipients": len(job["recipients"]), "delivered": job.get("delivered", 0)})
        raise WeiboError(10008, "param error: no broadcast with this msg_id")

    def _schedule_broadcast(self, job: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver_broadcast(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_broadcast(self, job: dict[str, Any]) -> None:
        await asyncio.sleep(self.sendall_delay)
        delivered = 0
        for uid in job["recipients"]:
            fan = self.fans.get(uid)
            if fan is not None and fan.following:
                self._record(fan, "out", "broadcast", job["message"]["type"], msg_id=job["msg_id"],
                             **{k: v for k, v in job["message"].items() if k != "type"})
                delivered += 1
        job["status"], job["delivered"] = "sent", delivered

    def review(self, msg_id: int, *, approve: bool = True) -> None:
        """The platform's reviewers decide on a broadcast held for review."""
        for job in self.broadcasts:
            if job["msg_id"] == msg_id and job["status"] == "held_for_review":
                job["status"] = "queued" if approve else "rejected"
                if approve:
                    self._schedule_broadcast(job)
                return
        raise ValueError(f"no broadcast {msg_id} held for review")

    async def drain(self) -> None:
        """Wait until every accepted broadcast has been delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- listings with since_id ----------------------------------------------------------------------------
    @staticmethod
    def _page(items: list[Any], params: dict[str, str]) -> list[Any]:
        """Newest first, ids above since_id (and at most max_id), ``count`` of them (1..200, default 50)."""
        since_id = _int(params, "since_id", required=False) or 0
        max_id = _int(params, "max_id", required=False)
        count = _int(params, "count", required=False)
        count = 50 if count is None else count
        if not 1 <= count <= 200:
            raise WeiboError(10008, "param error: count must be in 1..200")
        chosen = [i for i in items if i.id > since_id and (not max_id or i.id <= max_id)]
        chosen.sort(key=lambda i: i.id, reverse=True)
        return chosen[:count]

    async def _h_to_me(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mine = [c for c in self.comments.values()
                if c.uid != self.brand_uid and self.posts[c.post_id].uid == self.brand_uid]
        page = self._page(mine, params)
        return web.json_response({"comments": [self.comment_json(c) for c in page], "total_number": len(mine),
                                  "previous_cursor": 0, "next_cursor": 0})

    async def _h_by_me(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mine = self.brand_comments()
        page = self._page(mine, params)
        return web.json_response({"comments": [self.comment_json(c) for c in page], "total_number": len(mine)})

    async def _h_show(self, request: web.Request, params: dict[str, str]) -> web.Response:
        post_id = _int(params, "id")
        if post_id not in self.posts:
            raise WeiboError(20101, "Target weibo does not exist!")
        under = [c for c in self.comments.values() if c.post_id == post_id]
        page = self._page(under, params)
        return web.json_response({"comments": [self.comment_json(c) for c in page], "total_number": len(under)})

    async def _h_mentions(self, request: web.Request, params: dict[str, str]) -> web.Response:
        found = [p for p in self.posts.values() if p.uid != self.brand_uid and self.mentions_brand(p.text)]
        page = self._page(found, params)
        return web.json_response({"statuses": [self.status_json(p) for p in page], "total_number": len(found)})

    # -- public replies ---------------------------------------------------------------------------------
    def _comment_text(self, params: dict[str, str]) -> str:
        text = params.get("comment")
        if not text or not text.strip():
            raise WeiboError(10016, "miss required parameter (comment)")
        if len(text) > self.max_comment_chars:
            raise WeiboError(20012, f"Text too long, please input text less than {self.max_comment_chars} characters!")
        return text

    def _publish(self, post_id: int, text: str, reply_to: int | None) -> web.Response:
        if self.repeat_window is not None:
            for c in self.comments.values():
                if (c.uid == self.brand_uid and c.post_id == post_id and c.text == text
                        and self.clock() - c.at < self.repeat_window):
                    raise WeiboError(20019, "Repeat weibo text!")
        comment = Comment(id=self._new_id(), post_id=post_id, uid=self.brand_uid, text=text, at=self.clock(),
                          reply_to=reply_to)
        self.comments[comment.id] = comment
        self._mark("comment", comment.id)
        self._wake()
        return web.json_response(self.comment_json(comment))

    async def _h_comment_reply(self, request: web.Request, params: dict[str, str]) -> web.Response:
        cid, post_id = _int(params, "cid"), _int(params, "id")
        text = self._comment_text(params)
        if post_id not in self.posts:
            raise WeiboError(20101, "Target weibo does not exist!")
        target = self.comments.get(cid or 0)
        if target is None or target.post_id != post_id:
            raise WeiboError(20201, "Target weibo comment does not exist!")
        if params.get("without_mention", "0") not in ("0", "1"):
            raise WeiboError(10008, "param error: without_mention must be 0 or 1")
        if params.get("without_mention", "0") == "0":
            text = f"回复@{self.user_json(target.uid)['screen_name']}:{text}"
        return self._publish(post_id, text, target.id)

    async def _h_comment_create(self, request: web.Request, params: dict[str, str]) -> web.Response:
        post_id = _int(params, "id")
        text = self._comment_text(params)
        if post_id not in self.posts:
            raise WeiboError(20101, "Target weibo does not exist!")
        return self._publish(post_id or 0, text, None)

    # -- QR scenes -----------------------------------------------------------------------------------------
    def create_scene(self, key: str, expire_seconds: int | None = None) -> Scene:
        """A QR / link for a campaign scene (also used when a fan scans a scene nobody created)."""
        existing = self.scenes.get(key)
        if existing is not None and existing.valid(self.clock()) and expire_seconds is None:
            return existing
        ticket = secrets.token_urlsafe(24)
        scene = Scene(key=key, ticket=ticket, url=f"https://weibo.cn/qr/simulated/{ticket}",
                      expires_at=None if expire_seconds is None else self.clock() + expire_seconds)
        self.scenes[key] = scene
        self._mark("scene", key)
        return scene

    async def _h_qr_create(self, request: web.Request, params: dict[str, str]) -> web.Response:
        key = params.get("scene_str") or params.get("scene_id") or params.get("scene")
        if not key:
            raise WeiboError(10016, "miss required parameter (scene_str)")
        if not SCENE_RE.match(key):
            raise WeiboError(10008, "param error: a scene is 1..64 characters of [A-Za-z0-9_-]")
        expire = _int(params, "expire_seconds", required=False)
        if expire is not None and not 1 <= expire <= SCENE_EXPIRE_MAX:
            raise WeiboError(10008, f"param error: expire_seconds must be in 1..{SCENE_EXPIRE_MAX}")
        scene = self.create_scene(key, expire)
        out: dict[str, Any] = {"result": True, "ticket": scene.ticket, "url": scene.url, "scene": scene.key,
                               "scan_url": f"/simulator/weibo/scan?scene={scene.key}"}
        if expire is not None:
            out["expire_seconds"] = expire
        return web.json_response(out)

    async def _h_qr_show(self, request: web.Request) -> web.Response:
        if "ticket" not in request.query and request.query.get("scene"):
            # The fan-service account's scene link (what a campaign QR encodes): scanning it on a phone
            # opens the scan flow, here the fan page's scan step.
            raise web.HTTPFound(f"/simulator/weibo/scan?scene={quote(request.query['scene'], safe='')}")
        ticket = request.query.get("ticket", "")
        scene = next((s for s in self.scenes.values() if hmac.compare_digest(s.ticket, ticket)), None)
        if scene is None or not scene.valid(self.clock()):
            raise web.HTTPNotFound(text="ticket not found or expired")
        png = await asyncio.to_thread(_qr_png, scene.url)
        return web.Response(body=png, content_type="image/png")


_MESSAGES = {
    10022: "IP requests out of rate limit",
    10023: "User requests out of rate limit",
    10024: "User requests for this API out of rate limit",
    20019: "Repeat weibo text!",
    21327: "expired_token",
    20003: "User does not exists",
}


def _qr_png(url: str) -> bytes:
    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="png", scale=6, border=4)
    return out.getvalue()

