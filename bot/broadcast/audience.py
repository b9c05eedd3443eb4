"""Who a broadcast goes to, and in which language each follower gets it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement

from bot.i18n import INTERNATIONAL_LOCALE, SUPPORTED_LOCALES, negotiate, operator_time, pick_text
from bot.storage.models import Follower


@dataclass(frozen=True, slots=True)
class Audience:
    """A filter over followers; an empty field does not filter. Only followers still following match.

    ``tags`` matches a follower with any one of them; ``sources`` is the first-touch campaign
    (``follower.first_source``); ``locales`` is the locale the follower would get the message in.
    """

    channels: tuple[str, ...] = ()
    locales: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    followed_since: datetime | None = None
    _tagset: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tagset", frozenset(self.tags))

    def sql_conditions(self) -> list[ColumnElement[bool]]:
        """What the database filters (indexable columns); tags and locale are checked per row."""
        conditions: list[ColumnElement[bool]] = [Follower.following.is_(True)]
        if self.channels:
            conditions.append(Follower.channel.in_(self.channels))
        if self.sources:
            conditions.append(Follower.first_source.in_(self.sources))
        if self.followed_since is not None:
            conditions.append(Follower.followed_at >= self.followed_since)
        return conditions

    def accepts(self, locale: str, tags: Iterable[str] | None) -> bool:
        """Check what SQL could not portably: the resolved locale and the tags (a JSON list)."""
        if self.locales and locale not in self.locales:
            return False
        if self._tagset and not self._tagset.intersection(tags or ()):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels), "locales": list(self.locales), "tags": list(self.tags),
            "sources": list(self.sources),
            "followed_since": self.followed_since.isoformat() if self.followed_since else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Audience:
        since = data.get("followed_since")
        parsed = datetime.fromisoformat(since) if since else None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return cls(channels=tuple(data.get("channels") or ()), locales=tuple(data.get("locales") or ()),
                   tags=tuple(data.get("tags") or ()), sources=tuple(data.get("sources") or ()),
                   followed_since=parsed)

    def describe(self, tz: str = "UTC") -> str:
        """One line for the operator (times in ``tz``, ENGAGEBOT_TIMEZONE)."""
        parts = [f"{name}={','.join(values)}" for name, values in (
            ("channel", self.channels), ("locale", self.locales), ("tag", self.tags), ("source", self.sources))
            if values]
        if self.followed_since:
            parts.append(f"followed since {operator_time(self.followed_since, tz)}")
        return "; ".join(parts) or "every follower"


def follower_locale(chosen: str | None, hint: str | None, default: str,
                    available: tuple[str, ...] = SUPPORTED_LOCALES, *,
                    international: str = INTERNATIONAL_LOCALE) -> str:
    """The locale the conversation would use without a message: the follower's own choice, else the
    platform's hint (a language without a catalog: the international locale), else the default."""
    return negotiate(chosen=chosen, hint=hint, text=None, default=default, international=international,
                     available=available)


def text_for(texts: Mapping[str, str], locale: str, default: str) -> str:
    """The operator's text in ``locale`` (Chinese converted from the other script); else in the
    default locale; else any text given."""
    return pick_text(texts, locale, default=default)
