"""What a simulator keeps across restarts: the records changed since the last look, and its counters.

A record is ``(kind, key, data)``: ``data`` is plain JSON, None when the record is gone. Whoever hosts
a simulator stores them (``engagebot run`` keeps them in its database) and gives them all back to
``restore()`` on the next start. Shared by the simulators only; nothing of the bot's.
"""

from __future__ import annotations

import base64
from typing import Any

Record = tuple[str, str, dict[str, Any] | None]
MAX_MEDIA = 200  # uploaded images a simulator keeps (the oldest go first)


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

    def _keep_media(self, media: dict[str, dict[str, Any]], key: str, entry: dict[str, Any]) -> None:
        """Keep an uploaded image (``entry["data"]`` bytes) as a ``media`` record; forget the oldest past MAX_MEDIA."""
        media[key] = entry
        self._mark("media", key)
        while len(media) > MAX_MEDIA:
            oldest = next(iter(media))
            del media[oldest]
            self._mark("media", oldest)


def media_record(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """An uploaded image as plain JSON (its bytes in base64)."""
    return None if entry is None else {**entry, "data": base64.b64encode(entry["data"]).decode("ascii")}


def media_from_record(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "data": base64.b64decode(data["data"])}
