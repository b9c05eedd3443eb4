"""The one engine that sends: outbox leases, pacing per channel account, retries, outcomes, reply windows.

Every outbound row (a reply the platform's HTTP answer could not carry, a broadcast's message) is
written ``pending`` before any send and goes through :class:`OutboxSender`: claimed under a lease
(``journal.py`` renews it while the row is held), checked against the reply window
(``windows.py``), paced by the channel's declared rates (``ratelimit.py``: the only limiter), marked ``sending``,
sent through the channel's ``send_reply``, and its outcome recorded (:class:`DeliveryStatus`).
A channel only maps its platform's errors to typed ones (``bot.errors``); what happens next
(repeat in place, retry when, give up after how many) is decided here, in ``retry.py``. ``presence.py`` says
which accounts have a sender running and gives up rows nobody can send.

Delivery imports core and storage only; a channel is anything that fits :class:`Sender`.
"""

from bot.storage.status import FINAL, UNSENT, DeliveryStatus

from .outbox import LEASE, OutboxSender
from .presence import NO_SENDER_WAIT, Presence, give_up_unserved, unserved_accounts
from .ratelimit import RateLimiter
from .retry import MAX_ATTEMPTS, RetryPolicy
from .sender import MassSender, Sender, can_mass_send, channel_key
from .windows import HELD_FOR_MASS, OUTSIDE_WINDOW

__all__ = [
    "FINAL",
    "HELD_FOR_MASS",
    "LEASE",
    "MAX_ATTEMPTS",
    "NO_SENDER_WAIT",
    "OUTSIDE_WINDOW",
    "UNSENT",
    "DeliveryStatus",
    "MassSender",
    "OutboxSender",
    "Presence",
    "RateLimiter",
    "RetryPolicy",
    "Sender",
    "can_mass_send",
    "channel_key",
    "give_up_unserved",
    "unserved_accounts",
]
