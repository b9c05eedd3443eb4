"""The fan's page at ``/simulator/weibo`` and its JSON API under ``/simulator/weibo/api/``.

The page speaks the reader's language (``?lang=en|zh_Hans|zh_Hant``, else ``Accept-Language``, else
Simplified Chinese) through the bot's gettext catalogs. Every input is validated: a bad request
answers 400 ``{"error": "<reason>"}``, an unknown fan or post 404, an action the platform would refuse
(follow twice, no callback URL) 409; never 500.
"""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

from aiohttp import web

from bot.i18n import N_, SUPPORTED_LOCALES, default_catalogs, normalize_locale

from ..bodies import read_upto
from .pushes import PushDriver
from .state import LANGUAGES, SCENE_RE, PushResult, SimulatorError

__all__ = ["FanPage", "PAGE_TEXT"]

BASE = "/simulator/weibo"
MAX_BODY = 16 * 1024
DEFAULT_LOCALE = "zh_Hans"
_UID = re.compile(r"^[0-9]{1,19}$")
_ACTIONS = ("text", "follow", "unfollow", "subscribe", "unsubscribe", "scan", "click", "view", "image", "voice",
            "position")

# Every string the page shows, translated on the server (the page has no catalog of its own).
PAGE_TEXT = {
    "title": N_("Weibo simulator"),
    "subtitle": N_("Be a fan of the brand: follow, scan, send a direct message, comment in public."),
    "language": N_("Language"),
    "fans": N_("Fans"),
    "new_fan": N_("New fan"),
    "screen_name": N_("Screen name"),
    "create": N_("Create"),
    "pick_fan": N_("Create a fan or pick one to begin."),
    "follow": N_("Follow"),
    "unfollow": N_("Unfollow"),
    "following": N_("Following"),
    "not_following": N_("Not following"),
    "scan": N_("Scan a campaign QR code"),
    "scene": N_("Campaign scene"),
    "dm": N_("Direct messages"),
    "message": N_("Write a message"),
    "send": N_("Send"),
    "image": N_("Image"),
    "voice": N_("Voice"),
    "position": N_("Location"),
    "menu": N_("Menu"),
    "public": N_("Public posts"),
    "comment": N_("Write a public comment"),
    "mention": N_("Mention the brand"),
    "post_comment": N_("Comment"),
    "my_post": N_("Post on my own timeline"),
    "publish": N_("Publish"),
    "brand": N_("Brand"),
    "no_reply": N_("The brand did not answer in time."),
    "everyone_sees": N_("Everyone sees these comments and the brand's answers."),
}


class BadInput(Exception):
    """Input rejected with HTTP 400."""


def _bad(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _string(body: dict[str, Any], key: str, *, max_len: int, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{key} must be a non-empty string")
    if len(value) > max_len:
        raise BadInput(f"{key} is longer than {max_len} characters")
    return value


def page_locale(request: web.Request) -> str:
    """``?lang=`` first, then the browser's ``Accept-Language``, then Simplified Chinese."""
    asked = request.query.get("lang")
    if asked in SUPPORTED_LOCALES:
        return asked
    for part in request.headers.get("Accept-Language", "").split(",")[:10]:
        found = normalize_locale(part.split(";", 1)[0].strip())
        if found:
            return found
    return DEFAULT_LOCALE


class FanPage(PushDriver):
    """The page and the JSON endpoints it uses."""

    def _page_routes(self) -> list[web.RouteDef]:
        return [
            web.get(BASE, self._h_page),
            web.get(BASE + "/", self._h_page),
            web.get(BASE + "/scan", self._h_scan_link),
            web.get(BASE + "/api/state", self._h_state),
            web.get(BASE + "/api/timeline", self._h_timeline),
            web.post(BASE + "/api/fans", self._h_create_fan),
            web.post(BASE + "/api/action", self._h_action),
            web.post(BASE + "/api/comment", self._h_comment),
            web.post(BASE + "/api/status", self._h_status),
        ]

    # -- GET -------------------------------------------------------------------------------------------
    async def _h_page(self, request: web.Request) -> web.Response:
        locale = page_locale(request)
        catalogs = default_catalogs()
        text = {key: catalogs.gettext(locale, msgid) for key, msgid in PAGE_TEXT.items()}
        page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")
        page = re.sub(r"\{\{(\w+)\}\}", lambda m: html.escape(text.get(m.group(1), m.group(0))), page)
        page = page.replace("__LANG__", locale.replace("_", "-"))
        page = page.replace("__BRAND__", html.escape(self.brand_name))
        config = {"text": text, "locale": locale, "brand": self.brand_name, "menu": self.menu,
                  "locales": list(SUPPORTED_LOCALES)}
        page = page.replace("__CONFIG__", json.dumps(config, ensure_ascii=False).replace("<", "\\u003c"))
        return web.Response(text=page, content_type="text/html", charset="utf-8", headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Language": locale})

    async def _h_scan_link(self, request: web.Request) -> web.Response:
        """The campaign link: opens the page ready to scan that scene (the link a Weibo QR encodes)."""
        scene = request.query.get("scene", "")
        if not SCENE_RE.match(scene):
            return _bad("scene must be 1..64 characters of [A-Za-z0-9_-]")
        raise web.HTTPFound(f"{BASE}?scene={scene}")

    def _public(self) -> list[dict[str, Any]]:
        """Brand posts and fans' posts that mention the brand, newest first, each with its thread."""
        shown = [p for p in self.posts.values() if p.uid == self.brand_uid or self.mentions_brand(p.text)]
        shown.sort(key=lambda p: p.id, reverse=True)
        return [{**self.status_json(p), "by_brand": p.uid == self.brand_uid,
                 "comments": [{**c, "by_brand": c["user"]["id"] == self.brand_uid} for c in self.thread(p.id)]}
                for p in shown[:50]]

    async def _h_state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "brand": {"uid": self.brand_uid, "idstr": str(self.brand_uid), "screen_name": self.brand_name},
            "callback_url": self.callback_url,
            "menu": self.menu,
            "fans": [f.public() for f in self.fans.values()],
            "scenes": sorted(s.key for s in self.scenes.values() if s.valid(self.clock())),
            "posts": self._public(),
        })

    async def _h_timeline(self, request: web.Request) -> web.Response:
        uid = request.query.get("uid", "")
        since_raw = request.query.get("since", "0")
        if not since_raw.isdigit() or len(since_raw) > 9:
            return _bad("since must be a non-negative integer")
        if not _UID.match(uid):
            return _bad("uid must be a Weibo uid")
        fan = self.fans.get(int(uid))
        if fan is None:
            return _bad("unknown fan", 404)
        return web.json_response({"fan": fan.public(), "entries": fan.timeline[int(since_raw):],
                                  "next": len(fan.timeline)})

    # -- POST -----------------------------------------------------------------------------------------
    async def _read_object(self, request: web.Request) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BadInput("body is larger than 16 KiB")
        raw = await read_upto(request.content, MAX_BODY)
        if len(raw) > MAX_BODY:
            raise BadInput("body is larger than 16 KiB")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise BadInput("body must be UTF-8 JSON") from None
        if not isinstance(body, dict):
            raise BadInput("body must be a JSON object")
        return body

    def _fan_uid(self, body: dict[str, Any]) -> int:
        value = body.get("uid")
        if isinstance(value, str) and _UID.match(value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadInput("uid must be a Weibo uid")
        if value not in self.fans:
            raise LookupError("unknown fan")
        return value

    def _guard(handler: Any) -> Any:
        async def wrapped(self: FanPage, request: web.Request) -> web.Response:
            try:
                body = await self._read_object(request)
                return await handler(self, body)
            except BadInput as exc:
                return _bad(str(exc))
            except LookupError as exc:
                return _bad(str(exc.args[0] if exc.args else exc), 404)
            except SimulatorError as exc:
                return _bad(str(exc), 409)
        return wrapped

    @_guard
    async def _h_create_fan(self, body: dict[str, Any]) -> web.Response:
        language = body.get("language", DEFAULT_LOCALE)
        if language is not None and (not isinstance(language, str) or language not in LANGUAGES):
            raise BadInput(f"language must be one of {', '.join(LANGUAGES)}")
        name = _string(body, "screen_name", max_len=30, required=False)
        if name is not None and not re.fullmatch(r"[\w\-\u4e00-\u9fff]{1,30}", name.strip()):
            raise BadInput("screen_name: letters, digits, _ and - only")
        uid = self.add_fan(screen_name=name.strip() if name else None, language=language)
        return web.json_response(self.fans[uid].public(), status=201)

    @_guard
    async def _h_action(self, body: dict[str, Any]) -> web.Response:
        uid = self._fan_uid(body)
        action = body.get("action")
        if not isinstance(action, str) or action not in _ACTIONS:
            raise BadInput(f"action must be one of {', '.join(_ACTIONS)}")
        result = await self._run_action(uid, action, body)
        return web.json_response(result.to_dict())

    async def _run_action(self, uid: int, action: str, body: dict[str, Any]) -> PushResult:
        match action:
            case "text":
                return await self.send_text(uid, _string(body, "text", max_len=2000) or "")
            case "follow":
                return await self.follow(uid)
            case "unfollow":
                return await self.unfollow(uid)
            case "subscribe":
                return await self.subscribe(uid)
            case "unsubscribe":
                return await self.unsubscribe(uid)
            case "scan":
                scene = _string(body, "scene", max_len=64) or ""
                if not SCENE_RE.match(scene):
                    raise BadInput("scene must be 1..64 characters of [A-Za-z0-9_-]")
                return await self.scan(uid, scene)
            case "click":
                return await self.click(uid, _string(body, "key", max_len=128) or "")
            case "view":
                url = _string(body, "url", max_len=1024) or ""
                if not url.startswith(("http://", "https://")):
                    raise BadInput("url must start with http:// or https://")
                return await self.view(uid, url)
            case "image":
                return await self.send_image(uid)
            case "voice":
                return await self.send_voice(uid)
            case _:  # "position"
                return await self.send_position(uid)

    def _public_text(self, body: dict[str, Any]) -> str:
        text = _string(body, "text", max_len=self.max_comment_chars) or ""
        mention = body.get("mention", False)
        if not isinstance(mention, bool):
            raise BadInput("mention must be true or false")
        if mention and not self.mentions_brand(text):
            text = f"@{self.brand_name} {text}"
        return text

    @_guard
    async def _h_comment(self, body: dict[str, Any]) -> web.Response:
        uid = self._fan_uid(body)
        post_id = body.get("post_id")
        if isinstance(post_id, str) and _UID.match(post_id):
            post_id = int(post_id)
        if not isinstance(post_id, int) or isinstance(post_id, bool):
            raise BadInput("post_id must be a post id")
        if post_id not in self.posts:
            raise LookupError("unknown post")
        cid, push = await self.comment(uid, post_id, self._public_text(body))
        return web.json_response({"id": cid, "idstr": str(cid), "push": push.to_dict() if push else None},
                                 status=201)

    @_guard
    async def _h_status(self, body: dict[str, Any]) -> web.Response:
        uid = self._fan_uid(body)
        post_id, push = await self.post_status(uid, self._public_text(body))
        return web.json_response({"id": post_id, "idstr": str(post_id), "push": push.to_dict() if push else None},
                                 status=201)
