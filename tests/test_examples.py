"""The example files in examples/ load, and a follower can use them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from bot.cli import main
from bot.testing import BotHarness

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def test_example_rules_and_offers_load_and_answer(harness: BotHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGEBOT_DATABASE_URL", harness.database_url)
    assert await asyncio.to_thread(main, ["prompts", "load", str(EXAMPLES / "rules.yaml")]) == 0
    assert await asyncio.to_thread(main, ["promo", "load", str(EXAMPLES / "offers.yaml")]) == 0
    from bot.rules import PromptRuleCache

    harness.dispatcher.services.prompt_rules = PromptRuleCache(harness.sessions, ttl=0)
    fan = harness.follower("example-fan", language="zh-hans")
    await fan.follow("mall-poster-2026")  # scan the poster: welcome and the hotpot code at once
    assert any("火锅立减50元" in t for t in fan.texts)
    await fan.say("你们几点开门？")
    assert fan.texts == ["我们每天10:00至22:00营业。"]
    assert os.environ["ENGAGEBOT_DATABASE_URL"] == harness.database_url


def test_the_example_settings_file_loads_as_shipped() -> None:
    from bot.settings import load_settings

    warnings: list[str] = []
    settings = load_settings(EXAMPLES.parent / "deploy" / "config.example.yaml", environ={}, warn=warnings.append)
    assert warnings == []
    assert list(settings.wechat_accounts) == ["service"]
    assert settings.http.max_connections == 1000 and [str(n) for n in settings.http.trusted_networks] == ["127.0.0.1/32"]
