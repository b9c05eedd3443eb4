"""Weibo settings: the names the issue lists, their defaults, and a partial configuration refused."""

from __future__ import annotations

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings

FULL = {"ENGAGEBOT_WEIBO__APP_KEY": "123456", "ENGAGEBOT_WEIBO__APP_SECRET": "secret",
        "ENGAGEBOT_WEIBO__ACCESS_TOKEN": "2.00abc", "ENGAGEBOT_WEIBO__BRAND_UID": "5000000001",
        "ENGAGEBOT_WEIBO__API_BASE": "http://127.0.0.1:9/weibo-api/"}


def test_weibo_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in FULL.items():
        monkeypatch.setenv(k, v)
    s = load_settings(environ=FULL)
    assert s.weibo.configured and s.weibo.brand_uid == "5000000001"
    assert s.weibo.api_base == "http://127.0.0.1:9/weibo-api"
    assert (s.weibo.poll_interval, s.weibo.public_replies_per_hour) == (30, 60)
    monkeypatch.setenv("ENGAGEBOT_WEIBO__POLL_INTERVAL", "5")
    monkeypatch.setenv("ENGAGEBOT_WEIBO__PUBLIC_REPLIES_PER_HOUR", "2")
    s = load_settings(environ=FULL)
    assert (s.weibo.poll_interval, s.weibo.public_replies_per_hour) == (5, 2)


def test_absent_weibo_settings_configure_nothing() -> None:
    assert not load_settings(environ={}).weibo.configured


def test_partial_weibo_settings_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGEBOT_WEIBO__APP_SECRET", "secret")
    with pytest.raises(ConfigError, match="ENGAGEBOT_WEIBO__ACCESS_TOKEN"):
        load_settings(environ={"ENGAGEBOT_WEIBO__APP_SECRET": "secret"})
