"""The offers list shows only what this follower can claim now, and "your code: ..." for what they hold."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from bot import ButtonsReply, TextReply
from bot.offers import FollowerOffers, Promotion, claim, offers_for, redeem
from bot.storage.models import Follower
from bot.testing import BotHarness
from handlers import default_router

from .conftest import load_into, make_followers

PROMOS = """
promotions:
  - slug: open
    title: {en: "Open offer", zh_Hans: "开放福利"}
    keywords: {en: [kw-open]}
    quota: 10
  - slug: sold-out
    title: {en: "Sold-out offer", zh_Hans: "已领完"}
    keywords: {en: [kw-soldout]}
    quota: 1
  - slug: vip
    title: {en: "VIP offer", zh_Hans: "会员福利"}
    keywords: {en: [kw-vip]}
    audience: {tags: [vip]}
  - slug: later
    title: {en: "Later offer", zh_Hans: "以后的福利"}
    starts_at: 2099-01-01
  - slug: over
    title: {en: "Past offer", zh_Hans: "过去的福利"}
    starts_at: 2019-01-01
    ends_at: 2020-01-01
  - slug: mine
    title: {en: "Held offer", zh_Hans: "已领福利"}
    keywords: {en: [kw-mine]}
  - slug: empty-pool
    title: {en: "Pool offer", zh_Hans: "券池福利"}
    keywords: {en: [kw-pool]}
    code: {strategy: pool, codes_csv: one.csv}
  - slug: shared
    title: {en: "Shared offer", zh_Hans: "通用福利"}
    keywords: {en: [kw-shared]}
    code: {strategy: shared, value: SHARED1}
  - slug: used-up
    title: {en: "Used offer", zh_Hans: "已用福利"}
    keywords: {en: [kw-used]}
    per_follower_limit: 1
"""

CODE = r"[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}"


def buttons(reply: object) -> list[tuple[str, str]]:
    assert isinstance(reply, ButtonsReply), reply
    return [(b.label, b.payload) for b in reply.buttons]


async def test_list_shows_what_can_be_claimed_now_and_the_codes_held(database_url: str, tmp_path: Path) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await load_into(bot, tmp_path, PROMOS, files={"one.csv": "code\nPOOL-0001\n"})
        bob = bot.follower("bob", language="en")
        await bob.follow()
        await bob.say("kw-soldout")  # the only code of sold-out
        await bob.say("kw-pool")  # the only pool code
        amy = bot.follower("amy", language="en")
        await amy.follow()
        await amy.say("kw-mine")
        mine = re.search(CODE, amy.last_text or "")
        assert mine is not None
        await amy.say("kw-shared")
        await amy.say("kw-used")
        used = re.search(CODE, amy.last_text or "")
        assert used is not None
        async with bot.sessions() as session:
            await redeem(session, used.group(0))
            await session.commit()

        [listing] = await amy.say("offers")
        assert listing.text == (f"“Held offer”, your code: {mine.group(0)}\n"
                                "“Shared offer”, your code: SHARED1\n"
                                "\n"
                                "Here are the offers you can claim now:")
        assert buttons(listing) == [("Open offer", "offer:open")]

        # The audience is the follower's: a VIP sees the VIP offer too.
        async with bot.sessions() as session:
            await session.execute(update(Follower).where(Follower.external_id == "amy").values(tags=["vip"]))
            await session.commit()
        [listing] = await amy.say("offers")
        assert buttons(listing) == [("Open offer", "offer:open"), ("VIP offer", "offer:vip")]


async def test_nothing_left_to_claim_shows_the_codes_held(database_url: str, tmp_path: Path) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await load_into(bot, tmp_path, PROMOS, files={"one.csv": "code\nPOOL-0001\n"})
        li = bot.follower("li", language="zh-hans")
        await li.follow()
        for word in ("kw-open", "kw-mine", "kw-soldout", "kw-pool", "kw-shared", "kw-used"):
            await li.say(word)
        [listing] = await li.say("优惠")
        assert isinstance(listing, TextReply)
        lines = listing.text.split("\n")
        assert [re.sub(CODE, "<code>", line) for line in lines] == [
            "「开放福利」，您的优惠码：<code>",
            "「已领完」，您的优惠码：<code>",
            "「已领福利」，您的优惠码：<code>",
            "「券池福利」，您的优惠码：POOL-0001",
            "「通用福利」，您的优惠码：SHARED1",
            "「已用福利」，您的优惠码：<code>",
            "",
            "目前暂时没有其他福利活动，请过段时间再来看看！",
        ]


async def test_a_follower_with_nothing_gets_the_no_offers_line(database_url: str, tmp_path: Path) -> None:
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        await load_into(bot, tmp_path, PROMOS.replace("quota: 10", "quota: 1"), files={"one.csv": "code\nPOOL-0001\n"})
        late = bot.follower("late", language="en")
        await late.follow()
        async with bot.sessions() as session:  # everything claimable is gone
            await session.execute(update(Promotion).where(Promotion.quota.is_not(None)).values(claimed=Promotion.quota))
            await session.execute(update(Promotion).where(Promotion.quota.is_(None)).values(ends_at=Promotion.created_at))
            await session.commit()
        from bot.offers import offer_index

        offer_index(bot.dispatcher.services).invalidate()
        assert (await late.say("offers"))[0].text == "There are no offers right now. Please check back soon!"


async def test_offers_for_holds_a_code_while_it_is_live_and_reads_the_messages_locale(offers: BotHarness) -> None:
    """``offers_for`` directly, at chosen times: a code that expired is no longer "your code" and the
    offer can be claimed again (within the limit); a language audience is the message's language
    when the follower has none stored; no promotions, no offers."""
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50")
                              .values(valid_days=1, per_follower_limit=2, audience_locales=["en"]))
        await session.commit()
    [follower_id] = await make_followers(offers, 1)
    claimed_at = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: valid to the end of 2 June there
    async with offers.sessions() as session:
        follower = await session.get(Follower, follower_id)
        assert follower.locale is None
        promotions = list((await session.execute(select(Promotion).order_by(Promotion.id))).scalars())
        hotpot = next(p for p in promotions if p.slug == "hotpot-50")
        code = (await claim(session, hotpot, follower, now=claimed_at, locale="en")).code
        await session.commit()

        def slugs(found: FollowerOffers) -> tuple[list[str], list[tuple[str, str]]]:
            return [p.slug for p in found.claimable], [(p.slug, c) for p, c in found.held]

        live = await offers_for(session, promotions, follower, now=claimed_at + timedelta(days=1), locale="en")
        assert slugs(live) == (["tea", "family"], [("hotpot-50", code)])
        expired = claimed_at + timedelta(days=2)  # 3 June, 12:00 in Shanghai
        assert slugs(await offers_for(session, promotions, follower, now=expired, locale="en")) == (
            ["hotpot-50", "tea", "family"], [])
        chinese = await offers_for(session, promotions, follower, now=expired, locale="zh_Hans")
        assert slugs(chinese) == (["tea", "family"], [])
        # Truthy when there is something to claim or a code held, and only then.
        only_held = await offers_for(session, [hotpot], follower, now=claimed_at, locale="zh_Hans")
        assert slugs(only_held) == ([], [("hotpot-50", code)]) and only_held
        nothing = await offers_for(session, [], follower, now=expired)
        assert nothing == FollowerOffers([], []) and not nothing
