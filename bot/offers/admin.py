"""Operator HTTP API for offers: ``POST /admin/redeem`` with a bearer token.

Without ``admin_token`` in the settings the API is off (503); a wrong or missing token gets 401.
Tokens are compared in constant time. A client address that sent too many wrong tokens or unknown
codes (``admin_failure_limit``, 10 a minute) gets 429 with ``Retry-After`` until its window passes,
so neither the token nor the codes can be guessed at speed. A body that is not JSON (or nests too
deeply to parse) is 400.

The operators' API (``bot.admin.plugin``) mounts this same route with its own ``authorize`` (the
bootstrap token or a token of an operator allowed to redeem: staff, admin) and ``redeem_with`` (its
service layer, which writes the audit row); it is then on even without ``admin_token``.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.web import FailureThrottle, client_address, too_many_failures

from .redeem import RedeemOutcome, RedeemResult, redeem

# Who a bearer token stands for when it may redeem (the caller's own notion of a principal), else None.
Authorize = Callable[[str], Awaitable[Any]]
# Redeem for that principal in the session (the caller commits).
RedeemWith = Callable[[AsyncSession, Any, "RedeemBody"], Awaitable[RedeemResult]]

STATUS = {
    RedeemOutcome.REDEEMED: 200,
    RedeemOutcome.ALREADY_REDEEMED: 409,
    RedeemOutcome.EXPIRED: 410,
    RedeemOutcome.UNKNOWN: 404,
    RedeemOutcome.AMBIGUOUS: 409,
    RedeemOutcome.SHARED: 422,
}


class RedeemBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_ -]+$")
    # No control characters: PostgreSQL stores no NUL, and the record is shown to people.
    promotion: str | None = Field(default=None, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    by: str | None = Field(default=None, max_length=128, pattern=r"^[^\x00-\x1f\x7f]*$")  # the till or the shop


def _refuse(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _sep, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


async def _plain_redeem(session: AsyncSession, who: Any, body: RedeemBody) -> RedeemResult:
    return await redeem(session, body.code, by=body.by or str(who), promotion=body.promotion)


def admin_plugin(app: web.Application, core: Any, *, authorize: Authorize | None = None,
                 redeem_with: RedeemWith = _plain_redeem) -> None:
    """Add the offers admin routes to the app (see ``bot.app.Plugin``); nothing to start or stop."""

    throttle = FailureThrottle(core.settings.admin_failure_limit, namespace="admin")
    trusted = core.settings.http.trusted_networks

    async def redeem_code(request: web.Request) -> web.Response:
        secret = core.settings.admin_token
        if authorize is None and (secret is None or not secret.get_secret_value()):
            return _refuse(503, "admin API disabled")
        client = client_address(request, trusted)
        async with throttle.attempt(client) as wait:
            if wait is not None:
                return too_many_failures(wait)
            return await _redeem(request, secret.get_secret_value() if secret else "", client)

    async def _who(request: web.Request, secret: str) -> Any:
        if authorize is None:
            return "admin-api" if _authorized(request, secret) else None
        scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
        return await authorize(given.strip()) if scheme.lower() == "bearer" and given.strip() else None

    async def _redeem(request: web.Request, secret: str, client: str) -> web.Response:
        who = await _who(request, secret)
        if who is None:
            await throttle.failed(client)
            return web.json_response({"error": "unauthorized"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="engagebot"'})
        try:
            data = json.loads(await request.read())
        except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser's depth
            return _refuse(400, "body must be JSON")
        try:
            body = RedeemBody.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            return _refuse(422, f"{field}: {err['msg']}")
        async with core.sessions() as session:
            result = await redeem_with(session, who, body)
            await session.commit()
        if result.outcome is RedeemOutcome.UNKNOWN:
            await throttle.failed(client)
        payload = {"outcome": str(result.outcome), "code": result.code, "promotion": result.promotion,
                   "message": result.describe(core.settings.timezone),
                   "redeemed_at": result.redeemed_at.isoformat() if result.redeemed_at else None,
                   "valid_until": result.valid_until.isoformat() if result.valid_until else None}
        return web.json_response(payload, status=STATUS[result.outcome])

    app.router.add_post("/admin/redeem", redeem_code)
    return None
