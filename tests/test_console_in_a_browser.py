"""The operators' console (``/admin``) in a real browser, beside the simulated follower pages (issue 14).

One ``engagebot run`` with both simulators; operators are added with ``engagebot operator add``. A
marketer's promotion is claimed from the simulated WeChat phone and the dashboard's funnel moves; an
agent takes a Telegram conversation, replies (the follower sees it on the simulated Telegram page) and
hands it back; a form without its CSRF token is refused; staff only redeem; a disabled operator's
session stops at once. Screenshots go to ``tests/artifacts/console/`` (not in git).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.browser import CONSOLE_PASSWORD, chromium, console_server, needs_chromium, screenshot, wait_for
from tests.support.process import Server, engagebot

pytestmark = needs_chromium
PASSWORD = CONSOLE_PASSWORD


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with console_server(tmp_path_factory.mktemp("console"), {"mia": "marketer", "alice": "agent", "sam": "staff", "ada": "admin"}) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(window="1000,1000") as driver:
        yield driver


def _by() -> Any:
    from selenium.webdriver.common.by import By

    return By


def sign_in(browser: Any, server: Server, name: str) -> None:
    By = _by()
    browser.delete_all_cookies()
    browser.get(server.url + "/admin/login")
    browser.find_element(By.ID, "name").send_keys(name)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()
    wait_for(lambda: "/admin/login" not in browser.current_url, what=f"{name} to be signed in")


def text_of(browser: Any, selector: str) -> str:
    """The text of ``selector`` on the page now; "" while a form's answer replaces the page (the old one goes stale)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(browser.find_element(_by().CSS_SELECTOR, selector).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def funnel_cell(browser: Any, campaign: str, column: str) -> int:
    By = _by()
    row = browser.find_element(By.CSS_SELECTOR, f'#funnel tr[data-campaign="{campaign}"][data-channel=""]')
    return int(row.find_element(By.CSS_SELECTOR, f"td.{column}").text)


def test_a_promotion_made_in_the_console_is_claimed_on_the_wechat_phone_and_the_funnel_moves(
        browser: Any, server: Server) -> None:
    By = _by()
    browser.get(server.url + "/admin/login")
    screenshot(browser, "console/01-sign-in.png")
    sign_in(browser, server, "mia")
    browser.get(server.url + "/admin/promotions")
    for field, value in (("slug", "dumplings"), ("title_en", "Free dumplings"), ("title_zh_Hans", "免费饺子"),
                         ("keyword_en", "dumplings"), ("keyword_zh_Hans", "饺子"), ("quota", "20"),
                         ("scene", "dumpling-poster"), ("source", "Poster <i>at the door</i>")):
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "create-promotion").click()
    row = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, 'tr[data-slug="dumplings"]'), what="the promotion")
    assert row[0].find_element(By.CSS_SELECTOR, ".claimed").text == "0"
    screenshot(browser, "console/02-promotion-created.png")
    browser.get(server.url + "/admin")
    before = {c: funnel_cell(browser, "dumplings", c) for c in ("scans", "follows", "claims")}
    assert before == {"scans": 0, "follows": 0, "claims": 0}
    assert "Poster <i>at the door</i>" in browser.page_source.replace("&lt;", "<").replace("&gt;", ">")
    assert not browser.find_elements(By.CSS_SELECTOR, "#funnel i")  # the source is text, not markup

    from selenium.webdriver.support.ui import Select

    browser.get(server.url + "/simulator/wechat")
    browser.find_element(By.ID, "nick").send_keys("Amy")
    Select(browser.find_element(By.ID, "lang")).select_by_value("en")
    browser.find_element(By.ID, "create").click()
    wait_for(lambda: "Amy" in browser.find_element(By.ID, "who").text, what="the follower to be picked")
    browser.find_element(By.ID, "scene").send_keys("dumpling-poster")
    browser.find_element(By.ID, "scan").click()  # scanning the poster's QR code follows through the campaign

    def replies() -> list[str]:  # read in one script: the phone redraws its chat as messages arrive
        return list(browser.execute_script(
            "return Array.from(document.querySelectorAll('.msg:not(.me) .bubble'), b => b.innerText)"))

    wait_for(replies, what="the welcome")
    seen = len(replies())
    browser.find_element(By.ID, "text").send_keys("dumplings")
    browser.find_element(By.ID, "send").click()
    wait_for(lambda: any("Free dumplings" in r for r in replies()[seen:]), what="the code")
    screenshot(browser, "console/03-wechat-claimed.png")

    browser.get(server.url + "/admin")
    after = {c: funnel_cell(browser, "dumplings", c) for c in ("scans", "follows", "claims")}
    assert after == {"scans": 1, "follows": 1, "claims": 1}
    wechat = browser.find_element(By.CSS_SELECTOR, '#funnel tr[data-campaign="dumplings"][data-channel="wechat"]')
    assert wechat.find_element(By.CSS_SELECTOR, ".claims").text == "1"
    screenshot(browser, "console/04-dashboard-funnel.png")
    # The console's language is switched on the page and remembered.
    from selenium.webdriver.support.ui import Select as Choose

    Choose(browser.find_element(By.NAME, "locale")).select_by_value("zh_Hans")
    browser.find_element(By.ID, "switch-language").click()
    wait_for(lambda: text_of(browser, "h1") == "数据概览", what="the Chinese dashboard")
    browser.get(server.url + "/admin/promotions")
    assert browser.find_element(By.TAG_NAME, "h1").text == "优惠活动"
    screenshot(browser, "console/05-promotions-zh-hans.png")
    browser.delete_all_cookies()


def test_an_agent_takes_a_telegram_conversation_replies_and_hands_it_back(browser: Any, server: Server) -> None:
    By = _by()
    from selenium.webdriver.support.ui import Select

    browser.get(server.url + "/simulator/telegram")
    phone = browser.current_window_handle
    browser.find_element(By.ID, "nu-name").send_keys("Tom")
    Select(browser.find_element(By.ID, "nu-lang")).select_by_value("en")
    browser.find_element(By.CSS_SELECTOR, "#newuser button").click()
    wait_for(lambda: browser.find_element(By.ID, "text").is_enabled(), what="the chat to open")
    browser.find_element(By.ID, "text").send_keys("<script>alert('hi')</script> hello?")
    browser.find_element(By.ID, "btn-send").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg.out"), what="the bot's answer")

    browser.switch_to.new_window("tab")
    console = browser.current_window_handle
    sign_in(browser, server, "alice")
    assert browser.current_url.endswith("/admin/inbox")  # an agent's home is the inbox
    link = wait_for(lambda: next(iter(browser.find_elements(By.LINK_TEXT, "Tom")), None), what="Tom in the inbox")
    row = link.find_element(By.XPATH, "./ancestor::tr")
    assert "telegram" in row.text and "en" in row.text and "bot" in row.find_element(By.CSS_SELECTOR, ".state").text
    screenshot(browser, "console/06-inbox.png")
    link.click()
    messages = wait_for(lambda: text_of(browser, "#messages"), what="the conversation")
    assert "<script>alert('hi')</script> hello?" in messages  # shown as the follower typed it
    browser.find_element(By.ID, "take-over").click()
    wait_for(lambda: "taken (alice)" in text_of(browser, "#state"), what="the take")
    browser.find_element(By.ID, "text").send_keys("Hi Tom, this is Alice <b>from the team</b>.")
    browser.find_element(By.ID, "send").click()
    wait_for(lambda: "Alice <b>from the team</b>" in text_of(browser, "#messages"),
             what="the reply in the conversation")
    screenshot(browser, "console/07-conversation-taken.png")

    browser.switch_to.window(phone)

    def bot_texts() -> list[str]:
        # Read in one script: the page redraws its messages as they arrive (an element read one by one goes stale).
        return list(browser.execute_script(
            "return Array.from(document.querySelectorAll('.msg.out'), m => m.innerText)"))

    wait_for(lambda: any("Hi Tom, this is Alice <b>from the team</b>." in t for t in bot_texts()),
             what="the agent's reply on the Telegram page")
    assert any("A person from our team will answer you here soon" in t for t in bot_texts())
    screenshot(browser, "console/08-telegram-sees-the-agent.png")

    browser.switch_to.window(console)
    browser.find_element(By.ID, "hand-back").click()
    wait_for(lambda: text_of(browser, "#state") == "bot", what="the hand-back")
    assert browser.find_elements(By.ID, "take-over")
    browser.switch_to.window(phone)
    seen = len(bot_texts())
    browser.find_element(By.ID, "text").send_keys("/help")
    browser.find_element(By.ID, "btn-send").click()
    wait_for(lambda: len(bot_texts()) > seen, what="the bot to answer again")
    browser.close()
    browser.switch_to.window(console)
    browser.get(server.url + "/admin/inbox")
    browser.delete_all_cookies()


def test_a_form_without_its_csrf_token_is_refused(browser: Any, server: Server) -> None:
    By = _by()
    sign_in(browser, server, "mia")
    browser.get(server.url + "/admin/promotions")
    browser.find_element(By.ID, "slug").send_keys("forged")
    browser.find_element(By.ID, "title_en").send_keys("Forged")
    browser.execute_script("document.querySelector('#new-promotion input[name=csrf]').remove()")
    browser.find_element(By.ID, "create-promotion").click()
    reason = wait_for(lambda: next(iter(browser.find_elements(By.ID, "reason")), None), what="the refusal")
    assert "CSRF" in reason.text
    screenshot(browser, "console/09-csrf-refused.png")
    browser.get(server.url + "/admin/promotions")
    assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-slug="forged"]')
    browser.delete_all_cookies()


def test_staff_only_redeem_and_a_disabled_operator_is_signed_out_at_once(browser: Any, server: Server) -> None:
    By = _by()
    database = next(server.stderr_path.parent.glob("*.db"))
    with sqlite3.connect(database) as db:
        code = db.execute("SELECT code FROM claim ORDER BY id LIMIT 1").fetchone()[0]
    sign_in(browser, server, "sam")
    assert browser.current_url.endswith("/admin/till")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "header a")] == ["Redeem a code"]
    browser.get(server.url + "/admin/promotions")
    assert "Your role may not do this." in browser.find_element(By.ID, "reason").text
    browser.get(server.url + "/admin/till")
    browser.find_element(By.ID, "code").send_keys(code)
    browser.find_element(By.ID, "redeem-code").click()
    result = wait_for(lambda: next(iter(browser.find_elements(By.ID, "result")), None), what="the redemption")
    assert result.get_attribute("data-outcome") == "redeemed" and code in result.text
    browser.set_window_size(390, 844)  # a phone at the till
    screenshot(browser, "console/10-staff-redeemed-on-a-phone.png")
    browser.set_window_size(1000, 1000)

    port = server.url.rsplit(":", 1)[1]
    disabled = engagebot("operator", "disable", "sam", env={"ENGAGEBOT_PORT": port}, cwd=server.stderr_path.parent)
    assert disabled.returncode == 0, disabled.stdout + disabled.stderr
    browser.get(server.url + "/admin/till")
    assert browser.current_url.endswith("/admin/login")
    sign_in_page = browser.page_source
    assert re.search(r'id="sign-in"', sign_in_page)
    screenshot(browser, "console/11-disabled-signed-out.png")
