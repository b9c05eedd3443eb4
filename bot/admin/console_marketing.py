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
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import ValidationError

from bot.i18n import N_, SUPPORTED_LOCALES

from . import previews, services
from .errors import Conflict, Invalid
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
BAD_QUOTA = N_("The quota must be a whole number.")
BAD_DATE = N_("A date must look like 2026-12-31T20:00.")
BAD_VERSION = N_("The form has no version: reload the page.")
SAVED = N_("Saved.")
LOCALE_NAMES = {"en": N_("English"), "zh_Hans": N_("Simplified Chinese"), "zh_Hant": N_("Traditional Chinese")}
QR_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def qr_channels(channels: list[Any]) -> list[str]:
    """The names the QR route takes for the app's channels (``bot.offers.links`` keys them the same way),
    without asking any platform for a link: a WeChat link costs an API call, made only on download."""
    keys: list[str] = []
    for channel in channels:
        name = getattr(channel, "channel_name", None) or channel.name
        if name in previews.NOT_PREVIEWED:
            continue
        keys.append(name if name not in keys else f"{name}-{channel.account}")
    return keys


def _local_input(value: datetime | None, tz: str) -> str:
    """A stored time as a ``datetime-local`` field shows it, in the console's time zone."""
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M") if value is not None else ""


def _parse_local(text: str, tz: str) -> datetime | None:
    """A ``datetime-local`` field's value, read in the console's time zone; None when empty; ValueError if bad."""
    text = text.strip()
    if not text:
        return None
    if len(text) > 32:
        raise ValueError(text)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=ZoneInfo(tz))


class MarketingPages:
    """Rules, promotion edit and preview, campaigns: pages of ``console`` (its session, roles, templates)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def _(self, request: web.Request, message: str) -> str:
        return self.console.catalogs.gettext(self.console.locale(request), message)

    # --- prompt rules --------------------------------------------------------------------------------
    async def rules(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *, status: int = 200,
                    result: previews.TryResult | None = None, error: str | None = None) -> web.StreamResponse:
        async with self.console.sessions() as session:
            rules = await previews.ranked_rules(session)
        return self.console.render(request, "rules.html", who, status=status, rules=rules, result=result,
                                   error=error, tried=form.get("text", ""), locale_names=LOCALE_NAMES)

    async def try_message(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The try box: a dry run of the stored rules on the typed message (reads only; a POST for its CSRF token)."""
        c = self.console
        async with c.sessions() as session:
            result = await previews.try_message(session, form.get("text", ""), channels=c.channels,
                                                catalogs=c.catalogs, max_chars=c.settings.prompt_rules_max_chars)
        return await self.rules(request, who, form, result=result)

    # --- one rule: edit ---------------------------------------------------------------------------------
    async def rule(self, request: web.Request, who: SignedIn, form: Mapping[str, str], *, status: int = 200,
                   error: str | None = None) -> web.StreamResponse:
        async with self.console.sessions() as session:
            rule = await services.get_rule(session, int(request.match_info["rule_id"]))
        values = {"priority": str(rule.priority), "regex": rule.regex,
                  **{f"match_{loc}": "\n".join(rule.match.get(loc, [])) for loc in SUPPORTED_LOCALES},
                  **{f"reply_{loc}": rule.reply.get(loc, "") for loc in SUPPORTED_LOCALES}}
        if status == 422:  # the operator's input back, to correct (a 409 shows the rule as it is now)
            values.update({k: v for k, v in form.items() if k in values}, regex=form.get("regex") == "on")
        return self.console.render(request, "rule.html", who, status=status, rule=rule, values=values, error=error,
                                   locale_names=LOCALE_NAMES,
                                   notice=self._(request, SAVED) if request.query.get("saved") == "1" and error is None
                                   else None)

    async def edit_rule(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The form as the API's PATCH body (keywords one per line), through ``services.update_rule``, at the
        version the form was read."""
        rule_id = int(request.match_info["rule_id"])

        async def again(status: int, error: str) -> web.StreamResponse:
            return await self.rule(request, who, form, status=status, error=error)

        version_text = form.get("version", "")
        if not version_text.isdigit() or len(version_text) > 15:
            return await again(422, self._(request, BAD_VERSION))
        priority_text = form.get("priority", "").strip()
        if not re.fullmatch(r"-?[0-9]{1,4}", priority_text):
            return await again(422, self._(request, BAD_PRIORITY))
        match = {loc: lines for loc in SUPPORTED_LOCALES
                 if (lines := [w.strip() for w in form.get(f"match_{loc}", "").splitlines() if w.strip()])}
        reply = {loc: form[f"reply_{loc}"].strip() for loc in SUPPORTED_LOCALES if form.get(f"reply_{loc}", "").strip()}
        try:
            body = RuleUpdate.model_validate({"regex": form.get("regex") == "on", "match": match, "reply": reply,
                                              "priority": int(priority_text)})
        except ValidationError as exc:
            return await again(422, str(services.first_error(exc)))
        async with self.console.sessions() as session:
            rule = await services.get_rule(session, rule_id)
            try:
                await services.update_rule(session, who.actor, rule, body, version=int(version_text))
            except Conflict:
                await session.rollback()
                return await again(409, self._(request, STALE_RULE))
            except Invalid as exc:  # a pattern RE2 refuses, a locale with no keyword...
                await session.rollback()
                return await again(422, str(exc))
            await session.commit()
        return web.Response(status=303, headers={"Location": f"/admin/rules/{rule_id}?saved=1"})

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
        if status == 422:  # the operator's input back, to correct (a 409 shows the promotion as it is now)
            values.update({k: v for k, v in form.items() if k in values})
        return c.render(request, "promotion.html", who, status=status, p=view, keywords=promo.keywords or {},
                        values=values, version=promo.version, preview=preview, error=error,
                        notice=self._(request, SAVED) if request.query.get("saved") == "1" and error is None else None,
                        timezone=tz, locale_names=LOCALE_NAMES)

    async def edit_promotion(self, request: web.Request, who: SignedIn, form: Mapping[str, str]) -> web.StreamResponse:
        """The form's fields as the API's PATCH body, through the same service, at the version the form was read."""
        c = self.console
        promotion_id = int(request.match_info["promotion_id"])

        async def again(status: int, error: str) -> web.StreamResponse:
            return await self.promotion(request, who, form, status=status, error=error)

        version_text = form.get("version", "")
        if not version_text.isdigit() or len(version_text) > 15:
            return await again(422, self._(request, BAD_VERSION))
        quota_text = form.get("quota", "").strip()
        if quota_text and (not quota_text.isdigit() or len(quota_text) > 9):
            return await again(422, self._(request, BAD_QUOTA))
        try:
            starts = _parse_local(form.get("starts_at", ""), c.settings.timezone)
            ends = _parse_local(form.get("ends_at", ""), c.settings.timezone)
        except ValueError:
            return await again(422, self._(request, BAD_DATE))
        titles = {loc: form[f"title_{loc}"].strip() for loc in SUPPORTED_LOCALES if form.get(f"title_{loc}", "").strip()}
        keywords = {loc: words for loc in SUPPORTED_LOCALES
                    if (words := [w.strip() for w in form.get(f"keywords_{loc}", "").splitlines() if w.strip()])}
        try:
            body = PromotionUpdate.model_validate({"quota": int(quota_text) if quota_text else None,
                                                   "starts_at": starts, "ends_at": ends, "title": titles,
                                                   "keywords": keywords})
        except ValidationError as exc:
            return await again(422, str(services.first_error(exc)))
        async with c.sessions() as session:
            promo = await services.get_promotion(session, promotion_id)
            try:
                await services.update_promotion(session, who.actor, promo, body, version=int(version_text))
            except Conflict as exc:
                await session.rollback()
                stale = self._(request, STALE_EDIT)
                return await again(409, stale if "changed" in str(exc) else str(exc))
            except Invalid as exc:  # a quota below the codes claimed, an end before the start
                await session.rollback()
                return await again(422, str(exc))
            await session.commit()
        # 303: the browser GETs the page (a reload does not post the form again)
        return web.Response(status=303, headers={"Location": f"/admin/promotions/{promotion_id}?saved=1"})

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
