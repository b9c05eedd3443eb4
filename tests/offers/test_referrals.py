"""Family and friends: personal invites, who counts as a friend, and the offer for everyone."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from bot import QrReply
from bot.delivery.outbox import OutboxSender
from bot.offers import Claim, Referral
from bot.storage.models import Message
from bot.testing import BotHarness

from .conftest import follower_row


async def _invite_scene(h: BotHarness, who: str, language: str = "en") -> str:
    inviter = h.follower(who, language=language)
    await inviter.say("hi")
    await inviter.say("invite")
    return _scene(inviter.last_text)


def _scene(text: str | None) -> str:
    """The mock channel shows a QrReply as its caption and then the scene (a real channel: its link)."""
    assert text is not None
    return text.splitlines()[-1]


async def _referrals(h: BotHarness) -> int:
    async with h.sessions() as session:
        return (await session.execute(select(func.count()).select_from(Referral))).scalar_one()


async def test_an_invite_is_a_personal_unguessable_scene_explaining_the_offer(offers: BotHarness) -> None:
    mum = offers.follower("mum", language="en")
    await mum.say("hi")
    await mum.say("/invite")
    caption, scene = mum.last_text.splitlines()
    assert caption == ("Here is your personal invite. When 2 friends follow us through it, you and each of them "
                       "get “Family dinner voucher”.")
    assert re.fullmatch(r"ref-[a-z2-7]{16}", scene)
    await mum.say("邀请")
    assert _scene(mum.last_text) == scene
    zh = offers.follower("zh", language="zh-hans")
    await zh.say("你好")
    await zh.say("邀请好友")
    assert zh.last_text.splitlines()[0] == "这是您的专属邀请。只要有2位好友通过它关注我们，您和每位好友都能获得「家庭聚餐券」。"
    assert _scene(zh.last_text) != scene


async def test_the_handler_answers_with_a_qr_reply_for_the_channel_to_draw(offers: BotHarness) -> None:
    from handlers.offers import invite

    mum = offers.follower("mum", language="en")
    await mum.say("hi")
    captured: list[object] = []
    real = offers.channel.degrade
    offers.channel.degrade = lambda replies: captured.extend(replies) or real(replies)  # type: ignore[method-assign]
    await mum.say("/invite")
    assert isinstance(captured[0], QrReply) and captured[0].scene.startswith("ref-")
    assert invite is not None


async def test_asking_for_the_family_offer_gives_the_invite(offers: BotHarness) -> None:
    mum = offers.follower("mum", language="en")
    await mum.say("hi")
    await mum.click("offer:family")
    assert _scene(mum.last_text).startswith("ref-")


async def test_when_enough_friends_follow_everyone_gets_the_family_offer(offers: BotHarness) -> None:
    scene = await _invite_scene(offers, "mum", language="zh-hans")
    first = offers.follower("son", language="en")
    replies = await first.follow(scene)
    assert [r.text for r in replies] == ["Welcome! Thanks for following us. Ask me anything, or pick one:"]
    second = offers.follower("daughter", language="en")
    replies = await second.follow(scene)
    assert replies[0].text.startswith("Welcome!")
    assert re.fullmatch("Thanks for joining through a friend's invite! Here is your code for “Family dinner voucher”:\n"
                        "F[A-Z2-9]{8}\nNo expiry date.", replies[1].text)
    # The inviter and the first friend are told through the outbox, each in their own language.
    async with offers.sessions() as session:
        pending = (await session.execute(select(Message.text).where(
            Message.direction == "out", Message.status == "pending").order_by(Message.id))).scalars().all()
        codes = (await session.execute(select(func.count()).select_from(Claim).where(Claim.via == "referral"))).scalar_one()
    assert codes == 3
    assert re.fullmatch("已有2位好友通过您的邀请关注了我们！这是您的「家庭聚餐券」优惠码：\nF[A-Z2-9]{8}\n长期有效。", pending[0])
    assert pending[1].startswith("The friends' invite you joined is complete! Here is your code for “Family dinner voucher”:")
    sender = OutboxSender(offers.channel, offers.sessions)
    assert await sender.sweep_once() == 2
    assert offers.channel.sent["mum"][0].text == pending[0]
    # A third friend still counts and gets the offer; the inviter is not told again.
    third = offers.follower("cousin", language="en")
    replies = await third.follow(scene)
    assert replies[1].text.startswith("Thanks for joining through a friend's invite!")
    assert await sender.sweep_once() == 0


async def test_a_self_invite_does_not_count(offers: BotHarness) -> None:
    scene = await _invite_scene(offers, "mum")
    mum = offers.follower("mum", language="en")
    await mum.scan(scene)
    assert mum.texts == ["This is your own invite. Share it with your friends!"]
    assert await _referrals(offers) == 0


async def test_unfollow_and_follow_again_counts_once(offers: BotHarness) -> None:
    scene = await _invite_scene(offers, "mum")
    son = offers.follower("son", language="en")
    await son.follow(scene)
    await son.unfollow()
    await son.follow(scene)
    assert await _referrals(offers) == 1
    async with offers.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Claim))).scalar_one() == 0


async def test_a_friend_already_following_does_not_count(offers: BotHarness) -> None:
    scene = await _invite_scene(offers, "mum")
    old = offers.follower("old-friend", language="en")
    await old.say("hello")
    await old.scan(scene)  # scanning while following
    assert old.last_text.startswith("Welcome back!")
    assert await _referrals(offers) == 0


async def test_a_follower_known_before_the_invite_does_not_count_after_refollowing(offers: BotHarness) -> None:
    old = offers.follower("old-friend", language="en")
    await old.say("hello")
    await old.unfollow()
    scene = await _invite_scene(offers, "mum")
    await old.follow(scene)  # not following at that moment, but followed before the invite existed
    assert await _referrals(offers) == 0


async def test_a_friend_counts_for_one_inviter_only(offers: BotHarness) -> None:
    mum_scene = await _invite_scene(offers, "mum")
    dad_scene = await _invite_scene(offers, "dad")
    son = offers.follower("son", language="en")
    await son.follow(mum_scene)
    await son.unfollow()
    await son.follow(dad_scene)
    async with offers.sessions() as session:
        inviters = (await session.execute(select(Referral.inviter_id))).scalars().all()
    assert inviters == [(await follower_row(offers, "mum")).id]
