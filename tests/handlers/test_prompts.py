"""Prompt-reply rules: loading from YAML (whole or nothing), listing, matching in any language."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.storage.models import PromptRule
from bot.testing import BotHarness

GOOD = """
rules:
  - name: hours
    match: {en: ["hours", "open today"], zh_Hans: ["营业时间", "几点开门"]}
    reply: {en: "We are open 10:00-22:00 every day.", zh_Hans: "我们每天10:00至22:00营业。"}
    priority: 10
  - name: address
    match: {en: ['\\bwhere\\b.*\\b(shop|store)\\b'], zh_Hans: ['(店|门店).*(在哪|地址)']}
    reply: {en: "1 Nanjing Road, Shanghai.", zh_Hans: "上海市南京路1号。"}
    regex: true
  - name: hours-short
    match: {en: ["open"]}
    reply: {en: "Open daily."}
"""


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return path


async def load(harness: BotHarness, path: Path) -> int:
    import asyncio

    return await asyncio.to_thread(main, ["prompts", "load", str(path)])


@pytest.fixture
def env_db(monkeypatch: pytest.MonkeyPatch, harness: BotHarness) -> BotHarness:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", harness.database_url)
    return harness


async def count_rules(harness: BotHarness) -> int:
    async with harness.sessions() as s:
        return await s.scalar(select(func.count()).select_from(PromptRule))


async def test_rule_matched_in_one_language_answers_in_the_followers(env_db: BotHarness, tmp_path: Path) -> None:
    assert await load(env_db, write(tmp_path, GOOD)) == 0
    env_db.dispatcher.services.prompt_rules = _cache(env_db)
    zh = env_db.follower("zh-fan", language="zh-CN")
    await zh.say("What are your HOURS?")
    assert zh.texts == ["我们每天10:00至22:00营业。"]
    en = env_db.follower("en-fan", language="en")
    await en.say("请问几点开门")
    assert en.texts == ["We are open 10:00-22:00 every day."]


async def test_priority_and_regex_rules(env_db: BotHarness, tmp_path: Path) -> None:
    await load(env_db, write(tmp_path, GOOD))
    env_db.dispatcher.services.prompt_rules = _cache(env_db)
    en = env_db.follower("p", language="en")
    await en.say("are you open today")  # "hours" rule (priority 10) beats "hours-short"
    assert en.texts == ["We are open 10:00-22:00 every day."]
    await en.say("Where is your shop?")
    assert en.texts == ["1 Nanjing Road, Shanghai."]
    await en.say("门店在哪里")
    assert en.texts == ["1 Nanjing Road, Shanghai."]


async def test_loading_again_replaces_rules_of_the_same_name(env_db: BotHarness, tmp_path: Path) -> None:
    await load(env_db, write(tmp_path, GOOD))
    await load(env_db, write(tmp_path, GOOD.replace("Open daily.", "Open every day."), "b.yaml"))
    assert await count_rules(env_db) == 3
    env_db.dispatcher.services.prompt_rules = _cache(env_db)
    en = env_db.follower("q", language="en")
    await en.say("open?")
    assert en.texts == ["Open every day."]


@pytest.mark.parametrize(("bad", "named"), [
    ("rules:\n  - name: x\n    match: {en: []}\n    reply: {en: hi}\n", "rules[1] ('x') field match"),
    ("rules:\n  - name: y\n    match: {fr: [salut]}\n    reply: {en: hi}\n", "rules[1] ('y') field match"),
    ("rules:\n  - name: z\n    match: {en: ['(']}\n    reply: {en: hi}\n    regex: true\n", "bad regular expression"),
    ("rules:\n  - name: w\n    match: {en: [a]}\n    reply: {en: ''}\n", "rules[1] ('w') field reply"),
    ("rules:\n  - name: v\n    match: {en: [a]}\n    reply: {en: hi}\n    priority: lots\n", "field priority"),
    ("rules:\n  - name: u\n    match: {en: [a]}\n    reply: {en: hi}\n    colour: red\n", "field colour"),
    ("rules:\n  - name: 'bad name!'\n    match: {en: [a]}\n    reply: {en: hi}\n", "field name"),
    ("rules: [\n", "not valid YAML"),
    ("- just a list\n", "expected a mapping"),
    ("rules:\n  - name: t\n    match: {en: [a]}\n    reply: {en: hi}\n  - name: t\n    match: {en: [b]}\n    reply: {en: hi}\n",
     "appears twice"),
])
async def test_malformed_file_is_refused_whole_naming_the_rule_and_field(
    env_db: BotHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str, named: str,
) -> None:
    good_rule = "rules:\n  - name: fine\n    match: {en: [fine]}\n    reply: {en: fine}\n"
    text = bad if not bad.startswith("rules:\n") else good_rule + bad[len("rules:\n"):]
    assert await load(env_db, write(tmp_path, text)) == 2
    err = capsys.readouterr().err
    assert named in err
    assert err.startswith("engagebot: ")
    assert await count_rules(env_db) == 0  # the good rule before the bad one was not loaded either


async def test_missing_and_binary_files_are_refused(env_db: BotHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await load(env_db, tmp_path / "nope.yaml") == 2
    assert "No such file" in capsys.readouterr().err
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00rules")
    assert await load(env_db, binary) == 2
    assert "not UTF-8" in capsys.readouterr().err


async def test_prompts_list_shows_the_rules(env_db: BotHarness, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    await load(env_db, write(tmp_path, GOOD))
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["prompts", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == ["hours", "address", "hours-short"]
    assert "zh_Hans: 营业时间, 几点开门" in out[0]


def _cache(harness: BotHarness):  # type: ignore[no-untyped-def]
    from bot.rules import PromptRuleCache

    return PromptRuleCache(harness.sessions, ttl=0)
