"""The per-message context a handler receives: follower, locale, session, state, formatting."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.i18n import Catalogs, Formatter, current_locale

from .capabilities import Capabilities
from .follower import FollowerRecord
from .inbound import Inbound
from .reply import Reply, TextReply
from .services import Services


@dataclass(slots=True)
class Context:
    """Everything a handler may use besides the message itself.

    ``follower`` is the stored follower (changes to it are written with the message); ``session`` the
    message's database session (one per message, never shared between tasks), opened on first use:
    most messages are answered from memory and the group writer, and a session costs a message more
    CPU than its routing; ``services`` holds what the app plugs in (prompt rules, the offer index, an
    extension's own).
    """

    msg: Inbound
    follower: FollowerRecord
    locale: str
    catalogs: Catalogs
    capabilities: Capabilities
    now: datetime
    default_locale: str = "zh_Hans"
    international_locale: str = "en"  # for followers whose language has no catalog
    tz: tzinfo | None = None
    was_following: bool = False  # before this message: tells a new follow from a repeated one
    services: Services = field(default_factory=Services)
    # Replies a middleware or handler wants sent before the handler's own (a welcome, a grant...).
    extra_replies: list[Reply] = field(default_factory=list)
    # How ``session`` is opened (the dispatcher's store), and the session once it is.
    open_session: Callable[[], AsyncSession] | None = None
    opened_session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        """The message's session; the first use opens it (the dispatcher closes it after the message)."""
        if self.opened_session is None:
            if self.open_session is None:
                raise RuntimeError("this context has no database session")
            self.opened_session = self.open_session()
        return self.opened_session

    def _(self, message: str) -> str:
        """Translate into this follower's locale."""
        return self.catalogs.gettext(self.locale, message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.catalogs.ngettext(self.locale, singular, plural, n)

    def text(self, message: str) -> TextReply:
        """Return a text reply (the message is expected to be translated already)."""
        return TextReply(message)

    @property
    def fmt(self) -> Formatter:
        return Formatter(self.locale, self.tz)

    def set_locale(self, locale: str) -> None:
        """Store the follower's explicit language choice and switch this message to it."""
        self.follower.locale = locale
        self.locale = locale
        current_locale.set(locale)

    # Conversation state lives on the follower row, so it survives restarts and costs no extra query.
    @property
    def state(self) -> str | None:
        return self.follower.state

    @property
    def state_data(self) -> dict[str, Any]:
        return dict(self.follower.state_data or {})

    def set_state(self, state: str | None, **data: Any) -> None:
        self.follower.state = state
        keep = {k: v for k, v in (self.follower.state_data or {}).items() if k.startswith("_")}
        self.follower.state_data = {**keep, **data}

    def clear_state(self) -> None:
        self.set_state(None)
