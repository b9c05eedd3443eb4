"""The operators' web console at ``/admin``: server-rendered pages (aiohttp-jinja2), no JavaScript.

Pages: sign-in, the dashboard (each campaign's funnel, per channel), promotions (live claimed/quota,
a create form), the inbox (conversations, one conversation, take / reply / hand back), the till (redeem
a code: all a staff account sees) and the audit log (admins). Each page checks the role against the
one permission table (``bot.admin.roles``) and every write goes through the service layer, which
writes its audit row, as the API does. Templates autoescape everything: what a follower or an
operator typed is shown as text, never as HTML, and the Content-Security-Policy runs no script at all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import select

from bot.channels.plugin import Lifetime, PluginContext
from bot.errors import EngagebotError, RulesFileError
from bot.i18n import N_, SUPPORTED_LOCALES, Catalogs, normalize_locale, operator_time
from bot.offers.admin import RedeemBody
from bot.offers.campaigns import find_campaign, get_campaign
from bot.offers.models import Promotion
from bot.offers.redeem import RedeemOutcome
from bot.offers.spec import parse_promo_file
from bot.settings import Settings
from bot.web import FailureThrottle, client_address, see_other

from . import conversations, services, stats
from .api import nul_at
from .audit import list_entries
from .console_marketing import BAD_QUOTA, MarketingPages
from .console_operations import Operations, activity_tables, duration
from .conversations import channel_deliver, inbox_for
from .errors import AdminError, Renders
from .inbox import Inbox
from .roles import Permission
from .web_auth import (
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL,
    SignedIn,
    clear_cookie,
    csrf_matches,
    pre_session_token,
    set_cookie,
    sign_in,
    sign_out,
    signed_in,
)

log = logging.getLogger("engagebot.admin.console")

TEMPLATES = Path(__file__).resolve().parent / "templates"
JINJA = web.AppKey("console_jinja", jinja2.Environment)
LANGUAGE_COOKIE = "engagebot_console_lang"
LANGUAGE_NAMES = {"en": "English", "zh_Hans": "简体中文", "zh_Hant": "繁體中文"}  # each in its own language
LIST_LIMIT = 200
P = Permission

# The pages in the menu, in order, with the permission each needs; an operator's home is the first it may open.
PAGES: tuple[tuple[str, str, Permission], ...] = (
    ("/admin", N_("Dashboard"), P.STATS_READ),
    ("/admin/promotions", N_("Promotions"), P.PROMOTIONS_READ),
    ("/admin/rules", N_("Prompt rules"), P.RULES_READ),
    ("/admin/campaigns", N_("Campaigns"), P.CAMPAIGNS_READ),
    ("/admin/inbox", N_("Inbox"), P.INBOX_READ),
    ("/admin/broadcasts", N_("Broadcasts"), P.BROADCASTS_READ),
    ("/admin/followers", N_("Followers"), P.FOLLOWERS_READ),
    ("/admin/till", N_("Redeem a code"), P.CODES_REDEEM),
    ("/admin/audit", N_("Audit log"), P.AUDIT_READ),
    ("/admin/operators", N_("Operators"), P.OPERATORS_READ),
)

# Who answers a follower now (``HandoffState``), as the inbox shows it.
STATE_LABELS = {"bot": N_("bot"), "queued": N_("queued"), "taken": N_("taken"), "platform": N_("platform's desk")}

CSRF_REFUSED = N_("This form's security token is missing or wrong (CSRF). Reload the page and try again.")
SIGNED_OUT = N_("Your session has ended. Sign in again.")
ROLE_REFUSED = N_("Your role may not do this.")
WRONG_LOGIN = N_("Wrong name or password, or the account is disabled.")
TOO_MANY = N_("Too many failed attempts. Try again in a minute.")
UNKNOWN_LANGUAGE = N_("Unknown language.")
SLUG_TAKEN = N_("A promotion with this slug exists already.")
SCENE_TAKEN = N_("A campaign with this scene or slug exists already.")
CONTROL_CHARACTER = N_("A field holds a NUL character, which cannot be stored.")


def home_of(who: SignedIn) -> str:
    return next((path for path, _label, perm in PAGES if who.actor.may(perm)), "/admin/login")


class Console:
    """The console's routes bound to one app's settings, database, catalogs and channels."""

    def __init__(self, ctx: PluginContext) -> None:
        self.settings: Settings = ctx.settings
        self.sessions = ctx.sessions
        self.catalogs: Catalogs = ctx.catalogs
        self.channels = ctx.channels
        self.dispatcher = ctx.dispatcher  # its handlers: the try box asks which would answer
        self.trusted = ctx.settings.http.trusted_networks
        # Wrong passwords and unknown codes, per client address: guessing either is slowed the same way.
        self.throttle = FailureThrottle(ctx.settings.admin_failure_limit, namespace="console")

    # --- plumbing ------------------------------------------------------------------------------------
    def inbox(self) -> Inbox:
        channels = list(self.channels)
        return inbox_for(self.settings, self.sessions, channels, catalogs=self.catalogs,
                         deliver=channel_deliver(channels))

    def locale(self, request: web.Request) -> str:
        chosen = request.cookies.get(LANGUAGE_COOKIE, "")
        if chosen in SUPPORTED_LOCALES:
            return chosen
        for part in request.headers.get("Accept-Language", "").split(",")[:10]:
            found = normalize_locale(part.split(";")[0].strip() or None)
            if found is not None:
                return found
        return normalize_locale(self.settings.default_locale) or "en"

    def render(self, request: web.Request, template: str, who: SignedIn | None, *, status: int = 200,
               csrf: str | None = None, **context: Any) -> web.Response:
        locale = self.locale(request)
        tz = self.settings.timezone

        def gettext(message: str) -> str:
            return self.catalogs.gettext(locale, message)

        def when(value: datetime | None) -> str:
            return operator_time(value, tz) if value is not None else "–"

        def localized(value: str | None) -> str:
            """A reason of ours (a reply window's) in the operator's language; stored English is looked up."""
            if not value:  # gettext("") is the catalog's header
                return ""
            return value.render(gettext) if isinstance(value, Renders) else gettext(value)

        nav = [(path, label) for path, label, perm in PAGES if who is not None and who.actor.may(perm)]
        response = aiohttp_jinja2.render_template(template, request, {
            "_": gettext, "locale": locale, "html_lang": locale.replace("_", "-"), "languages": LANGUAGE_NAMES,
            "who": who, "csrf": who.csrf if who is not None else csrf, "nav": nav, "path": request.path,
            "when": when, "localized": localized, "P": P, "states": STATE_LABELS, **context}, status=status, app_key=JINJA)
        # No script runs on these pages: an escaping slip could not run one either.
        response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; "
                                                       "img-src 'self'; form-action 'self'; frame-ancestors 'none'")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def refuse(self, request: web.Request, who: SignedIn | None, status: int, reason: str, *,
               translate: bool = True) -> web.Response:
        """An error page: ``reason`` is one of ours (translated) or a service's own words (shown as they are)."""
        shown = self.catalogs.gettext(self.locale(request), reason) if translate else reason
        return self.render(request, "error.html", who, status=status, reason=shown,
                           csrf=None if who else pre_session_token(request))

    def page(self, permission: Permission | None,
             handler: Callable[[web.Request, SignedIn, Mapping[str, str]], Awaitable[web.StreamResponse]]
             ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a page: a live session, the role's permission, and on a POST the form with its CSRF token."""

        async def endpoint(request: web.Request) -> web.StreamResponse:
            who = await signed_in(self.sessions, request)
            if who is None:
                if request.method == "GET":
                    return see_other("/admin/login")
                return self.refuse(request, None, 403, SIGNED_OUT)
            if nul_at(dict(request.query)) is not None:  # the API's check: a NUL in a query is a 500 on PostgreSQL
                return self.refuse(request, who, 422, CONTROL_CHARACTER)
            form: dict[str, str] = {}
            if request.method == "POST":
                posted = await request.post()
                form = {k: v for k, v in posted.items() if isinstance(v, str)}
                if not csrf_matches(who.csrf, form.get("csrf")):
                    return self.refuse(request, who, 403, CSRF_REFUSED)
                if any("\x00" in value for value in form.values()):  # PostgreSQL stores no NUL: a 500 waiting
                    return self.refuse(request, who, 422, CONTROL_CHARACTER)
            if permission is not None and not who.actor.may(permission):
                return self.refuse(request, who, 403, ROLE_REFUSED)
            try:
                return await handler(request, who, form)
            except AdminError as exc:  # the service's refusal, in the operator's language
                shown = exc.localized(lambda message: self.catalogs.gettext(self.locale(request), message))
                return self.refuse(request, who, exc.http_status, shown, translate=False)
            except EngagebotError as exc:  # not a refusal of ours: in its own words
                return self.refuse(request, who, exc.http_status, str(exc), translate=False)

        return endpoint

    # --- sign-in, sign-out, language ---------------------------------------------------------------
    async def login_page(self, request: web.Request) -> web.StreamResponse:
        who = await signed_in(self.sessions, request)
        if who is not None:
            return see_other(home_of(who))
        return self._login_form(request)

    def _login_form(self, request: web.Request, *, status: int = 200, error: str | None = None,
                    name: str = "") -> web.Response:
        token = pre_session_token(request)
        response = self.render(request, "login.html", None, status=status, csrf=token, error=error, name=name)
        set_cookie(response, request, self.trusted, PRE_SESSION_COOKIE, token)
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        client = client_address(request, self.trusted)
        async with self.throttle.attempt(client) as wait:
            if wait is not None:
                response = self.refuse(request, None, 429, TOO_MANY)
                response.headers["Retry-After"] = str(wait)
                return response
            posted = await request.post()
            if not csrf_matches(request.cookies.get(PRE_SESSION_COOKIE, ""), posted.get("csrf")):
                return self.refuse(request, None, 403, CSRF_REFUSED)
            name, password = posted.get("name"), posted.get("password")
            opened = None
            if isinstance(name, str) and isinstance(password, str) and "\x00" not in name + password:
                opened = await sign_in(self.sessions, name.strip(), password)
            if opened is None:
                await self.throttle.failed(client)
                return self._login_form(request, status=401, error=WRONG_LOGIN,
                                        name=name if isinstance(name, str) else "")
        cookie, who = opened
        response = see_other(home_of(who))
        set_cookie(response, request, self.trusted, SESSION_COOKIE, cookie, max_age=int(SESSION_TTL.total_seconds()))
        clear_cookie(response, PRE_SESSION_COOKIE)
        return response

    async def logout(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        await sign_out(self.sessions, who)
        response = see_other("/admin/login")
        clear_cookie(response, SESSION_COOKIE)
        return response

    async def language(self, request: web.Request) -> web.StreamResponse:
        """Switch the console's language (a cookie); the form's CSRF token is the session's or the pre-session one."""
        posted = await request.post()
        who = await signed_in(self.sessions, request)
        expected = who.csrf if who is not None else request.cookies.get(PRE_SESSION_COOKIE, "")
        if not csrf_matches(expected, posted.get("csrf")):
            return self.refuse(request, who, 403, CSRF_REFUSED)
        chosen = posted.get("locale")
        if chosen not in SUPPORTED_LOCALES:
            return self.refuse(request, who, 422, UNKNOWN_LANGUAGE)
        back = posted.get("next")
        target = back if isinstance(back, str) and back.startswith("/admin") and "//" not in back else "/admin"
        response = see_other(target)
        set_cookie(response, request, self.trusted, LANGUAGE_COOKIE, str(chosen), max_age=365 * 86_400)
        return response

    # --- pages ---------------------------------------------------------------------------------------
    async def dashboard(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        if not who.actor.may(P.STATS_READ):
            return see_other(home_of(who))  # /admin is everyone's entry: staff land on their till, agents on the inbox
        async with self.sessions() as session:
            totals = await services.campaign_funnel(session)
            per_channel = await services.campaign_funnel(session, per_channel=True)
            promotions = await services.list_promotions(session, limit=LIST_LIMIT)
            figures = await stats.activity(session, timezone=self.settings.timezone)
        rows = []
        for total in totals:
            rows.append(total)
            rows.extend(r for r in per_channel if r.slug == total.slug)
        return self.render(request, "dashboard.html", who, funnel=rows, promotions=promotions,
                           duration=lambda seconds: duration(seconds, self.locale(request)),
                           **activity_tables(figures))

    async def promotions(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *,
                         status: int = 200, error: str | None = None) -> web.StreamResponse:
        async with self.sessions() as session:
            promotions = await services.list_promotions(session, limit=LIST_LIMIT)
        return self.render(request, "promotions.html", who, status=status, promotions=promotions, error=error,
                           form=form)

    async def create_promotion(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """A promotion (and, with a scene, its campaign) from the form, loaded as a promotions file would be."""
        async def again(status: int, error: str) -> web.StreamResponse:
            return await self.promotions(request, who, form, status=status, error=error)

        slug, scene = form.get("slug", "").strip(), form.get("scene", "").strip()
        quota_text = form.get("quota", "").strip()
        if quota_text and not quota_text.isdigit():
            return await again(422, self.catalogs.gettext(self.locale(request), BAD_QUOTA))
        promotion: dict[str, Any] = {
            "slug": slug,
            "title": {loc: form[f"title_{loc}"].strip() for loc in SUPPORTED_LOCALES
                      if form.get(f"title_{loc}", "").strip()},
            "keywords": {loc: [form[f"keyword_{loc}"].strip()] for loc in SUPPORTED_LOCALES
                         if form.get(f"keyword_{loc}", "").strip()},
            "quota": int(quota_text) if quota_text else None,
        }
        campaigns = [{"slug": slug, "scene": scene, "source": form.get("source", "").strip() or scene,
                      "promotion": slug}] if scene else []
        try:
            parsed = parse_promo_file({"promotions": [promotion], "campaigns": campaigns}, base_dir=Path.cwd(),
                                      source="form")
        except RulesFileError as exc:
            return await again(422, str(exc))
        async with self.sessions() as session:
            if (await session.execute(select(Promotion.id).where(Promotion.slug == slug))).first() is not None:
                return await again(409, self.catalogs.gettext(self.locale(request), SLUG_TAKEN))
            if scene and (await find_campaign(session, scene) is not None or await get_campaign(session, slug)):
                return await again(409, self.catalogs.gettext(self.locale(request), SCENE_TAKEN))
            await services.load_promotions(session, who.actor, parsed, source="console")
            await session.commit()
        return see_other("/admin/promotions")

    async def inbox_page(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        conversations = await self.inbox().conversations(limit=LIST_LIMIT)
        owed = await self.inbox().conversations(owed=True, limit=LIST_LIMIT)  # timed out of the queue, unanswered
        return self.render(request, "inbox.html", who, conversations=conversations, owed=owed)

    async def conversation(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        found = await self.inbox().conversation(int(request.match_info["follower_id"]))
        return self.render(request, "conversation.html", who, c=found.summary, messages=found.messages)

    def _inbox_action(self, action: str) -> Callable[[web.Request, SignedIn, Mapping[str, str]],
                                                      Awaitable[web.StreamResponse]]:
        async def act(request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
            follower_id = int(request.match_info["follower_id"])
            inbox = self.inbox()
            if action == "take":
                await conversations.take(inbox, who.actor, follower_id)
            elif action == "reply":
                await conversations.reply(inbox, who.actor, follower_id, form.get("text", ""))
            else:
                await conversations.release(inbox, who.actor, follower_id)
            return see_other(f"/admin/inbox/{follower_id}")

        return act

    async def till(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        return self.render(request, "till.html", who, result=None, error=None)

    async def redeem(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        try:
            body = RedeemBody.model_validate({"code": form.get("code", ""), "promotion": form.get("promotion") or None})
        except ValidationError as exc:
            err = exc.errors()[0]
            return self.render(request, "till.html", who, status=422, result=None,
                               error=f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
        async with self.sessions() as session:
            result = await services.redeem_code(session, who.actor, body.code, promotion=body.promotion)
            await session.commit()
        if result.outcome is RedeemOutcome.UNKNOWN:
            await self.throttle.failed(client_address(request, self.trusted))
        return self.render(request, "till.html", who, result=result, error=None,
                           message=result.describe(self.settings.timezone))

    async def audit(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        before = request.query.get("before", "")
        before_id = int(before) if before.isdigit() and len(before) <= 15 else None
        async with self.sessions() as session:
            entries = await list_entries(session, limit=100, before_id=before_id)
        rows = [(e, json.dumps(e.before, ensure_ascii=False) if e.before is not None else "",
                 json.dumps(e.after, ensure_ascii=False) if e.after is not None else "") for e in entries]
        return self.render(request, "audit.html", who, rows=rows,
                           next_before=entries[-1].id if len(entries) == 100 else None)

    def add_to(self, app: web.Application) -> None:
        conversation = "/admin/inbox/{follower_id:[0-9]{1,15}}"
        r = app.router
        r.add_get("/admin", self.page(None, self.dashboard))
        r.add_get("/admin/login", self.login_page)
        r.add_post("/admin/login", self.login)
        r.add_post("/admin/logout", self.page(None, self.logout))
        r.add_post("/admin/language", self.language)
        r.add_get("/admin/promotions", self.page(P.PROMOTIONS_READ, self.promotions))
        r.add_post("/admin/promotions", self.page(P.PROMOTIONS_WRITE, self.create_promotion))
        r.add_get("/admin/inbox", self.page(P.INBOX_READ, self.inbox_page))
        r.add_get(conversation, self.page(P.INBOX_READ, self.conversation))
        for action in ("take", "reply", "release"):
            r.add_post(f"{conversation}/{action}", self.page(P.INBOX_WRITE, self._inbox_action(action)))
        r.add_get("/admin/till", self.page(P.CODES_REDEEM, self.till))
        r.add_post("/admin/till", self.page(P.CODES_REDEEM, self.redeem))
        r.add_get("/admin/audit", self.page(P.AUDIT_READ, self.audit))
        Operations(self).add_to(app)  # broadcasts, followers, operators, owed answers
        MarketingPages(self).add_to(app)


def console_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    """Mount the console on ``engagebot run``'s app (``bot.app.default_plugins``)."""
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, app_key=JINJA,
                         undefined=jinja2.StrictUndefined)
    Console(ctx).add_to(app)
    return None
