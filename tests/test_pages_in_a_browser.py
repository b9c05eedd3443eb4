"""The pages a newcomer opens, in a real browser (Debian's chromium driven by selenium; issue 9, points 7 and 9).

- ``/`` is a small landing page in English and Chinese, linking the follower pages and ``/healthz``.
- The simulator pages render a Chinese conversation with a CJK font (not tofu boxes). Screenshots
  go to ``tests/artifacts/`` (not in git).

Skipped only when chromium is not installed on this machine; ``.ci/run`` installs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.i18n import default_catalogs
from bot.landing import FOLLOWER_PAGES, HEALTH, NO_SIMULATOR, TITLE
from tests.support.browser import needs_chromium, new_driver, screenshot, wait_for
from tests.support.process import Server, engagebot, http, running
from tests.support.servers import free_port

CJK_FAMILIES = {"Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
                "Source Han Sans TC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                "Noto Serif CJK SC"}

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    driver = new_driver()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``engagebot run`` with the embedded default (both simulators), as the README starts it."""
    cwd = tmp_path_factory.mktemp("pages")
    port = free_port()
    with running("run", env={"ENGAGEBOT_PORT": str(port)}, cwd=cwd, port=port, ready="/simulator/telegram") as s:
        yield s


def test_the_landing_page_links_the_follower_pages_and_healthz_in_every_language(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    catalogs = default_catalogs()
    browser.get(server.url + "/")
    sections = browser.find_elements(By.CSS_SELECTOR, "section")
    # This browser reads English first; the Chinese catalogs follow.
    assert [s.get_attribute("lang") for s in sections] == ["en", "zh-Hans", "zh-Hant"]
    for section, locale in zip(sections, ("en", "zh_Hans", "zh_Hant"), strict=True):
        assert section.find_element(By.TAG_NAME, "h1").text == catalogs.gettext(locale, TITLE)
        links = {a.text: a.get_attribute("href") for a in section.find_elements(By.TAG_NAME, "a")}
        assert links == {catalogs.gettext(locale, FOLLOWER_PAGES["wechat"]): f"{server.url}/simulator/wechat",
                         catalogs.gettext(locale, FOLLOWER_PAGES["telegram"]): f"{server.url}/simulator/telegram",
                         catalogs.gettext(locale, FOLLOWER_PAGES["weibo"]): f"{server.url}/simulator/weibo",
                         catalogs.gettext(locale, HEALTH): f"{server.url}/healthz"}
        assert "engagebot chat --channel wechat" in section.text and "--port" in section.text
    titles = {catalogs.gettext(locale, TITLE) for locale in ("en", "zh_Hans", "zh_Hant")}
    assert len(titles) == 3  # really three languages
    screenshot(browser, "landing.png")
    for label, expect in ((FOLLOWER_PAGES["telegram"], "Telegram"), (FOLLOWER_PAGES["wechat"], "WeChat"),
                          (FOLLOWER_PAGES["weibo"], "Weibo"), (HEALTH, '"ok"')):
        browser.get(server.url + "/")
        browser.find_element(By.LINK_TEXT, catalogs.gettext("zh_Hans", label)).click()
        wait_for(lambda: expect in browser.title or expect in browser.page_source, what=expect)  # noqa: B023  (awaited in this iteration)


def test_the_landing_page_puts_the_readers_language_first_and_says_when_no_simulator_is_served(
        server: Server, tmp_path: Path) -> None:
    status, headers, body = http("GET", server.url + "/", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    html = body.decode()
    assert html.index('lang="zh-Hans"') < html.index('<section lang="en"')
    port = free_port()
    env = {"ENGAGEBOT_PORT": str(port), "ENGAGEBOT_SIMULATORS": "false"}
    with running("run", env=env, cwd=tmp_path, port=port) as bare:
        html = http("GET", bare.url + "/")[2].decode()
    assert "/simulator/" not in html and "/healthz" in html
    for locale in ("en", "zh_Hans"):
        assert default_catalogs().gettext(locale, NO_SIMULATOR) in html


def _platform_fonts(browser: Any, element: Any) -> dict[str, int]:
    """The fonts chromium really used for ``element``'s text: family -> glyphs drawn with it."""
    browser.execute_script("arguments[0].setAttribute('data-font-probe', '1')", element)
    browser.execute_cdp_cmd("DOM.enable", {})
    browser.execute_cdp_cmd("CSS.enable", {})
    root = browser.execute_cdp_cmd("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = browser.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": "[data-font-probe]"})["nodeId"]
    fonts = browser.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    browser.execute_script("arguments[0].removeAttribute('data-font-probe')", element)
    return {f["familyName"]: f["glyphCount"] for f in fonts}


def _assert_not_tofu(browser: Any, element: Any) -> None:
    """The Han characters of ``element`` are drawn with a CJK font, each its own glyph (not a box)."""
    text = element.text
    han = re.findall(r"[\u4e00-\u9fff]", text)
    assert len(han) >= 2, text
    fonts = _platform_fonts(browser, element)
    cjk = {family: n for family, n in fonts.items() if family in CJK_FAMILIES}
    assert cjk and sum(cjk.values()) >= len(han), fonts
    stack = browser.execute_script("return getComputedStyle(arguments[0]).fontFamily", element)
    for family in ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "Source Han Sans SC", "Noto Color Emoji"):
        assert family in stack, stack
    # Drawn in the page's own font: missing glyphs all draw the same box; real ones differ from it and
    # from each other.
    distinct = list(dict.fromkeys(han))[:3]
    drawings = browser.execute_script(
        "const draw = (t) => { const c = document.createElement('canvas'); c.width = 64; c.height = 64;"
        "  const x = c.getContext('2d'); x.font = getComputedStyle(arguments[0]).font; x.textBaseline = 'top';"
        "  x.fillText(t, 4, 4); return c.toDataURL(); };"
        "return arguments[1].map(draw).concat([draw('\\u{10FFFD}')]);", element, distinct)
    assert len(set(drawings)) == len(drawings), "Chinese characters drawn as identical boxes (tofu)"


def test_a_chinese_telegram_conversation_renders_with_a_cjk_font(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server.url + "/simulator/telegram")
    browser.find_element(By.ID, "nu-name").send_keys("李雷")
    Select(browser.find_element(By.ID, "nu-lang")).select_by_value("zh-hans")
    browser.find_element(By.CSS_SELECTOR, "#newuser button").click()
    wait_for(lambda: browser.find_element(By.ID, "text").is_enabled(), what="the chat to open")
    browser.find_element(By.ID, "text").send_keys("你好，请问几点开门？")
    browser.find_element(By.ID, "btn-send").click()
    reply = wait_for(lambda: next((m for m in browser.find_elements(By.CSS_SELECTOR, ".msg.out")
                                if re.search(r"[\u4e00-\u9fff]", m.text)), None), what="a Chinese reply")
    mine = browser.find_element(By.CSS_SELECTOR, ".msg.in")
    screenshot(browser, "telegram-chinese.png")
    _assert_not_tofu(browser, reply)
    _assert_not_tofu(browser, mine)


def test_a_chinese_wechat_conversation_renders_with_a_cjk_font(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server.url + "/simulator/wechat")
    browser.find_element(By.ID, "nick").send_keys("王伟")
    Select(browser.find_element(By.ID, "lang")).select_by_value("zh_CN")
    browser.find_element(By.ID, "create").click()
    wait_for(lambda: "王伟" in browser.find_element(By.ID, "who").text, what="the follower to be picked")
    def chinese_replies() -> list[Any]:
        return [b for b in browser.find_elements(By.CSS_SELECTOR, ".msg:not(.me) .bubble")
                if re.search(r"[\u4e00-\u9fff]", b.text)]

    browser.find_element(By.ID, "follow").click()
    wait_for(chinese_replies, what="the welcome")  # a follower may write once the follow went through
    browser.find_element(By.ID, "text").send_keys("你好，请问几点开门？")
    browser.find_element(By.ID, "send").click()
    bubbles = wait_for(lambda: chinese_replies()[1:], what="the answer")
    screenshot(browser, "wechat-chinese.png")
    _assert_not_tofu(browser, bubbles[-1])
    _assert_not_tofu(browser, browser.find_element(By.CSS_SELECTOR, ".msg.me .bubble"))


def test_a_chinese_weibo_conversation_renders_with_a_cjk_font(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(server.url + "/simulator/weibo")
    browser.find_element(By.ID, "nf-name").send_keys("韩梅梅")
    Select(browser.find_element(By.ID, "nf-lang")).select_by_value("zh_Hans")
    browser.find_element(By.CSS_SELECTOR, "#newfan button").click()
    wait_for(lambda: "韩梅梅" in browser.find_element(By.ID, "who").text, what="the fan to be picked")

    def chinese_replies() -> list[Any]:
        return [m for m in browser.find_elements(By.CSS_SELECTOR, "#log .msg:not(.in):not(.event)")
                if re.search(r"[\u4e00-\u9fff]", m.text)]

    browser.find_element(By.ID, "b-follow").click()
    wait_for(chinese_replies, what="the welcome")
    browser.find_element(By.ID, "dm").send_keys("你好，请问几点开门？")
    browser.find_element(By.CSS_SELECTOR, "#dmform button").click()
    replies = wait_for(lambda: chinese_replies()[1:], what="the answer")
    screenshot(browser, "weibo-chinese.png")
    _assert_not_tofu(browser, replies[-1])
    _assert_not_tofu(browser, browser.find_element(By.CSS_SELECTOR, "#log .msg.in"))


@pytest.mark.skipif(shutil.which("fc-list") is None or "Noto Color Emoji" not in subprocess.run(
    ["fc-list"], capture_output=True, text=True).stdout, reason="no colour emoji font installed here")
def test_emoji_render_with_an_emoji_font(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/simulator/telegram")
    browser.execute_script("document.body.insertAdjacentHTML('beforeend', '<p id=emoji>\U0001F44D\U0001F389</p>')")
    fonts = _platform_fonts(browser, browser.find_element(By.ID, "emoji"))
    assert "Noto Color Emoji" in fonts, fonts


def test_the_wechat_phone_shows_the_followers_menu_and_a_tap_is_answered(browser: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    port = server.url.rsplit(":", 1)[1]
    example = Path(__file__).resolve().parent.parent / "examples" / "menu.yaml"
    pushed = engagebot("menu", "load", str(example), "--port", port, env={"ENGAGEBOT_PORT": port},
                       cwd=server.stderr_path.parent)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    browser.get(server.url + "/simulator/wechat")
    browser.find_element(By.ID, "nick").send_keys("Amy")
    Select(browser.find_element(By.ID, "lang")).select_by_value("en")
    browser.find_element(By.ID, "create").click()
    wait_for(lambda: "Amy" in browser.find_element(By.ID, "who").text, what="the follower to be picked")
    browser.find_element(By.ID, "follow").click()

    def menu_labels() -> list[str]:
        return [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#menu .mtop > button")]

    wait_for(lambda: menu_labels() == ["Offers", "≡ Stores", "≡ More"], what="the English menu")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".msg:not(.me) .bubble"), what="the welcome")
    more = browser.find_elements(By.CSS_SELECTOR, "#menu .mtop")[2]
    more.find_element(By.CSS_SELECTOR, ":scope > button").click()
    subs = [b for b in more.find_elements(By.CSS_SELECTOR, ".subs button") if b.text == "Help"]
    wait_for(lambda: subs[0].is_displayed(), what="the sub-menu to open")
    subs[0].click()
    wait_for(lambda: any("Here is what I can do" in b.text
                      for b in browser.find_elements(By.CSS_SELECTOR, ".msg:not(.me) .bubble")), what="the answer")
    screenshot(browser, "wechat-menu-english.png")
