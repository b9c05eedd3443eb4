"""A simulator of the WeChat Official Account platform, for end-to-end tests of the bot over HTTP.

It plays both sides the bot talks to: the active API under `/cgi-bin/...` (tokens, customer-service and
mass sends, QR codes, user info) and the users' phones, which POST signed (optionally encrypted) XML
callbacks to the bot and read its passive replies. A browser page at `/simulator/wechat` drives it by hand.

It shares no code with the bot's adapter: it talks to the bot over HTTP only. What must survive a
restart (followers, timelines, QR tickets, tokens, ids) leaves as records (``take_changes()``) and
comes back through ``restore()``; ``engagebot run`` keeps them in its database.

    sim = WeChatSimulator(token="t", app_id="wx1", app_secret="s", callback_url="http://127.0.0.1:8080/wechat")
    app = sim.make_app()          # or sim.add_routes(existing_app)
    oid = sim.add_follower(language="en")
    await sim.follow(oid)
    result = await sim.send_text(oid, "hello")
    result.reply                  # {"type": "text", "content": ...} or None
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .callbacks import RawResponse
from .phone import Phone
from .state import WECHAT_ERROR_TEXT, CallbackResult, Follower, ManualClock, SimulatorError, Ticket

__all__ = [
    "CallbackResult",
    "Follower",
    "ManualClock",
    "RawResponse",
    "SimulatorError",
    "Ticket",
    "WECHAT_ERROR_TEXT",
    "WeChatSimulator",
]


class WeChatSimulator(Phone):
    """The simulated platform; the constructor options are documented on `SimulatorState`."""

    def add_routes(self, app: web.Application) -> None:
        """Register the platform API (`/cgi-bin/...`) and the phone page (`/simulator/wechat...`)."""
        app.router.add_routes(self._api_routes() + self._phone_routes())

    def make_app(self) -> web.Application:
        """Return a standalone application serving only the simulator; it closes the simulator on cleanup."""
        app = web.Application()
        self.add_routes(app)

        async def lifecycle(_: web.Application) -> AsyncIterator[None]:
            yield
            await self.close()

        app.cleanup_ctx.append(lifecycle)
        return app
