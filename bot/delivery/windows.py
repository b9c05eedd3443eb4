"""The platform's reply window, counted in the database: who may still be sent to, and why not.

A platform such as WeChat lets the bot speak a few times within a while after the follower's last
action. The count lives on the follower row and is taken with one conditional UPDATE, so several
instances never together exceed what the platform allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.capabilities import Capabilities, ReplyWindow
from bot.i18n import N_
from bot.storage.models import Follower


class WindowReason(str):
    """Why the platform would refuse a send: the English text as a ``str`` (the row's ``reason``, logs, the
    API, the CLI) that keeps its gettext message id and parameters, so the console can say it in the
    operator's language (``render``)."""

    message: str
    params: dict[str, Any]

    def __new__(cls, message: str, /, **params: Any) -> WindowReason:
        made = super().__new__(cls, message.format(**params) if params else message)
        made.message = message
        made.params = params
        return made

    def render(self, translate: Callable[[str], str] | None = None) -> str:
        if translate is None:
            return str(self)
        text = translate(self.message)
        return text.format(**self.params) if self.params else text


OUTSIDE_WINDOW = N_("outside the reply window")
HELD_FOR_MASS = N_("outside the reply window: waiting for a mass send")
UNFOLLOWED = N_("follower unfollowed")
NEVER_OPENED = N_("outside the reply window: the follower never opened one")
SENDS_USED_UP = N_("outside the reply window: its {sends} sends are used up")


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
                   sends: int, now: datetime) -> WindowReason:
    """Say why the platform would refuse a send to this follower (for the row's ``reason``)."""
    if not following:
        return WindowReason(UNFOLLOWED)
    window = window_for(caps, kind)
    if window is None or at is None:
        return WindowReason(NEVER_OPENED)
    if at.tzinfo is None:  # stored as UTC
        at = at.replace(tzinfo=UTC)
    if at <= now - window.duration:
        return WindowReason(OUTSIDE_WINDOW)
    if window.max_sends is not None and sends >= window.max_sends:
        return WindowReason(SENDS_USED_UP, sends=window.max_sends)
    return WindowReason(OUTSIDE_WINDOW)


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
        return WindowStatus(False, reason=WindowReason(UNFOLLOWED))
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
