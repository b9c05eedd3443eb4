"""The one clock: aware UTC datetimes.

It lives in core, the lowest layer of ours (core imports nothing of ours but i18n), because core
itself needs it (an Inbound's ``received_at``, a message's ``now``) and every layer above may import
core. Storage hands back aware UTC datetimes too (``bot.storage.models.UTCDateTime``), so times read
and times made here compare without conversion.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)
