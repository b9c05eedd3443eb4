"""The rules page's "try a message" box in a real browser (issue 14): an ``engagebot run`` with its simulators
(so WeChat, Telegram and Weibo are all served), rules loaded with ``engagebot prompts load``; a marketer types
a message and sees the rule and each channel's reply in each language. Screenshot:
``tests/artifacts/console/rules-try.png`` (not in git)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import needs_chromium, new_driver, screenshot, wait_for
from tests.support.process import Server, engagebot, running
from tests.support.servers import free_port

pytestmark = needs_chromium
PASSWORD = "console password 2026"
RULES = """\
rules:
  - name: opening-hours
    match: {en: [open, hours], zh_Hans: [营业, 几点]}
    reply: {en: "We open every day, 10:00-22:00.", zh_Hans: "每天10:00-22:00营业。", zh_Hant: "每日10:00-22:00營業。"}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    cwd: Path = tmp_path_factory.mktemp("console-try")
    port = free_port()
    env = {"ENGAGEBOT_PORT": str(port)}
    (cwd / "rules.yaml").write_text(RULES, "utf-8")
    with running("run", env=env, cwd=cwd, port=port, ready="/simulator/telegram") as s:
        for command in (("prompts", "load", "rules.yaml"),
                        ("operator", "add", "mia", "--role", "marketer", "--password-stdin")):
            done = engagebot(*command, input=PASSWORD + "\n", env=env, cwd=cwd)
            assert done.returncode == 0, done.stdout + done.stderr
        yield s


def test_a_marketer_tries_a_message_and_sees_each_channels_reply_in_each_language(server: Server) -> None:
    from selenium.webdriver.common.by import By

    browser: Any = new_driver(window="1100,1400")
    try:
        browser.get(server.url + "/admin/login")
        browser.find_element(By.ID, "name").send_keys("mia")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "sign-in").click()
        wait_for(lambda: "/admin/login" not in browser.current_url, what="the sign-in")
        browser.find_element(By.LINK_TEXT, "Prompt rules").click()
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-rule="opening-hours"]'), what="the rules")
        browser.find_element(By.ID, "try-text").send_keys("周末几点开门？")
        browser.find_element(By.ID, "try-button").click()
        matched = wait_for(lambda: browser.find_elements(By.ID, "matched-rule"), what="the try's answer")
        assert matched[0].text == "opening-hours"

        def reply(locale: str, channel: str) -> str:
            cell = browser.find_element(By.CSS_SELECTOR, f'section[data-locale="{locale}"] tr[data-channel="{channel}"]'
                                                         " .msg.out")
            return str(cell.text)

        for channel in ("wechat", "telegram", "weibo"):
            assert reply("en", channel) == "We open every day, 10:00-22:00."
            assert reply("zh_Hans", channel) == "每天10:00-22:00营业。"
            assert reply("zh_Hant", channel) == "每日10:00-22:00營業。"
        assert browser.find_element(By.ID, "try-text").get_attribute("value") == "周末几点开门？"  # kept for the next try
        screenshot(browser, "console/rules-try.png")
    finally:
        browser.quit()
