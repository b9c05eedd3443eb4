"""Work done once for everyone who asks while it runs: the first to ask leads it, the others follow.

The dispatcher's handling of a message that a platform retry asks for again, and the promotions
index's re-read, share this: whoever arrives while the work runs waits for its outcome (its result,
or its error) rather than doing it again. Only work cancelled with its leader's own request (the
request went away) leaves a follower to lead it in its place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
S = TypeVar("S")


class LeaderCancelled(Exception):
    """The work followed was cancelled with its leader's request, not the follower's: lead it now."""


async def lead(shared: asyncio.Future[S], work: Awaitable[T], share: Callable[[T], S]) -> T:
    """Await ``work`` and give its outcome to ``shared``'s followers as well: ``share(result)``, its error,
    or cancelled with it; then return or raise it."""
    try:
        result = await work
    except asyncio.CancelledError:
        shared.cancel()
        raise
    except BaseException as exc:
        shared.set_exception(exc)
        shared.exception()  # marked retrieved: nobody may be following
        raise
    shared.set_result(share(result))
    return result


async def follow(shared: asyncio.Future[S]) -> S:
    """The outcome of the work ``shared`` stands for; :class:`LeaderCancelled` when it was cancelled with
    its leader's request. Shielded: a follower cancelled (its own request gone) cancels no one else's wait."""
    try:
        return await asyncio.shield(shared)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not shared.cancelled() or (task is not None and task.cancelling()):
            raise
        raise LeaderCancelled from None
