"""The dry runs through the admin API: ``POST /try-message`` and ``GET /promotions/{id}/preview`` answer what a
follower would get per channel and language, refuse bad input with 422, and store nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.admin import previews
from bot.admin.plugin import admin_api_plugin
from bot.app import build_app
from bot.i18n import default_catalogs
from bot.offers.models import Claim, Promotion
from bot.storage.models import Follower, Message
from bot.testing import BotHarness
from handlers import default_router
from tests.admin.conftest import AdminApi, serve_admin_api, settings_for
from tests.admin.preview_channels import preview_channels_plugin
from tests.offers.conftest import load_into

RULE = {"name": "hours", "match": {"en": ["open"], "zh_Hans": ["营业"]},
        "reply": {"en": "We open at ten.", "zh_Hans": "十点开门。"}}


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[AdminApi]:
    async with BotHarness(routers=[default_router()], database_url=database_url) as harness:
        await load_into(harness, tmp_path)
        app = build_app(settings_for(database_url), plugins=[preview_channels_plugin, admin_api_plugin])
        async with serve_admin_api(harness, app) as served:
            assert (await served.call("POST", "/rules", json=RULE))[0] == 201
            yield served


async def stored(api: AdminApi) -> tuple[int, ...]:
    async with api.sessions() as session:
        return tuple([int(await session.scalar(select(func.count()).select_from(m)) or 0)
                      for m in (Follower, Message, Claim)] + [int(await session.scalar(select(func.sum(Promotion.claimed))) or 0)])


async def test_a_try_names_the_rule_and_each_channels_reply_in_each_language(api: AdminApi) -> None:
    status, body, _ = await api.call("POST", "/try-message", "viewer", json={"text": "are you open on sunday?"})
    assert status == 200
    assert (body["rule"], body["rule_id"], body["fallback"]) == ("hours", 1, False)
    replies = {(loc["locale"], ch["channel"]): [m["text"] for m in ch["messages"]]
               for loc in body["locales"] for ch in loc["channels"]}
    assert replies == {**{("en", c): ["We open at ten."] for c in ("wechat", "telegram", "weibo")},
                       **{("zh_Hans", c): ["十点开门。"] for c in ("wechat", "telegram", "weibo")},
                       **{("zh_Hant", c): ["十點開門。"] for c in ("wechat", "telegram", "weibo")}}
    assert body["not_served"] == []


async def test_a_try_can_ask_for_one_channel_and_language_and_shows_the_fallback(api: AdminApi) -> None:
    # (not a greeting: "hello there" is the welcome handler's, which the answer now says)
    status, body, _ = await api.call("POST", "/try-message", json={"text": "lovely weather", "channels": ["telegram"],
                                                                 "locales": ["zh_Hant"]})
    assert status == 200 and body["rule"] is None and body["fallback"] is True
    (only,) = body["locales"]
    assert only["locale"] == "zh_Hant" and [c["channel"] for c in only["channels"]] == ["telegram"]
    assert only["channels"][0]["messages"][0]["text"] == "抱歉，我不太明白您的意思。發送 /help 看看我可以為您做甚麼。"


async def test_bad_tries_are_422_naming_the_field(api: AdminApi) -> None:
    for body, field in (({"text": ""}, "text"), ({"text": "  "}, "text"), ({"text": "x" * 4001}, "text"),
                        ({"text": "hi", "locales": ["fr"]}, "locales.0"), ({"text": "hi", "channels": ["sms"]}, "channels"),
                        ({"text": "hi", "channels": ["Bad Name"]}, "channels.0"), ({"text": "hi", "extra": 1}, "extra")):
        status, answer, _ = await api.call("POST", "/try-message", json=body)
        assert (status, answer["field"]) == (422, field), body


async def test_the_dry_runs_store_nothing(api: AdminApi) -> None:
    before = await stored(api)
    for text in ("open", "hotpot", "human", "offers"):
        assert (await api.call("POST", "/try-message", json={"text": text}))[0] == 200
    assert (await api.call("GET", "/promotions/1/preview"))[0] == 200
    assert await stored(api) == before


async def test_a_promotions_preview_is_its_claim_reply_with_a_sample_code(api: AdminApi) -> None:
    status, body, _ = await api.call("GET", "/promotions/1/preview?locale=zh_Hans&channel=wechat", "viewer")
    assert status == 200 and body["promotion"] == "hotpot-50" and body["sample_code"] == "K7QW3M9X"
    (only,) = body["locales"]
    (wechat,) = only["channels"]
    (message,) = wechat["messages"]
    assert message["text"].splitlines()[:2] == ["这是您的「火锅立减50元」优惠码：", "K7QW3M9X"]
    assert (await api.call("GET", "/promotions/999/preview"))[0:2] == (404, {"error": "notfound",
                                                                             "reason": "no promotion 999"})
    assert (await api.call("GET", "/promotions/1/preview?locale=fr"))[1]["field"] == "locale"


async def test_a_lone_surrogate_is_cleaned_as_the_dispatcher_cleans_a_followers_text(api: AdminApi) -> None:
    """The API refuses one (pydantic); a terminal's undecodable argument reaches the service: it is cleaned."""
    status, body, _ = await api.call("POST", "/try-message", data='{"text": "open \\ud800"}',
                                     headers={"Content-Type": "application/json"})
    assert (status, body["field"]) == (422, "text")
    async with api.sessions() as session:
        result = await previews.try_message(session, "open \udcff", channels=[], catalogs=default_catalogs())
    assert (result.rule, result.text) == ("hours", "open \ufffd")


async def test_a_friends_offer_previews_as_the_invite_qr_code_the_follower_gets(api: AdminApi) -> None:
    status, body, _ = await api.call("GET", "/promotions/3/preview?locale=en")
    assert status == 200 and body["promotion"] == "family"
    caption = ("Here is your personal invite. When 2 friends follow us through it, you and each of them get "
               "“Family dinner voucher”.")
    by_channel = {c["channel"]: c["messages"] for c in body["locales"][0]["channels"]}
    (telegram,) = by_channel["telegram"]  # a photo with its caption and the bot's deep link
    assert (telegram["kind"], telegram["text"], telegram["url"]) == (
        "qr", caption, "https://t.me/preview_bot?start=ref-K7QW3M9X2P4R")
    wechat_qr, wechat_text = by_channel["wechat"]  # the QR image, then its caption as text
    assert (wechat_qr["kind"], wechat_text["kind"], wechat_text["text"]) == ("qr", "text", caption)


async def test_a_channel_the_promotion_is_not_offered_on_previews_its_refusal(api: AdminApi) -> None:
    async with api.sessions() as session:
        promo = await session.get(Promotion, 1)
        assert promo is not None
        promo.channels = ["wechat"]
        await session.commit()
    status, body, _ = await api.call("GET", "/promotions/1/preview?locale=en")
    assert status == 200 and body["refused_on"] == ["telegram", "weibo"]
    texts = {c["channel"]: [m["text"] for m in c["messages"]] for c in body["locales"][0]["channels"]}
    assert texts["wechat"][0].startswith("Here is your code for “Hotpot ¥50 off”:")
    assert texts["telegram"] == texts["weibo"] == ["Sorry, “Hotpot ¥50 off” cannot be claimed on this platform."]


async def test_try_message_reports_the_offer_that_takes_a_promotions_keyword(api: AdminApi) -> None:
    status, answer, _ = await api.call("POST", "/try-message", "marketer", json={"text": "hotpot"})
    assert status == 200
    assert (answer["answered_by"], answer["fallback"], answer["rule"], answer["promotion"]) == (
        "offer", False, None, "hotpot-50")
    assert answer["promotion_preview"] == "/admin/api/v1/promotions/1/preview" and answer["locales"] == []
    status, answer, _ = await api.call("POST", "/try-message", "marketer", json={"text": "人工"})
    assert (status, answer["answered_by"], answer["fallback"]) == (200, "handoff", False)
    status, answer, _ = await api.call("POST", "/try-message", "marketer", json={"text": "nothing matches this"})
    assert (answer["answered_by"], answer["fallback"]) == ("fallback", True) and answer["locales"]
