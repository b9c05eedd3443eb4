"""Localization: the negotiation table of docs/localization.md, zh_Hant, operator content in both
Chinese scripts, formatting, the language switch across restarts, and what operators see."""

from __future__ import annotations

import asyncio
import re
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import hanzidentifier
import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select

from bot import ButtonsReply
from bot.cli import main
from bot.errors import ConfigError
from bot.i18n import Formatter, default_catalogs, negotiation
from bot.i18n_check import check_catalogs
from bot.offers import Claim
from bot.rules import PromptRuleCache
from bot.settings import load_settings
from bot.storage.models import Follower
from bot.testing import BotHarness
from handlers import default_router

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "localization.md"
NOT_UNDERSTOOD = "Sorry, I did not understand that. Send /help to see what I can do."


def tr(locale: str, message: str) -> str:
    return default_catalogs().gettext(locale, message)


def _cell(text: str) -> str | None:
    text = text.strip()
    if text == "-":
        return None
    assert text.startswith("`") and text.endswith("`"), text
    return text[1:-1]


def negotiation_table() -> list[tuple[str, ...]]:
    doc = DOC.read_text("utf-8")
    block = doc.split("<!-- negotiation-table -->", 1)[1].split("<!-- /negotiation-table -->", 1)[0]
    rows = []
    for line in block.strip().splitlines()[2:]:
        number, chosen, hint, text, default, locale, step = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((number, _cell(chosen), _cell(hint), _cell(text), _cell(default), _cell(locale), step))
    return rows


TABLE = negotiation_table()


def test_the_table_has_at_least_thirty_cases() -> None:
    assert len(TABLE) >= 30
    assert {row[-1] for row in TABLE} == {"choice", "hint", "script", "international", "default"}


@pytest.mark.parametrize(("number", "chosen", "hint", "text", "default", "locale", "step"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_negotiation_table(number: str, chosen: str | None, hint: str | None, text: str | None,
                           default: str, locale: str, step: str) -> None:
    got = negotiation(chosen=chosen, hint=hint, text=text, default=default)
    assert (got.locale, got.step) == (locale, step)


def test_the_international_locale_is_a_setting() -> None:
    got = negotiation(chosen=None, hint="pt-br", text="123", default="en", international="zh_Hant")
    assert (got.locale, got.step) == ("zh_Hant", "international")
    assert load_settings(international_locale="zh-HK").international_locale == "zh_Hant"


@pytest.mark.parametrize(("given", "expected"), [
    ("zh-hans", "zh_Hans"), ("zh_Hans", "zh_Hans"), ("zh-CN", "zh_Hans"), ("zh-hant", "zh_Hant"),
    ("zh-HK", "zh_Hant"), ("zh_TW", "zh_Hant"), ("en-US", "en"), ("EN", "en"),
])
def test_default_locale_accepts_any_tag_naming_a_catalog(
        monkeypatch: pytest.MonkeyPatch, given: str, expected: str) -> None:
    monkeypatch.setenv("ENGAGEBOT_DEFAULT_LOCALE", given)
    assert load_settings().default_locale == expected


def test_a_default_locale_without_catalog_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGEBOT_DEFAULT_LOCALE", "pt-br")
    with pytest.raises(ConfigError, match=r"^setting ENGAGEBOT_DEFAULT_LOCALE: .*unknown locale 'pt-br'"):
        load_settings()


async def test_cli_commands_start_with_a_tag_as_default_locale(
        monkeypatch: pytest.MonkeyPatch, harness: BotHarness, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", harness.database_url)
    monkeypatch.setenv("ENGAGEBOT_DEFAULT_LOCALE", "zh-hans")
    assert await asyncio.to_thread(main, ["prompts", "list"]) == 0
    assert "no prompt rules" in capsys.readouterr().out


# --- the zh_Hant catalog --------------------------------------------------------------------------


def _strings(locale: str) -> dict[str, str]:
    with (ROOT / "locales" / locale / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=locale)
    found = {}
    for m in catalog:
        if m.id:
            msgid = m.id[0] if isinstance(m.id, tuple) else m.id
            found[msgid] = "".join(m.string) if isinstance(m.string, tuple) else m.string
    return found


def test_the_zh_hant_catalog_is_complete_and_checked_like_the_others(tmp_path: Path) -> None:
    assert check_catalogs() == []
    assert set(_strings("zh_Hant")) == set(_strings("zh_Hans")) == set(_strings("en"))
    target = tmp_path / "locales"
    shutil.copytree(ROOT / "locales", target)
    po = target / "zh_Hant" / "LC_MESSAGES" / "messages.po"
    po.write_text(po.read_text("utf-8").replace('msgstr "幫助"', 'msgstr ""'), "utf-8")
    assert check_catalogs(target) == ["zh_Hant: untranslated: 'Help'"]


def _simplified_only(text: str) -> list[str]:
    return [ch for ch in text if hanzidentifier.is_simplified(ch) and not hanzidentifier.is_traditional(ch)]


def test_zh_hant_is_written_in_traditional_characters_the_hong_kong_way() -> None:
    hant, hans = _strings("zh_Hant"), _strings("zh_Hans")
    for msgid, text in hant.items():
        assert not _simplified_only(text), (msgid, text)
        if _simplified_only(hans[msgid]):
            assert text != hans[msgid], msgid  # translated, not copied
    # Hong Kong usage where Hong Kong and Taiwan differ.
    assert hant["What this bot can do"] == "這個機械人可以做甚麼"
    assert hant["Terms: {terms}"].startswith("條款及細則")
    assert "訊息" in hant["Start over and see the welcome"]


async def test_the_language_menu_offers_traditional_chinese(harness: BotHarness) -> None:
    f = harness.follower("menu", language="en")
    [menu] = await f.say("/lang")
    assert isinstance(menu, ButtonsReply)
    assert [(b.label, b.payload) for b in menu.buttons] == [
        ("English", "lang:en"), ("简体中文", "lang:zh_Hans"), ("繁體中文", "lang:zh_Hant")]
    await f.click("lang:zh_Hant")
    assert f.texts == ["好的，接下來我會用繁體中文與您溝通。"]


@pytest.mark.parametrize(("hint", "words", "expected"), [
    ("en", "繁體", "zh_Hant"), ("en", "繁体中文", "zh_Hant"), ("en", "Traditional Chinese", "zh_Hant"),
    ("en", "/lang zh-hant", "zh_Hant"), ("en", "/lang zh-TW", "zh_Hant"), ("en", "/lang 繁體", "zh_Hant"),
    ("zh-HK", "简体", "zh_Hans"), ("zh-HK", "/lang zh-cn", "zh_Hans"), ("zh-HK", "English", "en"),
    ("zh-HK", "中文", "zh_Hant"),  # "Chinese" for a Hong Kong phone is Traditional
    ("en", "中文", "zh_Hans"), ("en", "漢語", "zh_Hant"), ("en", "汉语", "zh_Hans"),
    ("en", "/lang zh", "zh_Hans"), ("zh-TW", "/lang zh", "zh_Hant"),
])
async def test_a_followers_own_choice_wins_and_is_kept(
        harness: BotHarness, hint: str, words: str, expected: str) -> None:
    f = harness.follower(f"chooser-{hint}-{words}", language=hint)
    await f.say(words)
    await f.say("what?")  # Latin script, the platform's hint: only the stored choice decides now
    assert f.texts == [tr(expected, NOT_UNDERSTOOD)]
    async with harness.sessions() as s:
        stored = (await s.execute(select(Follower.locale).where(Follower.external_id == f.external_id))).scalar_one()
    assert stored == expected


async def test_an_unsupported_lang_argument_lists_the_choices(harness: BotHarness) -> None:
    f = harness.follower("pt", language="pt-br")
    await f.say("/lang pt")
    assert f.texts[0] == ("Sorry, I only speak English and Chinese (Simplified or Traditional). "
                          "Send /lang en, /lang zh-hans or /lang zh-hant.")


async def test_switch_to_traditional_and_back_survives_restarts(database_url: str) -> None:
    help_en = "Here is what I can do:\n- Ask a question, such as opening hours.\n" \
              "- Say \"English\", \"中文\" or \"繁體\" to switch language.\n- Send /help to see this again."
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        f = bot.follower("traveller", language="en-US")
        await f.say("繁體")
        assert f.texts == ["好的，接下來我會用繁體中文與您溝通。"]
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:  # a restart: same database
        f = bot.follower("traveller", language="en-US")
        await f.say("/help")
        assert f.texts == [tr("zh_Hant", help_en)]
        await f.say("English")
    async with BotHarness(routers=[default_router()], database_url=database_url) as bot:
        f = bot.follower("traveller", language="zh-HK")
        await f.say("/help")
        assert f.texts == [help_en]


# --- operator content -----------------------------------------------------------------------------

RULES = """
rules:
  - name: hours
    match: {en: [hours], zh-hans: [营业时间, 优惠]}
    reply: {en: "We are open 10:00-22:00.", zh-hans: "我们每天营业，软件下单请看公众号信息。"}
  - name: parking
    match: {en: [parking], zh_Hant: [泊車, 停車場]}
    reply: {en: "Free parking.", zh_Hant: "設有免費泊車。", zh_Hans: "免费停车。"}
  - name: delivery
    match: {zh_Hant: [外賣]}
    reply: {zh_Hant: "外賣請致電門市。"}
"""


async def cli_load(harness: BotHarness, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, group: str,
                   text: str) -> Path:
    """Write ``text`` to a file and load it with ``engagebot <group> load`` into the harness's database."""
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", harness.database_url)
    path = tmp_path / f"{group}.yaml"
    path.write_text(text, "utf-8")
    assert await asyncio.to_thread(main, [group, "load", str(path)]) == 0
    return path


@pytest.fixture
async def rules_bot(harness: BotHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> BotHarness:
    await cli_load(harness, monkeypatch, tmp_path, "prompts", RULES)
    harness.dispatcher.services.prompt_rules = PromptRuleCache(harness.sessions, ttl=0)
    return harness


async def test_zh_hant_readers_get_simplified_content_converted_never_as_is(rules_bot: BotHarness) -> None:
    hk = rules_bot.follower("hk", language="zh-HK")
    await hk.say("營業時間？")
    assert hk.texts == ["我們每天營業，軟件下單請看公眾號信息。"]
    await hk.say("parking?")  # given in zh_Hant: served as written
    assert hk.texts == ["設有免費泊車。"]
    cn = rules_bot.follower("cn", language="zh-CN")
    await cn.say("外卖怎么点")  # only zh_Hant given: Simplified readers get it converted
    assert cn.texts == ["外卖请致电门市。"]


async def test_rule_keywords_match_in_both_scripts(rules_bot: BotHarness) -> None:
    hk = rules_bot.follower("hk2", language="zh-HK")
    await hk.say("有冇優惠？")  # typed Traditional, rule written 优惠
    assert hk.texts == ["我們每天營業，軟件下單請看公眾號信息。"]
    cn = rules_bot.follower("cn2", language="zh-CN")
    await cn.say("停车场在哪")  # typed Simplified, rule written 停車場
    assert cn.texts == ["免费停车。"]


async def test_a_rule_missing_a_language_loads_with_a_warning(
        harness: BotHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = await cli_load(harness, monkeypatch, tmp_path, "prompts", RULES)
    err = capsys.readouterr().err.splitlines()
    # hours and parking give en and Chinese: no warning (zh_Hant comes from OpenCC). delivery lacks en.
    assert err == [
        f"engagebot: warning: {path}: rule 'delivery' field match: nothing in en "
        "(followers writing English will not match it)",
        f"engagebot: warning: {path}: rule 'delivery' field reply: nothing in en "
        "(followers reading English get the zh_Hant text)",
    ]


PROMOS = """
promotions:
  - slug: hotpot
    title: {en: "Hotpot HK$50 off", zh_Hans: "火锅立减50港元"}
    description: {en: "Any Causeway Bay store.", zh_Hans: "铜锣湾各门店适用。"}
    terms: {en: "One per table."}
    keywords: {en: [hotpot], zh_Hans: [火锅]}
    validity: {until: 2099-12-31}
    timezone: Asia/Hong_Kong
    value: {amount: 50, currency: HKD}
"""


async def test_promotions_in_traditional_with_hong_kong_money_and_dates(
        harness: BotHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = await cli_load(harness, monkeypatch, tmp_path, "promo", PROMOS)
    assert capsys.readouterr().err.splitlines() == [
        f"engagebot: warning: {path}: promotion 'hotpot' field terms: nothing in zh_Hans "
        "(followers reading Chinese get the en text)"]
    hk = harness.follower("hk", language="zh-HK")
    await hk.follow()
    await hk.say("我要火鍋優惠")  # typed Traditional, keyword written 火锅
    assert re.fullmatch(
        "這是您的「火鍋立減50港元」優惠碼：\n"
        "[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}\n"
        "即減HK\\$50.00\n"
        "銅鑼灣各門店適用。\n"
        "有效期至2099年12月31日。\n"
        "條款及細則：One per table.", hk.last_text or ""), hk.last_text


def test_zh_hant_money_numbers_and_dates() -> None:
    hk = Formatter("zh_Hant", ZoneInfo("Asia/Hong_Kong"))
    moment = datetime(2026, 11, 21, 16, 30, tzinfo=UTC)
    assert hk.money(Decimal("1234.5"), "HKD") == "HK$1,234.50"
    assert hk.money(Decimal("1234.5"), "TWD") == "NT$1,234.50"
    assert hk.money(Decimal("1234.5"), "CNY") == "CN¥1,234.50"
    assert hk.number(1234567.5) == "1,234,567.5"
    assert hk.date(moment) == "2026年11月22日"
    assert hk.datetime(moment, "HH:mm") == "00:30"
    assert Formatter("zh_Hans").money(Decimal("1234.5"), "CNY") == "¥1,234.50"


async def test_broadcast_texts_reach_zh_hant_readers_converted(
        harness: BotHarness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.storage.models import Message

    for name, hint in (("hk", "zh-HK"), ("cn", "zh-CN"), ("br", "pt-br")):
        await harness.follower(name, language=hint).follow()
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", harness.database_url)
    assert await asyncio.to_thread(main, ["broadcast", "start", "--name", "spring", "--text-en", "Spring sale!",
                                          "--text-zh", "春季促销，软件会员专享！"]) == 0
    assert "warning" not in capsys.readouterr().err
    async with harness.sessions() as s:
        rows = dict((await s.execute(select(Follower.external_id, Message.text).join(
            Message, Message.follower_id == Follower.id).where(Message.broadcast_id.is_not(None)))).all())
    # Portuguese phones get the international locale (en), not the account's Chinese.
    assert rows == {"hk": "春季促銷，軟件會員專享！", "cn": "春季促销，软件会员专享！", "br": "Spring sale!"}


# --- times shown to operators ------------------------------------------------------------------------


async def test_operator_times_are_in_the_configured_zone(
        harness: BotHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_TIMEZONE", "America/New_York")
    await cli_load(harness, monkeypatch, tmp_path, "promo", PROMOS)
    f = harness.follower("buyer", language="en")
    await f.follow()
    await f.say("hotpot")
    code = re.search("[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}", f.last_text or "").group(0)  # type: ignore[union-attr]
    assert await asyncio.to_thread(main, ["promo", "redeem", code]) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["promo", "redeem", code]) == 1
    out = capsys.readouterr().out.strip()
    async with harness.sessions() as s:
        redeemed_at = (await s.execute(select(Claim.redeemed_at).where(Claim.code == code))).scalar_one()
    at = redeemed_at.replace(tzinfo=redeemed_at.tzinfo or UTC).astimezone(ZoneInfo("America/New_York"))
    assert out == f"code {code} (hotpot) was already redeemed at {at:%Y-%m-%d %H:%M} {at:%Z} by cli"
    assert at.strftime("%Z") in ("EST", "EDT")

    assert await asyncio.to_thread(main, ["promo", "show", "hotpot"]) == 0
    shown = capsys.readouterr().out
    assert "runs:          - -> -" in shown
    assert re.search(r"validity:      2099-12-31 10:59 EST", shown), shown  # 23:59:59 in Hong Kong

    assert await asyncio.to_thread(main, ["broadcast", "start", "--name", "n", "--text-en", "hi", "--text-zh", "嗨",
                                          "--since", "2026-01-01"]) == 0
    started = capsys.readouterr().out
    assert "followed since 2026-01-01 00:00 EST" in started
    assert await asyncio.to_thread(main, ["broadcast", "status", "1"]) == 0
    assert re.search(r"created \d{4}-\d\d-\d\d \d\d:\d\d E[SD]T", capsys.readouterr().out)
