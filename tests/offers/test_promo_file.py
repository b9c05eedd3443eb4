"""The promotions file: a good file loads; any malformed file is refused whole, naming where."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.errors import RulesFileError
from bot.offers import Campaign, Claim, PoolCode, Promotion, read_promo_file
from bot.testing import BotHarness

from .conftest import PROMOS, load_into, write_files


async def _counts(h: BotHarness) -> tuple[int, int, int]:
    async with h.sessions() as session:
        return tuple([(await session.execute(select(func.count()).select_from(m))).scalar_one()  # type: ignore[return-value]
                      for m in (Promotion, Campaign, PoolCode)])


async def test_a_good_file_loads_promotions_campaigns_and_pool_codes(harness: BotHarness, tmp_path: Path) -> None:
    summary = await load_into(harness, tmp_path)
    assert (summary.promotions_added, summary.campaigns_added, summary.pool_codes_added) == (3, 2, 3)
    async with harness.sessions() as session:
        promo = (await session.execute(select(Promotion).where(Promotion.slug == "hotpot-50"))).scalar_one()
    # Naive times are in the promotion's zone, stored as UTC; a bare end date means the end of that day.
    assert promo.starts_at == datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    assert promo.ends_at == datetime(2099, 12, 31, 15, 59, 59, 999999, tzinfo=UTC)
    assert promo.keywords == {"en": ["hotpot"], "zh_Hans": ["火锅"]}
    assert (promo.value_amount, promo.value_currency, promo.value_kind) == ("50", "CNY", "discount")


async def test_reloading_replaces_by_slug_and_keeps_claims(offers: BotHarness, tmp_path: Path) -> None:
    alice = offers.follower("alice", language="en")
    await alice.say("hotpot")
    code = alice.last_text.splitlines()[1]
    summary = await load_into(offers, tmp_path, PROMOS.replace("Hotpot ¥50 off", "Hotpot ¥60 off"))
    assert (summary.promotions_added, summary.promotions_replaced, summary.pool_codes_added) == (0, 3, 0)
    await alice.say("hotpot")
    assert alice.last_text.splitlines()[:2] == ["You already have a code for “Hotpot ¥60 off”. Here it is again:", code]
    async with offers.sessions() as session:
        assert (await session.execute(select(Promotion.claimed).where(Promotion.slug == "hotpot-50"))).scalar_one() == 1


BAD_FILES = [
    ("slug: hotpot-50", "slug: Hotpot 50", "promotions[0] ('Hotpot 50') field slug"),
    ("title: {en: \"Free milk tea\", zh_Hans: \"免费奶茶\"}", "title: {fr: \"Thé\"}", "promotions[1] ('tea') field title"),
    ("code: {strategy: unique, length: 8, prefix: F}", "code: {strategy: shared}", "promotions[2] ('family') field code"),
    ("quota: 500", "quota: -3", "promotions[0] ('hotpot-50') field quota"),
    ("validity: {until: 2099-12-31}", "validity: {days: 3, until: 2099-12-31}", "('hotpot-50') field validity"),
    ("ends_at: 2099-12-31", "ends_at: 2025-12-31", "promotions[0] ('hotpot-50'): ends_at must be after starts_at"),
    ("timezone: Asia/Shanghai", "timezone: Mars/Olympus", "('hotpot-50') field timezone"),
    ("value: {amount: 50, currency: CNY, kind: discount}", "value: {amount: 50, currency: yuan}", "field value.currency"),
    ("    scene: kol-lily", "    scene: kol lily!", "campaigns[1] ('kol-lily') field scene"),
    ("    scene: kol-lily", "    scene: " + "k" * 65, "campaigns[1] ('kol-lily') field scene"),
    ("    scene: kol-lily", "    scene: ref-lily", "campaigns[1] ('kol-lily') field scene"),
    ("  - slug: tea", "  - slug: hotpot-50", "slug 'hotpot-50' appears twice"),
    ("    menu_key: OFFER_HOTPOT", "    menu_key: OFFER_HOTPOT\n    colour: red", "field colour: Extra inputs"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_FILES)
async def test_a_malformed_file_is_refused_whole(harness: BotHarness, tmp_path: Path, old: str, new: str,
                                                 message: str) -> None:
    assert old in PROMOS
    with pytest.raises(RulesFileError) as caught:
        await load_into(harness, tmp_path, PROMOS.replace(old, new, 1))
    assert message in str(caught.value)
    assert await _counts(harness) == (0, 0, 0)


@pytest.mark.parametrize(("csv_text", "message"), [
    ("code\nTEA-0001\nTEA-0001\n", "line 3: code 'TEA-0001' appears twice"),
    ("code\nTEA 0001\n", "line 2: code 'TEA 0001' must be 8 to 32"),
    ("code\n" + "T" * 33 + "\n", "must be 8 to 32"),
    ("code\nTEA-0001\nTEA-001\n", "line 3: code 'TEA-001' must be 8 to 32"),  # short codes are guessable
    ("code\n", "holds no codes"),
])
async def test_a_bad_pool_csv_refuses_the_file(harness: BotHarness, tmp_path: Path, csv_text: str, message: str) -> None:
    with pytest.raises(RulesFileError) as caught:
        await load_into(harness, tmp_path, files={"tea.csv": csv_text})
    assert "promotions[1] ('tea') field code.codes_csv" in str(caught.value)
    assert message in str(caught.value)
    assert await _counts(harness) == (0, 0, 0)


async def test_a_missing_pool_csv_refuses_the_file(tmp_path: Path) -> None:
    path = write_files(tmp_path, PROMOS)
    (tmp_path / "tea.csv").unlink()
    with pytest.raises(RulesFileError, match=r"\('tea'\) field code.codes_csv: .*tea.csv: cannot read \(No such file"):
        read_promo_file(path)


async def test_a_campaign_naming_an_unknown_promotion_writes_nothing(harness: BotHarness, tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="campaign 'kol-lily' field promotion: no promotion 'nope'"):
        await load_into(harness, tmp_path, PROMOS.replace('source: "KOL: Lily"', 'source: "KOL: Lily"\n    promotion: nope'))
    assert await _counts(harness) == (0, 0, 0)


async def test_lowering_the_quota_under_the_claims_is_refused(offers: BotHarness, tmp_path: Path) -> None:
    async with offers.sessions() as session:
        await session.execute(update(Promotion).where(Promotion.slug == "hotpot-50").values(claimed=10))
        await session.commit()
    with pytest.raises(RulesFileError, match="promotion 'hotpot-50' field quota: 10 codes are already claimed"):
        await load_into(offers, tmp_path, PROMOS.replace("quota: 500", "quota: 5"))


async def test_promo_commands_load_list_and_show(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    path = write_files(tmp_path, PROMOS)
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    assert await asyncio.to_thread(main, ["promo", "load", str(path)]) == 0
    assert "promotions 3 added, 0 replaced; campaigns 2 added, 0 replaced; 3 pool code(s) added" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["promo", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["family", "hotpot-50", "tea"]
    assert "claimed 0/500" in listing[1] and "2026-01-01 10:00 CST -> 2099-12-31 23:59 CST" in listing[1]
    assert await asyncio.to_thread(main, ["promo", "show", "tea"]) == 0
    assert "codes:         pool: codes loaded from the file, one per claim (3 unassigned)" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["promo", "show", "hotpot-50"]) == 0
    shown = capsys.readouterr().out.splitlines()
    # Every value starts in the same column, title.en and title.zh_Hans included.
    assert len({len(line) - len(line.split(":", 1)[1].lstrip()) for line in shown}) == 1, shown
    assert any(line.startswith("title.zh_Hans: ") for line in shown)
    [codes] = [line for line in shown if line.startswith("codes:")]
    assert codes.split(":", 1)[1].strip() == (
        "unique: each claim gets its own code, 8 random characters (shaped XXXXXXXX)")
    assert await asyncio.to_thread(main, ["promo", "show", "family"]) == 0
    assert ("codes:         unique: each claim gets its own code, the prefix F then 8 random characters "
            "(shaped FXXXXXXXX)") in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("promotions:\n  - slug: x\n", "utf-8")
    assert await asyncio.to_thread(main, ["promo", "load", str(bad)]) == 2
    assert "promotions[0] ('x') field title: Field required" in capsys.readouterr().err
    assert Claim is not None


POSTER_LINE = "    value: {amount: 50, currency: CNY, kind: discount}\n"


def _with_poster(poster: str) -> str:
    assert POSTER_LINE in PROMOS
    return PROMOS.replace(POSTER_LINE, POSTER_LINE + f"    poster: {poster}\n", 1)


async def test_a_poster_file_is_checked_and_kept_by_its_absolute_path(harness: BotHarness, tmp_path: Path) -> None:
    from tests.support.images import png_file

    png_file(tmp_path, "hotpot.png")
    await load_into(harness, tmp_path, _with_poster("hotpot.png"))
    async with harness.sessions() as session:
        posters = dict((await session.execute(select(Promotion.slug, Promotion.poster))).all())
    assert posters == {"hotpot-50": str((tmp_path / "hotpot.png").resolve()), "tea": None, "family": None}


@pytest.mark.parametrize(("poster", "content", "message"), [
    ("missing.png", None, "missing.png: cannot read (No such file or directory)"),
    ("notes.png", b"just some text", "notes.png: not a PNG, JPEG, GIF or BMP image"),
    ("empty.png", b"", "empty.png: empty image"),
    ("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(10 * 1024 * 1024), "huge.png: image larger than 10 MB"),
])
async def test_a_bad_poster_refuses_the_file_naming_it(harness: BotHarness, tmp_path: Path, poster: str,
                                                       content: bytes | None, message: str) -> None:
    if content is not None:
        (tmp_path / poster).write_bytes(content)
    with pytest.raises(RulesFileError) as caught:
        await load_into(harness, tmp_path, _with_poster(poster))
    assert "promotions[0] ('hotpot-50') field poster: " in str(caught.value)
    assert message in str(caught.value)
    assert await _counts(harness) == (0, 0, 0)


@pytest.mark.parametrize(("poster", "message"), [
    ("ftp://example.com/p.png", "a poster is an http(s) URL or a file path"),
    ("'https:///p.png'", "a poster URL needs a host"),
])
async def test_a_poster_url_must_be_http_with_a_host(harness: BotHarness, tmp_path: Path, poster: str,
                                                     message: str) -> None:
    with pytest.raises(RulesFileError) as caught:
        await load_into(harness, tmp_path, _with_poster(poster))
    assert "promotions[0] ('hotpot-50') field poster: " + message in str(caught.value)
