"""WeChat wire protocol: published examples, hostile input, safe-mode crypto, reply shapes."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from datetime import UTC, datetime

import defusedxml.ElementTree as DET
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.wechat.protocol import (
    MAX_BODY_BYTES,
    MAX_TEXT_BYTES,
    SUCCESS,
    Envelope,
    WeChatCrypto,
    cdata,
    check_timestamp_nonce,
    custom_news_payload,
    custom_text_payload,
    event_message_id,
    parse_envelope,
    parse_message,
    qrcode_payload,
    render_news,
    render_text,
    sign,
    truncate_text,
    verify_msg_signature,
    verify_signature,
)
from bot.core.inbound import Kind
from bot.core.reply import Article
from bot.errors import DecryptError, PayloadError, PayloadTooLarge, SignatureError

# --- the WXBizMsgCrypt sample WeChat publishes with its SDKs (WeCom flavour, same algorithm) --------
# Checked character for character: the signature below is recomputed from these values and the
# ciphertext decrypts to a message addressed to SAMPLE_APP_ID, which a single wrong character breaks.
SAMPLE_TOKEN = "QDG6eK"
SAMPLE_APP_ID = "wx5823bf96d3bd56c7"
SAMPLE_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
SAMPLE_TIMESTAMP = "1409659813"
SAMPLE_NONCE = "1372623149"
SAMPLE_MSG_SIGNATURE = "477715d11cdb4164915debcba66cb864d751f3e6"
SAMPLE_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/"
    "sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+"
    "HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3"
    "LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28"
    "H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
SAMPLE_BODY = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    f"<Encrypt><![CDATA[{SAMPLE_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[218]]></AgentID>\n</xml>"
).encode()
# The URL-verification half of the same sample: echostr signed at another timestamp.
SAMPLE_ECHO_TIMESTAMP = "1409659589"
SAMPLE_ECHO_NONCE = "263014780"
SAMPLE_ECHO_SIGNATURE = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
SAMPLE_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="


def reference_sha1(*parts: str) -> str:
    """WeChat's signature, written out independently of the module under test."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def make_crypto(app_id: str = SAMPLE_APP_ID, key: str = SAMPLE_KEY) -> WeChatCrypto:
    return WeChatCrypto(SAMPLE_TOKEN, key, app_id)


def seal(plain: bytes, key: str = SAMPLE_KEY) -> str:
    """AES-256-CBC with WeChat's IV, no padding added: the test supplies the padding itself."""
    raw_key = base64.b64decode(key + "=")
    encryptor = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def wechat_plain(message: bytes, app_id: bytes = SAMPLE_APP_ID.encode()) -> bytes:
    return os.urandom(16) + struct.pack(">I", len(message)) + message + app_id


def pkcs7_32(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


# --- signatures -----------------------------------------------------------------------------------


def test_sign_is_sha1_of_sorted_concatenation() -> None:
    assert sign("token", "1409659813", "1372623149") == reference_sha1("token", "1409659813", "1372623149")


def test_url_verification_signature_is_accepted() -> None:
    token, timestamp, nonce = "weixin", "1510000000", "98765"
    verify_signature(token, reference_sha1(token, timestamp, nonce), timestamp, nonce)


def test_signature_in_upper_case_hex_is_accepted() -> None:
    verify_signature("weixin", reference_sha1("weixin", "1", "2").upper(), "1", "2")


@pytest.mark.parametrize("signature", ["", None, "0" * 40, "不是签名", reference_sha1("other", "1", "2")])
def test_wrong_or_missing_signature_is_rejected(signature: str | None) -> None:
    with pytest.raises(SignatureError):
        verify_signature("weixin", signature, "1", "2")


def test_published_msg_signature_sample_verifies() -> None:
    verify_msg_signature(SAMPLE_TOKEN, SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT)
    assert reference_sha1(SAMPLE_TOKEN, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ENCRYPT) == SAMPLE_MSG_SIGNATURE


def test_msg_signature_over_other_ciphertext_is_rejected() -> None:
    with pytest.raises(SignatureError):
        verify_msg_signature(SAMPLE_TOKEN, SAMPLE_MSG_SIGNATURE, SAMPLE_TIMESTAMP, SAMPLE_NONCE, SAMPLE_ECHOSTR)


@pytest.mark.parametrize(
    ("timestamp", "nonce", "reason"),
    [
        ("", "1", "missing timestamp"),
        (None, "1", "missing timestamp"),
        ("abc", "1", "timestamp"),
        ("12a4", "1", "timestamp"),
        ("١٢٣", "1", "timestamp"),  # Arabic-Indic digits are digits to str.isdigit, not to us
        ("1" * 13, "1", "timestamp"),
        ("1", "", "missing nonce"),
        ("1", "a\nb", "nonce"),
        ("1", "随机", "nonce"),
        ("1", "n" * 65, "nonce"),
    ],
)
def test_malformed_timestamp_or_nonce_is_a_payload_error(timestamp: str | None, nonce: str, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        check_timestamp_nonce(timestamp, nonce)


def test_malformed_parameters_fail_before_the_signature() -> None:
    with pytest.raises(PayloadError):
        verify_signature("weixin", "0" * 40, "not-a-time", "1")


# --- safe-mode crypto -----------------------------------------------------------------------------


def test_published_sample_decrypts_to_the_documented_message() -> None:
    xml = make_crypto().decrypt(SAMPLE_ENCRYPT)

    msg = parse_message(xml)

    assert (msg.account, msg.external_id, msg.kind, msg.text) == (SAMPLE_APP_ID, "mycreate", Kind.TEXT, "hello")
    assert msg.message_id == "4561255354251345929"
    assert msg.received_at == datetime(2014, 9, 2, 12, 10, 13, tzinfo=UTC)


def test_published_echostr_sample_verifies_and_decrypts() -> None:
    verify_msg_signature(
        SAMPLE_TOKEN, SAMPLE_ECHO_SIGNATURE, SAMPLE_ECHO_TIMESTAMP, SAMPLE_ECHO_NONCE, SAMPLE_ECHOSTR
    )

    assert make_crypto().decrypt(SAMPLE_ECHOSTR) == "1616140317555161061"


def test_decrypt_envelope_checks_signature_then_decrypts() -> None:
    crypto = make_crypto()

    xml = crypto.decrypt_envelope(
        SAMPLE_BODY, msg_signature=SAMPLE_MSG_SIGNATURE, timestamp=SAMPLE_TIMESTAMP, nonce=SAMPLE_NONCE
    )

    assert "<Content><![CDATA[hello]]></Content>" in xml
    with pytest.raises(SignatureError):
        crypto.decrypt_envelope(SAMPLE_BODY, msg_signature="0" * 40, timestamp=SAMPLE_TIMESTAMP, nonce=SAMPLE_NONCE)


def test_parse_envelope_extracts_encrypt_and_account() -> None:
    assert parse_envelope(SAMPLE_BODY) == Envelope(SAMPLE_ENCRYPT, SAMPLE_APP_ID)


def test_envelope_without_encrypt_is_rejected() -> None:
    with pytest.raises(PayloadError, match="Encrypt"):
        parse_envelope(b"<xml><ToUserName>gh_1</ToUserName></xml>")


def test_encrypt_raw_follows_the_documented_layout() -> None:
    message = "<xml>你好</xml>"

    sealed = base64.b64decode(make_crypto().encrypt_raw(message))

    raw_key = base64.b64decode(SAMPLE_KEY + "=")
    decryptor = Cipher(algorithms.AES(raw_key), modes.CBC(raw_key[:16])).decryptor()
    plain = decryptor.update(sealed) + decryptor.finalize()
    assert len(sealed) % 32 == 0
    pad = plain[-1]
    assert plain[-pad:] == bytes([pad]) * pad
    body = message.encode()
    assert plain[16:20] == struct.pack(">I", len(body))
    assert plain[20:-pad] == body + SAMPLE_APP_ID.encode()


def test_encrypt_raw_uses_fresh_random_bytes() -> None:
    crypto = make_crypto()

    assert crypto.encrypt_raw("same") != crypto.encrypt_raw("same")


def test_independently_sealed_message_decrypts() -> None:
    assert make_crypto().decrypt(seal(pkcs7_32(wechat_plain("订阅".encode())))) == "订阅"


def test_encrypted_reply_envelope_is_signed_and_decrypts() -> None:
    crypto = make_crypto()
    reply = render_text("oFollower", "gh_account", "hi ]]> there", 1700000000)

    envelope = DET.fromstring(crypto.encrypt(reply, nonce="12345", timestamp="1700000001"), forbid_dtd=True)

    encrypted = envelope.findtext("Encrypt")
    assert envelope.findtext("TimeStamp") == "1700000001"
    assert envelope.findtext("Nonce") == "12345"
    assert envelope.findtext("MsgSignature") == reference_sha1(SAMPLE_TOKEN, "1700000001", "12345", encrypted)
    assert crypto.decrypt(encrypted) == reply


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_decrypt_inverts_encrypt_for_any_text(text: str) -> None:
    crypto = make_crypto()

    assert crypto.decrypt(crypto.encrypt_raw(text)) == text


def test_wrong_key_cannot_decrypt() -> None:
    other = WeChatCrypto(SAMPLE_TOKEN, "a" * 43, SAMPLE_APP_ID)

    for _ in range(50):  # random prefixes: the failure must not depend on luck
        with pytest.raises(DecryptError):
            other.decrypt(make_crypto().encrypt_raw("<xml>secret</xml>"))


def test_wrong_app_id_is_rejected() -> None:
    sealed = make_crypto(app_id="wx0000000000000000").encrypt_raw("<xml/>")

    with pytest.raises(DecryptError, match="wrong app id"):
        make_crypto().decrypt(sealed)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p[:-1] + b"\x00",  # pad byte 0
        lambda p: p[:-32] + bytes([33]) * 32,  # pad byte above the 32-byte block
        lambda p: p[:-3] + b"\x05\x04\x03",  # pad bytes that disagree
    ],
    ids=["zero", "too-large", "inconsistent"],
)
def test_tampered_padding_is_rejected(tamper) -> None:
    plain = pkcs7_32(wechat_plain(b"<xml>hello</xml>"))

    with pytest.raises(DecryptError, match="bad padding"):
        make_crypto().decrypt(seal(tamper(plain)))


def test_length_field_beyond_the_plaintext_is_rejected() -> None:
    plain = os.urandom(16) + struct.pack(">I", 10_000) + b"<xml/>" + SAMPLE_APP_ID.encode()

    with pytest.raises(DecryptError, match="length"):
        make_crypto().decrypt(seal(pkcs7_32(plain)))


def test_invalid_utf8_message_is_rejected() -> None:
    with pytest.raises(DecryptError, match="UTF-8"):
        make_crypto().decrypt(seal(pkcs7_32(wechat_plain(b"\xff\xfe"))))


@pytest.mark.parametrize("garbage", ["", "not base64!!", "QUJD", "QUJDRA==" * 3, "日本", "QUJD\nRA=="])
def test_garbage_ciphertext_is_rejected(garbage: str) -> None:
    with pytest.raises(DecryptError):
        make_crypto().decrypt(garbage)


def test_non_base64_reason_is_named() -> None:
    with pytest.raises(DecryptError, match="not base64"):
        make_crypto().decrypt("%%%")


@pytest.mark.parametrize(
    "key",
    ["", "a" * 42, "a" * 44, "a" * 42 + "+", "a" * 42 + "/", "a" * 42 + "=", "a" * 42 + "é", " " + "a" * 42],
)
def test_bad_encoding_aes_key_is_rejected_at_construction(key: str) -> None:
    with pytest.raises(ValueError, match="EncodingAESKey"):
        WeChatCrypto(SAMPLE_TOKEN, key, SAMPLE_APP_ID)


def test_empty_token_or_app_id_is_rejected_at_construction() -> None:
    with pytest.raises(ValueError, match="token"):
        WeChatCrypto("", SAMPLE_KEY, SAMPLE_APP_ID)
    with pytest.raises(ValueError, match="app id"):
        WeChatCrypto(SAMPLE_TOKEN, SAMPLE_KEY, "")


# --- inbound XML: the documentation's examples ----------------------------------------------------

DOC_TEXT = b"""<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[this is a test]]></Content>
  <MsgId>1234567890123456</MsgId>
</xml>"""

DOC_IMAGE = b"""<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[image]]></MsgType>
  <PicUrl><![CDATA[this is a url]]></PicUrl>
  <MediaId><![CDATA[media_id]]></MediaId>
  <MsgId>1234567890123456</MsgId>
</xml>"""

DOC_VOICE = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[voice]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <Format><![CDATA[Format]]></Format>
  <Recognition><![CDATA[腾讯微信团队]]></Recognition>
  <MsgId>1234567890123456</MsgId>
</xml>""".encode()

DOC_LOCATION = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[location]]></MsgType>
  <Location_X>23.134521</Location_X>
  <Location_Y>113.358803</Location_Y>
  <Scale>20</Scale>
  <Label><![CDATA[位置信息]]></Label>
  <MsgId>1234567890123456</MsgId>
</xml>""".encode()

DOC_LINK = """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[link]]></MsgType>
  <Title><![CDATA[公众平台官网链接]]></Title>
  <Description><![CDATA[公众平台官网链接]]></Description>
  <Url><![CDATA[url]]></Url>
  <MsgId>1234567890123456</MsgId>
</xml>""".encode()

DOC_VIDEO = b"""<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[video]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>
  <MsgId>1234567890123456</MsgId>
</xml>"""


def doc_event(event: str, extra: str = "") -> bytes:
    return (
        "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[FromUser]]></FromUserName>"
        f"<CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>{extra}</xml>"
    ).encode()


DOC_SUBSCRIBE_SCENE = doc_event(
    "subscribe", "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>"
)
DOC_SCAN = doc_event("SCAN", "<EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>")
DOC_CLICK = doc_event("CLICK", "<EventKey><![CDATA[EVENTKEY]]></EventKey>")
DOC_VIEW = doc_event("VIEW", "<EventKey><![CDATA[www.qq.com]]></EventKey>")
DOC_LOCATION_EVENT = doc_event(
    "LOCATION", "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>"
)


def test_text_message_from_the_docs() -> None:
    msg = parse_message(DOC_TEXT)

    assert (msg.channel, msg.account, msg.external_id) == ("wechat", "toUser", "fromUser")
    assert (msg.kind, msg.text, msg.payload) == (Kind.TEXT, "this is a test", None)
    assert msg.message_id == "1234567890123456"
    assert msg.received_at == datetime(2012, 9, 28, 11, 31, tzinfo=UTC)
    assert msg.raw["MsgType"] == "text"


@pytest.mark.parametrize(
    ("body", "kind", "text", "payload"),
    [
        (DOC_IMAGE, Kind.IMAGE, "", "this is a url"),
        (DOC_VOICE, Kind.VOICE, "腾讯微信团队", "media_id"),
        (DOC_LOCATION, Kind.LOCATION, "位置信息", "23.134521,113.358803"),
        (DOC_LINK, Kind.LINK, "公众平台官网链接", "url"),
        (DOC_VIDEO, Kind.UNKNOWN, "", None),
    ],
    ids=["image", "voice", "location", "link", "video"],
)
def test_media_messages_from_the_docs(body: bytes, kind: Kind, text: str, payload: str | None) -> None:
    msg = parse_message(body)

    assert (msg.kind, msg.text, msg.payload, msg.message_id) == (kind, text, payload, "1234567890123456")


def test_image_without_pic_url_falls_back_to_media_id() -> None:
    body = DOC_IMAGE.replace(b"<PicUrl><![CDATA[this is a url]]></PicUrl>", b"")

    assert parse_message(body).payload == "media_id"


def test_voice_without_recognition_has_empty_text() -> None:
    body = DOC_VOICE.replace("<Recognition><![CDATA[腾讯微信团队]]></Recognition>".encode(), b"")

    assert (parse_message(body).kind, parse_message(body).text) == (Kind.VOICE, "")


def test_plain_subscribe_is_a_follow_without_scene() -> None:
    msg = parse_message(doc_event("subscribe"))

    assert (msg.kind, msg.payload, msg.external_id) == (Kind.FOLLOW, None, "FromUser")
    assert msg.message_id == event_message_id("FromUser", "123456789", "subscribe", "")


def test_subscribe_through_a_scene_qr_carries_the_scene_and_ticket() -> None:
    msg = parse_message(DOC_SUBSCRIBE_SCENE)

    assert (msg.kind, msg.payload) == (Kind.FOLLOW, "123123")
    assert msg.raw["Ticket"] == "TICKET"
    assert msg.message_id == event_message_id("FromUser", "123456789", "subscribe", "qrscene_123123")


@pytest.mark.parametrize(
    ("body", "kind", "payload", "message_id"),
    [
        (doc_event("unsubscribe"), Kind.UNFOLLOW, None, ("unsubscribe", "")),
        (DOC_SCAN, Kind.SCAN, "SCENE_VALUE", ("SCAN", "SCENE_VALUE")),
        (DOC_CLICK, Kind.CLICK, "EVENTKEY", ("CLICK", "EVENTKEY")),
        (DOC_VIEW, Kind.VIEW, "www.qq.com", ("VIEW", "www.qq.com")),
        (DOC_LOCATION_EVENT, Kind.NOTIFICATION, None, ("LOCATION", "")),
    ],
    ids=["unsubscribe", "scan", "click", "view", "location-event"],
)
def test_events_from_the_docs(body: bytes, kind: Kind, payload: str | None, message_id: tuple[str, str]) -> None:
    msg = parse_message(body)

    assert (msg.kind, msg.payload, msg.message_id) == (
        kind, payload, event_message_id("FromUser", "123456789", *message_id))
    assert msg.received_at == datetime.fromtimestamp(123456789, UTC)


def test_scan_event_key_is_taken_as_is() -> None:
    assert parse_message(doc_event("SCAN", "<EventKey>qrscene_7</EventKey>")).payload == "qrscene_7"


def test_text_starting_with_slash_is_a_command() -> None:
    msg = parse_message(DOC_TEXT.replace(b"this is a test", b"/lang en"))

    assert (msg.kind, msg.command, msg.command_args) == (Kind.COMMAND, "lang", "en")


def test_content_keeps_its_whitespace() -> None:
    msg = parse_message(DOC_TEXT.replace(b"this is a test", b"  two\n lines  "))

    assert msg.text == "  two\n lines  "


def test_whitespace_around_identifier_fields_is_ignored() -> None:
    body = DOC_TEXT.replace(b"<MsgType><![CDATA[text]]>", b"<MsgType>  <![CDATA[text]]>\n")

    assert parse_message(body).kind == Kind.TEXT


def test_account_hint_names_the_account() -> None:
    assert parse_message(DOC_TEXT, account_hint="brand").account == "brand"
    assert parse_message(DOC_TEXT, channel="wechat-test").channel == "wechat-test"


def test_str_body_is_accepted() -> None:
    assert parse_message(DOC_VOICE.decode()).text == "腾讯微信团队"


def test_unknown_msg_type_is_unknown_and_an_unknown_event_a_notification() -> None:
    assert parse_message(DOC_TEXT.replace(b"[text]", b"[hologram]")).kind == Kind.UNKNOWN
    assert parse_message(doc_event("TEMPLATESENDJOBFINISH")).kind == Kind.NOTIFICATION
    assert parse_message(doc_event("SOMETHING_NEW_NEXT_YEAR")).kind == Kind.NOTIFICATION


def test_nested_fields_are_kept_in_raw() -> None:
    body = doc_event(
        "scancode_push",
        "<EventKey>k</EventKey><ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo>",
    )

    assert parse_message(body).raw["ScanCodeInfo"] == {"ScanType": "qrcode", "ScanResult": "1"}


# --- inbound XML: hostile input -------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>1</CreateTime>
<MsgType>text</MsgType><Content>&xxe;</Content></xml>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<xml><Content>&lol9;</Content></xml>"""

PLAIN_DOCTYPE = b'<!DOCTYPE xml SYSTEM "http://evil.example/x.dtd">' + DOC_TEXT


@pytest.mark.parametrize("body", [XXE, BILLION_LAUGHS, PLAIN_DOCTYPE], ids=["xxe", "billion-laughs", "doctype"])
def test_dtds_and_entities_are_refused(body: bytes) -> None:
    with pytest.raises(PayloadError, match="XML DTDs and entities are not allowed"):
        parse_message(body)
    with pytest.raises(PayloadError, match="XML DTDs and entities are not allowed"):
        parse_envelope(body)


def test_undeclared_entity_is_refused() -> None:
    with pytest.raises(PayloadError):
        parse_message(DOC_TEXT.replace(b"<![CDATA[this is a test]]>", b"&xxe;"))


def test_message_mentioning_doctype_in_its_text_still_parses() -> None:
    msg = parse_message(DOC_TEXT.replace(b"this is a test", b"what is <!DOCTYPE html>?"))

    assert msg.text == "what is <!DOCTYPE html>?"


def test_oversized_body_is_refused_before_decoding() -> None:
    # Invalid UTF-8 throughout: only a size check made before decoding can answer PayloadTooLarge.
    with pytest.raises(PayloadTooLarge):
        parse_message(b"\xff" * (10 * 1024 * 1024))
    with pytest.raises(PayloadTooLarge):
        parse_envelope(b"\xff" * (MAX_BODY_BYTES + 1))


def test_oversized_str_body_is_measured_in_utf8_bytes() -> None:
    body = DOC_TEXT.decode().replace("this is a test", "中" * (MAX_BODY_BYTES // 3))

    with pytest.raises(PayloadTooLarge):
        parse_message(body)


def test_body_of_exactly_the_cap_is_accepted() -> None:
    body = DOC_TEXT.replace(b"</xml>", b" " * (MAX_BODY_BYTES - len(DOC_TEXT)) + b"</xml>")

    assert len(body) == MAX_BODY_BYTES
    assert parse_message(body).kind == Kind.TEXT


@pytest.mark.parametrize(
    "body",
    [
        DOC_TEXT.replace(b"this is a test", "测试".encode("gbk")),
        b'<?xml version="1.0" encoding="GBK"?>' + DOC_TEXT.replace(b"this is a test", "测试".encode("gbk")),
        DOC_TEXT.replace(b"this is a test", b"\xed\xa0\x80"),  # an encoded surrogate
    ],
    ids=["gbk", "declared-gbk", "surrogate"],
)
def test_non_utf8_body_is_refused(body: bytes) -> None:
    with pytest.raises(PayloadError, match="UTF-8"):
        parse_message(body)


@pytest.mark.parametrize("cut", [10, 50, len(DOC_TEXT) // 2, len(DOC_TEXT) - 1])
def test_truncated_xml_is_refused(cut: int) -> None:
    with pytest.raises(PayloadError, match="malformed XML"):
        parse_message(DOC_TEXT[:cut])


@pytest.mark.parametrize("body", [b"", b"not xml", b"<xml>", b"<xml></xml><xml></xml>", b"\x00"])
def test_garbage_body_is_refused(body: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_message(body)


def test_root_must_be_xml() -> None:
    with pytest.raises(PayloadError, match="root"):
        parse_message(DOC_TEXT.replace(b"<xml>", b"<msg>").replace(b"</xml>", b"</msg>"))


def test_control_character_in_content_is_refused() -> None:
    with pytest.raises(PayloadError):
        parse_message(DOC_TEXT.replace(b"this is a test", b"bell \x07"))


@pytest.mark.parametrize("field", ["ToUserName", "FromUserName", "CreateTime", "MsgType"])
def test_missing_required_field_is_named(field: str) -> None:
    text = DOC_TEXT.decode()
    start, end = text.index(f"<{field}>"), text.index(f"</{field}>") + len(f"</{field}>")

    with pytest.raises(PayloadError, match=field):
        parse_message(text[:start] + text[end:])
    with pytest.raises(PayloadError, match=field):
        parse_message(text[:start] + f"<{field}></{field}>" + text[end:])


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "１２３", "9" * 13, "9" * 12])
def test_bad_create_time_is_named(value: str) -> None:
    body = DOC_TEXT.decode().replace("1348831860", value)

    with pytest.raises(PayloadError, match="CreateTime"):
        parse_message(body)


def test_deeply_nested_body_does_not_exhaust_the_stack() -> None:
    depth = 5000
    body = DOC_TEXT.replace(b"</xml>", b"<a>" * depth + b"</a>" * depth + b"</xml>")

    assert parse_message(body).kind == Kind.TEXT


# --- passive replies ------------------------------------------------------------------------------


def test_success_constant() -> None:
    assert SUCCESS == "success"


def test_render_text_is_the_documented_shape() -> None:
    xml = render_text("oFollower", "gh_account", "你好", 1700000000)

    assert xml == (
        "<xml><ToUserName><![CDATA[oFollower]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        "<Content><![CDATA[你好]]></Content></xml>"
    )


def test_render_text_accepts_an_aware_datetime() -> None:
    when = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

    assert "<CreateTime>1700000000</CreateTime>" in render_text("o", "gh", "x", when)


@pytest.mark.parametrize("content", ["a]]>b", "]]>", "]]]]>>", "x]]>]]>y", "<b>&amp;</b>", "]]"])
def test_cdata_terminator_in_content_round_trips(content: str) -> None:
    xml = render_text("oFollower", "gh_account", content, 1700000000)

    assert DET.fromstring(xml, forbid_dtd=True).findtext("Content") == content
    assert parse_message(xml).text == content


@settings(max_examples=200, deadline=None)
@given(content=st.text(st.characters(blacklist_categories=("Cs", "Cc"))) | st.sampled_from(["]]>", "a]]>]]>b"]))
def test_any_text_round_trips_through_a_rendered_reply(content: str) -> None:
    xml = render_text("o", "gh", content, 1)

    assert (DET.fromstring(xml, forbid_dtd=True).findtext("Content") or "") == content


def test_characters_xml_cannot_carry_are_dropped_from_replies() -> None:
    assert cdata("a\x00b\x0bc\ufffe\td\n") == "abc\td\n"


def test_render_news_has_exactly_one_article() -> None:
    article = Article(title="Sale ]]> today", description="50% off", url="https://x.example/s?a=1&b=2",
                      picture_url="https://x.example/p.jpg")

    root = DET.fromstring(render_news("oFollower", "gh_account", article, 1700000000), forbid_dtd=True)

    assert root.findtext("MsgType") == "news"
    assert root.findtext("ArticleCount") == "1"
    items = root.findall("Articles/item")
    assert len(items) == 1
    assert [items[0].findtext(tag) for tag in ("Title", "Description", "PicUrl", "Url")] == [
        "Sale ]]> today", "50% off", "https://x.example/p.jpg", "https://x.example/s?a=1&b=2",
    ]
    assert (root.findtext("ToUserName"), root.findtext("FromUserName")) == ("oFollower", "gh_account")


# --- text length ----------------------------------------------------------------------------------


def test_text_within_the_limit_is_unchanged() -> None:
    text = "好" * (MAX_TEXT_BYTES // 3)

    assert truncate_text(text) is text


def test_cut_lands_on_a_character_boundary_and_counts_the_ellipsis() -> None:
    assert truncate_text("不要不要不要", 10) == "不要…"
    assert truncate_text("abcdef", 5) == "ab…"


def test_cut_does_not_split_an_entity() -> None:
    text = "a" * 2042 + "&amp;" + "b" * 10

    assert truncate_text(text, 2048) == "a" * 2042 + "…"


def test_cut_does_not_split_a_link() -> None:
    text = "x" * 2000 + '<a href="https://example.com/some/long/path">click here</a>' + "y" * 100

    assert truncate_text(text, 2048) == "x" * 2000 + "…"


def test_whole_link_before_the_cut_is_kept() -> None:
    link = '<a href="https://example.com">go</a>'
    text = link + "z" * 3000

    result = truncate_text(text, 2048)

    assert result.startswith(link + "z")
    assert len(result.encode()) == 2048


def test_bare_less_than_sign_does_not_swallow_the_text() -> None:
    text = "1 < 2 and " + "y" * 3000

    assert len(truncate_text(text, 2048).encode()) == 2048


def test_cut_does_not_split_combining_or_emoji_sequences() -> None:
    assert truncate_text("abe\u0301\u0301xyz", 8) == "ab…"
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    assert truncate_text("hi" + family + "!" * 20, 14) == "hi…"
    assert truncate_text("ok\U0001F44D\U0001F3FD" + "!" * 20, 9) == "ok…"


def test_lone_surrogates_never_reach_the_output() -> None:
    result = truncate_text("a\ud800b" + "c" * 100, 20)

    result.encode("utf-8")
    assert result.startswith("a\ufffdb")


def test_tiny_limits() -> None:
    assert truncate_text("abcdef", 3) == "…"
    assert truncate_text("abcdef", 2) == "ab"
    assert truncate_text("abcdef", 0) == ""
    with pytest.raises(ValueError):
        truncate_text("abc", -1)


ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&nbsp;", "&#20320;", "&#x4F60;"]
LINKS = ['<a href="https://mp.weixin.qq.com/s?a=1&amp;b=2">阅读</a>', "<a href='weixin://x'>go</a>"]
CLUSTERS = ["e\u0301", "\U0001F44D\U0001F3FD", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u0915\u093f"]
PLAIN = st.characters(blacklist_categories=("Cs",), blacklist_characters="&<>")
TOKENS = st.lists(PLAIN | st.sampled_from(ENTITIES + LINKS + CLUSTERS), max_size=300)


@settings(max_examples=300, deadline=None)
@given(tokens=TOKENS, limit=st.integers(min_value=0, max_value=400))
def test_truncation_never_exceeds_the_limit_nor_splits_a_token(tokens: list[str], limit: int) -> None:
    text = "".join(tokens)

    result = truncate_text(text, limit)

    data = result.encode("utf-8")  # never invalid UTF-8: a lone surrogate would raise here
    assert len(data) <= limit or result == text
    if result == text:
        assert len(text.encode()) <= limit
        return
    kept = result.removesuffix("…")
    # Entities, links and grapheme clusters are single tokens, so a clean cut lands between tokens.
    boundaries = {0}
    offset = 0
    for token in tokens:
        offset += len(token)
        boundaries.add(offset)
    assert text.startswith(kept)
    assert len(kept) in boundaries


@settings(max_examples=200, deadline=None)
@given(text=st.text(), limit=st.integers(min_value=0, max_value=MAX_TEXT_BYTES))
def test_truncation_of_any_text_fits_and_is_a_prefix(text: str, limit: int) -> None:
    result = truncate_text(text, limit)

    assert len(result.encode("utf-8")) <= limit
    assert text.startswith(result.removesuffix("…")) or text == result


# --- active API payloads --------------------------------------------------------------------------


def test_custom_text_payload() -> None:
    expected = {"touser": "oUser", "msgtype": "text", "text": {"content": "hello"}}

    assert custom_text_payload("oUser", "hello") == expected


def test_custom_news_payload_has_one_article() -> None:
    article = Article(title="T", description="D", url="https://u", picture_url="https://p")

    assert custom_news_payload("oUser", article) == {
        "touser": "oUser",
        "msgtype": "news",
        "news": {"articles": [{"title": "T", "description": "D", "url": "https://u", "picurl": "https://p"}]},
    }


@pytest.mark.parametrize(
    ("scene", "permanent", "expire", "expected"),
    [
        (123, False, 604800, {"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 123}},
                              "expire_seconds": 604800}),
        ("spring", False, None, {"action_name": "QR_STR_SCENE", "action_info": {"scene": {"scene_str": "spring"}}}),
        (100000, True, None, {"action_name": "QR_LIMIT_SCENE", "action_info": {"scene": {"scene_id": 100000}}}),
        ("s" * 64, True, None, {"action_name": "QR_LIMIT_STR_SCENE",
                                "action_info": {"scene": {"scene_str": "s" * 64}}}),
    ],
    ids=["QR_SCENE", "QR_STR_SCENE", "QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"],
)
def test_qrcode_payload_picks_the_action(scene, permanent: bool, expire: int | None, expected: dict) -> None:
    assert qrcode_payload(scene, permanent=permanent, expire_seconds=expire) == expected


@pytest.mark.parametrize(
    ("scene", "permanent", "expire", "reason"),
    [
        (0, True, None, "1..100000"),
        (100001, True, None, "1..100000"),
        (0, False, 60, "integer scene"),
        (2**32, False, 60, "integer scene"),
        (True, False, 60, "int or a str"),
        (1.5, False, 60, "int or a str"),
        ("", False, 60, "1..64"),
        ("s" * 65, True, None, "1..64"),
        (1, True, 60, "permanent"),
        (1, False, 0, "expire_seconds"),
        (1, False, 2592001, "expire_seconds"),
    ],
)
def test_qrcode_payload_rejects_invalid_requests(scene, permanent: bool, expire: int | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        qrcode_payload(scene, permanent=permanent, expire_seconds=expire)
