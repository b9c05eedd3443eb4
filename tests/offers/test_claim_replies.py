"""Claiming through the conversation: replies in both languages, idempotence, every refusal."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select, update

from bot import ButtonsReply, Kind
from bot.offers import Claim, Promotion
from bot.testing import BotHarness
from handlers import default_router

from .conftest import PROMOS, load_into

CODE = r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}"


async def test_keyword_claim_answers_in_english_with_money_and_date(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    await alice.say("hotpot please")
    assert re.fullmatch(
        "Here is your code for “Hotpot ¥50 off”:\n"
        f"({CODE})\n"
        "CN¥50.00 off\n"
        "For dinner at any Jing'an store.\n"
        "Valid until Dec 31, 2099.\n"
        "Terms: One per table.", alice.last_text)


async def test_keyword_claim_answers_in_mandarin_with_money_and_date(offers: BotHarness) -> None:
    li = offers.follower("li", language="zh-hans")
    await li.say("我要火锅优惠")
    assert re.fullmatch(
        "这是您的「火锅立减50元」优惠码：\n"
        f"({CODE})\n"
        "立减¥50.00\n"
        "静安区各门店晚餐可用。\n"
        "有效期至2099年12月31日。\n"
        "使用说明：每桌限用一张。", li.last_text)


async def test_any_locales_keyword_matches_and_the_reply_keeps_the_followers_language(offers: BotHarness) -> None:
    bob = offers.follower("bob", language="en")
    await bob.say("火锅")
    assert bob.last_text.startswith("Here is your code for “Hotpot ¥50 off”:")


async def test_claiming_again_returns_the_same_code(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    await alice.say("hotpot")
    first = alice.last_text.splitlines()[1]
    await alice.click("offer:hotpot-50")
    assert alice.last_text.splitlines()[:2] == ["You already have a code for “Hotpot ¥50 off”. Here it is again:", first]
    await alice.click("OFFER_HOTPOT")  # the menu key
    assert alice.last_text.splitlines()[1] == first
    async with offers.sessions() as session:
        assert (await session.execute(select(Promotion.claimed).where(Promotion.slug == "hotpot-50"))).scalar_one() == 1


async def test_pool_codes_are_handed_out_in_order_with_the_price(offers: BotHarness) -> None:
    a, b = offers.follower("a", language="en"), offers.follower("b", language="zh-hans")
    await a.say("tea")
    await b.say("奶茶")
    assert a.last_text.splitlines()[:3] == ["Here is your code for “Free milk tea”:", "TEA-0001", "Only CN¥18.00"]
    assert b.last_text.splitlines()[:3] == ["这是您的「免费奶茶」优惠码：", "TEA-0002", "仅需¥18.00"]
    assert a.last_text.splitlines()[-1] == "No expiry date."
    assert b.last_text.splitlines()[-1] == "长期有效。"


async def test_an_empty_pool_is_sold_out(offers: BotHarness) -> None:
    for n in range(3):
        await offers.follower(f"t{n}").say("奶茶")
    late = offers.follower("late", language="en")
    await late.say("tea")
    assert late.texts == ["Sorry, “Free milk tea” is all gone. Stay tuned for the next offer!"]


async def test_sold_out_is_refused_politely_in_both_languages(offers: BotHarness) -> None:
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(quota=1))
        await session.commit()
    await offers.follower("first").say("hotpot")
    en, zh = offers.follower("en", language="en"), offers.follower("zh", language="zh-hans")
    await en.say("hotpot")
    await zh.say("火锅")
    assert en.texts == ["Sorry, “Hotpot ¥50 off” is all gone. Stay tuned for the next offer!"]
    assert zh.texts == ["抱歉，「火锅立减50元」已经被领完了，敬请期待下一波福利！"]


async def test_an_offer_not_yet_started_says_when_in_its_time_zone(database_url: str, tmp_path: Path) -> None:
    yaml_text = PROMOS.replace("starts_at: 2026-01-01 10:00", "starts_at: 2098-03-01 10:00")
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path, yaml_text)
        en, zh = h.follower("en", language="en"), h.follower("zh", language="zh-hans")
        await en.say("hotpot")
        await zh.say("火锅")
    assert en.texts == ["“Hotpot ¥50 off” starts on Mar 1, 2098 at 10:00. See you then!"]
    assert zh.texts == ["「火锅立减50元」将于2098年3月1日 10:00开始，到时见！"]


async def test_an_ended_offer_says_when_it_ended(database_url: str, tmp_path: Path) -> None:
    yaml_text = (PROMOS.replace("starts_at: 2026-01-01 10:00", "starts_at: 2020-01-01 10:00")
                 .replace("ends_at: 2099-12-31", "ends_at: 2021-06-30"))
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path, yaml_text)
        en, zh = h.follower("en", language="en"), h.follower("zh", language="zh-hans")
        await en.say("hotpot")
        await zh.say("火锅")
    assert en.texts == ["Sorry, “Hotpot ¥50 off” ended on Jun 30, 2021."]
    assert zh.texts == ["抱歉，「火锅立减50元」已于2021年6月30日结束。"]


async def test_limit_reached_once_the_only_code_is_used(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    await alice.say("hotpot")
    async with offers.sessions() as session:
        await session.execute(update(Claim).values(redeemed_at=Claim.claimed_at))
        await session.commit()
    await alice.say("hotpot")
    assert alice.texts == ["You have already claimed “Hotpot ¥50 off” as many times as allowed."]


async def test_a_second_code_after_the_first_is_used_when_the_limit_allows(offers: BotHarness) -> None:
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(per_follower_limit=2))
        await session.commit()
    alice = offers.follower("alice", language="en")
    await alice.say("hotpot")
    first = alice.last_text.splitlines()[1]
    async with offers.sessions() as session:
        await session.execute(update(Claim).values(redeemed_at=Claim.claimed_at))
        await session.commit()
    await alice.say("hotpot")
    second = alice.last_text.splitlines()[1]
    assert alice.last_text.startswith("Here is your code") and second != first
    await alice.say("hotpot")
    assert alice.last_text.splitlines()[1] == second


async def test_a_non_follower_is_invited_to_follow_first(offers: BotHarness) -> None:
    gone = offers.follower("gone", language="en")
    await gone.say("hello")
    await gone.unfollow()
    await gone.say("hotpot")
    assert gone.texts == ["“Hotpot ¥50 off” is just for our followers. Follow us first, then ask again!"]
    zh = offers.follower("zh-gone", language="zh-hans")
    await zh.say("你好")
    await zh.unfollow()
    await zh.say("火锅")
    assert zh.texts == ["「火锅立减50元」是粉丝专享福利，请先关注我们，再来领取吧！"]


async def test_followers_outside_the_audience_are_told_kindly(database_url: str, tmp_path: Path) -> None:
    yaml_text = PROMOS.replace("    menu_key: OFFER_HOTPOT", "    menu_key: OFFER_HOTPOT\n    audience: {tags: [vip]}")
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path, yaml_text)
        en, zh = h.follower("en", language="en"), h.follower("zh", language="zh-hans")
        await en.say("hotpot")
        await zh.say("火锅")
    assert en.texts == ["Sorry, “Hotpot ¥50 off” is reserved for selected followers."]
    assert zh.texts == ["抱歉，「火锅立减50元」仅限特定粉丝领取。"]


async def test_an_offer_for_another_platform_is_refused(database_url: str, tmp_path: Path) -> None:
    yaml_text = PROMOS.replace("    menu_key: OFFER_HOTPOT", "    menu_key: OFFER_HOTPOT\n    channels: [wechat]")
    async with BotHarness(routers=[default_router()], database_url=database_url) as h:
        await load_into(h, tmp_path, yaml_text)
        en = h.follower("en", language="en")
        await en.click("offer:hotpot-50")
    assert en.texts == ["Sorry, “Hotpot ¥50 off” cannot be claimed on this platform."]


async def test_several_offers_are_listed_as_buttons(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    replies = await alice.say("offers")
    assert replies == [ButtonsReply("Here are the offers you can claim now:", (
        *(b for b in replies[0].buttons),))]
    assert [(b.label, b.payload) for b in replies[0].buttons] == [
        ("Hotpot ¥50 off", "offer:hotpot-50"), ("Free milk tea", "offer:tea"),
        ("Family dinner voucher", "offer:family")]
    li = offers.follower("li", language="zh-hans")
    replies = await li.say("福利")
    assert replies[0].text == "以下是您现在可以领取的福利："
    assert [b.label for b in replies[0].buttons] == ["火锅立减50元", "免费奶茶", "家庭聚餐券"]
    await li.click(replies[0].buttons[1].payload)
    assert li.last_text.splitlines()[1] == "TEA-0001"


async def test_a_keyword_of_two_offers_lists_both(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    replies = await alice.send(Kind.TEXT, "hotpot and tea")
    assert [b.payload for b in replies[0].buttons] == ["offer:hotpot-50", "offer:tea"]


async def test_no_offers_says_so(harness: BotHarness) -> None:
    alice = harness.follower("alice", language="en")
    await alice.say("/offers")
    assert alice.texts == ["There are no offers right now. Please check back soon!"]


async def test_text_without_a_keyword_goes_on_to_other_handlers(offers: BotHarness) -> None:
    alice = offers.follower("alice", language="en")
    await alice.say("what time do you open?")
    assert alice.last_text.startswith("Sorry, I did not understand that.")
