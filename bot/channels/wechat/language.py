"""A follower's language from WeChat's ``user/info``, asked within the passive-reply deadline.

WeChat callbacks carry no language. The dispatcher asks for it when a message brings a follower
new to the database (one who followed before the bot was installed writes first) or a follow;
the answer is kept on the follower (``locale_hint``), so each follower costs one call. The call
gets a small share of what is left of WeChat's 5 s: a slow platform delays the passive reply by
at most that share, never past the deadline. A follower the platform could not be asked about is
not asked again for a while (the platform is likely down; the script of the message decides).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from bot.core.inbound import Inbound
from bot.errors import EngagebotError
from bot.i18n import UNDETERMINED

from .api import WeChatAPI

log = logging.getLogger("engagebot.wechat")

USER_INFO_TIMEOUT = 1.0  # at most this long...
DEADLINE_SHARE = 3  # ...and at most a third of what is left before the passive deadline
RETRY_AFTER = 300.0  # seconds before asking again about a follower the platform did not answer for
MAX_REMEMBERED_FAILURES = 10_000


class UserLanguage:
    """Ask ``user/info`` for followers' languages, once each, within a deadline."""

    def __init__(self, api: WeChatAPI, *, timeout: float = USER_INFO_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.timeout = timeout
        self._clock = clock
        self._failed: OrderedDict[str, float] = OrderedDict()

    def before(self, deadline: float) -> Callable[[Inbound], Awaitable[str | None]]:
        """A lookup for one callback whose passive reply is due at ``deadline`` (event-loop time)."""

        async def lookup(msg: Inbound) -> str | None:
            remaining = deadline - asyncio.get_running_loop().time()
            return await self.language(msg.external_id, budget=min(self.timeout, max(remaining, 0.0) / DEADLINE_SHARE))

        return lookup

    async def language(self, openid: str, *, budget: float) -> str | None:
        """The follower's language tag (``zh_CN``, ``zh_TW``, ``en``), ``und`` when the platform
        knows none, or None when it could not be asked in time (ask again later)."""
        failed_at = self._failed.get(openid)
        if failed_at is not None and self._clock() - failed_at < RETRY_AFTER:
            return None
        if budget <= 0:
            return None
        try:
            info = await asyncio.wait_for(self.api.user_info(openid), budget)
        except (TimeoutError, EngagebotError) as exc:
            log.info("user info unavailable", extra={"channel": "wechat",
                                                     "reason": str(exc) or type(exc).__name__})
            self._remember_failure(openid)
            return None
        self._failed.pop(openid, None)
        language = info.get("language")
        if isinstance(language, str) and language.strip():
            return language.strip()[:35]
        return UNDETERMINED  # kept on the follower: no use asking again

    def _remember_failure(self, openid: str) -> None:
        self._failed[openid] = self._clock()
        self._failed.move_to_end(openid)
        while len(self._failed) > MAX_REMEMBERED_FAILURES:
            self._failed.popitem(last=False)
