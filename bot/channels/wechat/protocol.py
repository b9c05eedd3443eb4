"""The WeChat Official Account wire protocol: signatures, safe-mode crypto, inbound XML, reply shapes.

Pure functions and one class, no HTTP and no storage, so the adapter and the tests can call them
directly. The module runs a little past the usual size because it holds the platform's tables
(message types, event names, QR actions) next to the code that reads them.

Sources: the Official Account developer docs (接入指南, 接收普通消息, 接收事件推送, 被动回复用户消息,
消息加解密说明, 客服消息, 生成带参数的二维码) and the WXBizMsgCrypt samples WeChat publishes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple
from xml.etree.ElementTree import Element, ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

from bot.channels import fields as check
from bot.core.inbound import Inbound, Kind, Notice
from bot.core.menu import VIEW, Menu, MenuButton
from bot.core.replay_check import ReplayCheck
from bot.core.reply import Article
from bot.core.text import cut_text, utf8_bytes
from bot.errors import DecryptError, PayloadError, PayloadTooLarge, SignatureError

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_TEXT_BYTES",
    "SUCCESS",
    "Envelope",
    "WeChatCrypto",
    "cdata",
    "check_timestamp_nonce",
    "custom_news_payload",
    "custom_text_payload",
    "event_message_id",
    "parse_envelope",
    "parse_message",
    "qrcode_payload",
    "render_news",
    "render_text",
    "sign",
    "truncate_text",
    "verify_msg_signature",
    "verify_signature",
]

SUCCESS = "success"
"""The passive-reply body meaning "received, no reply, do not retry" (an empty body means the same)."""

MAX_BODY_BYTES = 64 * 1024
"""Largest inbound body we parse; real callbacks are well under 2 KiB."""

# WeChat documents 2048 bytes (UTF-8) as the limit for text content, both for passive replies and
# for customer-service text messages; the API answers errcode 45002 ("content size out of limit").
MAX_TEXT_BYTES = 2048

MAX_TIMESTAMP_DIGITS = 12  # unix seconds fit in 10 digits until 2286; 12 reach year 9999
MAX_NONCE_CHARS = 64  # WeChat's nonces are about 10 digits; leave room for other senders

QR_EXPIRE_MAX = 2_592_000  # 30 days, the longest a temporary QR code may live
QR_LIMIT_SCENE_MAX = 100_000  # permanent integer scenes are 1..100000
QR_SCENE_MAX = 2**32 - 1  # temporary integer scenes are a 32-bit non-zero integer
QR_SCENE_STR_MAX = 64  # string scenes are 1..64 characters

_KEY_RE = re.compile(r"[A-Za-z0-9]{43}")
_BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16
_ELLIPSIS = "…"
_ELLIPSIS_BYTES = len(_ELLIPSIS.encode("utf-8"))
_XML_DTD_MESSAGE = "XML DTDs and entities are not allowed"
# Characters XML 1.0 cannot carry at all; a reply containing one would be malformed.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Spans a cut must not enter: an entity, an <a ...>...</a> link (to the end when unclosed), a lone
# </a>. Only WeChat's one tag counts: a bare "x < y" in prose must not swallow the rest of the text.
_MARKUP = re.compile(r"&#?[A-Za-z0-9]{1,31};|<a(?:[\s>].*?(?:</a>|\Z)|\Z)|</a>", re.IGNORECASE | re.DOTALL)

# Every callback carries these; identifier fields like them are read with surrounding whitespace stripped.
_REQUIRED = ("ToUserName", "FromUserName", "CreateTime", "MsgType")

# Every field we read, checked before use (``bot.channels.fields``): identifiers are refused when
# malformed or too long, text is cleaned (NUL -> U+FFFD) and refused only when too long. Fields
# without a platform limit are bounded by the body (MAX_BODY_BYTES). Unknown fields are kept in
# ``raw`` but neither used nor stored.
_IDENTIFIERS = {
    "ToUserName": 64,  # the account's gh_... id
    "FromUserName": check.MAX_EXTERNAL_ID,  # the follower's OpenID (28 characters in practice)
    "MsgType": 32,
    "Event": 32,
    "MsgId": 64,  # a 64-bit integer in practice
    "MediaId": 256,
    "Format": 32,
    "Ticket": 256,
    "Location_X": 32,
    "Location_Y": 32,
    "Scale": 32,
}
_TEXTS = {
    "Content": MAX_BODY_BYTES,
    "Recognition": MAX_BODY_BYTES,
    "Label": MAX_BODY_BYTES,
    "Title": MAX_BODY_BYTES,
    "Description": MAX_BODY_BYTES,
    "EventKey": 1024,  # a menu key (128 bytes), a scene (64 characters) or a menu URL (1024 bytes)
    "Status": 256,  # a mass or template send's outcome ("send success", "err(10001)")
    "KfAccount": 128,  # the customer-service agent (kf account) of a session event
    "PicUrl": 1024,
    "Url": 1024,
}


# --- signatures -------------------------------------------------------------------------------


def sign(token: str, *parts: str) -> str:
    """Return WeChat's signature: sha1 hex of the token and the parts, sorted and concatenated."""
    return hashlib.sha1("".join(sorted((token, *parts))).encode("utf-8")).hexdigest()


def check_timestamp_nonce(timestamp: str | None, nonce: str | None) -> None:
    """Reject a malformed ``timestamp``/``nonce`` query parameter with a ``PayloadError``.

    How far the timestamp may be from our clock is the adapter's business (``bot.channels.replay``).
    """
    if not timestamp:
        raise PayloadError("missing timestamp")
    if len(timestamp) > MAX_TIMESTAMP_DIGITS or not (timestamp.isascii() and timestamp.isdigit()):
        raise PayloadError(f"timestamp must be at most {MAX_TIMESTAMP_DIGITS} ASCII digits")
    if not nonce:
        raise PayloadError("missing nonce")
    if len(nonce) > MAX_NONCE_CHARS or not (nonce.isascii() and nonce.isprintable()):
        raise PayloadError(f"nonce must be at most {MAX_NONCE_CHARS} printable ASCII characters")


def _check_digest(expected: str, given: str | None) -> None:
    if not given:
        raise SignatureError("missing signature")
    if not given.isascii() or not hmac.compare_digest(expected, given.lower()):
        raise SignatureError("signature mismatch")


def verify_signature(
    token: str,
    signature: str | None,
    timestamp: str | None,
    nonce: str | None,
) -> None:
    """Check a callback's ``signature`` over (token, timestamp, nonce); raise ``SignatureError``.

    Malformed parameters raise ``PayloadError`` first (see ``check_timestamp_nonce``).
    """
    check_timestamp_nonce(timestamp, nonce)
    _check_digest(sign(token, timestamp, nonce), signature)  # type: ignore[arg-type]  # checked just above


def verify_msg_signature(
    token: str,
    msg_signature: str | None,
    timestamp: str | None,
    nonce: str | None,
    encrypt: str,
) -> None:
    """Check a safe-mode ``msg_signature`` over (token, timestamp, nonce, encrypt)."""
    check_timestamp_nonce(timestamp, nonce)
    _check_digest(sign(token, timestamp, nonce, encrypt), msg_signature)  # type: ignore[arg-type]  # checked above


# --- safe-mode encryption ---------------------------------------------------------------------


class WeChatCrypto:
    """Encrypt and decrypt safe-mode bodies (AES-256-CBC, IV = key[:16], PKCS#7 to 32 bytes)."""

    __slots__ = ("token", "app_id", "_app_id", "_cipher")

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        """Validate the account's settings once, so a bad key fails at start, not per message."""
        if not token:
            raise ValueError("WeChat token must not be empty")
        if not app_id:
            raise ValueError("WeChat app id must not be empty")
        if not isinstance(encoding_aes_key, str) or not _KEY_RE.fullmatch(encoding_aes_key):
            raise ValueError("EncodingAESKey must be exactly 43 characters of [A-Za-z0-9]")
        key = base64.b64decode(encoding_aes_key + "=")
        if len(key) != 32:  # pragma: no cover - 43 base64 characters always give 32 bytes
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self.token = token
        self.app_id = app_id
        self._app_id = app_id.encode("utf-8")
        self._cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))

    def encrypt_raw(self, text: str) -> str:
        """Return base64 of AES(random16 + length + text + app id), the ``Encrypt`` value."""
        data = text.encode("utf-8")
        plain = b"".join((secrets.token_bytes(16), len(data).to_bytes(4, "big"), data, self._app_id))
        pad = _BLOCK - len(plain) % _BLOCK
        encryptor = self._cipher.encryptor()
        sealed = encryptor.update(plain + bytes((pad,)) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode("ascii")

    def encrypt(self, xml: str, *, nonce: str, timestamp: str | int) -> str:
        """Wrap a rendered reply in the signed safe-mode envelope WeChat expects as the response."""
        timestamp = str(timestamp)
        encrypted = self.encrypt_raw(xml)
        signature = sign(self.token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{signature}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{cdata(nonce)}]]></Nonce></xml>"
        )

    def decrypt(self, encrypt_b64: str) -> str:
        """Return the plaintext of an ``Encrypt`` value; raise ``DecryptError`` saying what failed."""
        try:
            sealed = base64.b64decode(encrypt_b64, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise DecryptError("not base64") from None
        if not sealed or len(sealed) % 16:
            raise DecryptError("ciphertext is not a whole number of AES blocks")
        decryptor = self._cipher.decryptor()
        plain = decryptor.update(sealed) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or pad > len(plain) - 20 or plain[-pad:] != bytes((pad,)) * pad:
            raise DecryptError("bad padding")
        length = int.from_bytes(plain[16:20], "big")
        end = 20 + length
        if end > len(plain) - pad:
            raise DecryptError("bad message length")
        if not hmac.compare_digest(plain[end:-pad], self._app_id):
            raise DecryptError("wrong app id")
        try:
            return plain[20:end].decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("message is not UTF-8") from None

    def decrypt_envelope(
        self, body: bytes | str, *, msg_signature: str | None, timestamp: str | None, nonce: str | None
    ) -> str:
        """Parse a safe-mode body, check its ``msg_signature`` and return the decrypted XML."""
        envelope = parse_envelope(body)
        verify_msg_signature(self.token, msg_signature, timestamp, nonce, envelope.encrypt)
        return self.decrypt(envelope.encrypt)


# --- inbound XML ------------------------------------------------------------------------------


class Envelope(NamedTuple):
    """The outer safe-mode body: the ciphertext and the account it is addressed to."""

    encrypt: str
    to_user: str | None


def _parse_xml(body: bytes | str) -> Element:
    """Parse a size-capped UTF-8 body with DTDs and entities forbidden; return the ``<xml>`` root."""
    if len(body) > MAX_BODY_BYTES:  # before any decoding: a huge body costs nothing to refuse
        raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    if isinstance(body, (bytes, bytearray, memoryview)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("body is not valid UTF-8") from None
    else:
        text = body
        if len(text) * 4 > MAX_BODY_BYTES and len(text.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        # A str is parsed as UTF-8 whatever its XML declaration says, so a declared
        # encoding="GBK" cannot smuggle another encoding past the UTF-8 check above.
        # Every parse goes through defusedxml (house rule), DTDs forbidden outright.
        root = _defused_fromstring(text, forbid_dtd=True)
    except DefusedXmlException:
        raise PayloadError(_XML_DTD_MESSAGE) from None
    except ParseError as exc:
        raise PayloadError(f"malformed XML: {exc}") from None
    except UnicodeError:
        raise PayloadError("body is not valid UTF-8") from None
    if root.tag != "xml":
        raise PayloadError(f"root element must be <xml>, not <{root.tag}>")
    return root


def _fields(root: Element) -> dict[str, Any]:
    """Return the root's children as {tag: text}; a nested element becomes {tag: text} one level deep.

    Not recursive on purpose: a hostile body may nest thousands of levels.
    """
    fields: dict[str, Any] = {}
    for child in root:
        if len(child):
            fields[child.tag] = {grandchild.tag: grandchild.text or "" for grandchild in child}
        else:
            fields[child.tag] = child.text or ""
    return fields


def _checked(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and clean the fields we read (see ``_IDENTIFIERS`` and ``_TEXTS``); raise ``PayloadError``."""
    for name, limit in _IDENTIFIERS.items():
        value = fields.get(name)
        if isinstance(value, str):
            fields[name] = check.identifier(name, value.strip(), max_length=limit, required=False)
    for name, limit in _TEXTS.items():
        value = fields.get(name)
        if isinstance(value, str):
            fields[name] = check.text(name, value, max_length=limit)
    return fields


def _leaf(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def parse_envelope(body: bytes | str) -> Envelope:
    """Extract ``Encrypt`` (and ``ToUserName``) from a safe-mode body."""
    fields = _fields(_parse_xml(body))
    encrypt = _leaf(fields, "Encrypt")
    if not encrypt:
        raise PayloadError("missing field Encrypt")
    return Envelope(encrypt, _leaf(fields, "ToUserName") or None)


def _text_kind(f: dict[str, Any]) -> tuple[Kind, str, str | None]:
    content = f.get("Content", "")
    content = content if isinstance(content, str) else ""
    return (Kind.COMMAND if content.startswith("/") else Kind.TEXT), content, None


def _image_kind(f: dict[str, Any]) -> tuple[Kind, str, str | None]:
    return Kind.IMAGE, "", _leaf(f, "PicUrl") or _leaf(f, "MediaId") or None


def _voice_kind(f: dict[str, Any]) -> tuple[Kind, str, str | None]:
    recognition = f.get("Recognition", "")
    return Kind.VOICE, recognition if isinstance(recognition, str) else "", _leaf(f, "MediaId") or None


def _location_kind(f: dict[str, Any]) -> tuple[Kind, str, str | None]:
    lat, lng = _leaf(f, "Location_X"), _leaf(f, "Location_Y")
    label = f.get("Label", "")
    return Kind.LOCATION, label if isinstance(label, str) else "", f"{lat},{lng}" if lat and lng else None


def _link_kind(f: dict[str, Any]) -> tuple[Kind, str, str | None]:
    title = f.get("Title", "")
    return Kind.LINK, title if isinstance(title, str) else "", _leaf(f, "Url") or None


_MESSAGE_KINDS = {
    "text": _text_kind,
    "image": _image_kind,
    "voice": _voice_kind,
    "location": _location_kind,
    "link": _link_kind,
}

# Event name (lower-cased: WeChat writes "subscribe" but "SCAN", "CLICK", "VIEW") -> Kind.
_EVENT_KINDS = {
    "subscribe": Kind.FOLLOW,
    "unsubscribe": Kind.UNFOLLOW,
    "scan": Kind.SCAN,
    "click": Kind.CLICK,
    "view": Kind.VIEW,
}
_QRSCENE_PREFIX = "qrscene_"
# What a follower does that is not an answerable message: opening a mini program from the menu
# is like opening a link; a scan through the menu's "scan and wait" button sends what was scanned.
_FOLLOWER_MENU_EVENTS = {"view_miniprogram": Kind.VIEW}
_SCAN_AND_WAIT = "scancode_waitmsg"
# Every other event, known or not, is a platform notification: recorded, never answered (a
# follower with location reports on sends LOCATION each time the chat opens). These concern the
# account, not the follower who appears as the sender.
_ACCOUNT_NOTICES = frozenset({
    "masssendjobfinish", "publishjobfinish", "qualification_verify_success", "qualification_verify_fail",
    "naming_verify_success", "naming_verify_fail", "annual_renew", "verify_expired", "card_pass_check",
    "card_not_pass_check", "card_sku_remind", "poi_check_notify", "weapp_audit_success", "weapp_audit_fail",
})
# A send's report: its platform id and counts (MASSSENDJOBFINISH; TEMPLATESENDJOBFINISH has Status only).
_REPORT_FIELDS = ("Status", "TotalCount", "FilterCount", "SentCount", "ErrorCount")
_CONVERSATION: dict[str, Literal["taken", "returned"]] = {"kf_create_session": "taken", "kf_switch_session": "taken", "kf_close_session": "returned"}
# Device messages (WeChat hardware) are platform traffic too, whatever their MsgType.
_DEVICE_PREFIX = "device_"


def parse_message(body: bytes | str, *, channel: str = "wechat", account_hint: str | None = None,
                  replay_check: ReplayCheck | None = None) -> Inbound:
    """Parse a (decrypted) callback body into an ``Inbound``; raise ``PayloadError`` if malformed.

    Check the signature before calling this. ``account_hint``, when given, becomes ``account``
    (the adapter's own name for the account); otherwise ``account`` is ``ToUserName``. Every field
    used is checked first (length, characters): a malformed one is refused, naming it.
    ``replay_check`` is the request's check, carried by the message (``Inbound.replay_check``).
    """
    fields = _checked(_fields(_parse_xml(body)))
    values = []
    for name in _REQUIRED:
        value = _leaf(fields, name)
        if not value:
            raise PayloadError(f"missing field {name}")
        values.append(value)
    to_user, from_user, create_time, msg_type = values
    if len(create_time) > MAX_TIMESTAMP_DIGITS or not (create_time.isascii() and create_time.isdigit()):
        raise PayloadError("field CreateTime must be unix seconds (ASCII digits)")
    try:
        received_at = datetime.fromtimestamp(int(create_time), UTC)
    except (OverflowError, OSError, ValueError):
        raise PayloadError("field CreateTime is out of range") from None

    text, payload, notice = "", None, None
    if msg_type == "event" or msg_type.startswith(_DEVICE_PREFIX):
        event = _leaf(fields, "Event") if msg_type == "event" else msg_type
        key = _leaf(fields, "EventKey")
        kind = _EVENT_KINDS.get(event.lower()) or _FOLLOWER_MENU_EVENTS.get(event.lower()) or Kind.NOTIFICATION
        if event.lower() == _SCAN_AND_WAIT:
            kind, text = Kind.TEXT, _scan_result(fields)
        elif kind is Kind.NOTIFICATION:
            notice = _notice(event.lower(), fields)
        elif kind is Kind.FOLLOW:
            # Scanning a scene QR before following: EventKey=qrscene_<scene>, Ticket in raw.
            if key.startswith(_QRSCENE_PREFIX):
                payload = key[len(_QRSCENE_PREFIX) :] or None
        elif kind is not Kind.UNFOLLOW:
            payload = key or None
        if not event:
            raise PayloadError("missing field Event")
    else:
        parse_kind = _MESSAGE_KINDS.get(msg_type)
        if parse_kind is None:
            kind = Kind.UNKNOWN  # video, shortvideo, and whatever WeChat adds next
        else:
            kind, text, payload = parse_kind(fields)

    message_id = _leaf(fields, "MsgId") or None
    if message_id is None:
        event_name = _leaf(fields, "Event") if msg_type == "event" else msg_type
        # A send's report names its send (MsgID): two sends finishing in one second are two reports.
        message_id = event_message_id(from_user, create_time, event_name,
                                      _leaf(fields, "EventKey") or _leaf(fields, "MsgID"))

    return Inbound(
        channel=channel,
        account=account_hint if account_hint is not None else to_user,
        external_id=from_user,
        kind=kind,
        text=text,
        payload=payload,
        message_id=message_id,
        received_at=received_at,
        notice=notice,
        raw=fields,
        replay_check=replay_check,
    )


def _scan_result(fields: dict[str, Any]) -> str:
    """What the follower scanned with the menu's scan-and-wait button (ScanCodeInfo.ScanResult)."""
    info = fields.get("ScanCodeInfo")
    result = info.get("ScanResult", "") if isinstance(info, dict) else ""
    result = check.text("ScanCodeInfo.ScanResult", result.strip(), max_length=1024)
    if not result:
        raise PayloadError("field ScanCodeInfo.ScanResult is required for scancode_waitmsg")
    return result


def _notice(event: str, fields: dict[str, Any]) -> Notice:
    """What a platform notification reports (``event`` lower-cased); every field read is checked."""
    location = None
    if event == "location":
        location = (check.coordinate("Latitude", _leaf(fields, "Latitude"), bound=90),
                    check.coordinate("Longitude", _leaf(fields, "Longitude"), bound=180))
    details = {name: _leaf(fields, name) for name in _REPORT_FIELDS if _leaf(fields, name)}
    for name, value in details.items():
        if name != "Status" and not (value.isascii() and value.isdigit() and len(value) <= 12):
            raise PayloadError(f"field {name} must be a count (ASCII digits)")
    if kf_account := _leaf(fields, "KfAccount"):
        details["KfAccount"] = kf_account
    subject = check.identifier("MsgID", _leaf(fields, "MsgID"), max_length=64, required=False) or None
    return Notice(event=event, about_follower=event not in _ACCOUNT_NOTICES, subject=subject, location=location,
                  conversation=_CONVERSATION.get(event), details=details)


def event_message_id(from_user: str, create_time: str, event: str, key: str) -> str:
    """Return the dedupe key of a callback without MsgId (events): a hash of what its retries repeat.

    WeChat's retries of an event repeat FromUserName, CreateTime, Event and EventKey (PROTOCOLS.md).
    Hashed, the key has a fixed size whatever the event key's length, and holds no OpenID.
    """
    digest = hashlib.sha256("\n".join((from_user, create_time, event, key)).encode("utf-8")).hexdigest()
    return f"ev:{digest[:40]}"


# --- passive replies --------------------------------------------------------------------------


def cdata(value: str) -> str:
    """Return ``value`` safe inside ``<![CDATA[...]]>``: split ``]]>``, drop XML-illegal characters."""
    if "]]>" in value:
        value = value.replace("]]>", "]]]]><![CDATA[>")
    if _XML_INVALID.search(value):
        value = _XML_INVALID.sub("", value)
    return value


def _unix(create_time: int | datetime) -> int:
    return int(create_time.timestamp()) if isinstance(create_time, datetime) else int(create_time)


def render_text(to_user: str, from_user: str, content: str, create_time: int | datetime) -> str:
    """Render a passive text reply (``to_user`` is the follower, ``from_user`` the account)."""
    return (
        f"<xml><ToUserName><![CDATA[{cdata(to_user)}]]></ToUserName>"
        f"<FromUserName><![CDATA[{cdata(from_user)}]]></FromUserName>"
        f"<CreateTime>{_unix(create_time)}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{cdata(content)}]]></Content></xml>"
    )



def render_news(to_user: str, from_user: str, article: Article, create_time: int | datetime) -> str:
    """Render a passive news reply with exactly one article (WeChat's current rule)."""
    return (
        f"<xml><ToUserName><![CDATA[{cdata(to_user)}]]></ToUserName>"
        f"<FromUserName><![CDATA[{cdata(from_user)}]]></FromUserName>"
        f"<CreateTime>{_unix(create_time)}</CreateTime>"
        "<MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item>"
        f"<Title><![CDATA[{cdata(article.title)}]]></Title>"
        f"<Description><![CDATA[{cdata(article.description)}]]></Description>"
        f"<PicUrl><![CDATA[{cdata(article.picture_url)}]]></PicUrl>"
        f"<Url><![CDATA[{cdata(article.url)}]]></Url>"
        "</item></Articles></xml>"
    )


def wechat_markup(text: str) -> list[tuple[int, int]]:
    """WeChat's markup in text messages: entities (``&amp;``) and ``<a href>`` links, whole (a link
    cut before its closing tag is dropped; an unclosed one runs to the end)."""
    return [m.span() for m in _MARKUP.finditer(text)]


def truncate_text(text: str, limit_bytes: int = MAX_TEXT_BYTES) -> str:
    """Fit ``text`` into ``limit_bytes`` of UTF-8, cutting cleanly and ending with "…" when cut.

    The cut never splits a character, a combining sequence, an entity (``&amp;``) or a
    ``<a href>`` link; the ellipsis counts toward the limit. Lone surrogates become U+FFFD.
    """
    if limit_bytes < 0:
        raise ValueError("limit_bytes must not be negative")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        data = text.encode("utf-8")
    if len(data) <= limit_bytes:
        return text
    cut = cut_text(text, limit_bytes, measure=utf8_bytes, markup=wechat_markup, ellipsis=_ELLIPSIS)
    ellipsis = _ELLIPSIS if limit_bytes >= _ELLIPSIS_BYTES else ""  # else cut bare: too small for it
    return cut.removesuffix(ellipsis).rstrip() + ellipsis


# --- active API payloads ----------------------------------------------------------------------


def custom_text_payload(openid: str, text: str) -> dict[str, Any]:
    """Build the body of ``message/custom/send`` for a text message."""
    return {"touser": openid, "msgtype": "text", "text": {"content": text}}


def custom_image_payload(openid: str, media_id: str) -> dict[str, Any]:
    """Build the body of ``message/custom/send`` for an image (``media_id`` from ``media/upload``)."""
    return {"touser": openid, "msgtype": "image", "image": {"media_id": media_id}}


def custom_news_payload(openid: str, article: Article) -> dict[str, Any]:
    """Build the body of ``message/custom/send`` for one news article (more returns 45008)."""
    return {
        "touser": openid,
        "msgtype": "news",
        "news": {
            "articles": [
                {
                    "title": article.title,
                    "description": article.description,
                    "url": article.url,
                    "picurl": article.picture_url,
                }
            ]
        },
    }


def qrcode_payload(scene: str | int, *, permanent: bool, expire_seconds: int | None = None) -> dict[str, Any]:
    """Build the body of ``qrcode/create``, picking the action from the scene's type and lifetime.

    An int scene gives ``QR_SCENE``/``QR_LIMIT_SCENE`` (``scene_id``), a str ``QR_STR_SCENE``/
    ``QR_LIMIT_STR_SCENE`` (``scene_str``). Without ``expire_seconds`` a temporary code lives
    for WeChat's default (30 s).
    """
    if isinstance(scene, bool) or not isinstance(scene, (int, str)):
        raise ValueError("scene must be an int or a str")
    if isinstance(scene, int):
        top = QR_LIMIT_SCENE_MAX if permanent else QR_SCENE_MAX
        if not 1 <= scene <= top:
            lifetime = "permanent" if permanent else "temporary"
            raise ValueError(f"integer scene must be 1..{top} for a {lifetime} QR code")
        action = "QR_LIMIT_SCENE" if permanent else "QR_SCENE"
        info: dict[str, Any] = {"scene": {"scene_id": scene}}
    else:
        if not 1 <= len(scene) <= QR_SCENE_STR_MAX:
            raise ValueError(f"string scene must be 1..{QR_SCENE_STR_MAX} characters")
        action = "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE"
        info = {"scene": {"scene_str": scene}}
    payload: dict[str, Any] = {"action_name": action, "action_info": info}
    if permanent:
        if expire_seconds is not None:
            raise ValueError("a permanent QR code takes no expire_seconds")
    elif expire_seconds is not None:
        if isinstance(expire_seconds, bool) or not isinstance(expire_seconds, int):
            raise ValueError("expire_seconds must be an int")
        if not 1 <= expire_seconds <= QR_EXPIRE_MAX:
            raise ValueError(f"expire_seconds must be 1..{QR_EXPIRE_MAX} (30 days)")
        payload["expire_seconds"] = expire_seconds
    return payload


# Our locales -> the ``language`` of a personalized menu's matchrule (the language of the follower's
# WeChat). Traditional Chinese readers set zh_TW or zh_HK: both get the zh_Hant menu.
MENU_LANGUAGES = {"zh_Hans": ("zh_CN",), "zh_Hant": ("zh_TW", "zh_HK"), "en": ("en",)}


def _menu_button(menu: Menu, button: MenuButton, locale: str) -> dict[str, Any]:
    name = menu.label(button.label, locale)
    if button.buttons:
        return {"name": name, "sub_button": [_menu_button(menu, b, locale) for b in button.buttons]}
    if button.type == VIEW:
        return {"type": VIEW, "name": name, "url": button.url}
    return {"type": button.type, "name": name, "key": button.key}


def menu_payloads(menu: Menu) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Build the bodies of ``menu/create`` (the default menu, in the menu's default locale) and of
    ``menu/addconditional`` (one per WeChat language reading another locale, with its ``matchrule``)."""
    default = {"button": [_menu_button(menu, b, menu.default_locale) for b in menu.buttons]}
    conditional = [
        {"button": [_menu_button(menu, b, locale) for b in menu.buttons], "matchrule": {"language": language}}
        for locale, languages in MENU_LANGUAGES.items() if locale != menu.default_locale for language in languages
    ]
    return default, conditional
