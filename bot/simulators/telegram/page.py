"""The follower's chat page ``GET /simulator/telegram`` and its JSON API under ``/simulator/telegram/api/``.

Every input is validated: a bad request answers 400 ``{"ok": false, "error": "<reason>"}``, never 500.
"""

from __future__ import annotations

import html
import json
import re
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from ..bodies import read_upto
from .params import scope_key
from .server import file_response
from .state import DEEP_LINK_PAYLOAD, LANGUAGE_TAG

PREFIX = "/simulator/telegram"
MAX_BODY = 64 * 1024
_PAGE = Path(__file__).with_name("page.html")
_USERNAME = re.compile(r"[A-Za-z0-9_]{5,32}")


class Invalid(Exception):
    pass


def _fail(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=status)


def _ok(**data: Any) -> web.Response:
    return web.json_response({"ok": True, **data})


class ChatPage:
    """Mixed into ``TelegramBotAPISimulator``."""

    def _add_page_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get(PREFIX, self._page)
        r.add_get(PREFIX + "/api/state", self._api_state)
        r.add_get(PREFIX + "/api/chat", self._api_chat)
        r.add_get(PREFIX + "/api/file/{file_id}", self._api_file)
        for name, handler in (("users", self._api_add_user), ("send", self._api_send), ("start", self._api_start),
                              ("press", self._api_press), ("block", self._api_block), ("media", self._api_media)):
            r.add_post(f"{PREFIX}/api/{name}", self._guard(handler))

    # -- plumbing --------------------------------------------------------------------------------------------
    def _guard(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            if request.content_type != "application/json":
                return _fail("Content-Type must be application/json")
            if request.content_length is not None and request.content_length > MAX_BODY:
                return _fail("body too large")
            try:
                raw = await read_upto(request.content, MAX_BODY)
                if len(raw) > MAX_BODY:
                    return _fail("body too large")
                body = json.loads(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError, RecursionError):
                return _fail("body must be a UTF-8 JSON object")
            if not isinstance(body, dict):
                return _fail("body must be a JSON object")
            try:
                return await handler(body)
            except Invalid as exc:
                return _fail(str(exc))
            except ValueError as exc:  # the state's own checks (already blocked, no such button...)
                return _fail(str(exc))
        return wrapped

    def _user_id(self, value: Any) -> int:
        if isinstance(value, str) and re.fullmatch(r"\d{1,15}", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value not in self.users:
            raise Invalid("user_id must be the id of an existing user")
        return value

    def _user_json(self, user_id: int) -> dict[str, Any]:
        user = self.users[user_id]
        return {"id": user.id, "first_name": user.first_name, "username": user.username,
                "language_code": user.language_code, "blocked": user.blocked,
                "messages": len(self.chats[user_id].timeline)}

    def _commands_for(self, user_id: int) -> list[dict[str, str]]:
        language = (self.users[user_id].language_code or "")[:2].lower()
        for scope in ({"type": "chat", "chat_id": user_id}, {"type": "all_private_chats"}, None):
            for lang in dict.fromkeys((language, "")):
                found = self.commands.get((scope_key(scope), lang))
                if found:
                    return found
        return []

    # -- GET ------------------------------------------------------------------------------------------------
    async def _page(self, request: web.Request) -> web.Response:
        page = _PAGE.read_text(encoding="utf-8").replace("__BOT_USERNAME__", html.escape(self.bot_username))
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    async def _api_state(self, request: web.Request) -> web.Response:
        mode = "webhook" if self.webhook else ("polling" if self._poller and not self._poller.done() else "idle")
        return _ok(bot={**self.bot_user}, mode=mode, webhook_url=(self.webhook or {}).get("url"),
                   pending_updates=len(self.updates), version=self.version,
                   users=[self._user_json(uid) for uid in self.users])

    async def _api_chat(self, request: web.Request) -> web.Response:
        try:
            user_id = self._user_id(request.query.get("user_id"))
            since = request.query.get("version")
            if since is not None and not re.fullmatch(r"\d{1,12}", since):
                raise Invalid("version must be a non-negative integer")
        except Invalid as exc:
            return _fail(str(exc))
        if since is not None and int(since) == self.version:
            try:  # long poll: answer as soon as anything changes, or after 15 s
                await self._changed.wait_until(lambda: self.version != int(since) or self._closed, 15)
            except TimeoutError:
                pass
        chat = self.chats[user_id]
        typing = chat.last_action is not None and time.monotonic() - chat.last_action[1] < 5
        return _ok(version=self.version, user=self._user_json(user_id), events=chat.timeline,
                   commands=self._commands_for(user_id), menu_button=self.menu_button_for(user_id),
                   reply_keyboard=chat.reply_keyboard,
                   typing=chat.last_action[0] if typing else None,
                   mode="webhook" if self.webhook else "polling")

    async def _api_file(self, request: web.Request) -> web.Response:
        sim_file = self.files.get(request.match_info["file_id"])
        if sim_file is None:
            return _fail("unknown file_id", 404)
        return file_response(sim_file)

    # -- POST -----------------------------------------------------------------------------------------------
    async def _api_add_user(self, body: dict[str, Any]) -> web.Response:
        first_name = body.get("first_name")
        if not isinstance(first_name, str) or not 1 <= len(first_name.strip()) <= 64:
            raise Invalid("first_name must be 1..64 characters")
        language = body.get("language_code")
        if language in ("", "none"):
            language = None
        if language is not None and (not isinstance(language, str) or not LANGUAGE_TAG.fullmatch(language)
                                     or len(language) > 35):
            raise Invalid("language_code must be an IETF tag such as zh-hans or en, or none")
        username = body.get("username") or None
        if username is not None and (not isinstance(username, str) or not _USERNAME.fullmatch(username)):
            raise Invalid("username must be 5..32 characters of [A-Za-z0-9_]")
        user_id = self.add_user(first_name=first_name.strip(), language_code=language, username=username)
        return _ok(user=self._user_json(user_id))

    async def _api_send(self, body: dict[str, Any]) -> web.Response:
        user_id = self._user_id(body.get("user_id"))
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise Invalid("text must be a non-empty string")
        if len(text) > 4096:
            raise Invalid("text is longer than 4096 characters")
        return _ok(update=self.send_text(user_id, text))

    async def _api_start(self, body: dict[str, Any]) -> web.Response:
        user_id = self._user_id(body.get("user_id"))
        payload = body.get("payload") or None
        if payload is not None and (not isinstance(payload, str) or not DEEP_LINK_PAYLOAD.fullmatch(payload)):
            raise Invalid("payload must be 1..64 characters of [A-Za-z0-9_-]")
        return _ok(update=self.start(user_id, payload))

    async def _api_press(self, body: dict[str, Any]) -> web.Response:
        user_id = self._user_id(body.get("user_id"))
        message_id, data = body.get("message_id"), body.get("data")
        if not isinstance(message_id, int) or isinstance(message_id, bool) or message_id <= 0:
            raise Invalid("message_id must be a positive integer")
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
            raise Invalid("data must be 1..64 bytes of text")
        return _ok(update=self.press_button(user_id, message_id, data))

    async def _api_block(self, body: dict[str, Any]) -> web.Response:
        user_id = self._user_id(body.get("user_id"))
        blocked = body.get("blocked")
        if not isinstance(blocked, bool):
            raise Invalid("blocked must be true or false")
        return _ok(update=self.block(user_id) if blocked else self.unblock(user_id))

    async def _api_media(self, body: dict[str, Any]) -> web.Response:
        user_id = self._user_id(body.get("user_id"))
        kind = body.get("kind")
        senders = {"photo": self.send_photo, "sticker": self.send_sticker, "voice": self.send_voice}
        if not isinstance(kind, str) or kind not in senders:
            raise Invalid("kind must be photo, sticker or voice")
        return _ok(update=senders[kind](user_id))
