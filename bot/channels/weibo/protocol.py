"""The Weibo fan-service protocol (粉丝服务平台) and the Open API v2 shapes the megaphone uses.

Everything here is pure: signatures, the push JSON into ``Inbound``, the passive reply JSON, the
active API's form bodies and its errors. PROTOCOLS.md (Weibo section) is the source:

- callbacks carry ``signature = sha1("".join(sorted([app_secret, timestamp, nonce])))`` with
  ``timestamp`` in milliseconds; the check is constant-time and comes before the body is read;
- a push is ``{"type", "receiver_id", "sender_id", "created_at", "text", "data": {...}}``;
- the passive reply is ``{"result": true, "sender_id", "receiver_id", "type", "data"}`` whose ``data``
  is URL-encoded JSON; text stays under 300 characters;
- errors are HTTP 4xx with ``{"error", "error_code", "request"}``.

Ids are int64 on the platform: they are kept as strings of digits here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from bot.channels import fields as check
from bot.core.inbound import Inbound, Kind, Notice
from bot.core.menu import CLICK, VIEW, Menu, MenuButton
from bot.core.replay_check import ReplayCheck
from bot.core.reply import Article
from bot.core.text import cut_text, plain, sanitize_text
from bot.errors import (
    FollowerGone,
    OutsideReplyWindow,
    PayloadError,
    PlatformAPIError,
    QuotaExceeded,
    SignatureError,
    platform_text,
)

MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 300  # a DM (passive or active): "under 300 Chinese characters"
MAX_PUBLIC_CHARS = 140  # a public comment or reply
MAX_TEXT_FIELD = 4096  # characters of a pushed text we accept (the platform's own limit is lower)
MAX_KEY = 256  # a QR scene, a menu key or a URL in ``data.key``
MAX_NESTING = 16  # a push is two levels deep; deeper JSON is refused before it is walked
MAX_ID_DIGITS = 20  # int64
CREATED_AT_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # "Mon Jul 16 18:09:20 +0800 2012"

# Weibo error codes (error_code of the JSON error body).
RATE_LIMITS = {10022: 600.0, 10023: 3600.0, 10024: 3600.0}  # IP / user / user per API: back off (s)
REPEATED_CONTENT = 20019
EXPIRED_TOKEN = 21327
NO_SUCH_USER = 20003
SYSTEM_BUSY = {10001, 10009}  # system error / task too heavy: the request did nothing
# What the platform says when the fan's window is closed (the simulator and the docs agree on nothing
# more precise): mapped to OutsideReplyWindow.
# Not published by Weibo; the numbers its simulator answers (bot/simulators/weibo/platform.py).
WINDOW_ERRORS = {21606: "outside the 48-hour reply window", 21607: "reply allowance used up",
                 21608: "the fan has unfollowed"}

_ID = re.compile(r"[0-9]{1,20}")


def signature(app_secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([app_secret, timestamp, nonce])).encode("utf-8")).hexdigest()


def verify_signature(app_secret: str, sig: str | None, timestamp: str | None, nonce: str | None) -> None:
    """Raise ``SignatureError`` unless ``sig`` signs (timestamp, nonce) with the app secret; constant time."""
    if not sig or timestamp is None or nonce is None:
        raise SignatureError("missing signature, timestamp or nonce")
    if len(sig) > 64 or len(timestamp) > 32 or len(nonce) > 128:
        raise SignatureError("oversized signature parameters")
    expected = signature(app_secret, timestamp, nonce)
    if not hmac.compare_digest(expected.encode("ascii"), sig.lower().encode("utf-8", "replace")):
        raise SignatureError("signature mismatch")


# --- push JSON -> Inbound ----------------------------------------------------------------------


def _depth_ok(body: str) -> bool:
    """True when the JSON text nests no deeper than MAX_NESTING (counted outside strings, cheaply)."""
    depth = 0
    in_string = escaped = False
    for ch in body:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def load_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body, refusing non-UTF-8, NaN/Infinity and deep nesting (``PayloadError``)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body is not UTF-8") from None
    if not _depth_ok(text):
        raise PayloadError(f"JSON nested deeper than {MAX_NESTING} levels")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"body is not valid JSON: {type(exc).__name__}") from None


def _id(value: Any, name: str) -> str:
    """An int64 id given as a JSON integer or a string of digits; returned as a string."""
    if isinstance(value, bool):
        raise PayloadError(f"field {name} must be an integer id")
    if isinstance(value, int) and 0 < value < 2**63:
        return str(value)
    if isinstance(value, str) and _ID.fullmatch(value) and 0 < int(value) < 2**63:
        return str(int(value))
    raise PayloadError(f"field {name} must be an integer id")


def _text(value: Any, name: str, limit: int = MAX_TEXT_FIELD) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PayloadError(f"field {name} must be a string")
    if len(value) > limit:
        raise PayloadError(f"field {name} longer than {limit} characters")
    return sanitize_text(value)


def parse_created_at(value: Any) -> datetime:
    """Weibo's ``created_at`` ("Mon Jul 16 18:09:20 +0800 2012") as an aware UTC datetime."""
    if not isinstance(value, str) or len(value) > 40:
        raise PayloadError("field created_at must be a date like 'Mon Jul 16 18:09:20 +0800 2012'")
    try:
        return datetime.strptime(value, CREATED_AT_FORMAT).astimezone(UTC)
    except ValueError:
        raise PayloadError("field created_at must be a date like 'Mon Jul 16 18:09:20 +0800 2012'") from None


def format_created_at(at: datetime) -> str:
    return at.strftime(CREATED_AT_FORMAT)


def push_message_id(sender_id: str, created_at: str, msg_type: str, subtype: str) -> str:
    """The dedupe key of a push: what the platform's retries repeat (sender, created_at, type/subtype)."""
    digest = hashlib.sha256("\n".join((sender_id, created_at, msg_type, subtype)).encode("utf-8")).hexdigest()
    return f"wb:{digest[:40]}"


# Event subtype -> Kind; ``scan_follow`` is a follow through a scene QR (payload: the scene).
EVENT_KINDS = {
    "follow": Kind.FOLLOW,
    "subscribe": Kind.FOLLOW,
    "scan_follow": Kind.FOLLOW,
    "unfollow": Kind.UNFOLLOW,
    "unsubscribe": Kind.UNFOLLOW,
    "scan": Kind.SCAN,
    "click": Kind.CLICK,
    "view": Kind.VIEW,
    "mention": Kind.TEXT,  # the fan @mentioned the brand: its text is answered like a message
}
MESSAGE_TYPES = ("text", "position", "image", "voice", "event")


@dataclass(frozen=True, slots=True)
class Push:
    """A validated push: the fields the adapter needs besides the ``Inbound``."""

    inbound: Inbound
    brand_uid: str
    fan_uid: str
    msg_type: str
    subtype: str

    @property
    def mention(self) -> bool:
        return self.msg_type == "event" and self.subtype == "mention"


def parse_push(body: bytes, *, channel: str = "weibo", account: str = "default",
               brand_uid: str | None = None, replay_check: ReplayCheck | None = None) -> Push:
    """Validate a push body and turn it into an ``Inbound``; ``PayloadError`` names what is wrong.

    Check the signature before calling this. When ``brand_uid`` is given, a push addressed to another
    receiver is refused. ``replay_check`` is the request's check, carried by the message.
    """
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise PayloadError("body must be a JSON object")
    msg_type = doc.get("type")
    if not isinstance(msg_type, str) or not msg_type or len(msg_type) > 32:
        raise PayloadError("field type must be a non-empty string")
    receiver = _id(doc.get("receiver_id"), "receiver_id")
    sender = _id(doc.get("sender_id"), "sender_id")
    if brand_uid is not None and receiver != brand_uid:
        raise PayloadError("field receiver_id is not this account's uid")
    received_at = parse_created_at(doc.get("created_at"))
    created_raw: str = doc["created_at"]
    text = _text(doc.get("text"), "text")
    data = doc.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PayloadError("field data must be an object")

    subtype, payload, kind = "", None, Kind.UNKNOWN
    if msg_type == "text":
        kind = Kind.COMMAND if text.startswith("/") else Kind.TEXT
    elif msg_type == "position":
        lng = check.coordinate("data.longitude", data.get("longitude"), bound=180)
        lat = check.coordinate("data.latitude", data.get("latitude"), bound=90)
        kind, payload = Kind.LOCATION, f"{lat:.6f},{lng:.6f}"  # about 10 cm: a store 50 m away stays apart
    elif msg_type == "image":
        kind = Kind.IMAGE
        payload = _text(data.get("vfid") or data.get("tovfid"), "data.vfid", MAX_KEY) or None
    elif msg_type == "voice":
        kind = Kind.VOICE
        payload = _text(data.get("vfid") or data.get("tovfid"), "data.vfid", MAX_KEY) or None
    elif msg_type == "event":
        raw_subtype = data.get("subtype")
        if not isinstance(raw_subtype, str) or not raw_subtype or len(raw_subtype) > 32:
            raise PayloadError("field data.subtype must be a non-empty string")
        subtype = raw_subtype
        key = _text(data.get("key"), "data.key", MAX_KEY)
        # An event that is not a fan's action (whatever Weibo adds) is the platform's news: recorded only.
        kind = EVENT_KINDS.get(subtype, Kind.NOTIFICATION)
        if subtype in ("scan_follow", "scan", "click", "view"):
            if not key:
                raise PayloadError(f"field data.key is required for {subtype}")
            payload = key
        if subtype == "mention" and not text:
            kind = Kind.UNKNOWN
    # other types (video, whatever comes next) stay UNKNOWN: the polite answer, no crash

    return Push(
        inbound=Inbound(
            channel=channel, account=account, external_id=sender, kind=kind, text=text, payload=payload,
            message_id=push_message_id(sender, created_raw, msg_type, subtype), received_at=received_at,
            window="mention" if subtype == "mention" else None,
            notice=Notice(event=subtype[:64]) if kind is Kind.NOTIFICATION else None,
            raw={"type": msg_type, "subtype": subtype, "receiver_id": receiver},
            replay_check=replay_check,
        ),
        brand_uid=receiver, fan_uid=sender, msg_type=msg_type, subtype=subtype,
    )


# --- replies -------------------------------------------------------------------------------------


def fit_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Cut ``text`` to ``limit`` characters on a clean boundary (the one cutter, bot.core.text)."""
    return cut_text(text, limit, markup=plain)


def encode_data(data: dict[str, Any]) -> str:
    """The ``data`` field: JSON, then URL-encoded (UTF-8), as both the passive and the active API want."""
    return quote(json.dumps(data, ensure_ascii=False, separators=(",", ":")), safe="")


def decode_data(value: str) -> Any:
    return json.loads(unquote(value))


def text_data(text: str) -> dict[str, Any]:
    return {"text": fit_text(text)}


def articles_data(articles: tuple[Article, ...] | list[Article]) -> dict[str, Any]:
    return {"articles": [{"display_name": a.title, "summary": a.description or "", "image": a.picture_url or "",
                          "url": a.url or ""} for a in articles]}


def image_data(tovfid: str) -> dict[str, Any]:
    """The ``data`` of an image message: the id ``/2/mss/upload.json`` gave for the uploaded image."""
    return {"tovfid": tovfid}


def passive_reply(*, brand_uid: str, fan_uid: str, msg_type: str, data: dict[str, Any]) -> str:
    """The HTTP answer carrying a reply to ``fan_uid``: JSON with the URL-encoded ``data``."""
    if msg_type not in ("text", "articles"):
        raise ValueError("passive replies are text or articles")
    return json.dumps({"result": True, "sender_id": int(brand_uid), "receiver_id": int(fan_uid),
                       "type": msg_type, "data": encode_data(data)}, separators=(",", ":"))


def reply_form(*, access_token: str, fan_uid: str, msg_type: str, data: dict[str, Any]) -> dict[str, str]:
    """The form of ``POST /2/messages/reply.json``."""
    return {"access_token": access_token, "type": msg_type, "data": encode_data(data), "receiver_id": fan_uid,
            "save_sender_box": "1"}


def sendall_form(*, access_token: str, uids: list[str], msg_type: str, data: dict[str, Any]) -> dict[str, str]:
    """The form of ``POST /2/messages/sendall.json`` to a uid list."""
    return {"access_token": access_token, "type": msg_type, "data": encode_data(data), "touser": ",".join(uids)}


def menu_body(menu: Menu) -> tuple[dict[str, Any], int]:
    """The ``menus`` JSON of ``/2/messages/menu/create.json``, in the menu's default locale (Weibo has one
    menu for every fan), and how many buttons were left out: Weibo's menu clicks and opens links only."""
    dropped = 0

    def button(b: MenuButton) -> dict[str, Any] | None:
        nonlocal dropped
        name = menu.label(b.label, menu.default_locale)
        if b.buttons:
            subs = [x for x in (button(s) for s in b.buttons) if x is not None]
            return {"name": name, "sub_button": subs} if subs else None
        if b.type == VIEW:
            return {"type": "view", "name": name, "url": b.url}
        if b.type == CLICK:
            return {"type": "click", "name": name, "key": b.key}
        dropped += 1
        return None

    buttons = [x for x in (button(b) for b in menu.buttons) if x is not None]
    return {"button": buttons}, dropped


# --- errors ------------------------------------------------------------------------------------


def raise_for_error(status: int, doc: Any, path: str) -> None:
    """Map a Weibo answer to a typed error: ``{"error", "error_code", "request"}`` (or a bare HTTP error)."""
    code = doc.get("error_code") if isinstance(doc, dict) else None
    if status == 200 and code is None:
        return
    if not isinstance(code, int) or isinstance(code, bool):
        if status >= 500:
            raise QuotaExceeded(f"Weibo HTTP {status} from {path}", retry_after=30.0)
        raise PlatformAPIError(-status, f"HTTP {status} from {path}")
    message = platform_text(doc.get("error", "") if isinstance(doc, dict) else "")
    if code in RATE_LIMITS:
        raise QuotaExceeded(f"Weibo {code}: {message}", retry_after=RATE_LIMITS[code])
    if code in SYSTEM_BUSY:
        raise QuotaExceeded(f"Weibo {code}: {message}", retry_after=30.0)
    if code in WINDOW_ERRORS:
        raise OutsideReplyWindow(f"Weibo {code}: {WINDOW_ERRORS[code]}")
    if code == NO_SUCH_USER:
        raise FollowerGone(f"Weibo {code}: user does not exist")
    raise PlatformAPIError(code, message)


# --- the megaphone ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PublicPost:
    """A comment to the brand (``cid`` set, ``post_id`` its post) or a post @mentioning it (``cid`` None)."""

    post_id: str
    cid: str | None
    text: str
    user_id: str
    screen_name: str
    created_at: datetime

    @property
    def key(self) -> str:
        """What is answered once: the comment, or the mentioning post."""
        return f"c:{self.cid}" if self.cid is not None else f"s:{self.post_id}"


def _item_id(item: dict[str, Any], name: str = "id") -> str:
    idstr = item.get("idstr")
    return _id(idstr if name == "id" and isinstance(idstr, str) else item.get(name), name)


def parse_comments(doc: Any) -> list[PublicPost]:
    """``GET /2/comments/to_me.json``'s answer; malformed items are skipped, a malformed answer refused."""
    items = doc.get("comments") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise PlatformAPIError(-2, "comments answer without a comments list")
    out = []
    for item in items:
        try:
            status = item.get("status") if isinstance(item, dict) else None
            if not isinstance(status, dict):
                continue
            post_id = _item_id(status)
            out.append(_public(item, post_id=post_id, cid=_item_id(item)))
        except PayloadError:
            continue
    return out


def parse_mentions(doc: Any) -> list[PublicPost]:
    """``GET /2/statuses/mentions.json``'s answer."""
    items = doc.get("statuses") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise PlatformAPIError(-2, "mentions answer without a statuses list")
    out = []
    for item in items:
        try:
            if isinstance(item, dict):
                out.append(_public(item, post_id=_item_id(item), cid=None))
        except PayloadError:
            continue
    return out


def _public(item: dict[str, Any], *, post_id: str, cid: str | None) -> PublicPost:
    user = item.get("user")
    if not isinstance(user, dict):
        raise PayloadError("item without user")
    name = user.get("screen_name")
    return PublicPost(post_id=post_id, cid=cid, text=_text(item.get("text"), "text"),
                      user_id=_id(user.get("idstr") if isinstance(user.get("idstr"), str) else user.get("id"), "user.id"),
                      screen_name=_text(name, "screen_name", 64) if isinstance(name, str) else "",
                      created_at=parse_created_at(item.get("created_at")))
