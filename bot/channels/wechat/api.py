"""The WeChat Official Account active API: access token (shared through the database), customer-service
messages, QR codes, user info, mass sends.

Errors come back as ``{"errcode": N, "errmsg": ...}`` with HTTP 200; they are mapped to typed
exceptions here so the outbox can decide: retry later, give up, or mark the follower gone.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from datetime import timedelta
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.images import Image
from bot.core.clock import utcnow
from bot.errors import FollowerGone, NotSent, OutsideReplyWindow, PlatformAPIError, QuotaExceeded, platform_text
from bot.storage.dialect import lock_for_transaction, upsert
from bot.storage.models import SharedToken

log = logging.getLogger("engagebot.wechat.api")

TOKEN_ERRORS = {40001, 40014, 42001}  # bad, invalid or expired access token: refresh once
BUSY = -1
# Daily and per-minute API quotas, and "same clientmsgid repeated within a minute": retry after (s).
QUOTA_ERRORS = {45009: 3600.0, 45011: 60.0, 45066: 60.0}
MASS_ALREADY_SENT = 45065  # a mass send with this clientmsgid exists (24 h): its msg_id comes back
MAX_CLIENT_MSG_ID = 64  # bytes
WINDOW_ERRORS = {45015: "outside the 48-hour reply window", 45047: "reply count in the window used up"}
GONE_ERRORS = {43004: "follower unfollowed", 40003: "unknown OpenID"}
# Refresh this long before the platform's expiry, so no send races the deadline.
TOKEN_MARGIN = timedelta(minutes=5)
BUSY_RETRIES = 3  # in place, for the calls outside the outbox (a send's retries are the outbox's)
NO_MENU = 46003  # menu/get when the account has no menu
NO_CONDITIONAL_MENU = 65301  # menu/delconditional: no personalized menu with that menuid (gone already)
TEMPORARY_MEDIA_LIFETIME = timedelta(days=3)  # media/upload: the id is valid 3 days
INVALID_MEDIA_ID = 40007


def raise_for_errcode(data: dict[str, Any]) -> None:
    code = data.get("errcode", 0)
    if not isinstance(code, int) or isinstance(code, bool):
        raise PlatformAPIError(-2, f"malformed answer: {data!r}")
    if code == 0:
        return
    # The platform's own words, sanitized: they end up in logs and in the outbox's ``reason``.
    message = platform_text(data.get("errmsg", ""))
    if code in QUOTA_ERRORS:
        raise QuotaExceeded(f"WeChat {code}: {message}", retry_after=QUOTA_ERRORS[code])
    if code in WINDOW_ERRORS:
        raise OutsideReplyWindow(f"WeChat {code}: {WINDOW_ERRORS[code]}")
    if code in GONE_ERRORS:
        raise FollowerGone(f"WeChat {code}: {GONE_ERRORS[code]}")
    raise PlatformAPIError(code, message)


class WeChatAPI:
    """A client of one app's active API. One instance per account; safe to share between tasks."""

    def __init__(self, *, app_id: str, app_secret: str, api_base: str,
                 sessions: async_sessionmaker[AsyncSession], timeout: float = 10.0) -> None:
        self.app_id = app_id
        self._secret = app_secret
        self.api_base = api_base.rstrip("/")
        self.sessions = sessions
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._token_valid_until = utcnow()
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0

    @property
    def _token_key(self) -> str:
        return f"wechat:{self.app_id}"

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self._timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def access_token(self, *, stale: str | None = None) -> str:
        """Return a valid token: from memory, else from the database (another instance may have one),
        else fetched. ``stale`` is a token the platform just refused: never return it again."""
        now = utcnow()
        if self._token and self._token != stale and now < self._token_valid_until:
            return self._token
        async with self._token_lock:
            if self._token and self._token != stale and utcnow() < self._token_valid_until:
                return self._token
            async with self.sessions() as session:
                # One refresh in the deployment at a time (PostgreSQL): the other instances and workers wait
                # here, then read the token it stored. The upsert keeps a refresh that raced (SQLite
                # workers) from failing: the platform keeps the previous token valid for minutes.
                await lock_for_transaction(session, zlib.crc32(f"token:{self._token_key}".encode()))
                row = (await session.execute(select(SharedToken).where(
                    SharedToken.name == self._token_key))).scalar_one_or_none()
                if row is not None and row.value != stale and utcnow() < row.expires_at - TOKEN_MARGIN:
                    self._token, self._token_valid_until = row.value, row.expires_at - TOKEN_MARGIN
                    return row.value
                token, expires_in = await self._fetch_token()
                expires_at = utcnow() + timedelta(seconds=expires_in)
                await session.execute(upsert(session, SharedToken, index_elements=[SharedToken.name], set_={
                    "value": token, "expires_at": expires_at, "updated_at": utcnow()}).values(
                    name=self._token_key, value=token, expires_at=expires_at, updated_at=utcnow()))
                await session.commit()
            self._token, self._token_valid_until = token, expires_at - TOKEN_MARGIN
            return token

    async def _fetch_token(self) -> tuple[str, int]:
        self.token_fetches += 1
        params = {"grant_type": "client_credential", "appid": self.app_id, "secret": self._secret}
        data = await self._request("GET", "/cgi-bin/token", params=params)
        raise_for_errcode(data)
        token, expires_in = data.get("access_token"), data.get("expires_in")
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise PlatformAPIError(-2, "token answer without access_token/expires_in")
        log.info("access token fetched", extra={"app_id": self.app_id, "expires_in": expires_in})
        return token, expires_in

    async def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                       json: Any = None, image: Image | None = None) -> dict[str, Any]:
        data: aiohttp.FormData | None = None
        if image is not None:  # a multipart form is consumed by one request: built anew for each try
            data = aiohttp.FormData()
            data.add_field("media", image.data, filename=image.filename, content_type=image.mime_type)
        try:
            async with self._client().request(method, self.api_base + path, params=params, json=json,
                                              data=data) as resp:
                if resp.status != 200:
                    raise PlatformAPIError(-resp.status, f"HTTP {resp.status} from {path}")
                data = await resp.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise QuotaExceeded(f"WeChat unreachable: {type(exc).__name__}", retry_after=5.0) from None
        except ValueError:
            raise PlatformAPIError(-2, f"non-JSON answer from {path}") from None
        if not isinstance(data, dict):
            raise PlatformAPIError(-2, f"unexpected answer from {path}")
        return data

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   json: Any = None, image: Image | None = None, accept: tuple[int, ...] = (),
                   busy_retries: int = BUSY_RETRIES) -> dict[str, Any]:
        """Call an API with the access token: refresh it once on a token error, retry when busy.

        Error codes in ``accept`` come back as the answer instead of raising.
        """
        stale: str | None = None
        busy = 0
        while True:
            token = await self.access_token(stale=stale)
            data = await self._request(method, path, params={**(params or {}), "access_token": token}, json=json,
                                       image=image)
            code = data.get("errcode", 0)
            if code in TOKEN_ERRORS and stale is None:
                stale = token
                continue
            if code == BUSY and busy < busy_retries:
                busy += 1
                await asyncio.sleep(0.2 * 2 ** busy)
                continue
            if code not in accept:
                raise_for_errcode(data)
            return data

    async def send_custom(self, payload: dict[str, Any]) -> None:
        """Send a customer-service message; "system busy" raises ``NotSent``: the outbox repeats it."""
        try:
            await self.call("POST", "/cgi-bin/message/custom/send", json=payload, busy_retries=0)
        except PlatformAPIError as exc:
            if exc.errcode == BUSY:
                raise NotSent(str(exc)) from exc
            raise

    async def upload_image(self, image: Image) -> tuple[str, timedelta]:
        """``media/upload?type=image`` (multipart ``media``): the temporary media id and how long it lives."""
        data = await self.call("POST", "/cgi-bin/media/upload", params={"type": "image"}, image=image)
        media_id = data.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise PlatformAPIError(-2, "upload answer without media_id")
        return media_id, TEMPORARY_MEDIA_LIFETIME

    async def create_qr(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Create a scene QR; returns ``{ticket, url, expire_seconds?}``; ``url`` is what the QR encodes."""
        data = await self.call("POST", "/cgi-bin/qrcode/create", json=payload)
        if not isinstance(data.get("url"), str) or not isinstance(data.get("ticket"), str):
            raise PlatformAPIError(-2, "QR answer without ticket/url")
        return data

    async def user_info(self, openid: str, *, lang: str = "zh_CN") -> dict[str, Any]:
        return await self.call("GET", "/cgi-bin/user/info", params={"openid": openid, "lang": lang})

    async def mass_send(self, openids: list[str], text: str, *, client_msg_id: str | None = None) -> int:
        """Send one text to a list of followers with the mass API (quota-limited); returns the msg_id.

        ``client_msg_id`` (at most 64 bytes) makes a repeat harmless: within 24 hours the platform
        refuses a second mass send with the same one (45065) and names the first one's msg_id, which
        is returned here as if this call had made it.
        """
        body: dict[str, Any] = {"touser": openids, "msgtype": "text", "text": {"content": text}}
        if client_msg_id is not None:
            if len(client_msg_id.encode()) > MAX_CLIENT_MSG_ID:
                raise ValueError(f"clientmsgid longer than {MAX_CLIENT_MSG_ID} bytes")
            body["clientmsgid"] = client_msg_id
        data = await self.call("POST", "/cgi-bin/message/mass/send", json=body, accept=(MASS_ALREADY_SENT,))
        msg_id = data.get("msg_id")
        if data.get("errcode") == MASS_ALREADY_SENT:
            if client_msg_id is None or not isinstance(msg_id, int):
                raise_for_errcode({**data, "errcode": MASS_ALREADY_SENT})
            log.info("mass send made already", extra={"app_id": self.app_id, "msg_id": msg_id})
        return int(msg_id) if isinstance(msg_id, int) else 0

    async def replace_menu(self, default: dict[str, Any],
                           conditional: list[dict[str, Any]]) -> tuple[int, PlatformAPIError | None]:
        """Replace every menu of the account: create the default, remove the old personalized ones, add the new.

        ``menu/create`` replaces the default menu, so it goes first: when WeChat refuses it (a check of
        the platform's that ours do not make), this raises and the account keeps the menus it had. The
        old personalized menus are then removed by id (``menu/get``, ``menu/delconditional``), so a
        second push does not pile them up, and each new one is added. The answer: how many personalized
        menus were added, and the refusal that stopped the rest (None: all added); the default stays.
        """
        await self.call("POST", "/cgi-bin/menu/create", json=default)
        current = await self.call("GET", "/cgi-bin/menu/get", accept=(NO_MENU,))
        old = current.get("conditionalmenu")
        for menu in old if isinstance(old, list) else []:
            if isinstance(menu, dict) and menu.get("menuid") is not None:
                await self.call("POST", "/cgi-bin/menu/delconditional", json={"menuid": str(menu["menuid"])},
                                accept=(NO_CONDITIONAL_MENU,))
        for added, body in enumerate(conditional):
            try:
                await self.call("POST", "/cgi-bin/menu/addconditional", json=body)
            except PlatformAPIError as exc:
                return added, exc
        return len(conditional), None
