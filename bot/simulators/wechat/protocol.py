"""The simulator's own WeChat wire code: signatures, XML and the AES envelope.

Written from the published protocol (PROTOCOLS.md), independently of the bot's adapter, so that a bug in
the adapter's protocol code cannot be mirrored here. Nothing in this module does HTTP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import string
import struct
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as DET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "AES_KEY_RE",
    "MessageCipher",
    "ProtocolError",
    "build_xml",
    "cdata",
    "new_nonce",
    "new_openid",
    "parse_xml",
    "signature",
    "signatures_match",
]

AES_KEY_RE = re.compile(r"^[A-Za-z0-9]{43}$")
_BLOCK = 32  # WeChat pads to 32 bytes (PKCS#7 with k=32), not to the AES block size
_URLSAFE = string.ascii_letters + string.digits + "-_"


class ProtocolError(ValueError):
    """A body, envelope or signature that does not follow the protocol."""


def signature(*parts: str) -> str:
    """Sign like WeChat: sha1 over the sorted parts, concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def signatures_match(expected: str, given: str | None) -> bool:
    """Compare two signatures in constant time."""
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "replace"))


def new_nonce() -> str:
    """Return a numeric nonce like the platform's."""
    return str(secrets.randbelow(10**10))


def new_openid() -> str:
    """Return an OpenID-looking id: "o" + 27 url-safe characters."""
    return "o" + "".join(secrets.choice(_URLSAFE) for _ in range(27))


def cdata(value: str) -> str:
    """Wrap text in CDATA, splitting any "]]>" so the section cannot be closed early."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


XmlFields = list[tuple[str, "str | int | XmlFields"]]


def build_xml(fields: XmlFields, *, root: str = "xml") -> str:
    """Build an `<xml>` document; strings go in CDATA, integers as plain text (as the platform does),
    a list of fields as a nested element (``ScanCodeInfo``, ``SendLocationInfo``)."""
    out = [f"<{root}>"]
    for tag, value in fields:
        if isinstance(value, list):
            out.append(build_xml(value, root=tag))
            continue
        body = str(value) if isinstance(value, int) else cdata(value)
        out.append(f"<{tag}>{body}</{tag}>")
    out.append(f"</{root}>")
    return "".join(out)


def parse_xml(body: bytes) -> ET.Element:
    """Parse untrusted XML safely: UTF-8 only, no DTD, no entities, root `<xml>`."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("body is not UTF-8") from exc
    try:
        root = DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ET.ParseError, defusedxml.DefusedXmlException) as exc:
        raise ProtocolError(f"unparsable XML: {exc}") from exc
    if root.tag != "xml":
        raise ProtocolError(f"root element is <{root.tag}>, expected <xml>")
    return root


class MessageCipher:
    """AES-256-CBC envelope of safe mode, keyed by the 43-char EncodingAESKey."""

    def __init__(self, encoding_aes_key: str, app_id: str) -> None:
        if not AES_KEY_RE.match(encoding_aes_key):
            raise ValueError("EncodingAESKey must be 43 characters of [A-Za-z0-9]")
        self._key = base64.b64decode(encoding_aes_key + "=")
        self._iv = self._key[:16]
        self._app_id = app_id.encode("utf-8")

    def encrypt(self, message: bytes) -> str:
        """Encrypt: 16 random bytes + big-endian length + message + appid, padded to 32."""
        plain = secrets.token_bytes(16) + struct.pack(">I", len(message)) + message + self._app_id
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        enc = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """Decrypt and check padding, length and appid; return the message."""
        try:
            raw = base64.b64decode(encrypted.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ProtocolError("Encrypt is not base64") from exc
        if not raw or len(raw) % 16:
            raise ProtocolError("ciphertext length is not a multiple of 16")
        dec = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).decryptor()
        plain = dec.update(raw) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise ProtocolError("bad PKCS#7 padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise ProtocolError("plaintext too short")
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise ProtocolError("length prefix is larger than the plaintext")
        message, app_id = content[4 : 4 + length], content[4 + length :]
        if not hmac.compare_digest(app_id, self._app_id):
            raise ProtocolError("appid in the envelope does not match")
        return message
