"""Broadcasts: an operator's announcement to an audience, each follower in its own language.

A broadcast is expanded into one outbound ``Message`` row per follower (the outbox) before anything
is sent; per-channel workers drain it within what each channel declares in its ``Capabilities``.
See ``README.md`` beside this file for the delivery guarantees.
"""

from .audience import Audience, follower_locale
from .expand import BroadcastError, create_broadcast, expand_broadcast
from .models import Broadcast, MassSend
from .status import Progress, cancel_broadcast, progress, render_progress
from .worker import BroadcastWorker

__all__ = [
    "Audience",
    "Broadcast",
    "BroadcastError",
    "BroadcastWorker",
    "MassSend",
    "Progress",
    "cancel_broadcast",
    "create_broadcast",
    "expand_broadcast",
    "follower_locale",
    "progress",
    "render_progress",
]
