"""Stand-in platforms in a process of their own, for tests that SIGKILL ``engagebot run`` and restart it.

    python -m tests.support.platforms --port 18500 --bots http://127.0.0.1:18080,http://127.0.0.1:18081

One aiohttp server holds what must outlive the bot's restarts:

* the WeChat platform simulator (API under ``/cgi-bin``) and the Telegram Bot API simulator (``/bot<token>``);
* ``/lb/...``: a round-robin load balancer to the bot instances (the platforms' callbacks and webhooks
  go through it; an instance that does not answer is skipped, as a real balancer would);
* ``/control/...``: what the test asks of the "users": create followers, start a stream of messages at
  a rate, and read what the platforms recorded (who got what, which messages were accepted).

The mock channel has no platform of its own: its inbound messages are posted here to the bot's
``/mock`` route (retried until accepted, the way Telegram keeps an update), its sends land in the
``mock_delivery`` table the bot writes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from bot.simulators.telegram import TelegramBotAPISimulator
from bot.simulators.wechat import WeChatSimulator

WECHAT = {"token": "crashtestToken1", "app_id": "wxcrashtest000001", "app_secret": "crash-test-app-secret"}
TELEGRAM_TOKEN = "987654:CRASH-TEST-TOKEN"
TELEGRAM_SECRET = "crash_test_secret"


class Platforms:
    def __init__(self, base: str, bots: list[str]) -> None:
        self.base = base
        self.bots = bots
        self._turn = itertools.count()
        self.wechat = WeChatSimulator(**WECHAT, callback_url=f"{base}/lb/wechat", callback_timeout=10.0,
                                      mass_delay=0.01)
        self.telegram = TelegramBotAPISimulator(TELEGRAM_TOKEN, bot_username="crash_test_bot",
                                                webhook_retry_delay=0.1)
        self.slow: dict[str, float] = {"custom": 0.0, "mass": 0.0}  # seconds before the API answers
        self.stream: dict[str, Any] = {"done": True, "messages": []}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        return self._http

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._slow_api], client_max_size=4 * 1024 * 1024)
        self.wechat.add_routes(app)
        self.telegram.add_routes(app)
        app.router.add_route("*", "/lb/{tail:.*}", self.balance)
        app.router.add_get("/control/ready", lambda _r: web.json_response({"ok": True}))
        app.router.add_post("/control/wechat/followers", self.wechat_followers)
        app.router.add_post("/control/telegram/users", self.telegram_users)
        app.router.add_post("/control/slow", self.set_slow)
        app.router.add_post("/control/stream", self.start_stream)
        app.router.add_get("/control/stream", self.read_stream)
        app.router.add_get("/control/received", self.received)

        async def cleanup(_app: web.Application) -> Any:
            yield
            for task in self._tasks:
                task.cancel()
            if self._http is not None:
                await self._http.close()
            await self.wechat.close()
            await self.telegram.close()

        app.cleanup_ctx.append(cleanup)
        return app

    @web.middleware
    async def _slow_api(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Answer the WeChat send APIs late (the send has happened): a kill lands while they are in flight."""
        response = await handler(request)
        if request.path == "/cgi-bin/message/custom/send" and self.slow["custom"]:
            await asyncio.sleep(self.slow["custom"])
        elif request.path == "/cgi-bin/message/mass/send" and self.slow["mass"]:
            await asyncio.sleep(self.slow["mass"])
        return response

    # -- the load balancer ----------------------------------------------------------------------------------

    async def balance(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() in ("content-type", "x-telegram-bot-api-secret-token")}
        first = next(self._turn)
        for i in range(len(self.bots)):
            bot = self.bots[(first + i) % len(self.bots)]
            try:
                async with self.http().request(request.method, f"{bot}/{request.match_info['tail']}",
                                               params=request.query, data=body, headers=headers) as resp:
                    return web.Response(status=resp.status, body=await resp.read(),
                                        content_type=resp.content_type or "text/plain")
            except (TimeoutError, aiohttp.ClientError):
                continue  # that instance is down: the next one
        return web.Response(status=502, text="no instance answered")

    # -- users ------------------------------------------------------------------------------------------------

    async def wechat_followers(self, request: web.Request) -> web.Response:
        """Create followers who follow and say hello (opening the 48-hour reply window)."""
        body = await request.json()
        openids = [self.wechat.add_follower(language=body.get("language", "en")) for _ in range(body["count"])]
        gate = asyncio.Semaphore(20)

        async def join(openid: str) -> bool:
            async with gate:
                followed = await self.wechat.follow(openid)
                said = await self.wechat.send_text(openid, "hello")
                return followed.ok and said.ok

        results = await asyncio.gather(*(join(o) for o in openids))
        return web.json_response({"followers": openids, "failed": results.count(False)})

    async def telegram_users(self, request: web.Request) -> web.Response:
        """Create users who press Start."""
        body = await request.json()
        users = [self.telegram.add_user(language_code="en", first_name=f"U{i}") for i in range(body["count"])]
        for user in users:
            self.telegram.start(user)
        return web.json_response({"followers": users})

    async def set_slow(self, request: web.Request) -> web.Response:
        self.slow.update(await request.json())
        return web.json_response(self.slow)

    # -- a stream of messages at a rate ---------------------------------------------------------------------

    async def start_stream(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.stream = {"done": False, "messages": []}
        task = asyncio.create_task(self._stream(body["channel"], body["senders"], body["count"], body["rate"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({"started": True})

    async def _stream(self, channel: str, senders: list[Any], count: int, rate: float) -> None:
        running: set[asyncio.Task[Any]] = set()
        started = time.monotonic()
        for seq in range(count):
            await asyncio.sleep(max(started + seq / rate - time.monotonic(), 0))
            sender = senders[seq % len(senders)]
            record: dict[str, Any] = {"seq": seq, "sender": sender, "text": f"m{seq}", "accepted": None,
                                      "replies": 0}
            self.stream["messages"].append(record)
            if channel == "telegram":
                record["update_id"] = self.telegram.send_text(sender, record["text"])["update_id"]
                record["accepted"] = True  # Telegram keeps it until the bot confirms it
                continue
            task = asyncio.create_task(self._send(channel, sender, record))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.gather(*running)
        self.stream["done"] = True

    async def _send(self, channel: str, sender: Any, record: dict[str, Any]) -> None:
        if channel == "wechat":  # the platform's own rule: three tries, then the follower sees an error
            result = await self.wechat.send_text(sender, record["text"])
            record.update(accepted=result.ok, replies=int(result.reply is not None), attempts=result.attempts,
                          msg_id=result.msg_id, error=result.error)
            return
        message_id = f"crash-{record['seq']}"  # mock: tried again until accepted, like a durable platform
        record["message_id"] = message_id
        deadline = time.monotonic() + 90
        attempts = 0
        while time.monotonic() < deadline:
            attempts += 1
            try:
                async with self.http().post(f"{self.base}/lb/mock", json={
                        "from": sender, "text": record["text"], "message_id": message_id}) as resp:
                    if resp.status == 200:
                        answer = await resp.json()
                        record.update(accepted=True, replies=len(answer["replies"]), attempts=attempts,
                                      duplicate=answer["duplicate"])
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.2)
        record.update(accepted=False, attempts=attempts)

    async def read_stream(self, request: web.Request) -> web.Response:
        return web.json_response(self.stream)

    # -- what the platforms recorded -----------------------------------------------------------------------

    async def received(self, request: web.Request) -> web.Response:
        """Per follower, the texts the bot got to them (WeChat: passive, custom and mass; Telegram: sent)."""
        wechat = {openid: [_wechat_text(e) for e in self.wechat.timeline(openid)
                           if e["direction"] == "out" and e["source"] in ("passive", "custom", "mass")]
                  for openid in self.wechat.followers}
        telegram = {str(user): [m.get("text") or m.get("caption") or "" for m in self.telegram.sent(user)]
                    for user in self.telegram.users}
        return web.json_response({
            "wechat": wechat, "telegram": telegram, "mass_jobs": len(self.wechat.mass_jobs),
            "telegram_unconfirmed": len(self.telegram.updates),
            "wechat_sources": {openid: [e["source"] for e in self.wechat.timeline(openid)
                                        if e["direction"] == "out"] for openid in self.wechat.followers},
        })


def _wechat_text(entry: dict[str, Any]) -> str:
    if entry.get("content") is not None:
        return str(entry["content"])
    return json.dumps(entry.get("articles"), ensure_ascii=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bots", required=True, help="comma-separated base URLs of the bot instances")
    args = parser.parse_args()
    platforms = Platforms(f"http://127.0.0.1:{args.port}", args.bots.split(","))
    web.run_app(platforms.app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
