"""Who may claim, when, and until when a code works: the operator's rules at their exact edges."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from bot.offers.claims import ClaimOutcome, check_eligibility, code_valid_until

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def promotion(**fields: Any) -> Any:
    base = dict(channels=None, starts_at=None, ends_at=None, followers_only=True, followed_since=None,
                audience_tags=None, audience_locales=None, valid_days=None, valid_until=None,
                timezone="Asia/Shanghai")
    return SimpleNamespace(**{**base, **fields})


def follower(**fields: Any) -> Any:
    base = dict(channel="wechat", following=True, followed_at=NOW - timedelta(days=30), tags=[], locale=None)
    return SimpleNamespace(**{**base, **fields})


@pytest.mark.parametrize(("rules", "who", "locale", "expected"), [
    ({}, {}, None, None),
    ({"channels": ["telegram"]}, {}, None, ClaimOutcome.NOT_ON_CHANNEL),
    ({"channels": ["wechat", "telegram"]}, {}, None, None),
    ({"starts_at": NOW}, {}, None, None),  # from its first second
    ({"starts_at": NOW + timedelta(seconds=1)}, {}, None, ClaimOutcome.NOT_STARTED),
    ({"ends_at": NOW}, {}, None, None),  # to its last second
    ({"ends_at": NOW - timedelta(seconds=1)}, {}, None, ClaimOutcome.ENDED),
    ({}, {"following": False}, None, ClaimOutcome.NOT_FOLLOWING),
    ({"followers_only": False}, {"following": False}, None, None),
    ({"followed_since": NOW - timedelta(days=7)}, {}, None, ClaimOutcome.NOT_IN_AUDIENCE),  # followed earlier
    ({"followed_since": NOW - timedelta(days=30)}, {}, None, None),  # followed at that very moment
    ({"followed_since": NOW - timedelta(days=7)}, {"followed_at": None}, None, ClaimOutcome.NOT_IN_AUDIENCE),
    ({"audience_tags": ["vip"]}, {"tags": None}, None, ClaimOutcome.NOT_IN_AUDIENCE),
    ({"audience_tags": ["vip"]}, {"tags": ["staff"]}, None, ClaimOutcome.NOT_IN_AUDIENCE),
    ({"audience_tags": ["vip", "kol"]}, {"tags": ["kol"]}, None, None),
    ({"audience_locales": ["en"]}, {"locale": "en"}, None, None),  # the stored choice
    ({"audience_locales": ["en"]}, {"locale": "zh_Hans"}, "en", None),  # the message's locale wins
    ({"audience_locales": ["en"]}, {"locale": "en"}, "zh_Hans", ClaimOutcome.NOT_IN_AUDIENCE),
    ({"audience_locales": ["en"]}, {}, None, ClaimOutcome.NOT_IN_AUDIENCE),
])
def test_eligibility_at_the_edges_of_each_rule(rules: dict[str, Any], who: dict[str, Any], locale: str | None,
                                               expected: ClaimOutcome | None) -> None:
    assert check_eligibility(promotion(**rules), follower(**who), now=NOW, locale=locale) == expected


@pytest.fixture
def server_in_shanghai(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's own zone is not UTC: nothing may depend on it."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_code_valid_for_days_ends_in_utc_whatever_the_servers_zone(server_in_shanghai: None) -> None:
    until = code_valid_until(promotion(valid_days=1), NOW)  # 1 May 20:00 in Shanghai: ends 2 May 23:59:59 there
    assert until == datetime(2026, 5, 2, 15, 59, 59, tzinfo=UTC)
    assert until.tzinfo == UTC and until.hour == 15


def test_a_codes_own_validity_wins_over_the_promotions_end() -> None:
    own, end = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC)
    assert code_valid_until(promotion(valid_until=own, ends_at=end), NOW) == own
    assert code_valid_until(promotion(ends_at=end), NOW) == end
    assert code_valid_until(promotion(), NOW) is None
