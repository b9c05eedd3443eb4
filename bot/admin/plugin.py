"""The admin API as a plugin of ``engagebot run``: ``/admin/api/v1``, its OpenAPI document, and the
till's ``POST /admin/redeem`` (bot.offers.admin) opened to operators allowed to redeem."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.channels.plugin import Lifetime, PluginContext
from bot.offers.admin import RedeemBody, admin_plugin
from bot.offers.redeem import RedeemResult

from .api import Api
from .audit import Actor
from .conversations import channel_deliver
from .openapi import document
from .roles import Permission
from .routes import ROUTES
from .services import redeem_code

OPENAPI_PATH = "/admin/api/openapi.json"


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())


def admin_api_plugin(app: web.Application, ctx: PluginContext) -> Lifetime | None:
    api = Api(settings=ctx.settings, sessions=ctx.sessions, routes=ROUTES, channels=ctx.channels,
              catalogs=ctx.catalogs, deliver=channel_deliver(ctx.channels), dispatcher=ctx.dispatcher)
    api.add_to(app)
    app.router.add_get(OPENAPI_PATH, openapi_json)

    async def authorize(bearer: str) -> Actor | None:
        actor = await api.actor_for(bearer)
        return actor if actor is not None and actor.may(Permission.CODES_REDEEM) else None

    async def redeem_with(session: AsyncSession, actor: Actor, body: RedeemBody) -> RedeemResult:
        return await redeem_code(session, actor, body.code, promotion=body.promotion, by=body.by)

    admin_plugin(app, ctx, authorize=authorize, redeem_with=redeem_with)
    return None
