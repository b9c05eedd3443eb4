"""The console's operations pages: broadcasts (live progress), followers (search, tag, CSV), operator
accounts and their API tokens, and the inbox's owed answers.

Registered by ``Console.add_to`` (``bot/admin/console.py``), with its checks: a live session, the role's
permission, the CSRF token on every POST. Each page calls the same service function as the API and
the CLI (``bot/admin/broadcasts.py``, ``followers.py``, ``operators.py``, ``conversations.py``), which
writes its audit row in the transaction making the change. Input is checked by the API's own models;
a refusal is the service's, shown in the operator's language (``AdminError.localized``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from babel.dates import format_timedelta
from pydantic import BaseModel, ValidationError

from bot.broadcast.models import ACTIVE, CANCELLED, DONE, EXPANDING, QUEUED, SENDING
from bot.i18n import FORMAT_LOCALES, N_, SUPPORTED_LOCALES
from bot.web import see_other

from . import broadcasts as broadcast_service
from . import conversations
from . import followers as follower_service
from . import operators as operator_service
from .errors import Invalid
from .roles import Permission, Role
from .routes import FollowerExportQuery, FollowerQuery, stream_followers_csv
from .schemas import BroadcastStart, OperatorCreate, OperatorUpdate, PasswordReset, TagsUpdate, TokenCreate
from .services import first_error
from .stats import Activity

if TYPE_CHECKING:
    from .console import Console
    from .web_auth import SignedIn

P = Permission
Model = TypeVar("Model", bound=BaseModel)
PAGE_SIZE = 50
BROADCAST_LIMIT = 100
REFRESH_SECONDS = 3  # a running broadcast's page reloads itself this often (no script: a meta refresh)

# A broadcast's status (``bot.broadcast.models``) as the console shows it.
BROADCAST_STATES = {QUEUED: N_("queued"), EXPANDING: N_("expanding"), SENDING: N_("sending"), DONE: N_("done"),
                    CANCELLED: N_("cancelled")}
ROLE_NAMES = {Role.ADMIN: N_("admin"), Role.MARKETER: N_("marketer"), Role.AGENT: N_("agent"), Role.STAFF: N_("staff"),
              Role.VIEWER: N_("viewer")}
# A broadcast's audience filters (``Audience.to_json``'s keys).
AUDIENCE_LABELS = {"channels": N_("Channels"), "locales": N_("Languages"), "tags": N_("Tags"),
                   "sources": N_("Sources"), "followed_since": N_("Followed since")}
BAD_NUMBER = N_("a whole number expected")
NO_TAG = N_("give a tag to add or to remove")


def parse(model: type[Model], values: Mapping[str, Any]) -> Model:
    """``values`` checked by the API's model; its first problem is a 422 naming the field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise first_error(exc) from None


def lines(text: str) -> list[str]:
    """A textarea's or a comma list's items: one a line (or comma), blanks dropped."""
    return [item.strip() for item in text.replace(",", "\n").splitlines() if item.strip()]


def row_id(request: web.Request, name: str) -> int:
    return int(request.match_info[name])  # the route's pattern admits 1 to 15 digits only


class Operations:
    """The pages, bound to the console (its sessions, settings, rendering and checks)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.sessions = console.sessions
        self.settings = console.settings

    # --- broadcasts ----------------------------------------------------------------------------------
    async def broadcasts(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        async with self.sessions() as session:
            rows = await broadcast_service.list_broadcasts(session, limit=BROADCAST_LIMIT)
            records = [await broadcast_service.broadcast_record(session, b) for b in rows]
        return self.console.render(request, "broadcasts.html", who, broadcasts=records, bstates=BROADCAST_STATES,
                                   locales=SUPPORTED_LOCALES)

    async def start_broadcast(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """Start one from the form: the same ``BroadcastStart`` the API takes, and the same service."""
        body = parse(BroadcastStart, {
            "name": form.get("name", "").strip(),
            "texts": {loc: form[f"text_{loc}"] for loc in SUPPORTED_LOCALES if form.get(f"text_{loc}", "").strip()},
            "channels": lines(form.get("channels", "")), "locales": [loc for loc in SUPPORTED_LOCALES
                                                                    if form.get(f"locale_{loc}")],
            "tags": lines(form.get("tags", "")), "sources": lines(form.get("sources", "")),
            "since": form.get("since", "").strip() or None, "promotion": form.get("promotion", "").strip() or None})
        async with self.sessions() as session:
            broadcast = await broadcast_service.start_broadcast(session, who.actor, body,
                                                                default_locale=self.settings.default_locale,
                                                                timezone=self.settings.timezone)
            await session.commit()
        return see_other(f"/admin/broadcasts/{broadcast.id}")

    async def broadcast(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        async with self.sessions() as session:
            found = await broadcast_service.get_broadcast(session, row_id(request, "broadcast_id"))
            record = await broadcast_service.broadcast_record(session, found)
        running = record["status"] in ACTIVE
        return self.console.render(request, "broadcast.html", who, b=record, bstates=BROADCAST_STATES,
                                   refresh=REFRESH_SECONDS if running else None, running=running,
                                   audience_labels=AUDIENCE_LABELS)

    async def cancel_broadcast(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        broadcast_id = row_id(request, "broadcast_id")
        async with self.sessions() as session:
            await broadcast_service.cancel(session, who.actor, broadcast_id)  # commits with its audit row
        return see_other(f"/admin/broadcasts/{broadcast_id}")

    # --- followers -----------------------------------------------------------------------------------
    async def followers(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        filters = {k: v.strip() for k, v in request.query.items() if k in ("channel", "locale", "tag", "source")
                   and v.strip()}
        query = parse(FollowerQuery, {**filters, "limit": PAGE_SIZE, "cursor": request.query.get("after") or None})
        async with self.sessions() as session:
            rows = await follower_service.search_followers(session, query.where(), limit=PAGE_SIZE,
                                                           after_id=query.after())
        records = [follower_service.follower_record(f) for f in rows]
        here = "/admin/followers" + (f"?{urlencode({**filters, 'after': query.cursor})}" if query.cursor else
                                     f"?{urlencode(filters)}" if filters else "")
        more = f"/admin/followers?{urlencode({**filters, 'after': rows[-1].id})}" if len(rows) == PAGE_SIZE else None
        export = f"/admin/followers/export.csv?{urlencode(filters)}" if filters else "/admin/followers/export.csv"
        return self.console.render(request, "followers.html", who, followers=records, filters=filters, here=here,
                                   more=more, export=export)

    async def tag_follower(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        add, remove = form.get("add", "").strip(), form.get("remove", "").strip()
        if not add and not remove:
            raise Invalid("tag", NO_TAG)
        body = parse(TagsUpdate, {"add": [add] if add else [], "remove": [remove] if remove else []})
        async with self.sessions() as session:
            await follower_service.tag_follower(session, who.actor, row_id(request, "follower_id"), body)
            await session.commit()
        back = form.get("next", "")
        return see_other(back if back.startswith("/admin/followers") and "//" not in back
                                      else "/admin/followers")

    async def export_followers(self, request: web.Request, who: SignedIn,
                               form: Mapping[str, str]) -> web.StreamResponse:
        query = parse(FollowerExportQuery, {k: v for k, v in request.query.items() if v.strip()})
        where = follower_service.FollowerFilter(channel=query.channel, locale=query.locale, tag=query.tag,
                                                source=query.source)
        async with self.sessions() as session:
            return await stream_followers_csv(request, session, where, {"Cache-Control": "no-store"})

    # --- operators -----------------------------------------------------------------------------------
    async def operators(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        async with self.sessions() as session:
            rows = await operator_service.list_operators(session, limit=200)
        return self.console.render(request, "operators.html", who, operators=rows, roles=ROLE_NAMES)

    async def add_operator(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        body = parse(OperatorCreate, {"name": form.get("name", "").strip(), "role": form.get("role", ""),
                                      "password": form.get("password", ""),
                                      "display_name": form.get("display_name", "").strip() or None})
        async with self.sessions() as session:
            op = await operator_service.add_operator(session, who.actor, body)
            await session.commit()
        return see_other(f"/admin/operators/{op.id}")

    async def operator(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *,
                       new_token: str | None = None, status: int = 200) -> web.StreamResponse:
        async with self.sessions() as session:
            op = await operator_service.get_operator(session, row_id(request, "operator_id"))
            tokens = await operator_service.list_tokens(session, op)
        return self.console.render(request, "operator.html", who, status=status, op=op, tokens=tokens,
                                   roles=ROLE_NAMES, new_token=new_token)

    async def set_disabled(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """Disable or enable (``disabled`` = 1 or 0); ``version`` is the one the page showed (lost updates: 409)."""
        return await self._update_operator(request, who, form, {"disabled": form.get("disabled", "")})

    async def update_profile(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """Role and display name (empty: none), as the API's PATCH: the same service, the same version check
        (a stale page is 409) and its refusal to let an admin demote themself."""
        return await self._update_operator(request, who, form, {
            "role": form.get("role", ""), "display_name": form.get("display_name", "").strip() or None})

    async def _update_operator(self, request: web.Request, who: SignedIn, form: Mapping[str, str],
                               change: dict[str, Any]) -> web.StreamResponse:
        """``change`` as the API's PATCH body, at the version the page showed (a stale page is 409)."""
        version = form.get("version", "")
        if not version.isdigit() or len(version) > 9:
            raise Invalid("version", BAD_NUMBER)
        body = parse(OperatorUpdate, change)
        async with self.sessions() as session:
            op = await operator_service.get_operator(session, row_id(request, "operator_id"))
            await operator_service.update_operator(session, who.actor, op, body, version=int(version))
            await session.commit()
        return see_other(f"/admin/operators/{op.id}")

    async def reset_password(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        body = parse(PasswordReset, {"password": form.get("password", ""),
                                     "revoke_tokens": form.get("revoke_tokens") == "1"})
        async with self.sessions() as session:
            op = await operator_service.get_operator(session, row_id(request, "operator_id"))
            await operator_service.reset_password(session, who.actor, op, body)
            await session.commit()
        return see_other(f"/admin/operators/{op.id}")

    async def create_token(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """A new API token, shown on this answer only (never stored, never shown again: no redirect)."""
        body = parse(TokenCreate, {"label": form.get("label", "").strip()})
        async with self.sessions() as session:
            op = await operator_service.get_operator(session, row_id(request, "operator_id"))
            _row, token = await operator_service.create_token(session, who.actor, op, body)
            await session.commit()
        return await self.operator(request, who, form, new_token=token, status=201)

    async def revoke_token(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        async with self.sessions() as session:
            row = await operator_service.revoke_token(session, who.actor, row_id(request, "token_id"))
            await session.commit()
        return see_other(f"/admin/operators/{row.operator_id}")

    # --- the inbox's owed answers --------------------------------------------------------------------
    async def dismiss(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        follower_id = row_id(request, "follower_id")
        await conversations.dismiss(self.console.inbox(), who.actor, follower_id)
        return see_other(f"/admin/inbox/{follower_id}")

    def add_to(self, app: web.Application) -> None:
        page = self.console.page
        r = app.router
        broadcast = "/admin/broadcasts/{broadcast_id:[0-9]{1,15}}"
        r.add_get("/admin/broadcasts", page(P.BROADCASTS_READ, self.broadcasts))
        r.add_post("/admin/broadcasts", page(P.BROADCASTS_WRITE, self.start_broadcast))
        r.add_get(broadcast, page(P.BROADCASTS_READ, self.broadcast))
        r.add_post(f"{broadcast}/cancel", page(P.BROADCASTS_WRITE, self.cancel_broadcast))
        r.add_get("/admin/followers", page(P.FOLLOWERS_READ, self.followers))
        r.add_get("/admin/followers/export.csv", page(P.FOLLOWERS_EXPORT, self.export_followers))
        r.add_post("/admin/followers/{follower_id:[0-9]{1,15}}/tags", page(P.FOLLOWERS_WRITE, self.tag_follower))
        operator = "/admin/operators/{operator_id:[0-9]{1,15}}"
        r.add_get("/admin/operators", page(P.OPERATORS_READ, self.operators))
        r.add_post("/admin/operators", page(P.OPERATORS_WRITE, self.add_operator))
        r.add_get(operator, page(P.OPERATORS_READ, self.operator))
        r.add_post(f"{operator}/disabled", page(P.OPERATORS_WRITE, self.set_disabled))
        r.add_post(f"{operator}/profile", page(P.OPERATORS_WRITE, self.update_profile))
        r.add_post(f"{operator}/password", page(P.OPERATORS_WRITE, self.reset_password))
        r.add_post(f"{operator}/tokens", page(P.OPERATORS_WRITE, self.create_token))
        r.add_post("/admin/tokens/{token_id:[0-9]{1,15}}/revoke", page(P.OPERATORS_WRITE, self.revoke_token))
        r.add_post("/admin/inbox/{follower_id:[0-9]{1,15}}/dismiss", page(P.INBOX_WRITE, self.dismiss))


def duration(seconds: float | None, locale: str) -> str:
    """A median answer time in the operator's language (``7 seconds``, ``3 分钟``)."""
    if seconds is None:
        return "–"
    return format_timedelta(timedelta(seconds=seconds), granularity="second", threshold=1.5,
                            locale=FORMAT_LOCALES.get(locale, locale))


def activity_tables(figures: Activity) -> dict[str, Any]:
    """The dashboard's activity as its template reads it: a row per day, a column per channel."""
    channels = sorted({m.channel for m in figures.messages})
    cells = {(m.day, m.channel): m for m in figures.messages}
    grid = [(day, [cells.get((day, channel)) for channel in channels]) for day in reversed(figures.days)]
    return {"activity_channels": channels, "activity_days": grid, "replies": figures.replies,
            "answer_times": figures.answer_times}
