"""``engagebot chat --channel wechat``: be a follower on a running engagebot's WeChat simulator.

The console talks to the platform simulator's JSON API over HTTP, exactly as the phone page does,
so the message travels the whole way: simulator, signed callback, adapter, router, reply.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from bot.core.inbound import Kind
from bot.i18n import normalize_locale

from .common import (
    Answer,
    Console,
    ConsoleError,
    as_bot_lines,
    parse_action,
    print_line,
    run_simulator_console,
    simulator_json,
)

WECHAT_API = "/simulator/wechat/api"
PROGRESS = "/simulator/wechat/bot/progress"
REPLY_TIMEOUT = 15.0  # at most this long for replies sent through the API before the next prompt
_ACTION_OF_KIND = {Kind.TEXT: "text", Kind.COMMAND: "text", Kind.FOLLOW: "follow", Kind.UNFOLLOW: "unfollow",
                   Kind.SCAN: "scan", Kind.CLICK: "click"}


def wechat_language(lang: str | None) -> str:
    """The WeChat language setting closest to ``--lang`` (WeChat knows zh_CN, zh_TW and en)."""
    return {"zh_Hans": "zh_CN", "zh_Hant": "zh_TW", "en": "en"}.get(normalize_locale(lang) or "", "none")


def show_wechat(entry: dict[str, Any]) -> str:
    if entry.get("type") == "news":
        return "\n".join(f"[card] {a.get('title', '')}\n       {a.get('description', '')}\n       {a.get('url', '')}"
                         for a in entry.get("articles", []))
    if entry.get("type") == "image":  # the phone page shows it; the path serves its bytes
        return f"[image] /simulator/wechat/media/{entry.get('media_id', '')}"
    if entry.get("type") == "error":
        return f"[WeChat] {entry.get('content', '')}"
    return str(entry.get("content", ""))


async def find_or_create_follower(http: aiohttp.ClientSession, base: str, name: str, lang: str | None) -> dict[str, Any]:
    """The simulated WeChat user named ``name`` (the nickname), created the first time: one name, one follower."""
    nickname = name[:32]
    listed = await simulator_json(http, "GET", f"{base}{WECHAT_API}/followers")
    for follower in listed.get("followers", []):
        if follower.get("nickname") == nickname:
            return follower
    return await simulator_json(http, "POST", f"{base}{WECHAT_API}/followers",
                       json={"language": wechat_language(lang), "nickname": nickname})


async def _replies_settled(http: aiohttp.ClientSession, base: str, openid: str) -> bool:
    """Wait (bounded) until no reply to ``openid`` waits in the bot's outbox; False if still waiting."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            progress = await simulator_json(http, "GET", f"{base}{PROGRESS}", params={"openid": openid})
        except RuntimeError:  # a simulator without the bot beside it: give API replies a moment
            await asyncio.sleep(0.3)
            return True
        if not progress.get("pending_replies"):
            return True
        await asyncio.sleep(0.05)
    return False


class WeChatConsole(Console):
    """The simulated WeChat user ``openid``, through the simulator's JSON API."""

    def __init__(self, http: aiohttp.ClientSession, base: str, follower: dict[str, Any]) -> None:
        self.http = http
        self.base = base
        self.openid = follower["openid"]
        self.seen = int(follower.get("messages", 0))  # what an earlier run already showed
        self.subscribed = bool(follower.get("subscribed"))

    async def begin(self) -> Answer | None:
        return None if self.subscribed else await self._do({"action": "follow"})

    async def act(self, line: str) -> Answer:
        try:
            parsed = parse_action(line)
        except ValueError as exc:
            raise ConsoleError(str(exc)) from None
        assert parsed is not None  # the loop took :quit
        kind, text, payload = parsed
        action = {"action": _ACTION_OF_KIND[kind], "text": text, "scene": payload, "key": payload}
        return await self._do({k: v for k, v in action.items() if v})

    async def _do(self, action: dict[str, Any]) -> Answer:
        try:
            await simulator_json(self.http, "POST", f"{self.base}{WECHAT_API}/action", json={"openid": self.openid, **action})
            settled = await _replies_settled(self.http, self.base, self.openid)
            timeline = await simulator_json(self.http, "GET", f"{self.base}{WECHAT_API}/timeline",
                                   params={"openid": self.openid, "since": str(self.seen)})
        except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
            raise ConsoleError(f"failed: {exc}") from None
        self.seen = timeline["next"]
        shown = [e for e in timeline["entries"] if e.get("direction") == "out"]
        for entry in shown:
            print_line(as_bot_lines(show_wechat(entry).splitlines()))
        return Answer(unfollowed=action["action"] == "unfollow", shown=len(shown), done=settled)


async def run_wechat_console(args: argparse.Namespace) -> int:
    return await run_simulator_console(
        args, platform="WeChat", join=find_or_create_follower, language_setting=wechat_language,
        introduce=lambda f, name: (f"You are WeChat follower {name} ({f['openid']}, language "
                             f"{f.get('language') or 'none'}); :help for actions."),
        console=WeChatConsole)
