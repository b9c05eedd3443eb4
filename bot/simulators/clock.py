"""A clock the simulators' tests move by hand (token expiry, reply windows, mass-send days)."""

from __future__ import annotations

import time


class ManualClock:
    """A clock for tests: call it for unix seconds, ``advance()`` to move time forward."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
