"""A follower's phone in the browser: the page at /simulator/wechat and its JSON API.

Every input is validated; bad input gets 400 with a reason, an unknown follower 404, an action the
platform would refuse (follow twice, no callback URL) 409.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

from aiohttp import web

from .callbacks import CallbackDriver
from .state import CallbackResult, SimulatorError

__all__ = ["Phone"]

BASE = "/simulator/wechat"
_OPENID_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_LANGS = {"zh_CN": "zh_CN", "zh_TW": "zh_TW", "en": "en", "none": None}
_ACTIONS = ("text", "follow", "unfollow", "scan", "click", "view", "image", "voice", "location", "menu")


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


class Phone(CallbackDriver):
    """The simulator page and the JSON endpoints it uses."""

    def _phone_routes(self) -> list[web.RouteDef]:
        return [
            web.get(BASE, self._h_page),
            web.get(BASE + "/", self._h_page),
            web.get(BASE + "/api/state", self._h_state),
            web.get(BASE + "/api/followers", self._h_followers),
            web.post(BASE + "/api/followers", self._h_create_follower),
            web.post(BASE + "/api/action", self._h_action),
            web.get(BASE + "/api/timeline", self._h_timeline),
        ]

    async def _h_page(self, request: web.Request) -> web.Response:
        html = resources.files(__package__).joinpath("phone.html").read_text(encoding="utf-8")
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def _h_state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "account_id": self.account_id,
            "encoding_mode": self.encoding_mode,
            "callback_url": self.callback_url,
            "menu": self.default_menu["button"] if self.default_menu else [],
            "followers": [f.public() for f in self.followers.values()],
        })

    async def _h_followers(self, request: web.Request) -> web.Response:
        return web.json_response({"followers": [f.public() for f in self.followers.values()]})

    async def _read_object(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        if len(raw) > 16 * 1024:
            raise BadInput("body is larger than 16 KiB")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise BadInput("body must be UTF-8 JSON") from None
        if not isinstance(body, dict):
            raise BadInput("body must be a JSON object")
        return body

    async def _h_create_follower(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_object(request)
            lang_key = body.get("language", "zh_CN")
            if lang_key is None:
                lang_key = "none"
            if not isinstance(lang_key, str) or lang_key not in _LANGS:
                raise BadInput("language must be zh_CN, zh_TW, en or none")
            nickname = _string(body, "nickname", max_len=32, required=False)
            openid = _string(body, "openid", max_len=64, required=False)
            if openid is not None and not _OPENID_RE.match(openid):
                raise BadInput("openid must be 6..64 characters of [A-Za-z0-9_-]")
        except BadInput as exc:
            return _bad(str(exc))
        try:
            openid = self.add_follower(openid, language=_LANGS[lang_key], nickname=nickname)
        except SimulatorError as exc:
            return _bad(str(exc), 409)
        return web.json_response(self.followers[openid].public(), status=201)

    async def _h_action(self, request: web.Request) -> web.Response:
        try:
            body = await self._read_object(request)
            openid = _string(body, "openid", max_len=64)
            action = body.get("action")
            if action not in _ACTIONS:
                raise BadInput(f"action must be one of {', '.join(_ACTIONS)}")
            if openid not in self.followers:
                return _bad("unknown follower", 404)
            result = await self._run_action(openid, action, body)
        except BadInput as exc:
            return _bad(str(exc))
        except SimulatorError as exc:
            return _bad(str(exc), 409)
        return web.json_response(result.to_dict())

    async def _run_action(self, openid: str, action: str, body: dict[str, Any]) -> CallbackResult:
        match action:
            case "text":
                return await self.send_text(openid, _string(body, "text", max_len=2000) or "")
            case "follow":
                return await self.follow(openid, _string(body, "scene", max_len=64, required=False))
            case "unfollow":
                return await self.unfollow(openid)
            case "scan":
                return await self.scan(openid, _string(body, "scene", max_len=64))
            case "click":
                return await self.click(openid, _string(body, "key", max_len=128) or "")
            case "view":
                url = _string(body, "url", max_len=1024) or ""
                if not url.startswith(("http://", "https://")):
                    raise BadInput("url must start with http:// or https://")
                return await self.view(openid, url)
            case "menu":
                path = body.get("path")
                if not isinstance(path, list) or not 1 <= len(path) <= 2 or not all(
                        isinstance(i, int) and not isinstance(i, bool) and 0 <= i < 5 for i in path):
                    raise BadInput("path must be [top] or [top, sub] (menu positions from 0)")
                return await self.tap_menu(openid, path,
                                           scan_result=_string(body, "scan_result", max_len=1024, required=False) or "",
                                           label=_string(body, "text", max_len=200, required=False) or "")
            case "image":
                return await self.send_image(openid)
            case "voice":
                return await self.send_voice(openid, recognition=_string(body, "text", max_len=2000, required=False))
            case _:  # "location"
                return await self.send_location(openid, label=_string(body, "text", max_len=200, required=False) or "")

    async def _h_timeline(self, request: web.Request) -> web.Response:
        openid = request.query.get("openid", "")
        since_raw = request.query.get("since", "0")
        if not since_raw.isdigit() or len(since_raw) > 9:
            return _bad("since must be a non-negative integer")
        if not openid:
            return _bad("openid is required")
        follower = self.followers.get(openid)
        if follower is None:
            return _bad("unknown follower", 404)
        since = int(since_raw)
        return web.json_response({
            "follower": follower.public(),
            "entries": follower.timeline[since:],
            "next": len(follower.timeline),
            "menu": self.menu_for(openid),  # what this follower's phone shows (their language's menu)
        })
