"""The console's sign-in: operator name and password (argon2), a session cookie, CSRF tokens.

A session is a row (``console_session``, migration 0017) holding only the SHA-256 of its cookie, so a
copy of the database opens no browser session. Every request reads the row together with its operator:
a session signed out, expired, or of an operator disabled meanwhile stops working at once.

CSRF: every form carries a token that a page of another site cannot read. Signed in, it is the
session's own token (kept in its row); before sign-in (the login and language forms) it is a random
value the browser also holds in a cookie (double submit). The cookies are HttpOnly and SameSite=Strict,
and Secure when the request came over HTTPS (directly or through a trusted proxy).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from aiohttp import web
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.clock import utcnow
from bot.web import Network, came_over_https

from .audit import Actor, record
from .models import ConsoleSession, Operator
from .roles import Role
from .secrets import MAX_PASSWORD_LENGTH, hash_password, token_hash, verify_password

SESSION_COOKIE = "engagebot_console"
PRE_SESSION_COOKIE = "engagebot_console_csrf"  # the CSRF token of a browser not signed in yet
SESSION_TTL = timedelta(hours=12)
MAX_COOKIE = 128  # our tokens are 43 characters; anything much longer is not ours


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live console session: who it acts as, and the CSRF token its forms must send."""

    actor: Actor
    session_id: int
    csrf: str


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    """A hash to check a password against when the name is unknown: the answer takes as long either way."""
    return hash_password(secrets.token_urlsafe(16))


async def sign_in(sessions: async_sessionmaker[AsyncSession], name: str, password: str) -> tuple[str, SignedIn] | None:
    """Check ``name`` and ``password``; on success open a session and return its cookie value with it."""
    if len(password) > MAX_PASSWORD_LENGTH or len(name) > 64:
        return None
    async with sessions() as session:
        op = (await session.execute(select(Operator).where(Operator.name == name))).scalar_one_or_none()
        stored = op.password_hash if op is not None else _decoy_hash()
        # argon2 takes tens of milliseconds of CPU: off the event loop, so other requests go on meanwhile.
        matches = await asyncio.to_thread(verify_password, stored, password)
        if op is None or not matches or op.disabled_at is not None:
            return None
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(32), utcnow()
        # Sessions past their expiry are of no use to anyone: cleared here, at the next sign-in.
        await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
        row = ConsoleSession(token_hash=token_hash(token), operator_id=op.id, csrf_token=csrf, created_at=now,
                             expires_at=now + SESSION_TTL)
        session.add(row)
        await session.flush()
        actor = Actor(op.name, Role(op.role), op.id)
        await record(session, actor, "console.sign_in", f"operator:{op.name}")
        await session.commit()
        return token, SignedIn(actor, row.id, csrf)


async def signed_in(sessions: async_sessionmaker[AsyncSession], request: web.Request) -> SignedIn | None:
    """The live session of this request's cookie, read now with its operator; None when there is none."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie or len(cookie) > MAX_COOKIE:
        return None
    query = (select(ConsoleSession, Operator).join(Operator, Operator.id == ConsoleSession.operator_id)
             .where(ConsoleSession.token_hash == token_hash(cookie), Operator.disabled_at.is_(None)))
    async with sessions() as session:
        found = (await session.execute(query)).one_or_none()
    if found is None:
        return None
    row, op = found
    if row.expires_at <= utcnow():
        return None
    return SignedIn(Actor(op.name, Role(op.role), op.id), row.id, row.csrf_token)


async def sign_out(sessions: async_sessionmaker[AsyncSession], who: SignedIn) -> None:
    async with sessions() as session:
        await session.execute(delete(ConsoleSession).where(ConsoleSession.id == who.session_id))
        await record(session, who.actor, "console.sign_out", f"operator:{who.actor.name}")
        await session.commit()


def csrf_matches(expected: str, given: object) -> bool:
    """Constant-time comparison of a form's CSRF token with the one it must carry."""
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def pre_session_token(request: web.Request) -> str:
    """This browser's CSRF token before sign-in (from its cookie), or a new one to set."""
    token = request.cookies.get(PRE_SESSION_COOKIE, "")
    return token if 20 <= len(token) <= MAX_COOKIE else secrets.token_urlsafe(32)


def set_cookie(response: web.StreamResponse, request: web.Request, trusted: tuple[Network, ...], name: str,
               value: str, *, max_age: int | None = None) -> None:
    response.set_cookie(name, value, path="/admin", httponly=True, samesite="Strict", max_age=max_age,
                        secure=came_over_https(request, trusted))


def clear_cookie(response: web.StreamResponse, name: str) -> None:
    response.del_cookie(name, path="/admin")
