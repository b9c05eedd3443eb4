"""The megaphone: public comments and @mentions answered once, in public, within the hourly cap.

Against the small platform fake of conftest.py over real HTTP, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from itertools import count

from sqlalchemy import select

from bot.channels.weibo.megaphone import Megaphone
from bot.core.services import Services
from bot.i18n import default_catalogs
from bot.storage.models import WeiboPollState, WeiboPublicReply

from .conftest import BRAND, FakeWeibo, WeiboEnv, created_at, weibo_env

_ids = count(4_000_000_000_000_001)
ANSWERS = {"en": "Our prices are on the website.", "zh_Hans": "价格请看官网。", "zh_Hant": "價格請看官網。"}


class Rule:
    def reply_for(self, locale: str) -> str:
        return ANSWERS[locale]


class Rules:
    async def match(self, text: str) -> Rule | None:
        return Rule() if "price" in text.lower() or "价格" in text or "價格" in text else None


class Offers:
    async def matches(self, text: str, channel: str) -> bool:
        assert channel == "weibo"
        return "coupon" in text.lower() or "优惠券" in text


@dataclass
class MegaEnv:
    env: WeiboEnv
    fake: FakeWeibo

    def megaphone(self, *, per_hour: int = 60, lease: timedelta = timedelta(seconds=60)) -> Megaphone:
        return Megaphone(api=self.env.channel.api, sessions=self.env.bot.sessions, account="default", brand_uid=BRAND,
                         services=Services(prompt_rules=Rules(), offer_keywords=Offers()),
                         catalogs=default_catalogs(), default_locale="zh_Hans", per_hour=per_hour, interval=0.1,
                         lease=lease)

    def comment(self, text: str, *, user: str = "7000000001", post: int = 3000000001) -> str:
        cid = next(_ids)
        self.fake.comments.append({"id": cid, "idstr": str(cid), "text": text, "created_at": created_at(),
                                   "user": {"id": int(user), "screen_name": "fan"}, "status": {"id": post}})
        return str(cid)

    def mention(self, text: str, *, user: str = "7000000002") -> str:
        sid = next(_ids)
        self.fake.mentions.append({"id": sid, "idstr": str(sid), "text": text, "created_at": created_at(),
                                   "user": {"id": int(user), "screen_name": "fan"}})
        return str(sid)

    def public_replies(self) -> list[dict[str, str]]:
        return self.fake.sent("/2/comments/reply.json") + self.fake.sent("/2/comments/create.json")

    async def rows(self) -> list[WeiboPublicReply]:
        async with self.env.bot.sessions() as s:
            return list((await s.execute(select(WeiboPublicReply).order_by(WeiboPublicReply.id))).scalars())


@asynccontextmanager
async def mega_env(database_url: str) -> AsyncIterator[MegaEnv]:
    async with weibo_env(database_url) as env:
        yield MegaEnv(env, env.fake)


async def test_a_comment_with_a_rule_keyword_gets_exactly_one_public_reply(database_url: str) -> None:
    async with mega_env(database_url) as m:
        cid = m.comment("What is the price?")
        m.comment("nice picture")
        mega = m.megaphone()
        assert await mega.poll_once() == 2
        assert await mega.poll_once() == 0
        replies = m.public_replies()
        assert replies == [{"access_token": replies[0]["access_token"], "cid": cid, "id": "3000000001",
                            "comment": ANSWERS["en"], "without_mention": "0"}]
        assert [(r.status, r.reason) for r in await m.rows()] == [
            ("sent", None), ("skipped", "no prompt rule or offer keyword matches")]
        async with m.env.bot.sessions() as s:
            state = await s.get(WeiboPollState, "default")
        assert state is not None and state.since_comments == str(int(cid) + 1)


async def test_a_mention_is_answered_under_its_post_in_its_language(database_url: str) -> None:
    async with mega_env(database_url) as m:
        sid = m.mention("@brand 请问价格多少？")
        await m.megaphone().poll_once()
        assert m.fake.sent("/2/comments/create.json")[0]["id"] == sid
        assert m.fake.sent("/2/comments/create.json")[0]["comment"] == ANSWERS["zh_Hans"]
        assert (await m.rows())[0].locale == "zh_Hans"


async def test_an_offer_keyword_invites_to_dm_and_never_posts_a_code(database_url: str) -> None:
    async with mega_env(database_url) as m:
        m.comment("Any coupon today?")
        m.comment("有优惠券吗")
        await m.megaphone().poll_once()
        en, zh = (r["comment"] for r in m.public_replies())
        assert "direct message" in en and len(en) <= 140
        assert zh != en and "私信" in zh and len(zh) <= 140


async def test_the_brands_own_comments_are_never_answered(database_url: str) -> None:
    async with mega_env(database_url) as m:
        m.comment("price list below", user=BRAND)
        await m.megaphone().poll_once()
        assert m.public_replies() == [] and await m.rows() == []


async def test_replies_past_the_hourly_cap_are_recorded_skipped_with_the_reason(database_url: str) -> None:
    async with mega_env(database_url) as m:
        for _ in range(3):
            m.comment("price?")
        await m.megaphone(per_hour=2).poll_once()
        assert len(m.public_replies()) == 2
        assert [r.status for r in await m.rows()] == ["sent", "sent", "skipped"]
        assert (await m.rows())[2].reason == "public reply cap reached (2 per hour)"


async def test_a_rate_limit_backs_off_and_the_item_comes_again_once(database_url: str) -> None:
    async with mega_env(database_url) as m:
        m.comment("price?")
        m.fake.errors["/2/comments/reply.json"] = [10023]
        mega = m.megaphone()
        assert await mega.poll_once() == 0
        assert [(r.status, "10023" in (r.reason or "")) for r in await m.rows()] == [("recorded", True)]
        assert await mega.poll_once() == 1
        assert len([f for f in m.public_replies()]) == 2  # the refused try and the one that went out
        assert [r.status for r in await m.rows()] == ["sent"]
        assert await mega.poll_once() == 0


async def test_repeated_content_is_recorded_failed_and_not_retried(database_url: str) -> None:
    async with mega_env(database_url) as m:
        m.comment("price?")
        m.fake.errors["/2/comments/reply.json"] = [20019]
        mega = m.megaphone()
        await mega.poll_once()
        await mega.poll_once()
        rows = await m.rows()
        assert rows[0].status == "failed" and "20019" in (rows[0].reason or "")
        assert len(m.public_replies()) == 1


async def test_a_crash_between_post_and_record_does_not_post_twice(database_url: str) -> None:
    async with mega_env(database_url) as m:
        m.comment("price?")
        m.mention("@brand price?")
        first = m.megaphone(lease=timedelta(milliseconds=1))
        real_finish = first._finish

        async def die(row_id: int, status: str, reason: str | None) -> None:
            if status == "sent":
                raise RuntimeError("killed between the post and its record")
            await real_finish(row_id, status, reason)

        first._finish = die  # type: ignore[method-assign]
        try:
            await first.poll_once()
        except RuntimeError:
            pass
        assert len(m.public_replies()) == 1 and [r.status for r in await m.rows()] == ["recorded"]
        await asyncio.sleep(0.01)
        restarted = m.megaphone()  # a new process: another instance id, the old lease has run out
        await restarted.poll_once()
        await restarted.poll_once()
        assert len(m.public_replies()) == 2  # the comment once, the mention once
        rows = await m.rows()
        assert [(r.status, r.reason) for r in rows] == [("sent", "found on the platform after a restart"),
                                                        ("sent", None)]


async def test_two_instances_polling_one_account_reply_once(database_url: str) -> None:
    async with mega_env(database_url) as m:
        cids = [m.comment(f"price {i}?") for i in range(5)]
        a, b = m.megaphone(), m.megaphone()
        for _ in range(3):
            await asyncio.gather(a.poll_once(), b.poll_once())
        assert sorted(r["cid"] for r in m.public_replies()) == sorted(cids)
        await a.release()
        m.comment("price again?")
        await asyncio.gather(a.poll_once(), b.poll_once())
        assert len(m.public_replies()) == 6


async def test_the_poll_is_held_by_one_instance_until_its_lease_ends(database_url: str) -> None:
    async with mega_env(database_url) as m:
        # Long enough that a loaded machine cannot let it lapse between a's take and b's try.
        a, b = m.megaphone(lease=timedelta(seconds=2)), m.megaphone()
        assert await a.take_lease() and not await b.take_lease()
        await asyncio.sleep(2.2)
        assert await b.take_lease() and not await a.take_lease()


