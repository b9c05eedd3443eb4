"""Telegram over loopback: languages without a catalog, unknown languages, Traditional Chinese.

The account's default is Chinese (zh_Hans), as in the embedded setup: the cases that used to be
answered in Chinese must now be answered in the language the follower likely reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.i18n import default_catalogs
from bot.testing import BotHarness
from handlers import default_router

from .conftest import Rig

pytestmark = pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")

NOT_UNDERSTOOD = "Sorry, I did not understand that. Send /help to see what I can do."


def tr(locale: str) -> str:
    return default_catalogs().gettext(locale, NOT_UNDERSTOOD)


@pytest.fixture
async def zh_rig(database_url: str) -> AsyncIterator[Rig]:
    async with BotHarness(database_url=database_url, default_locale="zh-hans", routers=[default_router()]) as harness:
        rig = Rig(harness)
        await rig.start()
        try:
            yield rig
        finally:
            await rig.close()


@pytest.mark.parametrize("language_code", ["pt-br", "fr", "de", "ja"])
async def test_a_language_without_catalog_writing_latin_gets_english(zh_rig: Rig, language_code: str) -> None:
    user = zh_rig.user(language_code=language_code)
    zh_rig.sim.send_text(user, "shipping?")
    assert (await zh_rig.replies(user, 1))[0]["text"] == NOT_UNDERSTOOD


async def test_a_language_without_catalog_is_the_international_locale_when_the_message_says_nothing(
        zh_rig: Rig) -> None:
    user = zh_rig.user(language_code="pt-br")
    zh_rig.sim.send_text(user, "👍👍")
    assert (await zh_rig.replies(user, 1))[0]["text"] == NOT_UNDERSTOOD


async def test_a_language_without_catalog_writing_chinese_gets_chinese(zh_rig: Rig) -> None:
    user = zh_rig.user(language_code="pt-br")
    zh_rig.sim.send_text(user, "請問運費多少？")
    assert (await zh_rig.replies(user, 1))[0]["text"] == tr("zh_Hant")


async def test_an_unknown_language_writing_latin_gets_english(zh_rig: Rig) -> None:
    latin, han = zh_rig.user(language_code=None), zh_rig.user(language_code=None)
    zh_rig.sim.send_text(latin, "shipping?")
    zh_rig.sim.send_text(han, "请问运费多少？")
    assert (await zh_rig.replies(latin, 1))[0]["text"] == NOT_UNDERSTOOD
    assert (await zh_rig.replies(han, 1))[0]["text"] == tr("zh_Hans")


@pytest.mark.parametrize("language_code", ["zh-hant", "zh-HK", "zh-TW"])
async def test_traditional_chinese_phones_get_traditional(zh_rig: Rig, language_code: str) -> None:
    user = zh_rig.user(language_code=language_code)
    zh_rig.sim.send_text(user, "shipping?")
    assert (await zh_rig.replies(user, 1))[0]["text"] == tr("zh_Hant")
    assert tr("zh_Hant") not in (tr("zh_Hans"), NOT_UNDERSTOOD)
