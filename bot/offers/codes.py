"""Random codes a person can read aloud and type: no look-alike characters (0/O, 1/I/L)."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# 31 ** 8 is about 2 ** 40: with the admin API's throttle, guessing a live code takes years.
MIN_CODE_LENGTH = 8


def generate_code(length: int = MIN_CODE_LENGTH, prefix: str = "") -> str:
    """Return ``prefix`` followed by ``length`` (at least MIN_CODE_LENGTH) characters from ALPHABET.

    Drawn with ``secrets``. A promotion stored with a shorter length (before the minimum was 8)
    still gets codes of the minimum length.
    """
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(max(length, MIN_CODE_LENGTH)))


def normalize_code(code: str) -> str:
    """Tidy a code a person typed: trim and drop inner spaces (case is kept: pool codes may use it)."""
    return "".join(code.split())
