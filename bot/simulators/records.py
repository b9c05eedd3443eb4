"""What a simulator keeps across restarts: the records changed since the last look, and its counters.

A record is ``(kind, key, data)``: ``data`` is plain JSON, None when the record is gone. Whoever hosts
a simulator stores them (``engagebot run`` keeps them in its database) and gives them all back to
``restore()`` on the next start. Shared by the simulators only; nothing of the bot's.
"""

from __future__ import annotations

from typing import Any

Record = tuple[str, str, dict[str, Any] | None]


class RecordKeeper:
    """Mixed into a simulator's state: ``_mark`` what changes, ``take_changes()`` hands it over.

    The simulator supplies ``_record_of(kind, key)`` (the record's data, None if gone) and ``_meta()``
    (its counters and small lists, sent as the single ``meta`` record whenever they changed).
    """

    def _init_records(self) -> None:
        self._dirty: set[tuple[str, str]] = set()  # (kind, key) changed since take_changes()
        self._saved_meta: Any = None

    def _mark(self, kind: str, key: int | str) -> None:
        self._dirty.add((kind, str(key)))

    def _record_of(self, kind: str, key: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def _meta(self) -> dict[str, Any]:
        raise NotImplementedError

    def take_changes(self, *, force_meta: bool = False) -> list[Record]:
        """Records changed since the last call; the ``meta`` record too when it changed (or ``force_meta``)."""
        changes: list[Record] = [(kind, key, self._record_of(kind, key)) for kind, key in sorted(self._dirty)]
        self._dirty.clear()
        meta = self._meta()
        if changes or force_meta or meta != self._saved_meta:
            self._saved_meta = meta
            changes.append(("meta", "", meta))
        return changes
