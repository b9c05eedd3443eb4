"""The stores file (``engagebot stores load stores.yaml``), validated whole before anything is stored.

    datum: gcj02                 # the file's coordinates: wgs84 (GPS, the default) or gcj02 (maps in China)
    stores:
      - id: shanghai-xintiandi
        name: {zh_Hans: 新天地店, en: Xintiandi}
        address: {zh_Hans: 上海市黄浦区马当路245号, en: 245 Madang Rd, Huangpu, Shanghai}
        latitude: 31.2196
        longitude: 121.4750
        timezone: Asia/Shanghai
        hours: {mon-fri: "10:00-22:00", sat-sun: "09:00-23:00"}   # "closed", or several "10:00-14:00, 17:00-02:00"

Opening hours are the store's local time; a range past midnight ("18:00-02:00") runs into the next day.
Hours name every day (``closed`` for a day off); a store without ``hours`` is shown as open.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.errors import EngagebotError
from bot.files import describe_validation_error
from bot.i18n import locale_keys

from .geo import to_wgs84

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_STORES = 5000
_SLUG = r"[a-z0-9][a-z0-9_-]{0,63}"
_RANGE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")

# Opening hours by weekday (0 = Monday): (opens, closes) minutes after midnight; closes may pass 24 h.
WeekHours = dict[int, list[tuple[int, int]]]


class StoresFileError(EngagebotError):
    """The stores file is not valid; the message names the store and the field."""


def parse_hours(value: dict[str, str]) -> WeekHours:
    """``{"mon-fri": "10:00-22:00", "sat": "closed"}`` -> ranges per weekday; ValueError naming the problem."""
    week: WeekHours = {}
    for days, ranges in value.items():
        if not isinstance(days, str) or not isinstance(ranges, str):
            raise ValueError("hours map days (mon, mon-fri) to ranges (10:00-22:00) or closed")
        for day in _days(days.strip().lower()):
            if day in week:
                raise ValueError(f"{DAYS[day]} is given twice")
            week[day] = [] if ranges.strip().lower() == "closed" else [_range(r) for r in ranges.split(",")]
    if week and len(week) < 7:
        # "sun: closed" alone would close the store all week: say each day, or give no hours at all.
        missing = ", ".join(DAYS[d] for d in range(7) if d not in week)
        raise ValueError(f"hours must name every day (missing: {missing}); use closed for a day off")
    return week


def _days(spec: str) -> list[int]:
    first, _, last = spec.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise ValueError(f"unknown day {spec!r} (mon..sun, or a span such as mon-fri)")
    start, end = DAYS.index(first), DAYS.index(last or first)
    return [(start + i) % 7 for i in range((end - start) % 7 + 1)]


def _range(text: str) -> tuple[int, int]:
    match = _RANGE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"opening hours {text.strip()!r} are not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    opens, closes = h1 * 60 + m1, h2 * 60 + m2
    if closes > 24 * 60:
        raise ValueError(f"{text.strip()!r}: 24:00 is the latest closing")
    if closes <= opens:
        closes += 24 * 60  # past midnight, into the next day
    return opens, closes


class StoreSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=f"^{_SLUG}$")
    name: dict[str, str]
    address: dict[str, str] = Field(default_factory=dict)
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    timezone: str = "Asia/Shanghai"
    hours: dict[str, str] = Field(default_factory=dict)
    phone: str | None = Field(default=None, max_length=32)

    @field_validator("name", "address")
    @classmethod
    def _texts(cls, value: dict[str, str]) -> dict[str, str]:
        value = locale_keys(value)
        for text in value.values():
            if not isinstance(text, str) or not text.strip() or len(text) > 200:
                raise ValueError("each text is 1..200 characters")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        parse_hours(value)
        return value

    @model_validator(mode="after")
    def _named(self) -> StoreSpec:
        if not self.name:
            raise ValueError("name needs a text in at least one locale")
        return self


class StoresFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    datum: Literal["wgs84", "gcj02"] = "wgs84"
    stores: list[StoreSpec] = Field(min_length=1, max_length=MAX_STORES)

    @model_validator(mode="after")
    def _unique(self) -> StoresFile:
        seen: set[str] = set()
        for store in self.stores:
            if store.id in seen:
                raise ValueError(f"store id {store.id!r} is given twice")
            seen.add(store.id)
        return self

    def rows(self) -> list[dict[str, Any]]:
        """The stores as table rows, their coordinates in WGS-84."""
        out = []
        for s in self.stores:
            lat, lng = to_wgs84(s.latitude, s.longitude, self.datum)
            out.append({"slug": s.id, "latitude": lat, "longitude": lng, "timezone": s.timezone,
                        "details": {"name": s.name, "address": s.address, "hours": s.hours, "phone": s.phone}})
        return out


def parse_stores(data: Any, *, source: str = "stores file") -> StoresFile:
    if not isinstance(data, dict):
        raise StoresFileError(f"{source}: expected a mapping with a 'stores' list")
    try:
        return StoresFile.model_validate(data)
    except ValidationError as exc:
        raise StoresFileError(f"{source}: {describe_validation_error(exc, data, 'stores')}") from None

