"""``engagebot chat --channel weibo``: be a fan on a running engagebot's Weibo simulator.

The console talks to the simulator's JSON API over HTTP, exactly as the fan's page does, so the
message travels the whole way: simulator, signed push, adapter, router, reply. Besides the direct
messages it can comment in public under the brand's latest post, and show that post's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from bot.core.inbound import Kind
from bot.i18n import normalize_locale

from .common import HELP as COMMON_HELP
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

WEIBO_API = "/simulator/weibo/api"
PROGRESS = "/simulator/weibo/bot/progress"  # served by the Weibo channel plugin when it is there
REPLY_TIMEOUT = 15.0
QUIET_WAIT = 2.0  # without the progress route: how long to look for a reply sent through the API
_ACTION_OF_KIND = {Kind.TEXT: "text", Kind.COMMAND: "text", Kind.FOLLOW: "follow", Kind.UNFOLLOW: "unfollow",
                   Kind.SCAN: "scan", Kind.CLICK: "click"}
HELP = COMMON_HELP.replace("  :help ", """  :comment TEXT     comment in public under the brand's latest post
  :mention TEXT     the same, @mentioning the brand
  :thread           show that post's public thread, with the brand's answers
  :help """, 1)


def weibo_language(lang: str | None) -> str:
    """The page language closest to ``--lang`` (the simulator knows zh_Hans, zh_Hant and en)."""
    return normalize_locale(lang) or "zh_Hans"


def show_weibo(entry: dict[str, Any]) -> str:
    if entry.get("type") == "articles":
        return "\n".join(f"[card] {a.get('display_name', '')}\n       {a.get('summary', '')}\n       {a.get('url', '')}"
                         for a in entry.get("articles", []))
    if entry.get("type") == "image":  # the fan page shows it; the path serves its bytes
        return f"[image] /simulator/weibo/media/{entry.get('tovfid', '')}"
    if entry.get("type") == "error":
        return f"[Weibo] {entry.get('text', '')}"
    return str(entry.get("text", ""))


async def find_or_create_fan(http: aiohttp.ClientSession, base: str, name: str, lang: str | None) -> dict[str, Any]:
    """The simulated fan named ``name`` (the screen name), created the first time: one name, one fan."""
    screen_name = "".join(c for c in name if c.isalnum() or c in "_-")[:30] or "console-user"
    state = await simulator_json(http, "GET", f"{base}{WEIBO_API}/state")
    for fan in state.get("fans", []):
        if fan.get("screen_name") == screen_name:
            return fan
    return await simulator_json(http, "POST", f"{base}{WEIBO_API}/fans",
                       json={"language": weibo_language(lang), "screen_name": screen_name})


class WeiboConsole(Console):
    """The simulated fan ``uid``, through the simulator's JSON API."""

    help = HELP

    def __init__(self, http: aiohttp.ClientSession, base: str, fan: dict[str, Any]) -> None:
        self.http = http
        self.base = base
        self.uid = fan["idstr"]
        self.seen = int(fan.get("messages", 0))  # what an earlier run already showed
        self.following = bool(fan.get("following"))

    async def begin(self) -> Answer | None:
        return None if self.following else await self._do({"action": "follow"})

    async def act(self, line: str) -> Answer:
        word, _sep, arg = line[1:].partition(" ") if line.startswith(":") else ("", "", "")
        if word in ("comment", "mention"):
            if not arg.strip():
                raise ConsoleError(f":{word} needs the text of the comment")
            return await self._comment(arg.strip(), mention=word == "mention")
        if word == "thread":
            return await self._thread()
        try:
            parsed = parse_action(line)
        except ValueError as exc:
            raise ConsoleError(str(exc)) from None
        assert parsed is not None  # the loop took :quit
        kind, text, payload = parsed
        if kind == Kind.FOLLOW and payload:
            kind = Kind.SCAN
        action = {"action": _ACTION_OF_KIND[kind], "text": text, "scene": payload, "key": payload}
        return await self._do({k: v for k, v in action.items() if v})

    async def _latest_post(self) -> dict[str, Any]:
        state = await simulator_json(self.http, "GET", f"{self.base}{WEIBO_API}/state")
        post = next((p for p in state.get("posts", []) if p.get("by_brand")), None)
        if post is None:
            raise ConsoleError("the brand has no post to comment under")
        return post

    async def _comment(self, text: str, *, mention: bool) -> Answer:
        try:
            post = await self._latest_post()
            await simulator_json(self.http, "POST", f"{self.base}{WEIBO_API}/comment",
                        json={"uid": self.uid, "post_id": post["idstr"], "text": text, "mention": mention})
        except (aiohttp.ClientError, RuntimeError) as exc:
            raise ConsoleError(f"failed: {exc}") from None
        print_line("     (commented in public; the brand answers on its next look at its comments: :thread)")
        return Answer(shown=1)

    async def _thread(self) -> Answer:
        try:
            post = await self._latest_post()
        except (aiohttp.ClientError, RuntimeError) as exc:
            raise ConsoleError(f"failed: {exc}") from None
        print_line(f"     @{post['user']['screen_name']}: {post['text']}")
        for comment in post.get("comments", []):
            mark = "bot> " if comment.get("by_brand") else "     "
            print_line(f"{mark}  @{comment['user']['screen_name']}: {comment['text']}")
        return Answer(shown=1)

    async def _settled(self, before: int) -> bool:
        deadline = time.monotonic() + REPLY_TIMEOUT
        quiet_until = time.monotonic() + QUIET_WAIT
        while time.monotonic() < deadline:
            try:
                progress = await simulator_json(self.http, "GET", f"{self.base}{PROGRESS}", params={"uid": self.uid})
            except RuntimeError:  # no progress route: wait a little for a reply through the API
                timeline = await simulator_json(self.http, "GET", f"{self.base}{WEIBO_API}/timeline",
                                       params={"uid": self.uid, "since": str(before)})
                if any(e.get("direction") == "out" for e in timeline["entries"]) or time.monotonic() > quiet_until:
                    return True
                await asyncio.sleep(0.2)
                continue
            if not progress.get("pending_replies"):
                return True
            await asyncio.sleep(0.05)
        return False

    async def _do(self, action: dict[str, Any]) -> Answer:
        try:
            before = self.seen
            result = await simulator_json(self.http, "POST", f"{self.base}{WEIBO_API}/action", json={"uid": self.uid, **action})
            settled = True if result.get("reply") or result.get("error") else await self._settled(before)
            timeline = await simulator_json(self.http, "GET", f"{self.base}{WEIBO_API}/timeline",
                                   params={"uid": self.uid, "since": str(self.seen)})
        except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
            raise ConsoleError(f"failed: {exc}") from None
        self.seen = timeline["next"]
        shown = [e for e in timeline["entries"] if e.get("direction") == "out"]
        for entry in shown:
            print_line(as_bot_lines(show_weibo(entry).splitlines()))
        return Answer(unfollowed=action["action"] == "unfollow", shown=len(shown), done=settled)


async def run_weibo_console(args: argparse.Namespace) -> int:
    return await run_simulator_console(
        args, platform="Weibo", join=find_or_create_fan, language_setting=weibo_language,
        introduce=lambda fan, _name: (f"You are Weibo fan {fan['screen_name']} ({fan['idstr']}, language "
                               f"{fan.get('language') or 'none'}); :help for actions."),
        console=WeiboConsole)
