"""Random codes a person can read aloud and type: no look-alike characters (0/O, 1/I/L)."""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def generate_code(length: int = 8, prefix: str = "") -> str:
    """Return ``prefix`` followed by ``length`` characters drawn with ``secrets`` from ALPHABET."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def normalize_code(code: str) -> str:
    """Tidy a code a person typed: trim and drop inner spaces (case is kept: pool codes may use it)."""
    return "".join(code.split())
