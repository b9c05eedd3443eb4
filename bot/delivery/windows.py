"""The platform's reply window, counted in the database: who may still be sent to, and why not.

A platform such as WeChat lets the bot speak a few times within a while after the follower's last
action. The count lives on the follower row and is taken with one conditional UPDATE, so several
instances never together exceed what the platform allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.capabilities import Capabilities, ReplyWindow
from bot.storage.models import Follower

OUTSIDE_WINDOW = "outside the reply window"
HELD_FOR_MASS = "outside the reply window: waiting for a mass send"


def window_for(caps: Capabilities, kind: str | None) -> ReplyWindow | None:
    if kind == "event":
        return caps.window_after_event
    if kind == "message":
        return caps.window_after_message
    if kind == "mention":
        return caps.window_after_mention
    return None


def has_windows(caps: Capabilities) -> bool:
    return (caps.window_after_message is not None or caps.window_after_event is not None
            or caps.window_after_mention is not None)


def _window_conditions(caps: Capabilities, now: datetime, sends: int) -> list[Any]:
    """SQL: the follower's window is open and has room for ``sends`` more."""
    conditions = []
    for kind, window in (("message", caps.window_after_message), ("event", caps.window_after_event),
                         ("mention", caps.window_after_mention)):
        if window is None:
            continue
        cond = and_(Follower.last_action_kind == kind, Follower.last_action_at > now - window.duration)
        if window.max_sends is not None:
            cond = and_(cond, Follower.window_sends + sends <= window.max_sends)
        conditions.append(cond)
    return conditions


def refusal_reason(caps: Capabilities, *, following: bool, kind: str | None, at: datetime | None,
                   sends: int, now: datetime) -> str:
    """Say why the platform would refuse a send to this follower (for the row's ``reason``)."""
    if not following:
        return "follower unfollowed"
    window = window_for(caps, kind)
    if window is None or at is None:
        return f"{OUTSIDE_WINDOW}: the follower never opened one"
    if at.tzinfo is None:  # stored as UTC
        at = at.replace(tzinfo=UTC)
    if at <= now - window.duration:
        return OUTSIDE_WINDOW
    if window.max_sends is not None and sends >= window.max_sends:
        return f"{OUTSIDE_WINDOW}: its {window.max_sends} sends are used up"
    return OUTSIDE_WINDOW


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """Whether a send to a follower would be inside the platform's reply window now, and until when.

    ``closes_at`` None with ``open``: the channel has no window (Telegram: pacing only).
    """

    open: bool
    closes_at: datetime | None = None
    sends_left: int | None = None  # None: no count (within the window, or no window at all)
    reason: str | None = None  # why not, when closed


def window_status(caps: Capabilities, *, following: bool, kind: str | None, at: datetime | None,
                  sends: int, now: datetime) -> WindowStatus:
    """Read the follower's window as the outbox will count it (for a person deciding to write)."""
    if not following:
        return WindowStatus(False, reason="follower unfollowed")
    if not has_windows(caps):
        return WindowStatus(True)
    window = window_for(caps, kind)
    if window is None or at is None:
        return WindowStatus(False, reason=refusal_reason(caps, following=following, kind=kind, at=at, sends=sends,
                                                         now=now))
    if at.tzinfo is None:  # stored as UTC
        at = at.replace(tzinfo=UTC)
    closes_at = at + window.duration
    left = None if window.max_sends is None else max(0, window.max_sends - sends)
    if closes_at <= now or left == 0:
        return WindowStatus(False, closes_at, left,
                            refusal_reason(caps, following=following, kind=kind, at=at, sends=sends, now=now))
    return WindowStatus(True, closes_at, left)


async def take_window_slots(session: AsyncSession, caps: Capabilities, needs: dict[int, int],
                            now: datetime) -> dict[int, int]:
    """Count sends against several followers' windows at once; return how many each was granted.

    Followers needing one send (a broadcast) share one statement; the rare follower with several
    rows in a batch takes its slots one by one, so it gets what is left rather than all or nothing.
    """
    if not has_windows(caps):
        return dict(needs)
    granted: dict[int, int] = {}

    async def take(ids: list[int]) -> list[int]:
        result = await session.execute(
            update(Follower).where(Follower.id.in_(ids), Follower.following.is_(True),
                                   or_(*_window_conditions(caps, now, 1)))
            .values(window_sends=Follower.window_sends + 1).returning(Follower.id),
            execution_options={"synchronize_session": False})
        return list(result.scalars().all())

    singles = [f for f, n in needs.items() if n == 1]
    for start in range(0, len(singles), 500):
        for follower_id in await take(singles[start:start + 500]):
            granted[follower_id] = 1
    for follower_id, n in needs.items():
        if n > 1:
            got = 0
            while got < n and await take([follower_id]):
                got += 1
            granted[follower_id] = got
    return granted
