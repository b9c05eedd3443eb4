"""The dates and times an operator may give (API bodies, console forms, promotions files): one range, one type.

Python's ``datetime`` runs from year 1 to 9999; a moment at either end overflows once moved to another
time zone (``0001-01-01T00:00+08:00`` is in year 0 in UTC), and storage, the console's local times and the
follower's formatting all move it. Years 2000 to 9998 convert in every zone and cover any real promotion.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

from bot.errors import ValueRefusal
from bot.i18n import N_

FIRST_YEAR = 2000
LAST_YEAR = 9998
OUT_OF_RANGE = N_("must be a date from the year 2000 to the year 9998")


def check_moment(value: datetime | date) -> datetime | date:
    """Refuse a date or time outside ``FIRST_YEAR`` .. ``LAST_YEAR`` (a ValueError: ``OUT_OF_RANGE``).

    The year is the value's own (naive or in its offset): a year away from either end of ``datetime``'s
    range, any zone's conversion stays inside it."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueRefusal(OUT_OF_RANGE)
    return value


def _moment(value: datetime) -> datetime:
    check_moment(value)
    return value


def _day(value: date) -> date:
    check_moment(value)
    return value


# The shared pydantic types: an aware time, and a day, both within the range.
Moment = Annotated[AwareDatetime, AfterValidator(_moment)]
Day = Annotated[date, AfterValidator(_day)]
# A promotions file's time: a day, or a time naive (in the promotion's zone) or with its offset.
DayOrMoment = Annotated[datetime | date, AfterValidator(check_moment)]
