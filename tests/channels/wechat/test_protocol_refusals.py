"""Every refusal of the WeChat protocol layer says exactly what failed, at exactly the documented limit.

The reason travels to the platform (and the operator's logs) as the 4xx answer's ``reason``, so it
is compared whole, not searched for. The safe-mode plaintexts here are built by hand (the test's
own AES, WeChat's layout) to land on each boundary of the decryption checks: a padding longer than
WeChat's 32-byte block, a padding reaching into the 20-byte header, a length field one byte too
long, a length field whose high byte is set, a message leaving no room for the app id.
"""

from __future__ import annotations

import base64
import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from bot.channels.wechat.protocol import (
    WeChatCrypto,
    check_timestamp_nonce,
    parse_envelope,
    sign,
    verify_msg_signature,
    verify_signature,
)
from bot.errors import DecryptError, PayloadError, SignatureError

TOKEN = "QDG6eK"
APP_ID = "wx5823bf96d3bd56c7"
KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


def crypto() -> WeChatCrypto:
    return WeChatCrypto(TOKEN, KEY, APP_ID)


def seal(plain: bytes) -> str:
    """AES-256-CBC, IV = key[:16], no padding added: each test lays out the whole plaintext."""
    raw = base64.b64decode(KEY + "=")
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def refusal(exc_type: type[Exception], call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(exc_type) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# --- signatures -------------------------------------------------------------------------------------


def test_signature_refusals_name_what_failed() -> None:
    ts, nonce = "1409659813", "1372623149"
    good = sign(TOKEN, ts, nonce)
    assert refusal(SignatureError, verify_signature, TOKEN, None, ts, nonce) == "missing signature"
    assert refusal(SignatureError, verify_signature, TOKEN, "", ts, nonce) == "missing signature"
    assert refusal(SignatureError, verify_signature, TOKEN, good[:-1] + "0", ts, nonce) == "signature mismatch"
    assert refusal(SignatureError, verify_signature, TOKEN, "é" * 40, ts, nonce) == "signature mismatch"
    assert refusal(SignatureError, verify_msg_signature, TOKEN, good, ts, nonce, "ENC") == "signature mismatch"
    assert refusal(PayloadError, parse_envelope, b"<xml><ToUserName>gh</ToUserName></xml>") == "missing field Encrypt"


@pytest.mark.parametrize("missing", [None, ""])
def test_a_missing_timestamp_or_nonce_is_refused_naming_which(missing: str | None) -> None:
    ts, nonce = "1409659813", "1372623149"
    assert refusal(PayloadError, check_timestamp_nonce, missing, nonce) == "missing timestamp"
    assert refusal(PayloadError, check_timestamp_nonce, ts, missing) == "missing nonce"
    assert refusal(PayloadError, verify_signature, TOKEN, sign(TOKEN, ts, nonce), missing, nonce) == "missing timestamp"
    assert refusal(PayloadError, verify_msg_signature, TOKEN, "x", ts, missing, "ENC") == "missing nonce"
    assert refusal(PayloadError, check_timestamp_nonce, "9" * 13, nonce) == "timestamp must be at most 12 ASCII digits"
    assert refusal(PayloadError, check_timestamp_nonce, ts, "n" * 65) == (
        "nonce must be at most 64 printable ASCII characters")


def test_a_timestamp_of_12_digits_and_a_nonce_of_64_characters_are_accepted() -> None:
    check_timestamp_nonce("9" * 12, "n" * 64)


# --- construction ---------------------------------------------------------------------------------


def test_construction_refusals_name_the_setting() -> None:
    assert refusal(ValueError, WeChatCrypto, "", KEY, APP_ID) == "WeChat token must not be empty"
    assert refusal(ValueError, WeChatCrypto, TOKEN, KEY, "") == "WeChat app id must not be empty"
    assert refusal(ValueError, WeChatCrypto, TOKEN, KEY[:-1], APP_ID) == (
        "EncodingAESKey must be exactly 43 characters of [A-Za-z0-9]")
    made = crypto()
    assert (made.token, made.app_id) == (TOKEN, APP_ID)


# --- decryption -----------------------------------------------------------------------------------


def layout(message: bytes, *, length: int | None = None, app_id: bytes = APP_ID.encode(), pad: int | None = None,
           size: int | None = None) -> bytes:
    """16 random bytes, the 4-byte length, the message, the app id, then ``pad`` bytes of value ``pad``."""
    body = os.urandom(16) + struct.pack(">I", len(message) if length is None else length) + message + app_id
    if pad is None:
        pad = 32 - len(body) % 32
    plain = body + bytes((pad,)) * pad
    assert size is None or len(plain) == size, len(plain)
    assert len(plain) % 16 == 0
    return plain


@pytest.mark.parametrize(("encrypt", "reason"), [
    ("%%%", "not base64"),
    (base64.b64encode(b"x" * 20).decode(), "ciphertext is not a whole number of AES blocks"),
    ("", "ciphertext is not a whole number of AES blocks"),
])
def test_undecodable_ciphertexts_name_what_failed(encrypt: str, reason: str) -> None:
    assert refusal(DecryptError, crypto().decrypt, encrypt) == reason


def test_a_padding_longer_than_wechats_32_byte_block_is_bad_padding() -> None:
    # 40 bytes of 0x28 form a valid PKCS#7 tail, but WeChat never pads past 32.
    plain = os.urandom(16) + struct.pack(">I", 0) + b"\0" * 4 + bytes((40,)) * 40
    assert refusal(DecryptError, crypto().decrypt, seal(plain)) == "bad padding"


def test_a_padding_reaching_into_the_header_is_bad_padding() -> None:
    # 32 bytes: a pad of 16 would leave 16 bytes, less than the 20-byte header.
    plain = os.urandom(16) + bytes((16,)) * 16
    assert refusal(DecryptError, crypto().decrypt, seal(plain)) == "bad padding"


def test_a_padding_that_leaves_exactly_the_header_is_read_further() -> None:
    # 32 bytes: header (20) + pad 12. The padding is acceptable; there is just no app id.
    plain = os.urandom(16) + struct.pack(">I", 0) + bytes((12,)) * 12
    assert refusal(DecryptError, crypto().decrypt, seal(plain)) == "wrong app id"


def test_a_zero_or_inconsistent_padding_is_bad_padding() -> None:
    good = layout(b"<xml/>")
    assert refusal(DecryptError, crypto().decrypt, seal(good[:-1] + b"\0")) == "bad padding"
    assert refusal(DecryptError, crypto().decrypt, seal(good[:-2] + bytes((good[-1] + 1,)) + good[-1:])) == (
        "bad padding")


def test_a_length_one_byte_past_the_app_id_is_a_bad_message_length() -> None:
    message = b"<xml>hello</xml>"
    plain = layout(message, length=len(message) + len(APP_ID) + 1)
    assert refusal(DecryptError, crypto().decrypt, seal(plain)) == "bad message length"


def test_a_length_with_its_high_byte_set_is_a_bad_message_length() -> None:
    message = b"<xml>hello</xml>"
    plain = layout(message, length=(1 << 24) + len(message))  # the low three bytes alone would fit
    assert refusal(DecryptError, crypto().decrypt, seal(plain)) == "bad message length"


def test_a_message_leaving_no_room_for_the_app_id_is_the_wrong_app_id() -> None:
    message = b"<xml>hello</xml>"
    plain = layout(message, length=len(message) + len(APP_ID))  # the app id read as part of the message
    assert refusal(DecryptError, crypto().decrypt, seal(plain)) == "wrong app id"


def test_another_apps_message_and_a_non_utf8_one_name_what_failed() -> None:
    assert refusal(DecryptError, crypto().decrypt, seal(layout(b"<xml/>", app_id=b"wxsomeoneelse00000"))) == (
        "wrong app id")
    assert refusal(DecryptError, crypto().decrypt, seal(layout(b"\xff\xfe"))) == "message is not UTF-8"


def test_the_longest_valid_padding_is_accepted() -> None:
    exact = b"<xml>" + b"y" * ((-(20 + len(APP_ID) + 11)) % 32) + b"</xml>"
    assert (20 + len(exact) + len(APP_ID)) % 32 == 0  # so a whole block of 32 padding bytes follows
    plain = layout(exact)
    assert plain[-32:] == bytes((32,)) * 32
    assert crypto().decrypt(seal(plain)) == exact.decode()
