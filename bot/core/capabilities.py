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
class MassSendQuota:
    """The platform's mass-send API: ``per_period`` calls within ``period``, ``max_recipients`` per call.

    WeChat: 1 per day (subscription account) or 4 per month (service account), up to 10,000 OpenIDs
    per ``/mass/send``. A channel declaring this implements ``send_mass(external_ids, reply, context=...)``.
    """

    per_period: int
    period: timedelta
    max_recipients: int = 10_000


@dataclass(frozen=True, slots=True)
class Capabilities:
    max_text_length: int = 4096  # characters, or bytes when ``text_length_in_bytes``
    text_length_in_bytes: bool = False
    buttons: bool = False
    max_articles: int = 0  # 0: articles degrade to title + link text
    images: bool = False
    image_captions: bool = False  # an image carries its caption (Telegram); else the caption follows as text
    passive_images: bool = True  # an image may go in the passive answer; else images and what follows use the API
    passive_reply_deadline: float | None = None  # seconds; None: replies always go through the send API
    max_passive_replies: int | None = None  # how many replies fit in the HTTP answer; None: all
    # Windows by what the follower did last: "message" (text, voice...) or "event" (follow, click, scan).
    window_after_message: ReplyWindow | None = None
    window_after_event: ReplyWindow | None = None
    # After an action the platform counts apart (``Inbound.window == "mention"``; Weibo: 1 reply in 48 h).
    window_after_mention: ReplyWindow | None = None
    # Send-API pacing (None: no limit): overall, and to one chat (Telegram: about 30/s and 1/s).
    max_sends_per_second: float | None = None
    max_sends_per_chat_per_second: float | None = None
    # A mass-send API for followers outside the reply window (None: they are reported undeliverable).
    mass_send: MassSendQuota | None = None
    # The platform drops a second send carrying the same ``context["idempotency_key"]``: a send left
    # in doubt by a crash can be repeated without the follower getting it twice.
    idempotent_sends: bool = False
    # A button that asks for the follower's location (Telegram's request_location keyboard).
    location_request: bool = False
    # The datum of the positions followers share: "gcj02" on WeChat (China's maps), else GPS's WGS-84.
    location_datum: str = "wgs84"
    # The conformance points (``bot.testing.conformance.POINTS``) the channel does not meet, each with the
    # reason: ``(("locale", "the pushes carry no language"),)``. The kit checks the declaration instead.
    not_met: tuple[tuple[str, str], ...] = ()
