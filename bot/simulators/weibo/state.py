"""The simulated Weibo account: fans, their DM timelines and windows, posts, comments, QR scenes.

Everything a restart must not forget leaves as records through ``take_changes()`` (kinds ``fan``,
``post``, ``comment``, ``scene``; ``meta`` holds the id counter, broadcasts and the token state) and
comes back through ``restore()``.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from ..clock import ManualClock
from ..records import RecordKeeper, media_from_record, media_record
from .protocol import created_at

__all__ = ["Comment", "Fan", "ManualClock", "Post", "PushResult", "Scene", "SimulatorError", "WeiboState",
           "WEIBO_ERROR_TEXT"]

WINDOW = 48 * 3600
CRASH_ID_GAP = 1_000_000  # ids skipped after an unclean stop: nothing the bot stored is reused
SCENE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the fan sees when the bot did not answer a push (the platform's own words).
WEIBO_ERROR_TEXT = "该服务暂时无法提供服务，请稍后再试 (the service is unavailable, try again later)"
LANGUAGES = ("zh_Hans", "zh_Hant", "en")


class SimulatorError(Exception):
    """An action the platform would not allow (follow twice, unknown fan, no callback URL)."""


@dataclass
class Fan:
    """A Weibo user who talks with the brand."""

    uid: int
    screen_name: str
    language: str | None = "zh_Hans"  # what the page shows them in; not sent to the bot
    following: bool = False
    ever_followed: bool = False
    unfollowed: bool = False  # unfollowed and has not acted since: no active reply at all
    window_until: float = 0.0  # DM window: unlimited replies until then
    mention_until: float = 0.0  # after an @mention: `mention_left` replies until then
    mention_left: int = 0
    groups: list[int] = field(default_factory=list)
    last_push_at: int = 0  # created_at (unix seconds) of the fan's latest push: the next one is later
    timeline: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0  # timeline length when the fan last acted; see wait_for_reply

    def public(self) -> dict[str, Any]:
        return {"uid": self.uid, "idstr": str(self.uid), "screen_name": self.screen_name, "language": self.language,
                "following": self.following, "messages": len(self.timeline)}


@dataclass
class Post:
    """A status: one of the brand's posts, or a fan's own post (which may @mention the brand)."""

    id: int
    uid: int
    text: str
    at: float


@dataclass
class Comment:
    """A public comment under a post; ``reply_to`` the comment it answers (comments/reply.json)."""

    id: int
    post_id: int
    uid: int
    text: str
    at: float
    reply_to: int | None = None


@dataclass
class Scene:
    """A campaign QR: scanning it pushes scan / scan_follow with ``key`` in data.key."""

    key: str
    ticket: str
    url: str
    expires_at: float | None = None

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass
class PushResult:
    """What the bot answered to one push: the passive reply (``{"type", "text"|"articles"}``) or why not."""

    action: str
    status: int | None = None
    body: bytes = b""
    reply: dict[str, Any] | None = None
    acknowledged: bool = False  # an empty body: the bot took it and will answer later, if at all
    error: str | None = None
    attempts: int = 0
    latency: float = 0.0
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "status": self.status, "reply": self.reply, "acknowledged": self.acknowledged,
                "error": self.error, "attempts": self.attempts, "latency": round(self.latency, 4)}


class WeiboState(RecordKeeper):
    """Configuration and state shared by the API, push and page parts of the simulator.

    Args:
        app_key, app_secret: the fan-service app; the secret signs every push.
        access_token: the one token the API accepts (``expire_token()`` makes it answer 21327).
        brand_uid, brand_name: the brand's account (``@brand_name`` in a post is a mention).
        callback_url: the bot's push URL; may be set later through the attribute.
        callback_timeout, retries: the deadline per try and the number of tries in all.
        window: seconds of the DM window after the fan acted, and of the one-reply window after a mention.
        reply_after_unfollow: the configurable rule; False (the platform's): none after unfollow.
        push_mentions: the `mention` event is granted (pushed when a fan @mentions the brand).
        max_dm_chars, max_comment_chars: 300 and 140.
        max_image_bytes: the largest image ``/2/mss/upload.json`` accepts (10 MB, like WeChat's).
        repeat_window: seconds within which the same brand comment text on the same post is 20019.
        sendall_review: "never", "always" (held for review until ``review()``); sendall_delay: seconds.
        hourly_limits: {API path: calls per hour} beyond which the API answers 10024.
        clock: unix seconds; pass a ManualClock to move time in tests.
    """

    def __init__(
        self,
        *,
        app_key: str,
        app_secret: str,
        access_token: str,
        brand_uid: int = 5_000_000_001,
        brand_name: str = "engagebot_brand",
        callback_url: str | None = None,
        callback_timeout: float = 5.0,
        retries: int = 3,
        window: float = WINDOW,
        reply_after_unfollow: bool = False,
        push_mentions: bool = True,
        max_dm_chars: int = 300,
        max_comment_chars: int = 140,
        repeat_window: float | None = 600.0,
        sendall_review: str = "never",
        sendall_delay: float = 0.05,
        hourly_limits: dict[str, int] | None = None,
        max_image_bytes: int = 10 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if retries < 1:
            raise ValueError("retries counts all tries and must be at least 1")
        if sendall_review not in ("never", "always"):
            raise ValueError("sendall_review must be never or always")
        self.app_key = app_key
        self.max_image_bytes = max_image_bytes
        # Uploaded images: tovfid -> {"data", "mime"} (kept as records across restarts).
        self.media: dict[str, dict[str, Any]] = {}
        self.media_uploads = 0
        self.app_secret = app_secret
        self.access_token = access_token
        self.brand_uid = brand_uid
        self.brand_name = brand_name
        self.callback_url = callback_url
        self.callback_timeout = callback_timeout
        self.retries = retries
        self.window = window
        self.reply_after_unfollow = reply_after_unfollow
        self.push_mentions = push_mentions
        self.max_dm_chars = max_dm_chars
        self.max_comment_chars = max_comment_chars
        self.repeat_window = repeat_window
        self.sendall_review = sendall_review
        self.sendall_delay = sendall_delay
        self.hourly_limits = dict(hourly_limits or {})
        self.clock = clock
        self.fan_menu: dict[str, Any] | None = None  # {"button": [...]} as menu/create.json took it
        self.fans: dict[int, Fan] = {}
        self.posts: dict[int, Post] = {}
        self.comments: dict[int, Comment] = {}
        self.scenes: dict[str, Scene] = {}
        self.broadcasts: list[dict[str, Any]] = []
        self.token_expired = False
        self.api_calls: list[tuple[float, str]] = []  # (at, path) of accepted calls, for hourly_limits
        self._injected: dict[str, list[int]] = {}  # path or "*" -> error codes to answer next
        self._next_id = 4_900_000_000_000_000 + secrets.randbelow(10**14)
        self._waiters: set[asyncio.Event] = set()
        self._tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None
        self._init_records()
        if not self.posts:
            self.brand_post("欢迎来到品牌主页！评论告诉我们你想要的优惠。 Welcome! Tell us in a comment which offer you want.")

    @property
    def menu(self) -> list[dict[str, str]]:
        """The menu's buttons a fan can tap ({name, key} or {name, url}), sub-menus flattened."""
        out: list[dict[str, str]] = []
        for button in (self.fan_menu or {}).get("button", []):
            for item in button.get("sub_button") or [button]:
                out.append({k: item[k] for k in ("name", "key", "url") if k in item})
        return out

    # -- records -----------------------------------------------------------------------------------
    def _meta(self) -> dict[str, Any]:
        return {"next_id": self._next_id, "token_expired": self.token_expired,
                "broadcasts": [dict(job) for job in self.broadcasts], "menu": self.fan_menu}

    def _record_of(self, kind: str, key: str) -> dict[str, Any] | None:
        if kind == "media":
            return media_record(self.media.get(key))
        table: dict[Any, Any] = {"fan": self.fans, "post": self.posts, "comment": self.comments}.get(kind, self.scenes)
        found = table.get(key if kind == "scene" else int(key))
        return asdict(found) if found is not None else None

    def restore(self, records: list[tuple[str, str, dict[str, Any]]], *, after_crash: bool = False) -> None:
        """Rebuild fans, posts, comments, scenes and counters from ``records`` (see take_changes).

        Broadcasts accepted but not yet delivered when the records were saved are delivered now.
        """
        pending: list[dict[str, Any]] = []
        restored_posts = False
        for kind, _key, data in records:
            if data is None:
                continue
            if kind == "fan":
                self.fans[int(data["uid"])] = Fan(**data)
            elif kind == "post":
                if not restored_posts:  # the restored posts replace the welcome post made at construction
                    self.posts.clear()
                    restored_posts = True
                self.posts[int(data["id"])] = Post(**data)
            elif kind == "comment":
                self.comments[int(data["id"])] = Comment(**data)
            elif kind == "scene":
                self.scenes[data["key"]] = Scene(**data)
            elif kind == "media":
                self.media[_key] = media_from_record(data)
            elif kind == "meta":
                gap = CRASH_ID_GAP if after_crash else 0
                self._next_id = max(self._next_id, int(data["next_id"]) + gap)
                self.token_expired = bool(data.get("token_expired", False))
                self.broadcasts = [dict(job) for job in data.get("broadcasts", [])]
                self.fan_menu = data.get("menu")
                pending = [job for job in self.broadcasts if job["status"] == "queued"]
        self._dirty.clear()
        if not restored_posts:  # a first start: the welcome post made at construction is new
            for post_id in self.posts:
                self._mark("post", post_id)
        self._saved_meta = self._meta()
        for job in pending:
            self._schedule_broadcast(job)

    def _schedule_broadcast(self, job: dict[str, Any]) -> None:
        raise NotImplementedError  # the platform API part delivers broadcasts

    # -- ids, fans, timelines ------------------------------------------------------------------------
    def _new_id(self) -> int:
        self._next_id += 1 + secrets.randbelow(7)
        return self._next_id

    def add_fan(self, uid: int | None = None, *, screen_name: str | None = None, language: str | None = "zh_Hans",
                following: bool = False, groups: list[int] | None = None) -> int:
        """Create a Weibo user; ``following=True`` makes them a follower without a push."""
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES} or None")
        uid = uid if uid is not None else 1_000_000_000 + secrets.randbelow(8_999_999_999)
        if uid in self.fans or uid == self.brand_uid:
            raise SimulatorError(f"user {uid} already exists")
        fan = Fan(uid=uid, screen_name=screen_name or f"粉丝{len(self.fans) + 1}", language=language,
                  groups=list(groups or []))
        self.fans[uid] = fan
        self._mark("fan", uid)
        if following:
            fan.following = fan.ever_followed = True
        return uid

    def fan(self, uid: int | str) -> Fan:
        try:
            return self.fans[int(uid)]
        except (KeyError, ValueError):
            raise SimulatorError(f"unknown fan {uid}") from None

    def timeline(self, uid: int) -> list[dict[str, Any]]:
        """Everything the fan's DM conversation shows, oldest first."""
        return list(self.fan(uid).timeline)

    def replies(self, uid: int) -> list[dict[str, Any]]:
        """What the fan received: passive and active replies, broadcasts, the platform's error notes."""
        return [e for e in self.fan(uid).timeline if e["direction"] == "out"]

    def _record(self, fan: Fan, direction: str, source: str, type_: str, **data: Any) -> dict[str, Any]:
        entry = {"seq": len(fan.timeline), "direction": direction, "source": source, "type": type_,
                 "at": self.clock(), **data}
        fan.timeline.append(entry)
        self._mark("fan", fan.uid)
        self._wake()
        return entry

    def _wake(self) -> None:
        for event in self._waiters:
            event.set()

    async def _wait(self, ready: Callable[[], Any], timeout: float, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = ready()
            if found:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(what)
            event = asyncio.Event()
            self._waiters.add(event)
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(event)

    async def wait_for_reply(self, uid: int, *, count: int = 1, timeout: float = 10,
                             sources: tuple[str, ...] = ("active", "broadcast")) -> list[dict[str, Any]]:
        """Wait until ``count`` messages from ``sources`` reached the fan since their last action."""
        fan = self.fan(uid)

        def ready() -> list[dict[str, Any]]:
            found = [e for e in fan.timeline[fan.cursor:] if e["direction"] == "out" and e["source"] in sources]
            return found[:count] if len(found) >= count else []

        return await self._wait(ready, timeout, f"fewer than {count} replies to {uid} after {timeout}s")

    # -- windows -------------------------------------------------------------------------------------
    def _acted(self, fan: Fan) -> None:
        """The fan did something (message, follow, scan, click...): the 48 h DM window opens again."""
        fan.window_until = self.clock() + self.window
        fan.unfollowed = False
        fan.cursor = len(fan.timeline)
        self._mark("fan", fan.uid)

    def _mentioned(self, fan: Fan) -> None:
        """A public @mention: one reply within 48 h (unless the DM window allows more)."""
        fan.mention_until = self.clock() + self.window
        fan.mention_left = 1
        fan.unfollowed = False
        fan.cursor = len(fan.timeline)
        self._mark("fan", fan.uid)

    def refusal(self, fan: Fan) -> tuple[int, str] | None:
        """Why an active reply to ``fan`` now would be refused (error code, message), or None."""
        now = self.clock()
        if fan.unfollowed and not self.reply_after_unfollow:
            return 21608, "the fan has unfollowed the account: no reply until they act again"
        if now < fan.window_until:
            return None
        if now < fan.mention_until and fan.mention_left > 0:
            return None
        if now < fan.mention_until:
            return 21607, "the one reply allowed within 48 hours after an @mention is used"
        return 21606, "the fan has not interacted with the account within 48 hours"

    def _spend_reply(self, fan: Fan) -> None:
        if self.clock() >= fan.window_until:
            fan.mention_left -= 1
            self._mark("fan", fan.uid)

    # -- public posts and comments --------------------------------------------------------------------
    def brand_post(self, text: str) -> int:
        """The brand publishes a post; fans can comment under it."""
        post = Post(id=self._new_id(), uid=self.brand_uid, text=text, at=self.clock())
        self.posts[post.id] = post
        self._mark("post", post.id)
        self._wake()
        return post.id

    def user_json(self, uid: int) -> dict[str, Any]:
        if uid == self.brand_uid:
            return {"id": uid, "idstr": str(uid), "screen_name": self.brand_name}
        fan = self.fans.get(uid)
        return {"id": uid, "idstr": str(uid), "screen_name": fan.screen_name if fan else str(uid)}

    def status_json(self, post: Post) -> dict[str, Any]:
        return {"id": post.id, "idstr": str(post.id), "mid": str(post.id), "text": post.text,
                "created_at": created_at(post.at), "user": self.user_json(post.uid)}

    def comment_json(self, comment: Comment) -> dict[str, Any]:
        post = self.posts[comment.post_id]
        out = {"id": comment.id, "idstr": str(comment.id), "mid": str(comment.id), "text": comment.text,
               "created_at": created_at(comment.at), "user": self.user_json(comment.uid),
               "status": self.status_json(post)}
        if comment.reply_to is not None and comment.reply_to in self.comments:
            replied = self.comments[comment.reply_to]
            out["reply_comment"] = {"id": replied.id, "idstr": str(replied.id), "text": replied.text,
                                    "created_at": created_at(replied.at), "user": self.user_json(replied.uid)}
        return out

    def mentions_brand(self, text: str) -> bool:
        return re.search(rf"@{re.escape(self.brand_name)}(?![\w-])", text) is not None

    def thread(self, post_id: int) -> list[dict[str, Any]]:
        """The public comments under a post, oldest first (what everyone sees)."""
        return [self.comment_json(c) for c in sorted(self.comments.values(), key=lambda c: c.id)
                if c.post_id == post_id]

    def brand_comments(self) -> list[Comment]:
        return sorted((c for c in self.comments.values() if c.uid == self.brand_uid), key=lambda c: c.id)

    async def wait_for_brand_comments(self, count: int = 1, *, timeout: float = 10) -> list[Comment]:
        """Wait until the brand has written ``count`` public comments in all."""
        def ready() -> list[Comment]:
            found = self.brand_comments()
            return found if len(found) >= count else []

        return await self._wait(ready, timeout, f"fewer than {count} brand comments after {timeout}s")

    # -- tokens and injected errors -------------------------------------------------------------------
    def expire_token(self) -> None:
        """The access token expires: every API call answers 21327 until ``renew_token()``."""
        self.token_expired = True

    def renew_token(self, token: str | None = None) -> str:
        self.access_token = token or secrets.token_hex(16)
        self.token_expired = False
        return self.access_token

    def inject_error(self, code: int, path: str = "*", *, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``path`` (an API path such as ``/2/comments/reply.json``,
        or ``*`` for any) with Weibo error ``code`` (10022, 10023, 10024, 20019, 21327...)."""
        self._injected.setdefault(path, []).extend([code] * times)
