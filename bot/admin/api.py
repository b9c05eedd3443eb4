"""The admin API's machinery: a route table, and one wrapper that authenticates, authorizes, validates
and answers for every route. The OpenAPI document is built from the same table (``bot.admin.openapi``),
so the routes and their description cannot drift apart.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.core.dispatcher import Dispatcher
from bot.errors import PayloadTooLarge
from bot.i18n import Catalogs
from bot.settings import Settings
from bot.web import FailureThrottle, client_address, read_body, too_many_failures

from .audit import Actor
from .errors import AdminError, Invalid
from .inbox import Deliver
from .operators import authenticate
from .roles import Permission
from .schemas import MAX_ID, ErrorView
from .services import first_error
from .versions import etag, version_of

log = logging.getLogger("engagebot.admin.api")

PREFIX = "/admin/api/v1"
MAX_BODY = 64 * 1024


@dataclass
class Call:
    """What a route's handler gets: who calls, a session (committed after a normal return), the inputs."""

    request: web.Request
    session: AsyncSession
    actor: Actor
    settings: Settings
    channels: list[Any]  # the app's channels (campaign links, reply windows)
    ids: dict[str, int]
    body: Any = None
    query: Any = None
    version: int | None = None  # from If-Match
    count_failure: Callable[[], Awaitable[None]] = field(default=lambda: _nothing())
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    sessions: async_sessionmaker[AsyncSession] | None = None  # for services that open their own transactions
    catalogs: Catalogs | None = None  # the app's (None: the installed ones)
    deliver: Deliver | None = None  # sends outbox rows now through this process's channels
    dispatcher: Dispatcher | None = None  # the bot's handlers, for dry runs (which one would answer)


async def _nothing() -> None:
    return None


Handler = Callable[[Call], Awaitable[BaseModel | web.StreamResponse | None]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # under PREFIX; ``{name_id}`` segments are positive integer ids
    handler: Handler
    summary: str
    tag: str
    permission: Permission | None = None  # None: any operator
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None  # None: 204 No Content, unless ``media`` says otherwise
    status: int = 200
    etag: bool = False  # the answer carries the resource's ETag
    if_match: bool = False  # the edit must send If-Match with the ETag it read
    media: tuple[str, ...] = ("application/json",)  # what a 200 without ``answer`` is (a CSV, an image)

    @property
    def path_ids(self) -> list[str]:
        return [part[1:-1] for part in self.path.split("/") if part.startswith("{")]


def error(status: int, error_text: str, reason: str | None = None, field_name: str | None = None,
          headers: dict[str, str] | None = None) -> web.Response:
    body = ErrorView(error=error_text, reason=reason, field=field_name).model_dump(mode="json", exclude_none=True)
    return web.json_response(body, status=status, headers=headers)


def nul_at(data: Any, path: str = "") -> str | None:
    """Where a NUL character hides in parsed JSON (a key or a string), or None.

    PostgreSQL stores no NUL in text: refused here with 422, it would otherwise fail the INSERT (a 500).
    """
    if isinstance(data, str):
        return path or "body" if "\x00" in data else None
    if isinstance(data, dict):
        for key, value in data.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return where
            if (found := nul_at(value, where)) is not None:
                return found
    if isinstance(data, list):
        for n, value in enumerate(data):
            if (found := nul_at(value, f"{path}.{n}" if path else str(n))) is not None:
                return found
    return None


def _invalid(exc: ValidationError, where: str) -> web.Response:
    invalid = first_error(exc)  # our validators' own words, pydantic's for the rest
    name = invalid.field if invalid.field != "body" else where
    return error(422, "invalid input", f"{name}: {invalid.reason}", name)


@dataclass
class Api:
    """The routes bound to this app's settings and database."""

    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    routes: list[Route]
    channels: list[Any] = field(default_factory=list)  # the app's own list: channel plugins fill it
    catalogs: Catalogs | None = None
    deliver: Deliver | None = None
    dispatcher: Dispatcher | None = None  # the bot's handlers, for the try box's dry run

    def __post_init__(self) -> None:
        self.throttle = FailureThrottle(self.settings.admin_failure_limit, namespace="admin-api")

    async def actor_for(self, bearer: str) -> Actor | None:
        """The actor of a bearer token, read from the database now (a disabled operator is refused at once)."""
        secret = self.settings.admin_token
        async with self.sessions() as session:
            return await authenticate(session, bearer, secret.get_secret_value() if secret else None)

    def add_to(self, app: web.Application) -> None:
        for route in self.routes:
            app.router.add_route(route.method, PREFIX + route.path, self._endpoint(route))

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            client = client_address(request, self.settings.http.trusted_networks)
            async with self.throttle.attempt(client) as wait:
                if wait is not None:
                    return too_many_failures(wait)
                scheme, _sep, given = request.headers.get("Authorization", "").partition(" ")
                actor = await self.actor_for(given.strip()) if scheme.lower() == "bearer" and given.strip() else None
                if actor is None:
                    await self.throttle.failed(client)
                    return error(401, "unauthorized", "send Authorization: Bearer <token>",
                                 headers={"WWW-Authenticate": 'Bearer realm="engagebot"'})
            if route.permission is not None and not actor.may(route.permission):
                return error(403, "forbidden", f"the {actor.role} role may not {route.permission}")
            return await self._serve(route, request, actor, lambda: self.throttle.failed(client))

        return endpoint

    async def _serve(self, route: Route, request: web.Request, actor: Actor,
                     count_failure: Callable[[], Awaitable[None]]) -> web.StreamResponse:
        ids: dict[str, int] = {}
        for name in route.path_ids:
            raw = request.match_info[name]
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
                return error(404, "not found", f"{name} must be a positive integer id", name)
            ids[name] = int(raw)
        query = body = version = None
        if route.query is not None:
            params = dict(request.query)
            if (at := nul_at(params)) is not None:
                return error(422, "invalid input", f"{at}: may not contain NUL characters", at)
            try:
                query = route.query.model_validate(params)
            except ValidationError as exc:
                return _invalid(exc, "query")
        if route.body is not None:
            try:
                data = json.loads(await read_body(request, MAX_BODY))
            except PayloadTooLarge as exc:
                return error(413, "body too large", str(exc))
            except (ValueError, RecursionError):
                return error(400, "body must be JSON")
            if (at := nul_at(data)) is not None:
                return error(422, "invalid input", f"{at}: may not contain NUL characters", at)
            try:
                body = route.body.model_validate(data)
            except ValidationError as exc:
                return _invalid(exc, "body")
        if route.if_match:
            header = request.headers.get("If-Match")
            if header is None:
                return error(428, "precondition required", "send If-Match with the ETag you read", "If-Match")
            version = version_of(header)
        async with self.sessions() as session:
            call = Call(request=request, session=session, actor=actor, settings=self.settings,
                        channels=self.channels, ids=ids, body=body,
                        query=query, version=version, count_failure=count_failure, sessions=self.sessions, catalogs=self.catalogs,
                        deliver=self.deliver, dispatcher=self.dispatcher)
            try:
                answer = await route.handler(call)
                await session.commit()
            except Invalid as exc:
                await session.rollback()
                return error(422, "invalid input", str(exc), exc.field)
            except AdminError as exc:
                await session.rollback()
                return error(exc.http_status, exc.code, str(exc))
        if isinstance(answer, web.StreamResponse):
            return answer
        if answer is None:
            return web.Response(status=204, headers=call.headers)
        headers = dict(call.headers)
        if route.etag and isinstance(getattr(answer, "version", None), int):
            headers["ETag"] = etag(answer.version)  # type: ignore[attr-defined]
        return web.json_response(answer.model_dump(mode="json"), status=route.status if call.status == 200
                                 else call.status, headers=headers)
