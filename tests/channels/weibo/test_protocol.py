"""The Weibo protocol module: signatures, pushes, passive replies, errors, the megaphone's listings.

Signatures are computed here from the formula of PROTOCOLS.md, not with the module's own helper.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from urllib.parse import unquote

import pytest

from bot.channels.weibo import protocol
from bot.core.inbound import Kind
from bot.errors import FollowerGone, PayloadError, PlatformAPIError, QuotaExceeded, SignatureError

SECRET = "s3cr3t-app-secret"
BRAND, FAN = "5000000001", "6000000002"
CREATED = "Mon Jul 16 18:09:20 +0800 2012"


def sign(secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode()).hexdigest()


def push(**fields: object) -> bytes:
    doc = {"type": "text", "receiver_id": int(BRAND), "sender_id": int(FAN), "created_at": CREATED, "text": "hi",
           "data": {}}
    doc.update(fields)
    return json.dumps(doc).encode()


def test_signature_of_sorted_secret_timestamp_nonce_in_milliseconds() -> None:
    ts = "1700000000123"
    protocol.verify_signature(SECRET, sign(SECRET, ts, "n1"), ts, "n1")
    protocol.verify_signature(SECRET, sign(SECRET, ts, "n1").upper(), ts, "n1")


@pytest.mark.parametrize("sig,ts,nonce", [
    (None, "1700000000123", "n"), ("", "1700000000123", "n"), ("ab" * 20, "1700000000123", "n"),
    ("x" * 1000, "1", "n"), ("é", "1", "n"),
])
def test_wrong_or_missing_signature_refused(sig: str | None, ts: str, nonce: str) -> None:
    with pytest.raises(SignatureError):
        protocol.verify_signature(SECRET, sig, ts, nonce)


def test_signature_with_another_secret_refused() -> None:
    with pytest.raises(SignatureError):
        protocol.verify_signature(SECRET, sign("other", "1", "n"), "1", "n")


def test_text_push() -> None:
    p = protocol.parse_push(push(text="你好"), brand_uid=BRAND)
    assert (p.inbound.kind, p.inbound.text, p.inbound.external_id, p.fan_uid) == (Kind.TEXT, "你好", FAN, FAN)
    assert p.inbound.received_at == datetime(2012, 7, 16, 10, 9, 20, tzinfo=UTC)
    assert p.inbound.channel == "weibo" and p.inbound.message_id and p.inbound.message_id.startswith("wb:")


@pytest.mark.parametrize("msg_type,data,kind,payload", [
    ("position", {"longitude": "116.3", "latitude": "39.9"}, Kind.LOCATION, "39.900000,116.300000"),
    ("image", {"vfid": "821804459", "tovfid": "x"}, Kind.IMAGE, "821804459"),
    ("voice", {"vfid": "123"}, Kind.VOICE, "123"),
    ("event", {"subtype": "follow"}, Kind.FOLLOW, None),
    ("event", {"subtype": "subscribe"}, Kind.FOLLOW, None),
    ("event", {"subtype": "unfollow"}, Kind.UNFOLLOW, None),
    ("event", {"subtype": "unsubscribe"}, Kind.UNFOLLOW, None),
    ("event", {"subtype": "scan", "key": "spring"}, Kind.SCAN, "spring"),
    ("event", {"subtype": "scan_follow", "key": "spring"}, Kind.FOLLOW, "spring"),
    ("event", {"subtype": "click", "key": "MENU_1"}, Kind.CLICK, "MENU_1"),
    ("event", {"subtype": "view", "key": "https://example.com"}, Kind.VIEW, "https://example.com"),
    ("event", {"subtype": "mention"}, Kind.TEXT, None),
    ("event", {"subtype": "somethingnew"}, Kind.NOTIFICATION, None),
    ("video", {}, Kind.UNKNOWN, None),
])
def test_every_kind(msg_type: str, data: dict[str, str], kind: Kind, payload: str | None) -> None:
    p = protocol.parse_push(push(type=msg_type, data=data, text="@brand hello"))
    assert (p.inbound.kind, p.inbound.payload) == (kind, payload)


def test_dedupe_key_is_sender_created_at_type_subtype() -> None:
    a = protocol.parse_push(push(type="event", data={"subtype": "follow"}, text=""))
    b = protocol.parse_push(push(type="event", data={"subtype": "follow"}, text="other"))
    c = protocol.parse_push(push(type="event", data={"subtype": "unfollow"}, text=""))
    d = protocol.parse_push(push(type="event", data={"subtype": "follow"}, sender_id=1, text=""))
    assert a.inbound.message_id == b.inbound.message_id
    assert len({a.inbound.message_id, c.inbound.message_id, d.inbound.message_id}) == 3


@pytest.mark.parametrize("body,reason", [
    (b"\xff\xfe{}", "UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "nested"),
    (b'{"a": NaN}', "JSON"),
    (b"not json", "JSON"),
    (b"[]", "object"),
    (push(type=5), "type"),
    (push(sender_id="abc"), "sender_id"),
    (push(sender_id=True), "sender_id"),
    (push(sender_id=2**64), "sender_id"),
    (push(receiver_id=None), "receiver_id"),
    (push(receiver_id=1), "receiver_id"),
    (push(created_at=1342433360), "created_at"),
    (push(created_at="yesterday"), "created_at"),
    (push(text=["a"]), "text"),
    (push(data=[1]), "data"),
    (push(type="event", data={}), "subtype"),
    (push(type="event", data={"subtype": "scan"}), "key"),
    (push(type="event", data={"subtype": "click", "key": 5}), "key"),
    (push(type="position", data={"longitude": "east"}), "longitude"),
    (push(type="position", data={"longitude": 500, "latitude": 1}), "longitude"),
])
def test_hostile_bodies_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        protocol.parse_push(body, brand_uid=BRAND)


def test_passive_reply_json_with_url_encoded_data() -> None:
    out = json.loads(protocol.passive_reply(brand_uid=BRAND, fan_uid=FAN, msg_type="text",
                                            data=protocol.text_data("你好 & =")))
    assert out["result"] is True and out["sender_id"] == int(BRAND) and out["receiver_id"] == int(FAN)
    assert out["type"] == "text" and "%" in out["data"] and "&" not in out["data"]
    assert json.loads(unquote(out["data"])) == {"text": "你好 & ="}


def test_text_cut_under_weibo_limit_on_a_clean_boundary() -> None:
    text = "你好。" * 200
    cut = protocol.text_data(text)["text"]
    assert len(cut) <= protocol.MAX_TEXT_CHARS and cut.endswith("…")
    family = "👨‍👩‍👧" * 200  # never split a grapheme cluster
    assert protocol.fit_text(family, 10).rstrip("…").count("👨‍👩‍👧") * len("👨‍👩‍👧") == len(
        protocol.fit_text(family, 10).rstrip("…"))


@pytest.mark.parametrize("code,exc", [(10022, QuotaExceeded), (10023, QuotaExceeded), (10024, QuotaExceeded),
                                      (20003, FollowerGone), (20019, PlatformAPIError)])
def test_error_mapping(code: int, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        protocol.raise_for_error(400, {"error": "x", "error_code": code, "request": "/2/messages/reply.json"}, "/p")


def test_repeated_content_is_a_platform_error_with_its_code() -> None:
    with pytest.raises(PlatformAPIError) as info:
        protocol.raise_for_error(400, {"error": "repeated", "error_code": 20019}, "/p")
    assert info.value.errcode == 20019
    protocol.raise_for_error(200, {"result": True}, "/p")


def test_listings_keep_ids_as_strings_and_skip_malformed_items() -> None:
    big = 4611686018427387905
    comments = protocol.parse_comments({"comments": [
        {"id": big, "idstr": str(big), "text": "hi", "created_at": CREATED, "user": {"id": 1, "screen_name": "a"},
         "status": {"id": 77}},
        {"id": "bad"}, "junk",
    ]})
    assert [(c.cid, c.post_id, c.user_id, c.key) for c in comments] == [(str(big), "77", "1", f"c:{big}")]
    mentions = protocol.parse_mentions({"statuses": [
        {"id": 9, "text": "@brand hi", "created_at": CREATED, "user": {"id": 2, "screen_name": "b"}}]})
    assert [(m.cid, m.post_id, m.key) for m in mentions] == [(None, "9", "s:9")]
    with pytest.raises(PlatformAPIError):
        protocol.parse_comments({"error": "x"})
