"""Edits that cannot overwrite each other: a version per row, checked twice.

First against the version the caller read (its ETag, sent back as ``If-Match``), then by the UPDATE
itself (SQLAlchemy's ``version_id_col`` adds ``WHERE version = :read``): a concurrent edit committed in
between matches no row, and the loser gets 409 instead of silently winning.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.i18n import N_

from .errors import Named, Stale


def etag(version: int) -> str:
    return f'"v{version}"'


def version_of(if_match: str | None) -> int | None:
    """The version an ``If-Match`` header names; None when absent, -1 when it names none of ours."""
    if if_match is None:
        return None
    value = if_match.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) > 2 and value[0] == value[-1] == '"' and value[1] == "v" and value[2:-1].isdigit() \
            and len(value) < 24:
        return int(value[2:-1])
    return -1


def check_version(current: int, expected: int | None, what: str | Named) -> None:
    if expected is not None and expected != current:
        raise Stale(N_("{what} changed since it was read (now version {current}): read it again, then edit"),
                       what=what, current=current)


async def flush_or_conflict(session: AsyncSession, what: str | Named) -> None:
    try:
        await session.flush()
    except StaleDataError:
        raise Stale(N_("{what} was changed by someone else meanwhile: read it again, then edit"),
                       what=what) from None
