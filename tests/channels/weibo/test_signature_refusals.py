"""Each refusal of Weibo's signature check, with its reason compared whole and its limits at the boundary.

A reason is what an operator reads in the log ("request refused ... reason"): a check that refused
for the wrong reason (a missing nonce taken for a mismatch) would mislead them. The size limits are
met exactly (accepted for checking) and passed by one (refused before any hashing).
"""

from __future__ import annotations

import hashlib

import pytest

from bot.channels.weibo import protocol
from bot.errors import SignatureError

SECRET = "s3cr3t-app-secret"
TS, NONCE = "1700000000123", "n1"


def sign(secret: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([secret, timestamp, nonce])).encode()).hexdigest()


def reason(sig: str | None, timestamp: str | None, nonce: str | None) -> str:
    with pytest.raises(SignatureError) as refused:
        protocol.verify_signature(SECRET, sig, timestamp, nonce)
    return str(refused.value)


MISSING = "missing signature, timestamp or nonce"
OVERSIZED = "oversized signature parameters"
MISMATCH = "signature mismatch"


@pytest.mark.parametrize(("sig", "timestamp", "nonce"), [
    (None, TS, NONCE), ("", TS, NONCE), (sign(SECRET, TS, NONCE), None, NONCE), (sign(SECRET, TS, NONCE), TS, None),
])
def test_a_missing_part_is_refused_as_missing(sig: str | None, timestamp: str | None, nonce: str | None) -> None:
    assert reason(sig, timestamp, nonce) == MISSING


@pytest.mark.parametrize(("field", "limit"), [("sig", 64), ("timestamp", 32), ("nonce", 128)])
def test_each_size_limit_is_met_exactly_and_passed_by_one(field: str, limit: int) -> None:
    def parts(size: int) -> tuple[str, str, str]:
        values = {"sig": "a" * 40, "timestamp": TS, "nonce": NONCE}
        values[field] = "1" * size
        return values["sig"], values["timestamp"], values["nonce"]

    assert reason(*parts(limit)) == MISMATCH  # at the limit: checked, and wrong
    assert reason(*parts(limit + 1)) == OVERSIZED


def test_a_signature_that_is_not_text_of_hex_digits_is_a_mismatch_not_a_crash() -> None:
    # A lone surrogate cannot be encoded as UTF-8: it is replaced, and the comparison says no.
    assert reason("\ud800" * 40, TS, NONCE) == MISMATCH
    assert reason("签名" * 20, TS, NONCE) == MISMATCH


def test_the_genuine_signature_passes_in_either_case_and_another_secrets_does_not() -> None:
    protocol.verify_signature(SECRET, sign(SECRET, TS, NONCE), TS, NONCE)
    protocol.verify_signature(SECRET, sign(SECRET, TS, NONCE).upper(), TS, NONCE)
    assert reason(sign("another-secret", TS, NONCE), TS, NONCE) == MISMATCH
