"""``engagebot chat --channel wechat|telegram``: be a follower on a running engagebot's simulator.

The console talks to the platform simulator's JSON API over HTTP, exactly as the phone page does,
so the message travels the whole way: simulator, signed callback, adapter, router, reply.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiohttp

from bot.console import (HELP, NO_REPLY, NOT_YET, UNFOLLOWED, _read_line, as_bot_lines, kept_language_note,
                         parse_action, server_url)
from bot.core.inbound import Kind

WECHAT_API = "/simulator/wechat/api"
PROGRESS = "/simulator/wechat/bot/progress"
REPLY_TIMEOUT = 15.0  # at most this long for replies sent through the API before the next prompt
_ACTION_OF_KIND = {Kind.TEXT: "text", Kind.COMMAND: "text", Kind.FOLLOW: "follow", Kind.UNFOLLOW: "unfollow",
                   Kind.SCAN: "scan", Kind.CLICK: "click"}


def wechat_language(lang: str | None) -> str:
    """The WeChat language setting closest to ``--lang`` (WeChat knows zh_CN, zh_TW and en)."""
    from bot.i18n import normalize_locale

    return {"zh_Hans": "zh_CN", "zh_Hant": "zh_TW", "en": "en"}.get(normalize_locale(lang) or "", "none")


def show_wechat(entry: dict[str, Any]) -> str:
    if entry.get("type") == "news":
        return "\n".join(f"[card] {a.get('title', '')}\n       {a.get('description', '')}\n       {a.get('url', '')}"
                         for a in entry.get("articles", []))
    if entry.get("type") == "error":
        return f"[WeChat] {entry.get('content', '')}"
    return str(entry.get("content", ""))


async def _json(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    async with http.request(method, url, **kwargs) as resp:
        data = await resp.json(content_type=None)
        if resp.status >= 400:
            raise RuntimeError(data.get("error") if isinstance(data, dict) else f"HTTP {resp.status}")
        return data


async def find_or_create_follower(http: aiohttp.ClientSession, base: str, name: str, lang: str | None) -> dict[str, Any]:
    """The simulated WeChat user named ``name`` (the nickname), created the first time: one name, one follower."""
    nickname = name[:32]
    listed = await _json(http, "GET", f"{base}{WECHAT_API}/followers")
    for follower in listed.get("followers", []):
        if follower.get("nickname") == nickname:
            return follower
    return await _json(http, "POST", f"{base}{WECHAT_API}/followers",
                       json={"language": wechat_language(lang), "nickname": nickname})


async def _replies_settled(http: aiohttp.ClientSession, base: str, openid: str) -> bool:
    """Wait (bounded) until no reply to ``openid`` waits in the bot's outbox; False if still waiting."""
    deadline = time.monotonic() + REPLY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            progress = await _json(http, "GET", f"{base}{PROGRESS}", params={"openid": openid})
        except RuntimeError:  # a simulator without the bot beside it: give API replies a moment
            await asyncio.sleep(0.3)
            return True
        if not progress.get("pending_replies"):
            return True
        await asyncio.sleep(0.05)
    return False


async def run_wechat_console(args: argparse.Namespace) -> int:
    base = server_url(args)  # a bad setting is one line (ConfigError, printed by the CLI)
    name = args.follower or "console-user"
    interactive = sys.stdin.isatty()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            follower = await find_or_create_follower(http, base, name, args.lang)
        except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
            print(f"engagebot: cannot reach the WeChat simulator at {base} ({exc}); is `engagebot run` running "
                  "there without a real platform? (`engagebot chat --port N` if it runs on another port)",
                  file=sys.stderr)
            return 2
        openid = follower["openid"]
        seen = int(follower.get("messages", 0))  # what an earlier run already showed
        language = follower.get("language") or "none"
        print(f"You are WeChat follower {name} ({openid}, language {language}); :help for actions.", flush=True)
        if args.lang and wechat_language(args.lang) != language:
            print(kept_language_note(name, follower.get("language")), flush=True)
        if interactive:
            print(HELP)
        pending = [] if follower.get("subscribed") else ["follow"]
        while True:
            if pending:
                action: dict[str, Any] = {"action": pending.pop()}
            else:
                line = await _read_line("you> " if interactive else "")
                if line is None:
                    break
                line = line.strip()
                if not line:
                    continue
                if line in (":help", ":?"):
                    print(HELP)
                    continue
                try:
                    parsed = parse_action(line)
                except ValueError as exc:
                    print(f"     ({exc})")
                    continue
                if parsed is None:
                    break
                kind, text, payload = parsed
                action = {"action": _ACTION_OF_KIND[kind], "text": text, "scene": payload, "key": payload}
                action = {k: v for k, v in action.items() if v}
            try:
                await _json(http, "POST", f"{base}{WECHAT_API}/action", json={"openid": openid, **action})
                settled = await _replies_settled(http, base, openid)
                timeline = await _json(http, "GET", f"{base}{WECHAT_API}/timeline",
                                       params={"openid": openid, "since": str(seen)})
            except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
                print(f"     (failed: {exc})")
                continue
            seen = timeline["next"]
            shown = [e for e in timeline["entries"] if e.get("direction") == "out"]
            for entry in shown:
                print(as_bot_lines(show_wechat(entry).splitlines()), flush=True)
            if action["action"] == "unfollow":
                print(UNFOLLOWED, flush=True)
            elif not shown:
                print(NO_REPLY if settled else NOT_YET, flush=True)
    return 0


async def run_remote_console(args: argparse.Namespace) -> int:
    if args.channel == "telegram":
        from bot.channels.telegram.console import run_telegram_console

        return await run_telegram_console(args)
    return await run_wechat_console(args)
