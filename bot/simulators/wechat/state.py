"""What the simulated platform remembers: followers, their timelines, windows, tokens and QR tickets."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import aiohttp

from ..clock import ManualClock
from ..records import RecordKeeper, media_from_record, media_record
from .menus import matches
from .protocol import AES_KEY_RE, MessageCipher, new_openid

__all__ = [
    "CallbackResult",
    "Follower",
    "ManualClock",
    "SimulatorError",
    "SimulatorState",
    "Ticket",
    "WECHAT_ERROR_TEXT",
]

WECHAT_ERROR_TEXT = "该公众号暂时无法提供服务，请稍后再试"
# After a restore from records not saved at a clean stop (a crash), message ids skip this far ahead.
CRASH_ID_GAP = 1_000_000
LANGUAGES = ("zh_CN", "zh_TW", "en")
EncodingMode = Literal["plain", "compat", "safe"]


class SimulatorError(Exception):
    """A simulated user did something the platform would not allow (e.g. follow twice)."""


@dataclass
class Follower:
    """One WeChat user of the simulated account, and what their phone shows."""

    openid: str
    language: str | None
    nickname: str
    unionid: str
    tags: list[int] = field(default_factory=list)
    subscribed: bool = False
    ever_subscribed: bool = False
    subscribe_time: int = 0
    subscribe_scene: str = "ADD_SCENE_OTHERS"
    qr_scene: int = 0
    qr_scene_str: str = ""
    window_until: float = 0.0  # customer-service window: open until this time
    window_left: int = 0  # and for this many more messages
    timeline: list[dict[str, Any]] = field(default_factory=list)
    cursor: int = 0  # timeline length when the follower last acted; see wait_for_reply

    def public(self) -> dict[str, Any]:
        return {
            "openid": self.openid,
            "nickname": self.nickname,
            "language": self.language,
            "subscribed": self.subscribed,
            "tags": list(self.tags),
            "messages": len(self.timeline),
        }


@dataclass
class Ticket:
    """A QR code created through /cgi-bin/qrcode/create."""

    ticket: str
    action_name: str
    scene: str  # scene_id as a decimal string, or scene_str
    url: str
    expires_at: float | None  # None: permanent

    def valid(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass
class CallbackResult:
    """What the bot answered to one simulated user action.

    `reply` is the parsed passive reply ({"type": "text", "content"} or {"type": "news", "articles"}),
    None when the bot answered `success`/empty or failed. `error` says why delivery or parsing failed;
    the follower then sees WECHAT_ERROR_TEXT.
    """

    action: str
    msg_id: int | None = None
    status: int | None = None
    body: bytes = b""
    reply: dict[str, Any] | None = None
    acknowledged: bool = False  # `success` or an empty body
    error: str | None = None
    attempts: int = 0
    latency: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "msg_id": self.msg_id,
            "status": self.status,
            "reply": self.reply,
            "acknowledged": self.acknowledged,
            "error": self.error,
            "attempts": self.attempts,
            "latency": round(self.latency, 4),
        }


class SimulatorState(RecordKeeper):
    """Configuration and state shared by the API, callback and phone parts of the simulator.

    What a restart must not forget (followers and their timelines, QR tickets, access tokens, mass
    sends, the message id counter) leaves as records through ``take_changes()`` and comes back
    through ``restore()``.

    Args:
        token, app_id, app_secret: the account's credentials, as configured in the bot.
        aes_key: 43-char EncodingAESKey; when set, callbacks are encrypted (safe mode by default).
        encoding_mode: "plain", "compat" (plaintext plus <Encrypt>) or "safe"; derived from aes_key.
        callback_url: the bot's URL; may be set later through the attribute.
        callback_timeout, retries: the delivery deadline per try and the number of tries in all.
        token_ttl, token_overlap: token lifetime, and how long a replaced token stays valid.
        window_after_message, window_after_event: (seconds, messages) of the customer-service window.
        mass_send_quota: accepted mass sends per day (Beijing time); mass_send_min_openids: the
            smallest OpenID list /mass/send accepts (the platform requires 2); mass_delay: seconds
            before a mass send reaches the timelines.
        max_image_bytes: the largest temporary image media/upload accepts (the platform: 10 MB).
        max_text_bytes: the longest text (UTF-8 bytes) in a passive reply or customer-service message.
        menu_language_rules: whether personalized menus may match the follower's language; WeChat's
            documentation says it refuses a match on private data (language, sex, region) with 65320
            (docs/menus.md names the page), *configurable* to try either answer.
        max_conditional_menus: how many personalized menus the account may have (None: no limit);
            past it, menu/addconditional answers 65305.
        clock: unix seconds; pass a ManualClock to move time in tests.
    """

    def __init__(
        self,
        *,
        token: str,
        app_id: str,
        app_secret: str,
        aes_key: str | None = None,
        encoding_mode: EncodingMode | None = None,
        account_id: str = "gh_simulated",
        callback_url: str | None = None,
        callback_timeout: float = 5.0,
        retries: int = 3,
        token_ttl: int = 7200,
        token_overlap: int = 300,
        window_after_message: tuple[float, int] = (48 * 3600, 5),
        window_after_event: tuple[float, int] = (60, 3),
        mass_send_quota: int = 1,
        mass_send_min_openids: int = 2,
        mass_delay: float = 0.05,
        max_text_bytes: int = 2048,
        menu_language_rules: bool = True,
        max_conditional_menus: int | None = None,
        max_image_bytes: int = 10 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        mode = encoding_mode or ("safe" if aes_key else "plain")
        if mode not in ("plain", "compat", "safe"):
            raise ValueError(f"encoding_mode must be plain, compat or safe, not {mode!r}")
        if mode != "plain" and not aes_key:
            raise ValueError(f"encoding_mode={mode!r} needs an aes_key")
        if aes_key is not None and not AES_KEY_RE.match(aes_key):
            raise ValueError("aes_key must be 43 characters of [A-Za-z0-9]")
        if retries < 1:
            raise ValueError("retries counts all tries and must be at least 1")
        self.token = token
        self.app_id = app_id
        self.app_secret = app_secret
        self.aes_key = aes_key
        self.encoding_mode: EncodingMode = mode
        self.cipher = MessageCipher(aes_key, app_id) if aes_key else None
        self.account_id = account_id
        self.callback_url = callback_url
        self.callback_timeout = callback_timeout
        self.retries = retries
        self.token_ttl = token_ttl
        self.token_overlap = token_overlap
        self.window_after_message = window_after_message
        self.window_after_event = window_after_event
        self.mass_send_quota = mass_send_quota
        self.mass_send_min_openids = mass_send_min_openids
        self.mass_delay = mass_delay
        self.max_text_bytes = max_text_bytes
        self.max_image_bytes = max_image_bytes
        # Uploaded temporary media: id -> {"data", "mime", "created_at"} (kept as records across restarts).
        self.media: dict[str, dict[str, Any]] = {}
        self.media_uploads = 0
        self.clock = clock
        self.menu_language_rules = menu_language_rules
        self.max_conditional_menus = max_conditional_menus
        # The custom menus: the default one ({"button", "menuid"}, None until menu/create) and the
        # personalized ones ({"button", "matchrule", "menuid"}), oldest first.
        self.default_menu: dict[str, Any] | None = None
        self.conditional_menus: list[dict[str, Any]] = []
        self.followers: dict[str, Follower] = {}
        self.tickets: dict[str, Ticket] = {}
        self.token_fetches = 0
        self.mass_jobs: list[dict[str, Any]] = []
        self._tokens: dict[str, float] = {}  # access_token -> expires at (token_ttl)
        self._superseded: dict[str, float] = {}  # replaced token -> end of its overlap
        self._killed: set[str] = set()  # tokens made invalid by expire_tokens(): 42001
        self._next_msg_id = 24_000_000_000_000_000 + secrets.randbelow(10**15)
        self._waiters: set[asyncio.Event] = set()
        self._mass_tasks: set[asyncio.Task] = set()
        self._session: aiohttp.ClientSession | None = None  # for callbacks, created on first use
        self._init_records()

    # -- records: what a restart must not forget ---------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {"next_msg_id": self._next_msg_id, "token_fetches": self.token_fetches,
                "tokens": dict(self._tokens), "superseded": dict(self._superseded), "killed": sorted(self._killed),
                "mass_jobs": [dict(job) for job in self.mass_jobs],
                "menus": {"default": self.default_menu, "conditional": self.conditional_menus}}

    def _record_of(self, kind: str, key: str) -> dict[str, Any] | None:
        """Kinds: ``follower`` (with its timeline), ``ticket``, ``media``; ``meta`` holds ids, tokens, mass sends."""
        if kind == "media":
            return media_record(self.media.get(key))
        found: Any = self.followers.get(key) if kind == "follower" else self.tickets.get(key)
        return asdict(found) if found is not None else None

    def restore(self, records: list[tuple[str, str, dict[str, Any]]], *, after_crash: bool = False) -> None:
        """Rebuild followers, tickets, tokens and counters from ``records`` (see take_changes).

        Mass sends not yet delivered when the records were saved are delivered now.
        """
        undelivered = []
        for kind, _key, data in records:
            if kind == "follower":
                self.followers[data["openid"]] = Follower(**data)
            elif kind == "media" and data is not None:
                self.media[_key] = media_from_record(data)
            elif kind == "ticket":
                self.tickets[data["ticket"]] = Ticket(**data)
            elif kind == "meta":
                gap = CRASH_ID_GAP if after_crash else 0
                self._next_msg_id = max(self._next_msg_id, int(data["next_msg_id"]) + gap)
                self.token_fetches = data["token_fetches"]
                self._tokens = dict(data["tokens"])
                self._superseded = dict(data["superseded"])
                self._killed = set(data["killed"])
                self.mass_jobs = [dict(job) for job in data["mass_jobs"]]
                menus = data.get("menus") or {}
                self.default_menu = menus.get("default")
                self.conditional_menus = list(menus.get("conditional") or [])
                undelivered = [job for job in self.mass_jobs if not job["delivered"]]
        self._saved_meta = self._meta()
        for job in undelivered:
            self._schedule_mass(job)

    def _schedule_mass(self, job: dict[str, Any]) -> None:
        raise NotImplementedError  # the platform API part delivers mass sends

    # -- followers and timelines -----------------------------------------------------------------

    def add_follower(
        self,
        openid: str | None = None,
        *,
        language: str | None = "zh_CN",
        nickname: str | None = None,
        tags: list[int] | None = None,
        following: bool = False,
    ) -> str:
        """Create a WeChat user; `following=True` makes them a follower without sending an event."""
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES} or None")
        openid = openid or new_openid()
        if openid in self.followers:
            raise SimulatorError(f"follower {openid} already exists")
        follower = Follower(
            openid=openid,
            language=language,
            nickname=nickname or f"用户{len(self.followers) + 1}",
            unionid=new_openid(),
            tags=list(tags or []),
        )
        self.followers[openid] = follower
        self._mark("follower", openid)
        if following:
            self._subscribe(follower, scene=None)
        return openid

    def follower(self, openid: str) -> Follower:
        try:
            return self.followers[openid]
        except KeyError:
            raise SimulatorError(f"unknown follower {openid}") from None

    def menu_for(self, openid: str) -> list[dict[str, Any]]:
        """The menu this follower's phone shows: the newest personalized menu matching them, else the default."""
        follower = self.follower(openid)
        for menu in reversed(self.conditional_menus):
            if matches(menu["matchrule"], language=follower.language, tags=follower.tags):
                return list(menu["button"])
        return list(self.default_menu["button"]) if self.default_menu else []

    def timeline(self, openid: str) -> list[dict[str, Any]]:
        """Everything the follower's chat shows, oldest first."""
        return list(self.follower(openid).timeline)

    def replies(self, openid: str) -> list[dict[str, Any]]:
        """The messages the follower received (passive, custom, mass, and platform errors)."""
        return [e for e in self.follower(openid).timeline if e["direction"] == "out"]

    async def wait_for_reply(
        self,
        openid: str,
        *,
        count: int = 1,
        timeout: float = 10,
        sources: tuple[str, ...] = ("custom", "mass"),
    ) -> list[dict[str, Any]]:
        """Wait until `count` messages from `sources` reached the follower since their last action.

        Counting from the last action (not from this call) means a reply that arrived before the
        test started waiting is still found.
        """
        follower = self.follower(openid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [
                e
                for e in follower.timeline[follower.cursor :]
                if e["direction"] == "out" and e["source"] in sources
            ]
            if len(found) >= count:
                return found[:count]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(found)} of {count} replies to {openid} after {timeout}s")
            event = asyncio.Event()
            self._waiters.add(event)
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(event)

    def _record(self, follower: Follower, direction: str, source: str, type_: str, **data: Any) -> dict:
        entry = {
            "seq": len(follower.timeline),
            "direction": direction,
            "source": source,
            "type": type_,
            "at": self.clock(),
            **data,
        }
        follower.timeline.append(entry)
        self._mark("follower", follower.openid)
        for event in self._waiters:
            event.set()
        return entry

    def _new_msg_id(self) -> int:
        self._next_msg_id += 1
        return self._next_msg_id

    # -- subscription and the customer-service window ----------------------------------------------

    def _subscribe(self, follower: Follower, scene: str | None) -> None:
        self._mark("follower", follower.openid)
        follower.subscribed = True
        follower.ever_subscribed = True
        follower.subscribe_time = int(self.clock())
        follower.subscribe_scene = "ADD_SCENE_QR_CODE" if scene is not None else "ADD_SCENE_SEARCH"
        follower.qr_scene = int(scene) if scene is not None and scene.isdigit() else 0
        follower.qr_scene_str = scene if scene is not None and not scene.isdigit() else ""

    def _unsubscribe(self, follower: Follower) -> None:
        self._mark("follower", follower.openid)
        follower.subscribed = False
        follower.window_until = 0.0
        follower.window_left = 0

    def _open_window(self, follower: Follower, *, after_message: bool) -> None:
        """The latest interaction defines the window and resets its count."""
        seconds, count = self.window_after_message if after_message else self.window_after_event
        self._mark("follower", follower.openid)
        follower.window_until = self.clock() + seconds
        follower.window_left = count

    # -- access tokens -------------------------------------------------------------------------------

    def _issue_token(self) -> str:
        """Issue a token; earlier ones stay valid for `token_overlap` seconds more (then 40001)."""
        now = self.clock()
        for old in self._tokens:
            self._superseded.setdefault(old, now + self.token_overlap)
        token = secrets.token_urlsafe(96)[:128]
        self._tokens[token] = now + self.token_ttl
        self.token_fetches += 1
        return token

    def expire_tokens(self) -> None:
        """Make every token issued so far invalid: calls with them get 42001."""
        self._killed.update(self._tokens)
        self._tokens.clear()
        self._superseded.clear()

    def _check_token(self, token: str | None) -> tuple[int, str] | None:
        if not token:
            return 41001, "access_token missing"
        if token in self._killed:
            return 42001, "access_token expired"
        expires = self._tokens.get(token)
        if expires is None:
            return 40014, "invalid access_token"
        now = self.clock()
        if now >= expires:
            return 42001, "access_token expired"
        if now >= self._superseded.get(token, now + 1):
            return 40001, "invalid credential, access_token is invalid or not latest"
        return None
