"""The status a message row carries (``Message.status``): one enum, its values the stored strings.

Defined in storage because storage writes the first status of a row (``handled``, ``passive``,
``pending``); the delivery engine (``bot.delivery``) moves outbound rows through the rest. A
``StrEnum`` compares and stores as its plain string, so rows written before it existed need no
migration.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    # Inbound rows: the message was handled (its replies are rows of their own).
    HANDLED = "handled"
    # Outbound rows.
    PASSIVE = "passive"  # went in the HTTP answer to the platform's request
    PENDING = "pending"  # waiting to be sent: new, or a retry (``next_attempt_at``)
    SENDING = "sending"  # handed to the platform, its answer not yet recorded: in doubt if the process dies now
    SENT = "sent"
    FAILED = "failed"  # will not be tried again
    UNDELIVERABLE = "undeliverable"  # the platform would refuse it (window closed, follower gone, no sender)
    HELD = "held"  # a broadcast's row outside the reply window, waiting for a mass send
    CANCELLED = "cancelled"  # its broadcast was cancelled before it was sent


# Outbound rows a sender may still send.
UNSENT = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.HELD)
# Outbound rows whose outcome is written and never overwritten.
FINAL = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERABLE, DeliveryStatus.CANCELLED)

__all__ = ["FINAL", "UNSENT", "DeliveryStatus"]
