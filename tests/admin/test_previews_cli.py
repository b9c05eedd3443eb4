"""``engagebot prompts try`` and ``engagebot promo preview``: the console's dry runs in the terminal, through
the same service (``bot.admin.previews``), with the configured channels (here the simulators' accounts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, table

from bot.offers.models import Claim
from bot.storage.engine import create_engine, make_sessionmaker
from bot.storage.models import Follower, Message
from tests.admin.test_cli import _cli
from tests.offers.conftest import PROMOS, write_files

RULES = """\
rules:
  - name: hours
    match: {en: [open], zh_Hans: [营业]}
    reply: {en: "We open at ten.", zh_Hans: "十点开门。"}
"""


@pytest.fixture
async def loaded(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    (tmp_path / "rules.yaml").write_text(RULES, "utf-8")
    assert (await _cli(monkeypatch, capsys, "prompts", "load", str(tmp_path / "rules.yaml")))[0] == 0
    assert (await _cli(monkeypatch, capsys, "promo", "load", str(write_files(tmp_path, PROMOS))))[0] == 0
    return database_url


async def stored(database_url: str) -> tuple[int, ...]:
    engine = create_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return tuple([int(await session.scalar(select(func.count()).select_from(m)) or 0)
                          for m in (Follower, Message, Claim)])
    finally:
        await engine.dispose()


async def test_prompts_try_prints_the_rule_and_each_channels_reply(loaded: str, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    before = await stored(loaded)
    code, out, _ = await _cli(monkeypatch, capsys, "prompts", "try", "are you open?", "--lang", "zh_Hant")
    assert code == 0
    assert out.splitlines() == ["rule: hours (priority 0)", "[zh_Hant]",
                                "  wechat:", "    十點開門。", "  telegram:", "    十點開門。", "  weibo:", "    十點開門。"]
    code, out, _ = await _cli(monkeypatch, capsys, "prompts", "try", "lovely weather", "--channel", "weibo",
                              "--lang", "en")
    assert code == 0 and out.splitlines()[0].startswith("no rule matched: the fallback answers")
    assert out.splitlines()[1:] == ["[en]", "  weibo:", "    Sorry, I did not understand that. Send /help to see what I can do."]
    code, out, _ = await _cli(monkeypatch, capsys, "prompts", "try", "hotpot")  # a promotion's keyword: its offer
    assert code == 0 and out.splitlines()[:2] == [
        "answered by: offer: A promotion's keyword: the bot answers with the promotion's code (the rules are not "
        "reached).", "promotion: hotpot-50 (engagebot promo preview hotpot-50)"]
    assert await stored(loaded) == before


async def test_promo_preview_prints_the_claim_reply(loaded: str, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = await stored(loaded)
    code, out, _ = await _cli(monkeypatch, capsys, "promo", "preview", "hotpot-50", "--channel", "telegram",
                              "--lang", "en")
    assert code == 0
    lines = out.splitlines()
    assert lines[:5] == ["promotion: hotpot-50 (a sample code: K7QW3M9X; nothing is claimed)", "[en]", "  telegram:",
                         "    Here is your code for “Hotpot ¥50 off”:", "    K7QW3M9X"]
    assert await stored(loaded) == before


async def test_bad_arguments_are_one_line_and_exit_2(loaded: str, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = await _cli(monkeypatch, capsys, "prompts", "try", "hi", "--channel", "sms")
    assert (code, err) == (2, "engagebot: channels: no channel 'sms' (channels: telegram, wechat, weibo)\n")
    code, _out, err = await _cli(monkeypatch, capsys, "prompts", "try", "  ")
    assert (code, err) == (2, "engagebot: text: type a message to try\n")
    code, _out, err = await _cli(monkeypatch, capsys, "promo", "preview", "nope")
    assert (code, err) == (2, "engagebot: no promotion 'nope'\n")


async def every_tables_rows(database_url: str) -> dict[str, int]:
    """Every table the database has (read from it, not from our models), with its row count."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            return {name: int(await conn.scalar(select(func.count()).select_from(table(name))) or 0)
                    for name in names}
    finally:
        await engine.dispose()


async def test_the_dry_runs_write_nothing_on_a_fresh_database(database_url: str, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", database_url)
    before = await every_tables_rows(database_url)
    code, out, _ = await _cli(monkeypatch, capsys, "prompts", "try", "lovely weather")
    assert code == 0 and "[en]" in out and "  wechat:" in out  # rendered by the simulated accounts' channels
    assert (await _cli(monkeypatch, capsys, "promo", "preview", "nothing-here"))[0] != 0
    assert await every_tables_rows(database_url) == before  # no simulator credentials provisioned either
