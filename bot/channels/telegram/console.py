"""``engagebot chat --channel telegram``: be a Telegram user of a running engagebot, in the terminal.

The console drives the in-process Telegram simulator of ``engagebot run`` through its JSON API
(``/simulator/telegram/api/...``), exactly as its web chat page does: it creates a user, sends
what you type, and prints what the bot answers. Inline buttons show as numbered choices; type the
number to press one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.console import as_bot_lines

API = "/simulator/telegram/api"
DEFAULT_URL = "http://127.0.0.1:8080"
QUIET = 0.6  # seconds without a new bot message before the prompt comes back
FIRST_REPLY_TIMEOUT = 10.0

HELP = """Type a message and press Enter; a number presses the button with that number. Actions:
  :start [payload]   tap Start, or open the deep link t.me/<bot>?start=<payload>
  :photo | :sticker | :voice   send one of those
  :block | :unblock  block or unblock the bot
  :quit              leave (or Ctrl-D)"""

ReadLine = Callable[[str], Awaitable[str | None]]


class ConsoleError(Exception):
    """The simulator is not there, or refused a request."""


class SimulatorClient:
    """The simulator's chat-page API, for one user."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.base = base_url.rstrip("/") + API
        self.user_id: int | None = None
        self.version = 0

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self.http.post(self.base + path, json=body) as resp:
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise ConsoleError(f"{self.base}{path}: {exc}") from None
        if not isinstance(data, dict) or not data.get("ok"):
            raise ConsoleError(str((data or {}).get("error") if isinstance(data, dict) else data))
        return data

    async def _get(self, path: str, **query: Any) -> dict[str, Any]:
        try:
            async with self.http.get(self.base + path, params={k: str(v) for k, v in query.items()}) as resp:
                if resp.status == 404:
                    raise ConsoleError("no Telegram simulator there (is a real Telegram token configured?)")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise ConsoleError(f"cannot reach the simulator at {self.base}: {exc}") from None
        if not isinstance(data, dict) or not data.get("ok"):
            raise ConsoleError(str(data.get("error") if isinstance(data, dict) else data))
        return data

    async def state(self) -> dict[str, Any]:
        return await self._get("/state")

    async def add_user(self, first_name: str, language_code: str | None) -> int:
        data = await self._post("/users", {"first_name": first_name[:64] or "Console User",
                                           "language_code": language_code or "none"})
        self.user_id = data["user"]["id"]
        return self.user_id

    async def chat(self, *, wait: bool) -> dict[str, Any]:
        query: dict[str, Any] = {"user_id": self.user_id}
        if wait:
            query["version"] = self.version
        data = await self._get("/chat", **query)
        self.version = data["version"]
        return data

    async def send(self, text: str) -> None:
        await self._post("/send", {"user_id": self.user_id, "text": text})

    async def start(self, payload: str | None) -> None:
        await self._post("/start", {"user_id": self.user_id, "payload": payload})

    async def press(self, message_id: int, data: str) -> None:
        await self._post("/press", {"user_id": self.user_id, "message_id": message_id, "data": data})

    async def media(self, kind: str) -> None:
        await self._post("/media", {"user_id": self.user_id, "kind": kind})

    async def block(self, blocked: bool) -> None:
        await self._post("/block", {"user_id": self.user_id, "blocked": blocked})


class Transcript:
    """What the bot said, printed once each, and the buttons of its latest keyboard."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.seen: set[int] = set()
        self.buttons: list[tuple[int, str, str]] = []  # (message_id, callback_data, label)

    def show(self, events: list[dict[str, Any]]) -> int:
        """Print the bot's events not shown yet; return how many."""
        shown = 0
        for event in events:
            if event.get("dir") != "out" or event["seq"] in self.seen:
                continue
            self.seen.add(event["seq"])
            shown += 1
            self.write(self.render(event))
        return shown

    def render(self, event: dict[str, Any]) -> str:
        kind = event.get("kind")
        if kind == "toast":
            return f"     ({event.get('text')})"
        lines: list[str] = []
        if kind == "photo":
            lines.append(f"[photo] {event.get('caption') or ''}".rstrip())
        elif kind not in ("message", None):
            lines.append(f"[{kind}] {event.get('caption') or ''}".rstrip())
        if event.get("text"):
            lines += str(event["text"]).splitlines() or [""]
        rows = ((event.get("reply_markup") or {}).get("inline_keyboard")) or []
        buttons = [b for row in rows for b in row]
        if buttons:
            self.buttons = []
            for button in buttons:
                if "callback_data" in button:
                    self.buttons.append((event["message_id"], button["callback_data"], button["text"]))
                    lines.append(f"  [{len(self.buttons)}] {button['text']}")
                elif "url" in button:
                    lines.append(f"  [link] {button['text']}: {button['url']}")
        return as_bot_lines(lines)


async def _read_stdin(prompt: str) -> str | None:
    try:
        return await asyncio.to_thread(input, prompt)
    except EOFError:
        return None


async def _collect(client: SimulatorClient, transcript: Transcript, *, expect: bool) -> None:
    """Print the bot's answer: wait for a first message (when one is expected), then until it goes quiet."""
    deadline = time.monotonic() + (FIRST_REPLY_TIMEOUT if expect else QUIET)
    got_any = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            data = await asyncio.wait_for(client.chat(wait=True), remaining)
        except TimeoutError:
            break
        if transcript.show(data["events"]):
            got_any = True
            deadline = time.monotonic() + QUIET
    if expect and not got_any:
        transcript.write("     (no reply yet)")


async def run_telegram_console(args: argparse.Namespace, *, read_line: ReadLine | None = None,
                               write: Callable[[str], None] | None = None) -> int:
    """Chat with a running engagebot as a Telegram user of its simulator; return the exit status."""
    read_line = read_line or _read_stdin
    out = write or (lambda line: print(line, flush=True))
    base_url = getattr(args, "url", None) or DEFAULT_URL
    name = getattr(args, "follower", None) or "Console User"
    language = getattr(args, "lang", None)
    interactive = read_line is _read_stdin and sys.stdin.isatty()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        client = SimulatorClient(http, base_url)
        try:
            state = await client.state()
            user_id = await client.add_user(name, language)
        except ConsoleError as exc:
            print(f"engagebot chat: {exc}", file=sys.stderr)
            return 2
        transcript = Transcript(out)
        bot = state["bot"].get("username", "bot")
        out(f"Talking to @{bot} as {name} (user {user_id}, language {language or 'none'}); :help for actions.")
        if interactive:
            out(HELP)
        while (line := await read_line("you> " if interactive else "")) is not None:
            line = line.strip()
            if not line:
                continue
            try:
                action = await _act(client, transcript, line)
            except ConsoleError as exc:
                out(f"     ({exc})")
                continue
            if action == "quit":
                break
            if action == "help":
                out(HELP)
                continue
            await _collect(client, transcript, expect=action == "sent")
    return 0


async def _act(client: SimulatorClient, transcript: Transcript, line: str) -> str:
    """Do what the line says; return "sent", "quiet" (no answer expected), "help" or "quit"."""
    if line.startswith(":"):
        word, _sep, arg = line[1:].partition(" ")
        arg = arg.strip()
        match word:
            case "quit" | "exit" | "q":
                return "quit"
            case "help" | "?":
                return "help"
            case "start":
                await client.start(arg or None)
            case "photo" | "sticker" | "voice":
                await client.media(word)
            case "block":
                await client.block(True)
                return "quiet"
            case "unblock":
                await client.block(False)
            case _:
                raise ConsoleError(f"unknown action :{word}; type :help")
        return "sent"
    if line.isdigit() and 1 <= int(line) <= len(transcript.buttons):
        message_id, data, _label = transcript.buttons[int(line) - 1]
        await client.press(message_id, data)
        return "sent"
    await client.send(line)
    return "sent"
