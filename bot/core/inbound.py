"""The normalized inbound message every channel adapter produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from .clock import utcnow

if TYPE_CHECKING:
    from .replay_check import ReplayCheck


class Kind(StrEnum):
    """What the follower did, independent of the platform."""

    TEXT = "text"
    COMMAND = "command"
    CLICK = "click"  # a menu item or a button press; payload holds its key
    VIEW = "view"  # a menu item that opens a URL; payload holds the URL
    FOLLOW = "follow"
    UNFOLLOW = "unfollow"
    SCAN = "scan"  # a scene QR or a deep link; payload holds the scene
    IMAGE = "image"
    VOICE = "voice"
    LOCATION = "location"
    LINK = "link"
    UNKNOWN = "unknown"
    # The platform telling the account something (a location report, a mass send finished, a
    # customer-service session opened): recorded, never answered. ``Inbound.notice`` says what.
    NOTIFICATION = "notification"


@dataclass(frozen=True, slots=True)
class Notice:
    """What a platform notification reports, in the platform's terms where it has its own.

    ``about_follower`` is False for notices about the account (a mass send's report, a verification):
    no follower is made of their sender. ``subject`` is what the notice is about (a mass send's
    platform id); ``conversation`` says a person took over the follower's conversation on the
    platform ("taken") or gave it back ("returned").
    """

    event: str
    about_follower: bool = True
    subject: str | None = None
    location: tuple[float, float] | None = None  # latitude, longitude
    conversation: Literal["taken", "returned"] | None = None
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a follower did on one channel, as the router sees it.

    ``payload`` carries a menu key, a QR scene or a deep-link payload; ``message_id`` is the
    platform's own id (used to drop platform retries); ``language_hint`` is the platform's
    idea of the follower's language, if it has one.
    """

    channel: str
    account: str
    external_id: str
    kind: Kind
    text: str = ""
    payload: str | None = None
    message_id: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    language_hint: str | None = None
    display_name: str | None = None
    # The reply window this action opens, when the platform counts it otherwise than its kind says
    # (Weibo: an @mention opens a "mention" window, one reply in 48 h). None: by kind.
    window: str | None = None
    notice: Notice | None = None  # set when kind is NOTIFICATION
    raw: Any = field(default=None, compare=False, repr=False)
    # A signed request's replay check still to settle (bot/core/replay_check.py); None: nothing to check.
    replay_check: ReplayCheck | None = field(default=None, compare=False, repr=False)

    @property
    def command(self) -> str | None:
        """Return the command name without the slash (``/lang en`` -> ``lang``), or None."""
        if not self.text.startswith("/"):
            return None
        head = self.text[1:].split(maxsplit=1)[0] if len(self.text) > 1 else ""
        # Telegram appends the bot's name in groups: /start@brand_bot
        return head.split("@", 1)[0].lower() or None

    @property
    def command_args(self) -> str:
        """Return what follows the command (``/lang en`` -> ``en``)."""
        parts = self.text.split(maxsplit=1)
        return parts[1].strip() if len(parts) > 1 else ""
