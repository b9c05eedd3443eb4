"""What a channel can show and when it may speak; declared by each adapter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    """The platform lets the bot speak ``max_sends`` times within ``duration`` of a follower's action."""

    duration: timedelta
    max_sends: int | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_text_length: int = 4096  # characters, or bytes when ``text_length_in_bytes``
    text_length_in_bytes: bool = False
    buttons: bool = False
    max_articles: int = 0  # 0: articles degrade to title + link text
    images: bool = False
    passive_reply_deadline: float | None = None  # seconds; None: replies always go through the send API
    max_passive_replies: int | None = None  # how many replies fit in the HTTP answer; None: all
    # Windows by what the follower did last: "message" (text, voice...) or "event" (follow, click, scan).
    window_after_message: ReplyWindow | None = None
    window_after_event: ReplyWindow | None = None
