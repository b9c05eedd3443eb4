"""A signed request's replay check, written with the message's own exchange where it can be.

WeChat and Weibo sign the query string, not the body: the channel stores each request's signature
key with a hash of its body, and refuses one whose key came before with another body (a replay;
``bot.channels.replay``). Stored on its own before the message was handled, every message cost one
commit of its own ahead of its exchange's: one more turn of the group writer in its latency and one
more item in the writer's batches. The check travels with the message instead (``Inbound.replay_check``)
and its row is written in the transaction that stores the exchange; an exchange whose check fails is
not written, and the request is refused with nothing stored.

What would change anything before that write waits for the check to be settled on its own first
(:func:`settle_replay_check`): a first contact's follower row, a handler session's first statement,
a notification's row, a question to the platform, the app's error handlers, and every handler and
middleware not marked ``ctx_only`` (whose effects the framework cannot see). So a refused request still
changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .inbound import Inbound


class ReplayCheck(Protocol):
    def take(self) -> object | None:
        """The check's row, to be written with the exchange (once); None when it is settled or under way
        on its own, which the writer of the exchange must then :meth:`wait` for."""

    def settle(self, admitted: bool) -> None:
        """Say how the row taken with :meth:`take` was written: admitted, or refused (a replay)."""

    def release(self) -> None:
        """The row taken with :meth:`take` was not written (the transaction failed): check on its own later."""

    async def wait(self) -> None:
        """Return once the request is admitted, checking it on its own now if no exchange took it;
        raise ``bot.errors.ReplayError`` when it is refused."""


async def settle_replay_check(msg: Inbound) -> None:
    """Wait until the request of ``msg`` passed its replay check (checking it now if nothing took it);
    ``ReplayError`` if it is a replay. At once when there is nothing to check."""
    if msg.replay_check is not None:
        await msg.replay_check.wait()
