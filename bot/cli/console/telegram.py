"""``engagebot chat --channel telegram``: be a Telegram user of a running engagebot, in the terminal.

The console drives the in-process Telegram simulator of ``engagebot run`` through its JSON API
(``/simulator/telegram/api/...``), exactly as its web chat page does: it finds (or creates) the
user named by ``--as``, sends what you type, and prints what the bot answers. Inline buttons show
as numbered choices; type the number to press one.

After each line it waits until the bot has handled what you did and every reply to it has been
delivered (asking the bot's ``/simulator/telegram/bot/progress``, bounded by ``REPLY_TIMEOUT``),
so each reply is printed right after what caused it, before the next prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from .common import HELP as COMMON_HELP
from .common import (
    Answer,
    Console,
    ConsoleError,
    ReadLine,
    as_bot_lines,
    chat_loop,
    kept_language_note,
    print_line,
    read_stdin,
    server_url,
)

API = "/simulator/telegram/api"
PROGRESS = "/simulator/telegram/bot/progress"
REPLY_TIMEOUT = 15.0  # at most this long for the bot's answer before the prompt comes back
QUIET = 0.6  # without the bot's progress route (a simulator on its own): seconds of silence that end an answer
POLL = 0.1  # seconds between progress checks

HELP = COMMON_HELP + """
Telegram also has:
  :start [payload]   tap Start, or open the deep link t.me/<bot>?start=<payload> (as :follow / :scan)
  :photo | :sticker | :voice   send one of those
  :block | :unblock  block or unblock the bot (:unfollow blocks, :follow unblocks)"""

class SimulatorClient:
    """The simulator's chat-page API, for one user, and the bot's progress route beside it."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        self.http = http
        self.root = base_url.rstrip("/")
        self.base = self.root + API
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
                    raise ConsoleError("no Telegram simulator there (is a real platform configured?)")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise ConsoleError(f"cannot reach the simulator at {self.base}: {exc}") from None
        if not isinstance(data, dict) or not data.get("ok"):
            raise ConsoleError(str(data.get("error") if isinstance(data, dict) else data))
        return data

    async def state(self) -> dict[str, Any]:
        return await self._get("/state")

    async def use_user(self, state: dict[str, Any], name: str, language_code: str | None) -> dict[str, Any]:
        """Become the user named ``name`` (their first name), created the first time: one name, one user."""
        first_name = name[:64].strip() or "console-user"
        found = next((u for u in state.get("users", []) if u.get("first_name") == first_name), None)
        if found is None:
            data = await self._post("/users", {"first_name": first_name, "language_code": language_code or "none"})
            found = data["user"]
        self.user_id = found["id"]
        return found

    async def chat(self, *, wait: bool) -> dict[str, Any]:
        query: dict[str, Any] = {"user_id": self.user_id}
        if wait:
            query["version"] = self.version
        data = await self._get("/chat", **query)
        self.version = data["version"]
        return data

    async def send(self, text: str) -> dict[str, Any]:
        return (await self._post("/send", {"user_id": self.user_id, "text": text}))["update"]

    async def start(self, payload: str | None) -> dict[str, Any]:
        return (await self._post("/start", {"user_id": self.user_id, "payload": payload}))["update"]

    async def press(self, message_id: int, data: str) -> dict[str, Any]:
        return (await self._post("/press", {"user_id": self.user_id, "message_id": message_id,
                                            "data": data}))["update"]

    async def media(self, kind: str) -> dict[str, Any]:
        return (await self._post("/media", {"user_id": self.user_id, "kind": kind}))["update"]

    async def block(self, blocked: bool) -> dict[str, Any]:
        return (await self._post("/block", {"user_id": self.user_id, "blocked": blocked}))["update"]

    async def progress(self, update: dict[str, Any]) -> dict[str, Any] | None:
        """The bot's word on ``update``: handled yet, replies still waiting; None without the route."""
        try:
            async with self.http.post(self.root + PROGRESS, json={"update": update}) as resp:
                if resp.status == 404:
                    return None
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, ValueError) as exc:
            raise ConsoleError(f"cannot reach the bot at {self.root}: {exc}") from None
        if resp.status >= 400 or not isinstance(data, dict):
            raise ConsoleError(str(data.get("error") if isinstance(data, dict) else data))
        return data


class Transcript:
    """What the bot said, printed once each, and the choices of its latest answer."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.seen: set[int] = set()
        self.buttons: list[tuple[int, str, str]] = []  # (message_id, callback_data, label)
        self._new_answer = False

    def skip_history(self, events: list[dict[str, Any]]) -> None:
        """Do not print what an earlier run already showed; keep the choices of the bot's latest answer."""
        self.seen.update(e["seq"] for e in events)
        last_in = max((i for i, e in enumerate(events) if e.get("dir") == "in"), default=-1)
        self.begin_answer()
        for event in events[last_in + 1:]:
            if event.get("dir") == "out":
                self.render(event)  # only for its buttons

    def begin_answer(self) -> None:
        """A new answer starts: its first message replaces the choices (even with none)."""
        self._new_answer = True

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
        if self._new_answer:
            self.buttons, self._new_answer = [], False
        lines: list[str] = []
        if kind == "photo":
            lines.append(f"[photo] {event.get('caption') or ''}".rstrip())
        elif kind not in ("message", None):
            lines.append(f"[{kind}] {event.get('caption') or ''}".rstrip())
        if event.get("text"):
            lines += str(event["text"]).splitlines() or [""]
        rows = ((event.get("reply_markup") or {}).get("inline_keyboard")) or []
        for button in (b for row in rows for b in row):
            if "callback_data" in button:
                self.buttons.append((event["message_id"], button["callback_data"], button["text"]))
                lines.append(f"  [{len(self.buttons)}] {button['text']}")
            elif "url" in button:
                lines.append(f"  [link] {button['text']}: {button['url']}")
        return as_bot_lines(lines)


async def _collect(client: SimulatorClient, transcript: Transcript, update: dict[str, Any]) -> bool:
    """Print the bot's answer to ``update`` as it arrives; return once it is all delivered.

    Returns False when the bot has not finished within ``REPLY_TIMEOUT``.
    """
    transcript.begin_answer()
    deadline = time.monotonic() + REPLY_TIMEOUT
    quiet_until = time.monotonic() + REPLY_TIMEOUT
    while True:
        progress = await client.progress(update)
        if progress is None:  # no bot beside this simulator: an answer ends after a quiet spell
            if time.monotonic() >= quiet_until:
                return True
        elif progress.get("handled") and not progress.get("pending_replies"):
            transcript.show((await client.chat(wait=False))["events"])
            return True
        if time.monotonic() >= deadline:
            return False
        try:
            data = await asyncio.wait_for(client.chat(wait=True), POLL if progress is not None else QUIET)
        except TimeoutError:
            continue
        if transcript.show(data["events"]) and progress is None:
            quiet_until = time.monotonic() + QUIET


class TelegramConsole(Console):
    """A user of the Telegram simulator: what they type becomes an update, the bot's answer is printed."""

    help = HELP

    def __init__(self, client: SimulatorClient, transcript: Transcript) -> None:
        self.client = client
        self.transcript = transcript

    async def act(self, line: str) -> Answer:
        action, update = await _act(self.client, self.transcript, line)
        shown_before = len(self.transcript.seen)
        done = await _collect(self.client, self.transcript, update)
        return Answer(unfollowed=action == "unfollow", shown=len(self.transcript.seen) - shown_before, done=done)


async def run_telegram_console(args: argparse.Namespace, *, read_line: ReadLine | None = None,
                               write: Callable[[str], None] | None = None) -> int:
    """Chat with a running engagebot as a Telegram user of its simulator; return the exit status."""
    read_line = read_line or read_stdin
    out = write or print_line
    base_url = server_url(args)
    name = getattr(args, "follower", None) or "console-user"
    language = getattr(args, "lang", None)
    interactive = read_line is read_stdin and sys.stdin.isatty()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        client = SimulatorClient(http, base_url)
        transcript = Transcript(out)
        try:
            state = await client.state()
            user = await client.use_user(state, name, language)
            transcript.skip_history((await client.chat(wait=False))["events"])
        except ConsoleError as exc:
            print(f"engagebot chat: {exc}", file=sys.stderr)
            return 2
        bot = state["bot"].get("username", "bot")
        out(f"Talking to @{bot} as {user['first_name']} (user {user['id']}, language "
            f"{user.get('language_code') or 'none'}); :help for actions.")
        kept = user.get("language_code")
        if language and _tag(language) != _tag(kept):
            out(kept_language_note(user["first_name"], kept))
        await chat_loop(TelegramConsole(client, transcript), read_line=read_line, write=out,
                        interactive=interactive)
    return 0


def _tag(language: str | None) -> str:
    return (language or "none").replace("_", "-").lower()


async def _act(client: SimulatorClient, transcript: Transcript, line: str) -> tuple[str, dict[str, Any]]:
    """Do what the line says; return (what it was: "sent" or "unfollow", the update it made).

    ``:help`` and ``:quit`` never come here: the console's loop answers them.
    """
    if line.startswith(":"):
        word, _sep, arg = line[1:].partition(" ")
        arg = arg.strip()
        match word:
            case "start" | "follow" | "scan":
                if word == "scan" and not arg:
                    raise ConsoleError("usage: :scan SCENE")
                if word == "follow" and (await client.chat(wait=False))["user"].get("blocked"):
                    await client.block(False)  # following again: unblock, then Start (like Telegram's Restart)
                return "sent", await client.start(arg or None)
            case "click":
                match = next((b for b in transcript.buttons if b[1] == arg), None)
                if match is None:
                    raise ConsoleError(f"the bot's latest answer has no button with the key {arg!r}")
                return "sent", await client.press(match[0], match[1])
            case "photo" | "sticker" | "voice":
                return "sent", await client.media(word)
            case "block" | "unfollow":
                return "unfollow", await client.block(True)
            case "unblock":
                return "sent", await client.block(False)
            case _:
                raise ConsoleError(f"unknown action :{word}; type :help")
    if line.isdigit() and 1 <= int(line) <= len(transcript.buttons):
        message_id, data, _label = transcript.buttons[int(line) - 1]
        return "sent", await client.press(message_id, data)
    return "sent", await client.send(line)
