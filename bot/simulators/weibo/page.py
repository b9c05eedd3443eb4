"""The fan's page at /simulator/weibo and its JSON API (filled in below)."""

from __future__ import annotations

from aiohttp import web

from .pushes import PushDriver


class FanPage(PushDriver):
    def _page_routes(self) -> list[web.RouteDef]:
        return []
