"""``engagebot chat --channel wechat|telegram``: be a follower on a running engagebot's simulator.

The console talks to the platform simulator's JSON API over HTTP, exactly as the phone page does,
so the message travels the whole way: simulator, signed callback, adapter, router, reply.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import aiohttp

from bot.console import HELP, _read_line, as_bot_lines, parse_action
from bot.core.inbound import Kind

WECHAT_API = "/simulator/wechat/api"
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


async def run_wechat_console(args: argparse.Namespace) -> int:
    base = (args.url or "http://127.0.0.1:8080").rstrip("/")
    interactive = sys.stdin.isatty()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        try:
            follower = await _json(http, "POST", f"{base}{WECHAT_API}/followers",
                                   json={"language": wechat_language(args.lang), "nickname": args.follower[:32]})
        except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
            print(f"engagebot: cannot reach the WeChat simulator at {base} ({exc}); "
                  "is `engagebot run` running without WeChat settings?", file=sys.stderr)
            return 2
        openid = follower["openid"]
        seen = 0
        if interactive:
            print(f"You are WeChat follower {openid}. Following the account first...\n{HELP}")
        pending = ["follow"]
        while True:
            if pending:
                action: dict[str, Any] = {"action": pending.pop()}
            else:
                line = await _read_line("you> " if interactive else "")
                if line is None:
                    break
                try:
                    parsed = parse_action(line.strip())
                except ValueError as exc:
                    print(f"  ({exc})")
                    continue
                if parsed is None:
                    break
                kind, text, payload = parsed
                action = {"action": _ACTION_OF_KIND[kind], "text": text, "scene": payload, "key": payload}
                action = {k: v for k, v in action.items() if v}
            try:
                await _json(http, "POST", f"{base}{WECHAT_API}/action", json={"openid": openid, **action})
                await asyncio.sleep(0.2)  # let replies sent through the API arrive too
                timeline = await _json(http, "GET", f"{base}{WECHAT_API}/timeline",
                                       params={"openid": openid, "since": str(seen)})
            except (aiohttp.ClientError, RuntimeError, ValueError) as exc:
                print(f"  (failed: {exc})")
                continue
            seen = timeline["next"]
            for entry in timeline["entries"]:
                if entry.get("direction") == "out":
                    print(as_bot_lines(show_wechat(entry).splitlines()), flush=True)
    return 0


async def run_remote_console(args: argparse.Namespace) -> int:
    if args.channel == "telegram":
        from bot.channels.telegram.console import run_telegram_console

        return await run_telegram_console(args)
    return await run_wechat_console(args)
