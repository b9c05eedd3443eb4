"""The simulated Telegram world: users, chats, messages, files and the update queue.

Everything here is plain data plus the "user did something" injectors (``send_text``, ``press_button``,
``block``...). The Bot API methods live in ``methods.py``, HTTP in ``server.py``.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..records import RecordKeeper
from .formatting import utf16_len

DEFAULT_UPDATE_TYPES = {
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages", "inline_query",
    "chosen_inline_result", "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media",
    "poll", "poll_answer", "my_chat_member", "chat_join_request", "chat_boost", "removed_chat_boost",
}  # Telegram's default leaves out chat_member, message_reaction, message_reaction_count
# Where each id sequence starts; a restored world continues from where it stopped.
FIRST_IDS = {"update": 100_000_001, "user": 700_000_001, "group": 1_000_000_001, "file": 1,
             "callback": 4_000_000_000_000_001}
# After a restore from a snapshot that was not saved at a clean stop (a crash), ids skip this far
# ahead, so nothing the bot saw before the crash is reused (it would drop it as a duplicate).
CRASH_ID_GAP = 10_000
MAX_FILE_BYTES = 2 * 1024 * 1024  # one stored file (an upload the bot sent, a user's photo)
MAX_FILES = 200  # stored files; past it the oldest are dropped
MAX_FILES_BYTES = 32 * 1024 * 1024  # all stored files together; past it the oldest are dropped
DEEP_LINK_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?")


class Notifier:
    """Wakes every waiter on ``notify()``; waiters re-check their own condition."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait([fut], timeout=timeout)
        finally:
            if fut in self._waiters:
                self._waiters.remove(fut)

    async def wait_until(self, predicate: Callable[[], Any], timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("condition not met in time")
            await self.wait(remaining)


@dataclass
class SimUser:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"
    blocked: bool = False  # the user blocked the bot
    started: bool = False  # the user has opened the chat (the bot may write to them)

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "first_name": self.first_name, "last_name": self.last_name,
                "username": self.username, "language_code": self.language_code, "blocked": self.blocked,
                "started": self.started}

    def as_user(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


@dataclass
class SimChat:
    id: int
    type: str  # private | group
    title: str | None = None
    user: SimUser | None = None
    next_message_id: int = 1
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)  # what the bot sent, in order
    timeline: list[dict[str, Any]] = field(default_factory=list)  # in and out, for the page
    reply_keyboard: dict[str, Any] | None = None
    last_action: tuple[str, float] | None = None  # (sendChatAction action, monotonic)

    def as_chat(self) -> dict[str, Any]:
        if self.user is not None:
            data = {"id": self.id, "type": "private"}
            data.update({k: v for k, v in self.user.as_user().items() if k in ("first_name", "last_name", "username")})
            return data
        return {"id": self.id, "type": self.type, "title": self.title or "Group"}

    def new_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "title": self.title,
                "user_id": self.user.id if self.user is not None else None,
                "next_message_id": self.next_message_id, "messages": list(self.messages.values()),
                "sent": self.sent, "timeline": self.timeline, "reply_keyboard": self.reply_keyboard}


@dataclass
class SimFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str

    def record(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "file_unique_id": self.file_unique_id, "file_path": self.file_path,
                "mime_type": self.mime_type, "data": base64.b64encode(self.data).decode("ascii")}


def tiny_png(rgb: tuple[int, int, int] = (0x2A, 0xAB, 0xEE), size: int = 8) -> bytes:
    """A valid ``size`` x ``size`` one-colour PNG, made without any image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def random_bot_token(bot_id: int = 123456) -> str:
    """A bot token shaped like BotFather's (``<bot id>:<35 characters>``), the secret part random."""
    return f"{bot_id}:{secrets.token_urlsafe(27)[:35]}"


class SimState(RecordKeeper):
    """Users, chats and the update queue. Mixed into ``TelegramBotAPISimulator``.

    Everything a restart must not forget can leave and come back as records: ``take_changes()``
    gives what changed since the last call, ``restore()`` rebuilds the world from all of them.
    """

    def __init__(self, *, token: str, bot_username: str, bot_id: int | None, clock: Callable[[], float] | None,
                 bot_first_name: str) -> None:
        self.token = token
        self.bot_username = bot_username
        if bot_id is None:
            prefix = token.split(":", 1)[0]
            bot_id = int(prefix) if prefix.isdigit() else 1000
        self.bot_id = bot_id
        self.bot_first_name = bot_first_name
        self.clock: Callable[[], float] = clock or time.time
        self.users: dict[int, SimUser] = {}
        self.chats: dict[int, SimChat] = {}
        self.files: dict[str, SimFile] = {}
        self.updates: list[dict[str, Any]] = []  # pending: not yet confirmed / delivered
        self.dropped_updates: list[dict[str, Any]] = []  # filtered out by allowed_updates
        self.allowed_updates: set[str] = set(DEFAULT_UPDATE_TYPES)
        self.callback_queries: dict[str, dict[str, Any]] = {}
        self.answered_callbacks: list[str] = []
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}  # (scope json, language) -> list
        self.menu_buttons: dict[int | None, dict[str, Any]] = {}  # chat id (None: the default) -> MenuButton
        self.version = 0  # bumps on every change the page could show
        self.max_file_bytes = MAX_FILE_BYTES
        self.max_files = MAX_FILES
        self.max_files_bytes = MAX_FILES_BYTES
        self._next_ids = dict(FIRST_IDS)
        self._changed = Notifier()
        self._init_records()

    def _next_id(self, kind: str) -> int:
        value = self._next_ids[kind]
        self._next_ids[kind] = value + 1
        return value

    # -- records: what a restart must not forget ---------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"next_ids": dict(self._next_ids), "updates": list(self.updates)}

    def _record_of(self, kind: str, key: str) -> dict[str, Any] | None:
        """Kinds: ``user``, ``chat`` (its messages and timeline), ``file``; ``meta`` holds the id
        counters and the updates the bot has not confirmed yet."""
        if kind == "file":
            found: Any = self.files.get(key)
        else:
            found = (self.users if kind == "user" else self.chats).get(int(key))
        return found.record() if found is not None else None

    def restore(self, records: list[tuple[str, str, dict[str, Any]]], *, after_crash: bool = False) -> None:
        """Rebuild users, chats, files, ids and pending updates from ``records`` (see take_changes).

        ``after_crash``: the records may lag behind what the bot saw, so ids skip ahead.
        """
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for kind, _key, data in records:
            by_kind.setdefault(kind, []).append(data)
        for data in by_kind.get("user", []):
            self.users[data["id"]] = SimUser(**data)
        for data in sorted(by_kind.get("file", []), key=lambda d: d["file_path"]):
            self.files[data["file_id"]] = SimFile(data["file_id"], data["file_unique_id"],
                                                  base64.b64decode(data["data"]), data["file_path"], data["mime_type"])
        gap = CRASH_ID_GAP if after_crash else 0
        for data in by_kind.get("chat", []):
            user = self.users.get(data["user_id"]) if data["user_id"] is not None else None
            self.chats[data["id"]] = SimChat(
                data["id"], data["type"], title=data["title"], user=user,
                next_message_id=data["next_message_id"] + gap,
                messages={m["message_id"]: m for m in data["messages"]}, sent=data["sent"],
                timeline=data["timeline"], reply_keyboard=data["reply_keyboard"])
        for data in by_kind.get("meta", []):
            for kind, value in data.get("next_ids", {}).items():
                if kind in self._next_ids:
                    self._next_ids[kind] = max(self._next_ids[kind], int(value) + gap)
            self.updates[:] = data.get("updates", [])
        self._saved_meta = self._meta() if not gap else None
        self._touch()

    # -- bookkeeping -------------------------------------------------------------------------------------
    @property
    def bot_user(self) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.bot_first_name, "username": self.bot_username}

    def _now(self) -> int:
        return int(self.clock())

    def _touch(self) -> None:
        self.version += 1
        self._changed.notify()

    def _event(self, chat: SimChat, direction: str, kind: str, **data: Any) -> dict[str, Any]:
        event = {"seq": len(chat.timeline) + 1, "dir": direction, "kind": kind, "date": self._now(), **data}
        chat.timeline.append(event)
        self._mark("chat", chat.id)
        return event

    def _push_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": self._next_id("update"), kind: payload}
        if kind in self.allowed_updates:
            self.updates.append(update)
        else:
            self.dropped_updates.append(update)
        self._touch()
        return update

    def add_file(self, data: bytes, *, kind: str, mime_type: str, extension: str) -> SimFile:
        """Store a file; past ``max_files`` files or ``max_files_bytes`` in all, the oldest are dropped."""
        if len(data) > self.max_file_bytes:
            raise ValueError(f"file is too big: {len(data)} bytes, at most {self.max_file_bytes}")
        if not re.fullmatch(r"[A-Za-z0-9]{1,8}", extension):
            extension = "bin"
        n = self._next_id("file")
        file_id = f"SIM{kind.upper()}{n:06d}-{self.bot_id}"
        sim_file = SimFile(file_id, f"U{n:06d}", data, f"{kind}s/file_{n}.{extension}", mime_type)
        self.files[file_id] = sim_file
        self._mark("file", file_id)
        total = sum(len(f.data) for f in self.files.values())
        while len(self.files) > self.max_files or total > self.max_files_bytes:
            oldest = next(iter(self.files))
            total -= len(self.files.pop(oldest).data)
            self._mark("file", oldest)
        return sim_file

    def photo_sizes(self, sim_file: SimFile | None, width: int = 8, height: int = 8) -> list[dict[str, Any]]:
        if sim_file is None:
            sim_file = self.add_file(tiny_png(), kind="photo", mime_type="image/png", extension="png")
        return [{"file_id": sim_file.file_id, "file_unique_id": sim_file.file_unique_id,
                 "width": width, "height": height, "file_size": len(sim_file.data)}]

    # -- people and chats --------------------------------------------------------------------------------
    def add_user(self, user_id: int | None = None, *, first_name: str = "Test User", last_name: str | None = None,
                 language_code: str | None = "en", username: str | None = None, started: bool = False) -> int:
        """A Telegram user; their private chat has the same id. ``started``: may the bot write first?"""
        if user_id is None:
            user_id = self._next_id("user")
            while user_id in self.users:
                user_id = self._next_id("user")
        if not isinstance(user_id, int) or user_id <= 0:
            raise ValueError("user_id must be a positive int")
        if language_code is not None and not LANGUAGE_TAG.fullmatch(language_code):
            raise ValueError(f"bad language_code {language_code!r}")
        user = SimUser(user_id, first_name, last_name, username, language_code, started=started)
        self.users[user_id] = user
        self.chats[user_id] = SimChat(user_id, "private", user=user)
        self._mark("user", user_id)
        self._mark("chat", user_id)
        self._touch()
        return user_id

    def add_group(self, *, title: str = "Test Group") -> int:
        """A group chat the bot is a member of (negative id), for the 20 messages/min limit."""
        chat_id = -self._next_id("group")
        self.chats[chat_id] = SimChat(chat_id, "group", title=title)
        self._mark("chat", chat_id)
        self._touch()
        return chat_id

    def user(self, user_id: int) -> SimUser:
        try:
            return self.users[user_id]
        except KeyError:
            raise ValueError(f"unknown user {user_id}; call add_user() first") from None

    def chat(self, chat_id: int) -> SimChat:
        try:
            return self.chats[chat_id]
        except KeyError:
            raise ValueError(f"unknown chat {chat_id}") from None

    # -- what a user does --------------------------------------------------------------------------------
    def _user_message(self, user_id: int, content: dict[str, Any], *, kind: str, chat_id: int | None = None,
                      **event: Any) -> dict[str, Any]:
        user = self.user(user_id)
        if user.blocked and chat_id is None:
            self.unblock(user_id)  # like Telegram's "Restart" button
        if not user.started:
            user.started = True
            self._mark("user", user_id)
        chat = self.chat(user_id if chat_id is None else chat_id)
        message = {"message_id": chat.new_message_id(), "from": user.as_user(), "chat": chat.as_chat(),
                   "date": self._now(), **content}
        chat.messages[message["message_id"]] = message
        self._event(chat, "in", kind, message_id=message["message_id"], user_id=user_id, **event)
        return self._push_update("message", message)

    def send_text(self, user_id: int, text: str, *, chat_id: int | None = None) -> dict[str, Any]:
        """The user sends ``text``; a leading ``/command`` gets its ``bot_command`` entity."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
        content: dict[str, Any] = {"text": text}
        first = text.split(maxsplit=1)[0]
        if _COMMAND.fullmatch(first):
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(first)}]
        return self._user_message(user_id, content, kind="text", chat_id=chat_id, text=text)

    def start(self, user_id: int, payload: str | None = None) -> dict[str, Any]:
        """The user taps Start, or opens ``t.me/<bot>?start=<payload>``."""
        if payload is not None and not DEEP_LINK_PAYLOAD.fullmatch(payload):
            raise ValueError("a deep-link payload is 1..64 characters of [A-Za-z0-9_-]")
        return self.send_text(user_id, "/start" if payload is None else f"/start {payload}")

    def send_photo(self, user_id: int, caption: str | None = None, *, data: bytes | None = None) -> dict[str, Any]:
        sim_file = self.add_file(data or tiny_png((0xE9, 0x6C, 0x4C)), kind="photo", mime_type="image/png",
                                 extension="png")
        content: dict[str, Any] = {"photo": self.photo_sizes(sim_file)}
        if caption:
            content["caption"] = caption
        return self._user_message(user_id, content, kind="photo", file_id=sim_file.file_id, caption=caption)

    def send_location(self, user_id: int, latitude: float, longitude: float) -> dict[str, Any]:
        """The user shares a location (the attachment menu, or a keyboard's request_location button)."""
        if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
            raise ValueError("latitude within ±90 and longitude within ±180")
        chat = self.chat(user_id)
        if chat.reply_keyboard and chat.reply_keyboard.get("one_time_keyboard"):
            chat.reply_keyboard = None  # a one-time keyboard goes away once used
        return self._user_message(user_id, {"location": {"latitude": latitude, "longitude": longitude}},
                                  kind="location", latitude=latitude, longitude=longitude)

    def send_sticker(self, user_id: int, emoji: str = "\U0001F44D") -> dict[str, Any]:
        sim_file = self.add_file(tiny_png((0xFF, 0xC1, 0x07)), kind="sticker", mime_type="image/webp",
                                 extension="webp")
        sticker = {"file_id": sim_file.file_id, "file_unique_id": sim_file.file_unique_id, "type": "regular",
                   "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": emoji,
                   "file_size": len(sim_file.data)}
        return self._user_message(user_id, {"sticker": sticker}, kind="sticker", text=emoji)

    def send_voice(self, user_id: int, duration: int = 2) -> dict[str, Any]:
        sim_file = self.add_file(b"OggS" + bytes(60), kind="voice", mime_type="audio/ogg", extension="oga")
        voice = {"file_id": sim_file.file_id, "file_unique_id": sim_file.file_unique_id, "duration": duration,
                 "mime_type": "audio/ogg", "file_size": len(sim_file.data)}
        return self._user_message(user_id, {"voice": voice}, kind="voice", duration=duration)

    def edit_text(self, user_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The user edits a text message they sent: an ``edited_message`` update with the new text."""
        chat = self.chat(user_id)
        message = chat.messages.get(message_id)
        if message is None or message.get("from", {}).get("id") != user_id or "text" not in message:
            raise ValueError(f"no text message {message_id} of user {user_id} in their chat")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
        message.update(text=text, edit_date=self._now())
        self._event(chat, "in", "edit", message_id=message_id, user_id=user_id, text=text)
        return self._push_update("edited_message", dict(message))

    def pin(self, user_id: int, message_id: int) -> dict[str, Any]:
        """The user pins a message of their chat: a service message (``pinned_message``) from them."""
        user = self.user(user_id)
        chat = self.chat(user_id)
        pinned = chat.messages.get(message_id)
        if pinned is None:
            raise ValueError(f"no message {message_id} in chat {user_id}")
        service = {"message_id": chat.new_message_id(), "from": user.as_user(), "chat": chat.as_chat(),
                   "date": self._now(), "pinned_message": pinned}
        chat.messages[service["message_id"]] = service
        self._event(chat, "in", "pin", message_id=message_id, user_id=user_id)
        return self._push_update("message", service)

    def add_bot_to_group(self, user_id: int, group_id: int, title: str = "Fans group") -> dict[str, Any]:
        """The user adds the bot to a group (``group_id`` negative): ``my_chat_member`` in that group."""
        if not isinstance(group_id, int) or group_id >= 0:
            raise ValueError("a group's id is a negative int")
        user = self.user(user_id)
        payload = {"chat": {"id": group_id, "type": "group", "title": title}, "from": user.as_user(),
                   "date": self._now(), "old_chat_member": {"user": self.bot_user, "status": "left"},
                   "new_chat_member": {"user": self.bot_user, "status": "member"}}
        return self._push_update("my_chat_member", payload)

    def press_button(self, user_id: int, message_id: int, callback_data: str, *, check: bool = True) -> dict[str, Any]:
        """The user taps an inline button under the bot's message ``message_id`` in their private chat.

        With ``check`` the message must exist and carry a button with that ``callback_data``.
        """
        user = self.user(user_id)
        chat = self.chat(user_id)
        message = chat.messages.get(message_id)
        if check:
            if message is None or message.get("from", {}).get("id") != self.bot_id:
                raise ValueError(f"no bot message {message_id} in chat {user_id}")
            rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            if not any(b.get("callback_data") == callback_data for row in rows for b in row):
                raise ValueError(f"message {message_id} has no button with callback_data {callback_data!r}")
        query_id = str(self._next_id("callback"))
        query: dict[str, Any] = {"id": query_id, "from": user.as_user(), "chat_instance": f"-{abs(hash((self.bot_id, chat.id))) % 10**18}",
                                 "data": callback_data}
        if message is not None:
            query["message"] = message
        self.callback_queries[query_id] = {"user_id": user_id, "message_id": message_id, "data": callback_data,
                                           "answered": False, "answer": None, "at": time.monotonic()}
        self._event(chat, "in", "press", message_id=message_id, data=callback_data, query_id=query_id, user_id=user_id)
        return self._push_update("callback_query", query)

    def _member_update(self, user_id: int, old: str, new: str) -> dict[str, Any]:
        user = self.user(user_id)
        chat = self.chat(user_id)
        def member(status: str) -> dict[str, Any]:
            data: dict[str, Any] = {"user": self.bot_user, "status": status}
            if status == "kicked":
                data["until_date"] = 0
            return data
        payload = {"chat": chat.as_chat(), "from": user.as_user(), "date": self._now(),
                   "old_chat_member": member(old), "new_chat_member": member(new)}
        self._event(chat, "in", "blocked" if new == "kicked" else "unblocked", user_id=user_id)
        return self._push_update("my_chat_member", payload)

    def block(self, user_id: int) -> dict[str, Any]:
        """The user blocks the bot: ``my_chat_member`` member -> kicked; sends to them get 403."""
        user = self.user(user_id)
        if user.blocked:
            raise ValueError(f"user {user_id} already blocked the bot")
        user.blocked = True
        self._mark("user", user_id)
        return self._member_update(user_id, "member", "kicked")

    def unblock(self, user_id: int) -> dict[str, Any]:
        user = self.user(user_id)
        if not user.blocked:
            raise ValueError(f"user {user_id} has not blocked the bot")
        user.blocked = False
        self._mark("user", user_id)
        return self._member_update(user_id, "kicked", "member")

    # -- what the tests read -----------------------------------------------------------------------------
    def sent(self, chat_id: int) -> list[dict[str, Any]]:
        """Messages the bot sent to ``chat_id`` (edits applied), oldest first."""
        chat = self.chats.get(chat_id)
        return list(chat.sent) if chat else []

    def timeline(self, chat_id: int) -> list[dict[str, Any]]:
        chat = self.chats.get(chat_id)
        return list(chat.timeline) if chat else []

    def menu_button_for(self, chat_id: int) -> dict[str, Any]:
        """The menu button this private chat shows: its own, else the bot's default, else the command list."""
        return dict(self.menu_buttons.get(chat_id) or self.menu_buttons.get(None) or {"type": "commands"})

    def get_commands(self, language_code: str = "", scope: dict[str, Any] | None = None) -> list[dict[str, str]]:
        from .params import scope_key  # local: methods imports this module
        return list(self.commands.get((scope_key(scope), language_code), []))

    async def wait_for_messages(self, chat_id: int, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        """Wait until the bot has sent at least ``count`` messages to ``chat_id``; returns them all."""
        await self._changed.wait_until(lambda: len(self.sent(chat_id)) >= count, timeout)
        return self.sent(chat_id)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every change); returns its value."""
        return await self._changed.wait_until(predicate, timeout)
