"""The console's broadcasts page in a real browser: live progress with no script at all (issue 14).

One ``engagebot run`` with the simulators. A follower writes from the simulated Telegram page; a marketer
starts a broadcast to Telegram in the console and then only watches: the page reloads itself (a meta
refresh; the Content-Security-Policy runs no script) until the broadcast is done, and then stops. The
follower gets the text on the Telegram page. Screenshots go to ``tests/artifacts/console/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import CONSOLE_PASSWORD, chromium, console_server, needs_chromium, screenshot, wait_for
from tests.support.process import Server

pytestmark = needs_chromium
PASSWORD = CONSOLE_PASSWORD


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with console_server(tmp_path_factory.mktemp("console-operations"), {"mia": "marketer"}) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(window="1000,1000") as driver:
        yield driver


def test_a_broadcast_page_shows_its_progress_live_without_script(browser: Any, server: Server) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def text_of(selector: str) -> str:
        try:
            return str(browser.find_element(By.CSS_SELECTOR, selector).get_attribute("data-status") or
                       browser.find_element(By.CSS_SELECTOR, selector).text)
        except (NoSuchElementException, StaleElementReferenceException):
            return ""

    browser.get(server.url + "/simulator/telegram")
    phone = browser.current_window_handle
    browser.find_element(By.ID, "nu-name").send_keys("Lin")
    Select(browser.find_element(By.ID, "nu-lang")).select_by_value("en")
    browser.find_element(By.CSS_SELECTOR, "#newuser button").click()
    wait_for(lambda: browser.find_element(By.ID, "text").is_enabled(), what="the chat to open")
    browser.find_element(By.ID, "text").send_keys("hello")
    browser.find_element(By.ID, "btn-send").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.out"), what="the bot's answer")

    browser.switch_to.new_window("tab")
    browser.get(server.url + "/admin/login")
    browser.find_element(By.ID, "name").send_keys("mia")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/admin/login" not in browser.current_url, what="mia to be signed in")
    browser.get(server.url + "/admin/broadcasts")
    browser.find_element(By.ID, "name").send_keys("Winter tea")
    browser.find_element(By.ID, "text_en").send_keys("Winter tea is here: 20% off this week.")
    browser.find_element(By.ID, "channels").send_keys("telegram")
    browser.find_element(By.ID, "start-broadcast").click()
    wait_for(lambda: "/admin/broadcasts/" in browser.current_url, what="the broadcast's page")
    assert browser.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')
    screenshot(browser, "console/20-broadcast-running.png")
    # From here the test only reads: the page must reload itself to see the broadcast finish.
    wait_for(lambda: text_of("#status") == "done", timeout=60, what="the page to refresh itself until done")
    assert browser.find_element(By.CSS_SELECTOR, "td.sent").text == "1"
    assert not browser.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]')  # done: it stops refreshing
    screenshot(browser, "console/21-broadcast-done.png")

    browser.switch_to.window(phone)
    wait_for(lambda: any("Winter tea is here" in t for t in browser.execute_script(
        "return Array.from(document.querySelectorAll('.msg.out'), m => m.innerText)")), what="the broadcast on Telegram")
