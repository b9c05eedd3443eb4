"""The console's marketing pages: prompt rules with a "try a message" box and an edit form per rule, a
promotion's edit form and preview, campaigns with their funnel and QR downloads.

Each page calls the function the API and the CLI call: ``previews.try_message`` and
``previews.promotion_preview`` (dry runs: nothing stored, nothing sent), ``services.update_rule`` and
``services.update_promotion`` (with the version the form was read at, so a stale form is refused with
409), ``services.campaign_qr``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import ValidationError

from bot.core.dates import OUT_OF_RANGE, check_moment
from bot.i18n import N_, SUPPORTED_LOCALES
from bot.offers.links import link_channels
from bot.storage.prompts import list_prompt_rules
from bot.web import see_other

from . import previews, services
from .errors import AdminError, Invalid, Stale
from .roles import Permission
from .schemas import PromotionUpdate, RuleUpdate
from .web_auth import SignedIn

if TYPE_CHECKING:
    from .console import Console

P = Permission

STALE_EDIT = N_("Someone else changed this promotion after you opened the form. Here it is as it is now: "
                "make your change again.")
STALE_RULE = N_("Someone else changed this rule after you opened the form. Here it is as it is now: make your "
                "change again.")
BAD_PRIORITY = N_("The priority must be a whole number from -1000 to 1000.")
BAD_QUOTA = N_("The quota must be a whole number.")  # the create form's (``console.py``) and the edit form's
BAD_DATE = N_("A date must look like 2026-12-31T20:00.")
BAD_VERSION = N_("The form has no version: reload the page.")
SAVED = N_("Saved.")
LOCALE_NAMES = {"en": N_("English"), "zh_Hans": N_("Simplified Chinese"), "zh_Hant": N_("Traditional Chinese")}
QR_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def qr_channels(channels: list[Any]) -> list[str]:
    """The names the QR route takes: the keys of ``link_channels``, which the download's ``campaign_links``
    uses, without asking any platform for a link (a WeChat link costs an API call, made only on download)."""
    return list(link_channels(channels))


def _local_input(value: datetime | None, tz: str) -> str:
    """A stored time as a ``datetime-local`` field shows it, in the console's time zone (in UTC when it is too
    near the end of ``datetime``'s range to move: stored before inputs were limited, it must not break the page)."""
    if value is None:
        return ""
    try:
        return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")
    except OverflowError:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _parse_local(text: str, tz: str) -> datetime | None:
    """A ``datetime-local`` field's value, read in the console's time zone; None when empty; ValueError if bad."""
    text = text.strip()
    if not text:
        return None
    if len(text) > 32:
        raise ValueError(text)
    value = datetime.fromisoformat(text)
    check_moment(value)  # the API's range (``bot.core.dates``): one that moves to UTC without overflowing
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(tz))


class MarketingPages:
    """Rules, promotion edit and preview, campaigns: pages of ``console`` (its session, roles, templates)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _(self, request: web.Request, message: str) -> str:
        return self.console.catalogs.gettext(self.console.locale(request), message)

    # --- prompt rules --------------------------------------------------------------------------------
    def refusal(self, request: web.Request, exc: AdminError) -> str:
        """A service's refusal in the operator's language (message id and parameters, ``AdminError.localized``)."""
        return exc.localized(lambda message: self._(request, message))

    async def rules(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *, status: int = 200,
                    result: previews.TryResult | None = None, error: str | None = None) -> web.StreamResponse:
        async with self.console.sessions() as session:
            rules = await list_prompt_rules(session)  # in the order the matcher ranks them
        return self.console.render(request, "rules.html", who, status=status, rules=rules, result=result,
                                   error=error, tried=form.get("text", ""), locale_names=LOCALE_NAMES,
                                   answered_by=previews.ANSWERED_BY)

    async def try_message(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The try box: a dry run of the bot's handlers on the typed message (reads only; a POST for its CSRF
        token). A refusal (an empty or too long message) redraws the rules page with its reason."""
        c = self.console
        try:
            async with c.sessions() as session:
                result = await previews.try_message(session, form.get("text", ""), channels=c.channels,
                                                    catalogs=c.catalogs, dispatcher=c.dispatcher,
                                                    max_chars=c.settings.prompt_rules_max_chars)
        except Invalid as exc:
            return await self.rules(request, who, form, status=422, error=self.refusal(request, exc))
        return await self.rules(request, who, form, result=result)

    # --- one rule: edit ---------------------------------------------------------------------------------
    async def rule(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *, status: int = 200,
                   error: str | None = None) -> web.StreamResponse:
        async with self.console.sessions() as session:
            rule = await services.get_rule(session, int(request.match_info["rule_id"]))
        values = {"priority": str(rule.priority), "regex": rule.regex,
                  **{f"match_{loc}": "\n".join(rule.match.get(loc, [])) for loc in SUPPORTED_LOCALES},
                  **{f"reply_{loc}": rule.reply.get(loc, "") for loc in SUPPORTED_LOCALES}}
        version: object = rule.version
        if status == 422:  # the operator's input back, to correct (a 409 shows the rule as it is now)
            values.update({k: v for k, v in form.items() if k in values}, regex=form.get("regex") == "on")
            # ...at the version it was read: a save made meanwhile is still refused (409) when it comes back
            version = form.get("version", "")
        return self.console.render(request, "rule.html", who, status=status, rule=rule, values=values, error=error,
                                   version=version, locale_names=LOCALE_NAMES,
                                   notice=self._(request, SAVED) if request.query.get("saved") == "1" and error is None
                                   else None)

    async def edit_rule(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The form as the API's PATCH body (keywords one per line), through ``services.update_rule``, at the
        version the form was read: a stale form is refused (409) before its fields are checked."""
        rule_id = int(request.match_info["rule_id"])

        async def again(status: int, error: str) -> web.StreamResponse:
            return await self.rule(request, who, form, status=status, error=error)

        version_text = form.get("version", "")
        if not version_text.isdigit() or len(version_text) > 15:
            return await again(422, self._(request, BAD_VERSION))
        async with self.console.sessions() as session:
            if (await services.get_rule(session, rule_id)).version != int(version_text):
                return await again(409, self._(request, STALE_RULE))
        priority_text = form.get("priority", "").strip()
        if not re.fullmatch(r"-?[0-9]{1,4}", priority_text) or not -1000 <= int(priority_text) <= 1000:
            return await again(422, self._(request, BAD_PRIORITY))
        match = {loc: lines for loc in SUPPORTED_LOCALES
                 if (lines := [w.strip() for w in form.get(f"match_{loc}", "").splitlines() if w.strip()])}
        reply = {loc: form[f"reply_{loc}"].strip() for loc in SUPPORTED_LOCALES if form.get(f"reply_{loc}", "").strip()}
        try:
            body = RuleUpdate.model_validate({"regex": form.get("regex") == "on", "match": match, "reply": reply,
                                              "priority": int(priority_text)})
        except ValidationError as exc:
            return await again(422, self.refusal(request, services.first_error(exc)))
        async with self.console.sessions() as session:
            rule = await services.get_rule(session, rule_id)
            try:
                await services.update_rule(session, who.actor, rule, body, version=int(version_text))
            except Stale:
                await session.rollback()
                return await again(409, self._(request, STALE_RULE))
            except AdminError as exc:  # a pattern RE2 refuses, a locale with no keyword...
                await session.rollback()
                return await again(exc.http_status, self.refusal(request, exc))
            await session.commit()
        return see_other(f"/admin/rules/{rule_id}?saved=1")

    # --- one promotion: edit and preview -------------------------------------------------------------
    async def promotion(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *, status: int = 200,
                        error: str | None = None) -> web.StreamResponse:
        c = self.console
        promotion_id = int(request.match_info["promotion_id"])
        async with c.sessions() as session:
            promo = await services.get_promotion(session, promotion_id)
            view = await services.promotion_view(session, promo)
            preview = await previews.promotion_preview(session, promotion_id, channels=c.channels, catalogs=c.catalogs)
        tz = c.settings.timezone
        values = {"quota": "" if promo.quota is None else str(promo.quota),
                  "starts_at": _local_input(promo.starts_at, tz), "ends_at": _local_input(promo.ends_at, tz),
                  **{f"title_{loc}": (promo.title or {}).get(loc, "") for loc in SUPPORTED_LOCALES},
                  **{f"keywords_{loc}": "\n".join((promo.keywords or {}).get(loc, [])) for loc in SUPPORTED_LOCALES}}
        version: object = promo.version
        if status == 422:  # the operator's input back, to correct (a 409 shows the promotion as it is now)
            values.update({k: v for k, v in form.items() if k in values})
            # ...at the version it was read: a save made meanwhile is still refused (409) when it comes back
            version = form.get("version", "")
        return c.render(request, "promotion.html", who, status=status, p=view, keywords=promo.keywords or {},
                        values=values, version=version, preview=preview, error=error,
                        notice=self._(request, SAVED) if request.query.get("saved") == "1" and error is None else None,
                        timezone=tz, locale_names=LOCALE_NAMES)

    async def edit_promotion(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The form's fields as the API's PATCH body, through the same service, at the version the form was read:
        a stale form is refused (409) before its fields are checked."""
        c = self.console
        promotion_id = int(request.match_info["promotion_id"])

        async def again(status: int, error: str) -> web.StreamResponse:
            return await self.promotion(request, who, form, status=status, error=error)

        version_text = form.get("version", "")
        if not version_text.isdigit() or len(version_text) > 15:
            return await again(422, self._(request, BAD_VERSION))
        async with c.sessions() as session:
            if (await services.get_promotion(session, promotion_id)).version != int(version_text):
                return await again(409, self._(request, STALE_EDIT))
        quota_text = form.get("quota", "").strip()
        if quota_text and (not quota_text.isdigit() or len(quota_text) > 9):
            return await again(422, self._(request, BAD_QUOTA))
        times: dict[str, datetime | None] = {}
        for name in ("starts_at", "ends_at"):
            try:
                times[name] = _parse_local(form.get(name, ""), c.settings.timezone)
            except ValueError as exc:
                if exc.args == (OUT_OF_RANGE,):
                    return await again(422, self.refusal(request, Invalid(name, OUT_OF_RANGE)))
                return await again(422, self._(request, BAD_DATE))
        titles = {loc: form[f"title_{loc}"].strip() for loc in SUPPORTED_LOCALES if form.get(f"title_{loc}", "").strip()}
        keywords = {loc: words for loc in SUPPORTED_LOCALES
                    if (words := [w.strip() for w in form.get(f"keywords_{loc}", "").splitlines() if w.strip()])}
        try:
            body = PromotionUpdate.model_validate({"quota": int(quota_text) if quota_text else None, **times,
                                                   "title": titles, "keywords": keywords})
        except ValidationError as exc:
            return await again(422, self.refusal(request, services.first_error(exc)))
        async with c.sessions() as session:
            promo = await services.get_promotion(session, promotion_id)
            try:
                await services.update_promotion(session, who.actor, promo, body, version=int(version_text))
            except Stale:
                await session.rollback()
                return await again(409, self._(request, STALE_EDIT))
            except AdminError as exc:  # a quota below the codes claimed (422, or 409 when claims raced the save)
                await session.rollback()
                return await again(exc.http_status, self.refusal(request, exc))
            await session.commit()
        # 303: the browser GETs the page (a reload does not post the form again)
        return see_other(f"/admin/promotions/{promotion_id}?saved=1")

    # --- campaigns -----------------------------------------------------------------------------------
    async def campaigns(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        c = self.console
        async with c.sessions() as session:
            campaigns = await services.list_campaigns(session, limit=200)
            funnel = {row.slug: row for row in await services.campaign_funnel(session)}
        return c.render(request, "campaigns.html", who, campaigns=campaigns, funnel=funnel,
                        qr_channels=qr_channels(c.channels))

    async def campaign_qr(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The QR file the API and ``engagebot campaign qr`` give, downloaded with the console's session."""
        c = self.console
        fmt = request.match_info["format"]
        channel = request.match_info["channel"]
        async with c.sessions() as session:
            campaign, image = await services.campaign_qr(session, c.channels, int(request.match_info["campaign_id"]),
                                                         channel, fmt)
        return web.Response(body=image, content_type=QR_FORMATS[fmt], headers={
            "Content-Disposition": f'attachment; filename="{campaign.slug}-{channel}.{fmt}"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
            # An SVG opened on its own is a document: it runs nothing either.
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    def add_to(self, app: web.Application) -> None:
        c, r = self.console, app.router
        promotion = "/admin/promotions/{promotion_id:[0-9]{1,15}}"
        r.add_get("/admin/rules", c.page(P.RULES_READ, self.rules))
        r.add_post("/admin/rules/try", c.page(P.RULES_READ, self.try_message))
        rule = "/admin/rules/{rule_id:[0-9]{1,15}}"
        r.add_get(rule, c.page(P.RULES_READ, self.rule))
        r.add_post(rule, c.page(P.RULES_WRITE, self.edit_rule))
        r.add_get(promotion, c.page(P.PROMOTIONS_READ, self.promotion))
        r.add_post(promotion, c.page(P.PROMOTIONS_WRITE, self.edit_promotion))
        r.add_get("/admin/campaigns", c.page(P.CAMPAIGNS_READ, self.campaigns))
        r.add_get("/admin/campaigns/{campaign_id:[0-9]{1,15}}/qr/{channel:[a-z0-9_-]{1,64}}.{format:png|svg}",
                  c.page(P.CAMPAIGNS_READ, self.campaign_qr))
