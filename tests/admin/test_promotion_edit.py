"""``PATCH /promotions/{id}`` takes keywords (the console's edit form sends them too): checked as the promotions
file checks them, audited, and the bot answers the new ones."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bot.errors import RulesFileError
from bot.offers import offer_index
from bot.offers.spec import parse_promo_file
from tests.admin.conftest import AdminApi


async def test_new_keywords_are_answered_by_the_bot_and_audited(admin_api: AdminApi) -> None:
    status, promo, headers = await admin_api.call("GET", "/promotions/1")
    assert status == 200
    status, answer, _ = await admin_api.call("PATCH", "/promotions/1", "marketer", headers={"If-Match": headers["Etag"]},
                                             json={"keywords": {"en": ["spicy pot"], "zh-hant": ["麻辣鍋"]}})
    assert status == 200 and answer["version"] == promo["version"] + 1
    offer_index(admin_api.harness.dispatcher.services).invalidate()  # the bot's index re-reads within 2 s anyway
    amy = admin_api.harness.follower("amy", language="en")
    await amy.say("one spicy pot please")
    assert amy.last_text.startswith("Here is your code for “Hotpot ¥50 off”:")
    await amy.say("hotpot")  # the old keyword is gone: nothing claims
    assert "Hotpot ¥50 off" not in amy.last_text
    status, audit, _ = await admin_api.call("GET", "/audit?action=promotion.update")
    [entry] = audit["items"]
    assert (entry["before"]["keywords"], entry["after"]["keywords"]) == (
        {"en": ["hotpot"], "zh_Hans": ["火锅"]}, {"en": ["spicy pot"], "zh_Hant": ["麻辣鍋"]})


async def test_bad_keywords_are_422_naming_the_field(admin_api: AdminApi) -> None:
    _status, _promo, headers = await admin_api.call("GET", "/promotions/1")
    for keywords, reason in (({"en": ["x" * 65]}, "keywords: en: every keyword must be 1 to 64 characters"),
                             ({"en": [" "]}, "keywords: en: every keyword must be 1 to 64 characters"),
                             ({"fr": ["pot"]}, "keywords: ")):
        status, answer, _ = await admin_api.call("PATCH", "/promotions/1", headers={"If-Match": headers["Etag"]},
                                                 json={"keywords": keywords})
        assert (status, answer["field"]) == (422, "keywords") and answer["reason"].startswith(reason), answer


async def test_dates_outside_the_years_2000_to_9998_are_422_naming_the_field(admin_api: AdminApi) -> None:
    _status, _promo, headers = await admin_api.call("GET", "/promotions/1")
    for body in ({"starts_at": "0001-01-01T00:00:00+08:00"}, {"ends_at": "9999-12-31T23:59:59-08:00"},
                 {"ends_at": "9999-12-31T23:00:00Z"}):
        status, answer, _ = await admin_api.call("PATCH", "/promotions/1", headers={"If-Match": headers["Etag"]},
                                                 json=body)
        [field] = body
        assert (status, answer["field"]) == (422, field), answer
        assert answer["reason"] == f"{field}: must be a date from the year 2000 to the year 9998"
    status, answer, _ = await admin_api.call("POST", "/broadcasts", "marketer",
                                             json={"name": "old", "texts": {"en": "hi"}, "since": "0001-01-01"})
    assert (status, answer["field"]) == (422, "since"), answer
    assert (await admin_api.call("GET", "/promotions/1"))[0] == 200


def test_the_promotions_file_refuses_the_same_dates() -> None:
    base = {"slug": "far-away", "title": {"en": "Far away"}}
    for field, value in (("starts_at", "0001-01-01"), ("ends_at", "9999-12-31T23:00:00Z"),
                         ("ends_at", datetime(9999, 12, 31, 23, 0))):
        with pytest.raises(RulesFileError, match="must be a date from the year 2000 to the year 9998"):
            parse_promo_file({"promotions": [{**base, field: value}]}, base_dir=Path.cwd(), source="test")
    parse_promo_file({"promotions": [{**base, "ends_at": "9998-12-31"}]}, base_dir=Path.cwd(), source="test")
