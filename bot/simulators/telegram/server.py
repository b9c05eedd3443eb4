"""HTTP side of the simulator: request parsing, dispatch, faults, rate limits, getUpdates and webhooks."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from .methods import SECRET_TOKEN, SEND_METHODS
from .params import APIError, Upload, bad, p_bool, p_int, p_json, p_str
from .state import DEFAULT_UPDATE_TYPES, SimFile

logger = logging.getLogger(__name__)
_INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "user_id", "reply_to_message_id",
               "cache_time", "max_connections"}


class Call(NamedTuple):
    at: float  # time.monotonic()
    method: str  # as the client spelled it, e.g. "sendMessage"
    params: dict[str, Any]  # objects decoded from JSON, ids as int, uploads as {"upload", "size"}


@dataclass
class Fault:
    method: str | None  # lower-cased; None = any
    chat_id: int | None
    remaining: int
    status: int
    description: str
    parameters: dict[str, Any] | None = None


def file_response(sim_file: SimFile) -> web.Response:
    """A stored file as a download: never rendered by the browser on the bot's origin, whatever it holds."""
    name = sim_file.file_path.rsplit("/", 1)[-1]
    return web.Response(body=sim_file.data, content_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


def loopback_url(url: str) -> bool:
    """Is ``url`` an http(s) URL on this machine (127.0.0.0/8, ::1 or localhost)?"""
    try:
        parsed = urlsplit(url)
        host = parsed.hostname
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    if parsed.scheme not in ("http", "https") or not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it could resolve anywhere
        return False


def _json_error(err: APIError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


def _decoded(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Upload):
            value = {"upload": value.filename, "size": len(value.data), "content_type": value.content_type}
        elif isinstance(value, str) and value[:1] in ("{", "["):
            try:
                value = json.loads(value)
            except (ValueError, RecursionError):
                pass
        elif isinstance(value, str) and key in _INT_FIELDS and re.fullmatch(r"-?\d+", value):
            value = int(value)
        elif isinstance(value, str) and value in ("true", "false"):
            value = value == "true"
        out[key] = value
    return out


class HTTPServer:
    """Mixed into ``TelegramBotAPISimulator``."""

    def _init_server(self, *, enforce_limits: bool, webhook_retry_delay: float, webhook_timeout: float) -> None:
        self.calls: list[Call] = []
        self.errors: list[dict[str, Any]] = []  # every non-2xx answer: at, method, status, description
        self.limit_violations: list[dict[str, Any]] = []
        self.enforce_limits = enforce_limits
        self.limit_global_per_second = 30
        self.limit_group_per_minute = 20
        self.limit_private_burst = 5  # a private chat may burst this many, then about 1 message/s
        self.limit_private_per_second = 1.0
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self._faults: list[Fault] = []
        self._delays: dict[str | None, float] = {}
        self._session: aiohttp.ClientSession | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._poller: asyncio.Future[None] | None = None
        self._global_sends: deque[float] = deque()
        self._group_sends: dict[int, deque[float]] = {}
        self._buckets: dict[int, tuple[float, float]] = {}  # chat -> (tokens, monotonic)
        self._closed = False

    # -- wiring --------------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        """Register ``/bot{token}/{method}``, ``/file/bot{token}/...`` and ``/simulator/telegram...``."""
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self._add_page_routes(app)
        app.on_shutdown.append(self._on_shutdown)  # releases long polls so the server stops at once

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_file_bytes + 1024 * 1024)
        self.add_routes(app)
        return app

    async def close(self) -> None:
        """Release long polls, stop webhook delivery, close the client session."""
        self._closed = True
        self._changed.notify()
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            try:
                await self._webhook_task
            except (asyncio.CancelledError, Exception):
                pass
            self._webhook_task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- fault injection -----------------------------------------------------------------------------------
    def inject_429(self, count: int = 1, retry_after: int = 1, method: str | None = "sendMessage",
                   chat_id: int | None = None) -> None:
        """The next ``count`` matching calls get 429 ``Too Many Requests: retry after N``."""
        self.inject_error(429, f"Too Many Requests: retry after {retry_after}", count=count, method=method,
                          chat_id=chat_id, parameters={"retry_after": retry_after})

    def inject_error(self, status: int, description: str, count: int = 1, method: str | None = "sendMessage",
                     chat_id: int | None = None, parameters: dict[str, Any] | None = None) -> None:
        """The next ``count`` matching calls (``method=None``: any) fail with ``status`` and ``description``."""
        if count < 1 or not 400 <= status <= 599:
            raise ValueError("count >= 1 and a 4xx/5xx status")
        self._faults.append(Fault(method.lower() if method else None, chat_id, count, status, description, parameters))

    def response_delay(self, seconds: float, method: str | None = None) -> None:
        """Answer ``method`` (None: every method) ``seconds`` late; 0 removes the delay."""
        key = method.lower() if method else None
        if seconds > 0:
            self._delays[key] = seconds
        else:
            self._delays.pop(key, None)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._delays.clear()

    def _take_fault(self, method: str, params: dict[str, Any]) -> APIError | None:
        for fault in self._faults:
            if fault.method not in (None, method) or fault.remaining <= 0:
                continue
            if fault.chat_id is not None and str(params.get("chat_id")) != str(fault.chat_id):
                continue
            fault.remaining -= 1
            if fault.remaining == 0:
                self._faults.remove(fault)
            return APIError(fault.status, fault.description, fault.parameters)
        return None

    # -- Telegram's flood limits -----------------------------------------------------------------------------
    def _check_limits(self, method: str, params: dict[str, Any]) -> APIError | None:
        now = time.monotonic()
        try:
            chat_id = int(params.get("chat_id"))  # type: ignore[arg-type]  # None raises TypeError, caught below
        except (TypeError, ValueError):
            return None
        while self._global_sends and now - self._global_sends[0] >= 1:
            self._global_sends.popleft()
        retry, reason = 0.0, ""
        if len(self._global_sends) >= self.limit_global_per_second:
            retry, reason = 1 - (now - self._global_sends[0]), "global"
        elif chat_id < 0:
            sends = self._group_sends.setdefault(chat_id, deque())
            while sends and now - sends[0] >= 60:
                sends.popleft()
            if len(sends) >= self.limit_group_per_minute:
                retry, reason = 60 - (now - sends[0]), "group"
        else:
            tokens, last = self._buckets.get(chat_id, (float(self.limit_private_burst), now))
            tokens = min(float(self.limit_private_burst), tokens + (now - last) * self.limit_private_per_second)
            self._buckets[chat_id] = (tokens, now)
            if tokens < 1:
                retry, reason = (1 - tokens) / self.limit_private_per_second, "chat"
        if not reason:
            return None
        retry_after = max(1, math.ceil(retry))
        self.limit_violations.append({"at": now, "method": method, "chat_id": chat_id, "limit": reason,
                                      "retry_after": retry_after})
        return APIError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def _count_send(self, params: dict[str, Any]) -> None:
        now = time.monotonic()
        chat_id = int(params["chat_id"])
        self._global_sends.append(now)
        if chat_id < 0:
            self._group_sends.setdefault(chat_id, deque()).append(now)
        else:
            tokens, last = self._buckets.get(chat_id, (float(self.limit_private_burst), now))
            self._buckets[chat_id] = (tokens - 1, last)

    # -- HTTP --------------------------------------------------------------------------------------------------
    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method != "POST" or not request.body_exists:
            return params
        if request.content_type == "application/json":
            try:
                body = json.loads(await request.read() or b"{}")
            except (ValueError, RecursionError):  # nested past the parser's depth: bad input too
                raise bad("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise bad("JSON object expected")
            params.update(body)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            try:
                form = await request.post()
            except ValueError:
                raise bad("can't parse request body") from None
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    params[key] = Upload(value.filename or key, value.content_type, value.file.read())
                else:
                    params[key] = value if isinstance(value, str) else value.decode()
        return params

    async def _handle_api(self, request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.match_info["token"].encode(), self.token.encode()):
            return _json_error(APIError(401, "Unauthorized"))
        method = request.match_info["method"]
        try:
            params = await self._read_params(request)
        except APIError as err:
            return _json_error(err)
        return await self._dispatch(method, params)

    async def _dispatch(self, method: str, params: dict[str, Any]) -> web.Response:
        key = method.lower()
        self.calls.append(Call(time.monotonic(), method, _decoded(params)))
        handler = getattr(self, f"api_{key}", None) if key.isalnum() else None
        try:
            if handler is None:
                raise APIError(404, "Not Found: method not found")
            delay = self._delays.get(key, self._delays.get(None, 0))
            if delay:
                try:
                    await self._changed.wait_until(lambda: self._closed, delay)
                except TimeoutError:
                    pass
            fault = self._take_fault(key, params)
            if fault is None and self.enforce_limits and key in SEND_METHODS:
                fault = self._check_limits(method, params)
            if fault is not None:
                raise fault
            result = await handler(params)
            if self.enforce_limits and key in SEND_METHODS:
                self._count_send(params)
        except APIError as err:
            self.errors.append({"at": time.monotonic(), "method": method, "status": err.status,
                                "description": err.description})
            return _json_error(err)
        except Exception as exc:  # a simulator bug: answer like Telegram's 500, and keep it visible
            logger.exception("simulated %s failed", method)
            self.errors.append({"at": time.monotonic(), "method": method, "status": 500, "description": repr(exc)})
            return _json_error(APIError(500, "Internal Server Error"))
        return web.json_response({"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if not hmac.compare_digest(request.match_info["token"].encode(), self.token.encode()):
            return _json_error(APIError(401, "Unauthorized"))
        path = request.match_info["path"]
        sim_file = next((f for f in self.files.values() if f.file_path == path), None)
        if sim_file is None:
            return _json_error(APIError(404, "Not Found"))
        return file_response(sim_file)

    # -- getUpdates ------------------------------------------------------------------------------------------
    def _set_allowed(self, allowed: Any) -> None:
        if allowed is None:
            return
        if not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed):
            raise bad("can't parse allowed_updates")
        self.allowed_updates = set(allowed) if allowed else set(DEFAULT_UPDATE_TYPES)

    async def api_getupdates(self, p: dict[str, Any]) -> Any:
        if self.webhook is not None:
            raise APIError(409, "Conflict: can't use getUpdates method while webhook is active; "
                                "use deleteWebhook to delete the webhook first")
        offset = p_int(p, "offset", 0) or 0
        limit = min(max(p_int(p, "limit", 100) or 100, 1), 100)
        timeout = min(max(p_int(p, "timeout", 0) or 0, 0), 60)
        self._set_allowed(p_json(p, "allowed_updates", "allowed_updates"))
        if offset > 0:
            self.updates[:] = [u for u in self.updates if u["update_id"] >= offset]
        elif offset < 0:
            self.updates[:] = self.updates[offset:]
        if self._poller is not None and not self._poller.done():
            self._poller.set_result(None)  # a newer getUpdates ends the older one with 409, like Telegram
            self._changed.notify()
        me: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._poller = me
        try:
            await self._changed.wait_until(
                lambda: self.updates or me.done() or self._closed or self.webhook is not None, timeout)
        except TimeoutError:
            pass
        if me.done():
            raise APIError(409, "Conflict: terminated by other getUpdates request; make sure that only one bot "
                                "instance is running")
        me.set_result(None)
        return self.updates[:limit] if self.webhook is None else []

    # -- webhooks ----------------------------------------------------------------------------------------------
    async def api_setwebhook(self, p: dict[str, Any]) -> Any:
        url = p_str(p, "url", "") or ""
        if not url:
            return await self.api_deletewebhook(p)
        if not re.match(r"https?://[^\s/]+", url):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        if not loopback_url(url):  # the simulator never makes requests to other machines for anyone
            raise bad("bad webhook: this simulator delivers webhooks to loopback addresses only "
                      "(127.0.0.1, ::1, localhost)")
        secret = p_str(p, "secret_token")
        if secret is not None and not SECRET_TOKEN.fullmatch(secret):
            raise bad("secret token contains unallowed characters")
        self._set_allowed(p_json(p, "allowed_updates", "allowed_updates"))
        if p_bool(p, "drop_pending_updates"):
            self.updates.clear()
        self.webhook = {"url": url, "secret_token": secret, "max_connections": p_int(p, "max_connections", 40)}
        self._changed.notify()
        if self._webhook_task is None or self._webhook_task.done():
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhooks())
        self._touch()
        return True

    async def api_deletewebhook(self, p: dict[str, Any]) -> Any:
        self.webhook = None
        if p_bool(p, "drop_pending_updates"):
            self.updates.clear()
        self._touch()
        return True

    async def api_getwebhookinfo(self, p: dict[str, Any]) -> Any:
        hook = self.webhook or {}
        info: dict[str, Any] = {"url": hook.get("url", ""), "has_custom_certificate": False,
                                "pending_update_count": len(self.updates)}
        if hook:
            info.update(max_connections=hook["max_connections"], ip_address="127.0.0.1",
                        allowed_updates=sorted(self.allowed_updates))
            for key in ("last_error_date", "last_error_message"):
                if key in hook:
                    info[key] = hook[key]
        return info

    async def _deliver_webhooks(self) -> None:
        delay = self.webhook_retry_delay
        while not self._closed and self.webhook is not None:
            if not self.updates:
                await self._changed.wait(1.0)
                continue
            hook, update = self.webhook, self.updates[0]
            headers = {"Content-Type": "application/json"}
            if hook.get("secret_token"):
                headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
            if self._session is None:
                self._session = aiohttp.ClientSession()
            status, error, reply = None, None, None
            try:
                async with self._session.post(hook["url"], data=json.dumps(update), headers=headers,
                                              allow_redirects=False,
                                              timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)) as resp:
                    status = resp.status
                    body = await resp.read()
                    if not 200 <= status < 300:
                        error = f"Wrong response from the webhook: {status} {resp.reason}"
                    elif resp.content_type == "application/json" and body:
                        try:
                            reply = json.loads(body)
                        except (ValueError, RecursionError):
                            reply = None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                error = "Connection timed out" if isinstance(exc, asyncio.TimeoutError) else f"Connection refused: {exc}"
            self.webhook_deliveries.append({"at": time.monotonic(), "update_id": update["update_id"],
                                            "url": hook["url"], "status": status, "error": error})
            if error is None:
                if self.updates and self.updates[0] is update:
                    self.updates.pop(0)
                delay = self.webhook_retry_delay
                self._touch()
                if isinstance(reply, dict) and isinstance(reply.get("method"), str):
                    method = reply.pop("method")  # a method call in the webhook answer, as Telegram allows
                    await self._dispatch(method, reply)
                continue
            hook["last_error_date"], hook["last_error_message"] = self._now(), error
            self._touch()
            try:
                await self._changed.wait_until(lambda: self._closed or self.webhook is not hook, delay)  # noqa: B023  (awaited in this iteration)
            except TimeoutError:
                pass
            delay = min(delay * 2, 30.0)
