"""Driving the log explorer page in Debian's headless Chromium with Selenium: the browser factory and the page's
helpers, shared by the test against the mock (test_explorer_page_mock.py) and the one against the real stack
(test_explorer.py).

Chromium and its driver are Debian's `chromium` and `chromium-driver`; `python local/services.py browser` installs
them (as root; `make test` runs it). Without them the tests fail, naming that command: they are never skipped.
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1366,768",
)
KEY_STORAGE = "logpipe.explorer.key"

Browser = Callable[[], webdriver.Chrome]


def browsers() -> Iterator[Browser]:
    """A factory of fresh browsers: each has its own profile, so nothing (sessionStorage included) is shared.
    On the way out, every browser's console must be free of errors but failed resources (the 401/403/404
    answers some tests ask for on purpose)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("Debian's chromium and chromium-driver are not installed: run `python local/services.py browser`")
    drivers: list[webdriver.Chrome] = []
    profiles: list[str] = []

    def start() -> webdriver.Chrome:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        profiles.append(tempfile.mkdtemp(prefix="explorer-chromium-"))
        options.add_argument(f"--user-data-dir={profiles[-1]}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False},
        )
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        severe = [
            entry
            for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]
        driver.quit()
        assert not severe, severe
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, timeout: float = 10, message: str = ""):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda _: condition(), message)


def row_ids(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#results-body tr[data-event-id]')].map(r => r.dataset.eventId)"
    )


def wait_rows(driver, expected: list[str], timeout: float = 10) -> None:
    try:
        wait(driver, lambda: row_ids(driver) == expected, timeout)
    except Exception:
        actual = row_ids(driver)
        raise AssertionError(f"rows: {len(actual)} {actual[:5]}... != {len(expected)} {expected[:5]}...") from None


def by_testid(driver, name: str):
    return driver.find_element(By.CSS_SELECTOR, f'[data-testid="{name}"]')


def sign_in(driver, url: str, key: str) -> None:
    driver.get(url)
    field = wait(driver, lambda: by_testid(driver, "signin-key").is_displayed() and by_testid(driver, "signin-key"))
    field.clear()
    field.send_keys(key)
    by_testid(driver, "signin-button").click()


def pressed_levels(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.level-toggle[aria-pressed=true]')].map(b => b.dataset.level)"
    )


def context_ids(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#context-list li[data-event-id]')].map(li => li.dataset.eventId)"
    )


def key(driver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def first_rows_ms(driver) -> float:
    """Navigation start to the first rows painted, as the page measures it (docs/explorer.md)."""
    return wait(driver, lambda: driver.execute_script("return window.__explorer && window.__explorer.firstRowsMs"))


def check_layout_and_screenshot(driver, folder: Path) -> None:
    """Usable at 1366x768: the query bar, histogram, rows and the detail panel are all on screen at once. The
    screenshot goes to `folder`, and to $EXPLORER_SCREENSHOT when set (docs/explorer.png)."""
    assert driver.execute_script("return [innerWidth, innerHeight]") == [1366, 768]
    outside = {}
    for name in ("query-input", "run-button", "histogram", "detail-panel", "live-tail-toggle", "receipt-input"):
        box = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.right, r.bottom]", by_testid(driver, name)
        )
        if box[0] > 1366 or box[1] > 768:
            outside[name] = box
    assert not outside, outside
    driver.save_screenshot(str(folder / "explorer.png"))
    if target := os.environ.get("EXPLORER_SCREENSHOT"):
        shutil.copy(folder / "explorer.png", target)
