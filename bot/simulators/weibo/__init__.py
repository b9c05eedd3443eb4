"""A simulator of the Weibo fan-service platform and open API, for end-to-end tests of the bot over HTTP.

It plays both sides the bot talks to: the API under ``/2/...`` (messages reply and sendall, comments
and mentions with ``since_id``, comment reply and create, QR scenes) and the fans, who POST signed
JSON pushes to the bot and read its passive replies. A browser page at ``/simulator/weibo`` drives it
by hand, in Chinese or English.

It shares no code with the bot's adapter: it talks to the bot over HTTP only. What must survive a
restart (fans, timelines, windows, posts, comments, scenes, ids, broadcasts) leaves as records
(``take_changes()``) and comes back through ``restore()``.

    sim = WeiboSimulator(app_key="k", app_secret="s", access_token="t",
                         callback_url="http://127.0.0.1:8080/weibo")
    app = sim.make_app()          # or sim.add_routes(existing_app)
    uid = sim.add_fan(language="en")
    await sim.follow(uid)
    result = await sim.send_text(uid, "hello")
    result.reply                  # {"type": "text", "text": ...} or None
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from .page import FanPage
from .pushes import RawResponse
from .state import WEIBO_ERROR_TEXT, Comment, Fan, ManualClock, Post, PushResult, Scene, SimulatorError

__all__ = ["Comment", "Fan", "ManualClock", "Post", "PushResult", "RawResponse", "Scene", "SimulatorError",
           "WEIBO_ERROR_TEXT", "WeiboSimulator"]


class WeiboSimulator(FanPage):
    """The simulated platform; the constructor options are documented on ``WeiboState``."""

    def add_routes(self, app: web.Application) -> None:
        """Register the platform API (``/2/...``) and the fan's page (``/simulator/weibo...``)."""
        app.router.add_routes(self._api_routes() + self._page_routes())

    def make_app(self) -> web.Application:
        """A standalone application serving only the simulator; it closes the simulator on cleanup."""
        app = web.Application()
        self.add_routes(app)

        async def lifecycle(_: web.Application) -> AsyncIterator[None]:
            yield
            await self.close()

        app.cleanup_ctx.append(lifecycle)
        return app
