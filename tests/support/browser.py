"""A real browser for tests: Debian's chromium, headless, driven by selenium; screenshots as test artifacts.

Tests using it are skipped only where chromium is not installed (``.ci/run`` installs it). Screenshots
go to ``tests/artifacts/`` (not in git).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

needs_chromium = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
                                    reason="chromium and chromium-driver are not installed here (.ci/run installs them)")


# The console browser tests' operators sign in with this password.
CONSOLE_PASSWORD = "console password 2026"


@contextmanager
def chromium(window: str = "1200,900", language: str = "en-US") -> Iterator[Any]:
    """A headless chromium window, closed afterwards."""
    driver = new_driver(language, window)
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def console_server(cwd: Path, operators: Mapping[str, str]) -> Iterator[Any]:
    """``engagebot run`` with its simulators in ``cwd``, with these operators (name: role) added."""
    from tests.support.process import engagebot, running
    from tests.support.servers import free_port

    port = free_port()
    env = {"ENGAGEBOT_PORT": str(port)}
    with running("run", env=env, cwd=cwd, port=port, ready="/simulator/telegram") as server:
        for name, role in operators.items():
            added = engagebot("operator", "add", name, "--role", role, "--password-stdin",
                              input=CONSOLE_PASSWORD + "\n", env=env, cwd=cwd)
            assert added.returncode == 0, added.stdout + added.stderr
        yield server


def new_driver(language: str = "en-US", window: str = "1200,900") -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window}", f"--lang={language}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(predicate: Any, timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def screenshot(browser: Any, name: str) -> Path:
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path)), path
    return path
