"""Issue 9, point 15: a platform configured in part refuses to start, naming what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import Settings
from tests.test_cli import engagebot

WECHAT_ID = {"ENGAGEBOT_WECHAT__APP_ID": "wx1234567890"}
AES = "Zyxwvutsrqponmlkjihgfedcba9876543210ABCDEFG"


@pytest.mark.parametrize(("env", "missing"), [
    ({"ENGAGEBOT_WECHAT__TOKEN": "onlyTheToken"}, ["ENGAGEBOT_WECHAT__APP_ID", "ENGAGEBOT_WECHAT__APP_SECRET"]),
    ({"ENGAGEBOT_WECHAT__AES_KEY": AES},
     ["ENGAGEBOT_WECHAT__TOKEN", "ENGAGEBOT_WECHAT__APP_ID", "ENGAGEBOT_WECHAT__APP_SECRET"]),
    ({**WECHAT_ID, "ENGAGEBOT_WECHAT__APP_SECRET": "s"}, ["ENGAGEBOT_WECHAT__TOKEN"]),
    ({"ENGAGEBOT_TELEGRAM__WEBHOOK_SECRET": "hook_1"}, ["ENGAGEBOT_TELEGRAM__TOKEN"]),
    ({"ENGAGEBOT_TELEGRAM__API_BASE": "http://127.0.0.1:9/bot"}, ["ENGAGEBOT_TELEGRAM__TOKEN"]),
    ({"ENGAGEBOT_TELEGRAM__TOKEN": "123:abc", "ENGAGEBOT_TELEGRAM__MODE": "webhook"},
     ["ENGAGEBOT_TELEGRAM__WEBHOOK_URL", "ENGAGEBOT_TELEGRAM__WEBHOOK_SECRET"]),
], ids=["wechat-token-only", "wechat-aes-key-only", "wechat-without-token", "telegram-secret-without-token",
        "telegram-api-base-without-token", "telegram-webhook-without-url"])
def test_a_platform_set_in_part_refuses_to_start_with_one_line_naming_the_missing_settings(
        tmp_path: Path, env: dict[str, str], missing: list[str]) -> None:
    done = engagebot("run", env=env, cwd=tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("engagebot: setting "), done.stderr
    named = lines[0].split("missing ", 1)[1]
    assert sorted(named.split(", ")) == sorted(missing)
    assert not list(tmp_path.iterdir())  # nothing created: no database, no simulator


def test_an_extra_account_in_the_config_file_set_in_part_is_named(tmp_path: Path) -> None:
    config = tmp_path / "engagebot.yaml"
    config.write_text("wechat_accounts:\n  service:\n    token: ServiceToken2\n    app_id: wxservice\n", "utf-8")
    done = engagebot("--config", str(config), "run", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("engagebot: setting ENGAGEBOT_WECHAT_ACCOUNTS__SERVICE: incomplete, "
                                   "missing ENGAGEBOT_WECHAT_ACCOUNTS__SERVICE__APP_SECRET")


def test_complete_platforms_and_none_at_all_are_both_fine() -> None:
    Settings()
    Settings(wechat={"token": "abc123", "app_id": "wx1", "app_secret": "s"},
             telegram={"token": "123:abc", "mode": "webhook", "webhook_url": "https://x.example/telegram",
                       "webhook_secret": "hook_1"})
    with pytest.raises(ConfigError, match="ENGAGEBOT_WECHAT__APP_SECRET"):
        Settings(wechat={"token": "abc123", "app_id": "wx1"})
