"""``PATCH /promotions/{id}`` takes keywords (the console's edit form sends them too): checked as the promotions
file checks them, audited, and the bot answers the new ones."""

from __future__ import annotations

from bot.offers import offer_index
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
