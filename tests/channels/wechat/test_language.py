"""WeChat: the follower's language from user/info on the first message, within the passive deadline.

Real HTTP both ways: the simulator posts signed callbacks to the adapter, the adapter calls the
simulator's user/info. The account's default is Chinese (zh_Hans), as in the embedded setup.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select

from bot.i18n import default_catalogs
from bot.storage.models import Follower

NOT_UNDERSTOOD = "Sorry, I did not understand that. Send /help to see what I can do."


def tr(locale: str) -> str:
    return default_catalogs().gettext(locale, NOT_UNDERSTOOD)


def count_user_info(env: Any) -> list[str]:
    """Record the adapter's user/info calls (they still go to the simulator over HTTP)."""
    api = env.channel.user_language.api
    real = api.user_info
    calls: list[str] = []

    async def counted(openid: str, **kw: Any) -> dict[str, Any]:
        calls.append(openid)
        return await real(openid, **kw)

    api.user_info = counted
    return calls


async def stored_hint(env: Any, openid: str) -> str | None:
    async with env.bot.sessions() as s:
        return (await s.execute(select(Follower.locale_hint).where(Follower.external_id == openid))).scalar_one()


async def test_english_follower_unknown_to_the_database_is_answered_in_english(make_env: Any) -> None:
    async with make_env() as env:
        calls = count_user_info(env)
        # Followed before the bot was installed: no follow event ever reached us; WeChat is set to English.
        openid = env.sim.add_follower(language="en", following=True)
        first = await env.sim.send_text(openid, "what about shipping?")
        assert first.reply == {"type": "text", "content": NOT_UNDERSTOOD}
        # The platform's answer is kept on the follower: a message that says nothing by itself is
        # English too, and the platform is not asked again.
        second = await env.sim.send_text(openid, "👍")
        assert second.reply == {"type": "text", "content": NOT_UNDERSTOOD}
        assert calls == [openid]
        assert await stored_hint(env, openid) == "en"


async def test_the_platform_language_beats_the_script_of_the_first_message(make_env: Any) -> None:
    async with make_env() as env:
        openid = env.sim.add_follower(language="zh_TW", following=True)
        result = await env.sim.send_text(openid, "hello, shipping?")
        assert result.reply == {"type": "text", "content": tr("zh_Hant")}
        assert tr("zh_Hant") != tr("zh_Hans")


async def test_a_follower_without_platform_language_writing_latin_gets_english(make_env: Any) -> None:
    async with make_env() as env:
        calls = count_user_info(env)
        openid = env.sim.add_follower(language=None, following=True)
        result = await env.sim.send_text(openid, "shipping?")
        assert result.reply == {"type": "text", "content": NOT_UNDERSTOOD}
        assert await stored_hint(env, openid) == "und"  # asked once: WeChat knows no language
        digits = await env.sim.send_text(openid, "123")  # says nothing: the account's default
        assert digits.reply == {"type": "text", "content": tr("zh_Hans")}
        assert calls == [openid]


@pytest.mark.timing
async def test_a_slow_user_info_never_holds_the_passive_reply_past_the_deadline(make_env: Any) -> None:
    async with make_env() as env:
        asked = []

        async def hanging(openid: str, **_kw: Any) -> dict[str, Any]:
            asked.append(openid)
            await asyncio.sleep(30)
            raise AssertionError("not reached")

        env.channel.user_language.api.user_info = hanging
        openid = env.sim.add_follower(language="en", following=True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await env.sim.send_text(openid, "👍")
        elapsed = loop.time() - started
        # Answered inline (so within WeChat's deadline), after at most the lookup's 1 s budget.
        assert result.reply == {"type": "text", "content": tr("zh_Hans")}
        assert elapsed < env.channel.capabilities.passive_reply_deadline
        assert await stored_hint(env, openid) is None  # nothing learnt: not cached as known
        # The platform is not asked again at once about a follower it did not answer for.
        await env.sim.send_text(openid, "👍")
        assert asked == [openid]


async def test_a_follow_refreshes_the_language(make_env: Any) -> None:
    async with make_env() as env:
        openid = env.sim.add_follower(language="en", following=True)
        await env.sim.send_text(openid, "hi")
        await env.sim.unfollow(openid)
        env.sim.follower(openid).language = "zh_TW"  # the follower changed their phone's language
        welcome = await env.sim.follow(openid)
        assert welcome.reply["content"].startswith(default_catalogs().gettext(
            "zh_Hant", "Welcome! Thanks for following us. Ask me anything, or pick one:"))
        assert await stored_hint(env, openid) == "zh_TW"
