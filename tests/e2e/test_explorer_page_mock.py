"""The log explorer page (functions/gateway/explore/) in headless Chromium, against tests/e2e/explorer_mock.py.

The mock's data is deterministic (see its docstring), so every assertion names the exact rows it expects:
event i has id event_id(i), is 10 s older than event i-1, level LEVEL_CYCLE[i % 10], source SOURCES[i % 3].

Needs Debian's `chromium` and `chromium-driver` (tests/e2e/browser.py); fails without them.
`EXPLORER_SCREENSHOT=docs/explorer.png` also saves the 1366x768 screenshot there.
"""

import json
import time
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.e2e.browser import (
    by_testid,
    check_layout_and_screenshot,
    context_ids,
    first_rows_ms,
    key,
    pressed_levels,
    row_ids,
    wait,
    wait_rows,
)
from tests.e2e.browser import sign_in as sign_in_with
from tests.e2e.explorer_mock import (
    DEAD_ID,
    DEAD_REASON,
    INGEST_ONLY_KEY,
    LEVEL_CYCLE,
    QUEUED_ID,
    READ_KEY,
    SOURCES,
    STEP,
    MockServer,
    Store,
    event_id,
)

pytestmark = pytest.mark.e2e

COUNT = 250
ALL = list(range(COUNT))


def ids(indexes: list[int]) -> list[str]:
    return [event_id(i) for i in indexes]


def by_level(*levels: str) -> list[int]:
    return [i for i in ALL if LEVEL_CYCLE[i % 10] in levels]


@pytest.fixture
def mock() -> Iterator[MockServer]:
    server = MockServer(store=Store(COUNT)).start()
    yield server
    server.stop()


def sign_in(driver, url: str, key: str = READ_KEY) -> None:
    sign_in_with(driver, url, key)


def test_sign_in_refuses_bad_keys_keeps_the_key_out_of_the_url_and_lists_newest_first(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore", "wrong-key")
    wait(driver, lambda: "401" in by_testid(driver, "signin-error").text)
    assert by_testid(driver, "signin-key").is_displayed()
    sign_in(driver, f"{mock.url}/explore", INGEST_ONLY_KEY)
    wait(driver, lambda: "403" in by_testid(driver, "signin-error").text)
    assert "read scope" in by_testid(driver, "signin-error").text

    driver.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    assert READ_KEY not in driver.current_url
    assert driver.execute_script("return sessionStorage.getItem('logpipe.explorer.key')") == READ_KEY
    assert not driver.execute_script("return localStorage.getItem('logpipe.explorer.key')")
    first = driver.find_element(By.CSS_SELECTOR, f'tr[data-event-id="{event_id(0)}"]')
    assert first.find_element(By.CSS_SELECTOR, ".badge").text == "INFO"
    # The time in the user's zone, UTC on hover.
    moment = mock.store.base - 3 * STEP
    third = driver.find_element(By.CSS_SELECTOR, f'tr[data-event-id="{event_id(3)}"] .c-time')
    assert third.text == moment.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S.000")
    assert third.get_attribute("title") == moment.strftime("%Y-%m-%d %H:%M:%S.000 UTC")
    assert driver.find_element(By.ID, "time-header").text.upper() == "TIME (AMERICA/NEW_YORK)"
    assert "http.method=GET" in first.find_element(By.CSS_SELECTOR, ".msg-line").text
    assert all("Authorization" not in entry for entry in mock.store.requests)
    # Nothing but the page's origin was fetched (works offline).
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(name.startswith(mock.url) for name in resources), resources

    by_testid(driver, "signout-button").click()
    wait(driver, lambda: by_testid(driver, "signin-key").is_displayed())
    assert driver.execute_script("return sessionStorage.getItem('logpipe.explorer.key')") is None
    assert row_ids(driver) == []


def test_query_level_filter_and_infinite_scroll(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))

    query = by_testid(driver, "query-input")
    key(driver, "/")
    assert driver.switch_to.active_element == query
    query.send_keys("timeout", Keys.ENTER)
    wait_rows(driver, ids(by_level("ERROR", "FATAL")))  # 50: one page
    assert parse_qs(urlsplit(driver.current_url).query)["q"] == ["timeout"]
    wait(driver, lambda: by_testid(driver, "histogram").get_attribute("data-total") == "50")

    query.clear()
    by_testid(driver, "level-ERROR").click()
    wait_rows(driver, ids(by_level("ERROR")))
    assert pressed_levels(driver) == ["ERROR"]
    wait(driver, lambda: by_testid(driver, "histogram").get_attribute("data-total") == "25")

    by_testid(driver, "level-INFO").click()
    expected = by_level("INFO", "ERROR")
    assert len(expected) == 150
    wait_rows(driver, ids(expected[:100]))
    driver.execute_script("const s = document.getElementById('results-scroll'); s.scrollTop = s.scrollHeight")
    wait_rows(driver, ids(expected))
    assert by_testid(driver, "results-end").text == "End of results."
    pages = [path for path in mock.store.requests if path.startswith("/api/logs?") and "level=INFO" in path]
    assert any("cursor=" in path for path in pages)
    assert all("level=INFO&level=ERROR" in path or "level=ERROR&level=INFO" in path for path in pages)

    # Long lines: truncated to one line by default, wrapped on demand.
    line = driver.find_element(By.CSS_SELECTOR, ".msg-line")
    assert line.value_of_css_property("white-space") == "nowrap"
    by_testid(driver, "wrap-toggle").click()
    assert line.value_of_css_property("white-space") == "pre-wrap"

    by_testid(driver, "source-input").send_keys("billing", Keys.ENTER)
    wait_rows(driver, ids([i for i in expected if SOURCES[i % 3] == "billing"][:100]))


def test_keyboard_detail_context_filters_and_permalink_in_a_fresh_browser(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    by_testid(driver, "level-ERROR").click()
    errors = by_level("ERROR")
    wait_rows(driver, ids(errors))

    driver.execute_script("document.activeElement.blur()")
    key(driver, "j", "j", "j", "k")  # first row, second, third, back to the second
    selected = driver.find_elements(By.CSS_SELECTOR, "tr.is-selected")
    assert [row.get_attribute("data-event-id") for row in selected] == [event_id(errors[1])]
    key(driver, Keys.ENTER)
    panel = by_testid(driver, "detail-panel")
    wait(driver, lambda: panel.is_displayed() and panel.get_attribute("data-event-id") == event_id(15))
    fields = {
        row.get_attribute("data-field"): row.find_element(By.CSS_SELECTOR, "td").text
        for row in by_testid(driver, "detail-fields").find_elements(By.CSS_SELECTOR, "tr")
    }
    assert fields["id"] == event_id(15)
    assert fields["traceId"] == f"{15:032x}" and fields["spanId"] == f"{15:016x}"
    assert fields["source"] == "api" and fields["organizationId"] == "acme"
    assert fields["message"] == "upstream timeout calling worker after 3015 ms"
    assert "status: 504" in by_testid(driver, "detail-attributes").text
    # Context: the same source (api: i % 3 == 0), 10 older then 5 newer (there are no more), oldest first.
    expected_context = ids([45, 42, 39, 36, 33, 30, 27, 24, 21, 18, 15, 12, 9, 6, 3, 0])
    wait(driver, lambda: context_ids(driver) == expected_context)
    # Copy as JSON: the event exactly as the API gave it.
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": mock.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    by_testid(driver, "detail-copy").click()
    wait(driver, lambda: by_testid(driver, "detail-copy").text == "Copied")
    copied = driver.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], e => arguments[0](String(e)))"
    )
    assert json.loads(copied) == next(e for e in mock.store.snapshot() if e["id"] == event_id(15))
    current = by_testid(driver, "context-list").find_element(By.CSS_SELECTOR, ".is-current")
    assert current.get_attribute("data-event-id") == event_id(15)
    permalink = driver.current_url
    assert parse_qs(urlsplit(permalink).query) == {"level": ["ERROR"], "range": ["1h"], "event": [event_id(15)]}

    key(driver, "j")  # an open panel follows the selection
    wait(driver, lambda: panel.get_attribute("data-event-id") == event_id(25))
    key(driver, "k")
    wait(driver, lambda: panel.get_attribute("data-event-id") == event_id(15))
    wait(driver, lambda: context_ids(driver) == expected_context)
    key(driver, Keys.ESCAPE)
    wait(driver, lambda: not panel.is_displayed())
    assert "event" not in parse_qs(urlsplit(driver.current_url).query)

    # A fresh browser (no shared storage) follows the permalink: sign in, same filters, rows and opened event.
    other = browser()
    sign_in(other, permalink)
    wait_rows(other, ids(errors))
    assert pressed_levels(other) == ["ERROR"]
    assert by_testid(other, "range-1h").get_attribute("aria-pressed") == "true"
    other_panel = by_testid(other, "detail-panel")
    wait(other, lambda: other_panel.is_displayed() and other_panel.get_attribute("data-event-id") == event_id(15))
    wait(other, lambda: context_ids(other) == expected_context)
    assert [r.get_attribute("data-event-id") for r in other.find_elements(By.CSS_SELECTOR, "tr.is-selected")] == [
        event_id(15)
    ]

    # "exclude" on the level deselects it (here the only level pressed: back to all levels); "filter" on the
    # source sets the source field; on the message, the text query gets the phrase.
    by_testid(other, "exclude-level").click()
    wait_rows(other, ids(ALL[:100]))
    assert pressed_levels(other) == []
    by_testid(other, "filter-source").click()
    wait_rows(other, ids([i for i in ALL if i % 3 == 0][:100]))
    assert by_testid(other, "source-input").get_attribute("value") == "api"
    by_testid(other, "filter-message").click()
    wait_rows(other, ids([15]))
    assert by_testid(other, "query-input").get_attribute("value") == '"upstream timeout calling worker after 3015 ms"'
    by_testid(other, "exclude-level").click()  # from "all levels", excluding ERROR leaves the other five
    wait(other, lambda: pressed_levels(other) == ["TRACE", "DEBUG", "INFO", "WARN", "FATAL"])
    wait_rows(other, [])
    assert by_testid(other, "results-end").text.startswith("No events match")


def test_live_tail_prepends_new_events_once_and_pauses(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    by_testid(driver, "live-tail-toggle").click()
    added = mock.store.add_event(level="WARN", message="disk almost full on node-3", source="worker")
    wait_rows(driver, [added["id"], *ids(ALL[:100])], timeout=8)

    def tail_polls() -> list[str]:  # the tail's requests: from the newest event seen, no upper bound
        return [p for p in mock.store.requests if p.startswith("/api/logs?") and "&to=" not in p]

    polls = len(tail_polls())
    wait(driver, lambda: len(tail_polls()) >= polls + 2, timeout=8)
    assert row_ids(driver).count(added["id"]) == 1
    assert all("from=" in p for p in tail_polls())

    by_testid(driver, "live-tail-pause").click()
    paused = mock.store.add_event(level="ERROR", message="while paused", source="api")
    time.sleep(3)
    assert row_ids(driver)[0] == added["id"]
    by_testid(driver, "live-tail-pause").click()
    wait_rows(driver, [paused["id"], added["id"], *ids(ALL[:100])], timeout=8)

    by_testid(driver, "live-tail-toggle").click()
    mock.store.add_event(message="after stop")
    time.sleep(3)
    assert row_ids(driver)[0] == paused["id"]


def test_live_tail_keeps_at_most_2000_rows(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    by_testid(driver, "live-tail-toggle").click()
    for n in range(1950):
        mock.store.add_event(message=f"burst {n}")
    newest = [f"00000000-0000-4000-9000-{n:012d}" for n in range(1950, 0, -1)]
    wait_rows(driver, newest + ids(ALL[:50]), timeout=20)
    assert "older rows were dropped" in by_testid(driver, "results-end").text


def test_receipt_lookup(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    result = by_testid(driver, "receipt-result")
    answers = {
        event_id(7): ("stored", "stored"),
        QUEUED_ID: ("queued", "queued"),
        DEAD_ID: ("dead_lettered", f"dead lettered {DEAD_REASON}"),
        "33333333-3333-4333-8333-333333333333": ("not_found", "not found"),
    }
    for receipt, (status, text) in answers.items():
        field = by_testid(driver, "receipt-input")
        field.clear()
        field.send_keys(receipt, Keys.ENTER)
        wait(driver, lambda status=status: result.get_attribute("data-status") == status)
        assert " ".join(result.text.split()) == (text + " Open" if status == "stored" else text)
    # A stored receipt opens its event.
    field = by_testid(driver, "receipt-input")
    field.clear()
    field.send_keys(event_id(7), Keys.ENTER)
    wait(driver, lambda: result.get_attribute("data-status") == "stored")
    result.find_element(By.TAG_NAME, "button").click()
    panel = by_testid(driver, "detail-panel")
    wait(driver, lambda: panel.is_displayed() and panel.get_attribute("data-event-id") == event_id(7))


def test_histogram_drag_zooms_the_time_range(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    histogram = by_testid(driver, "histogram")
    wait(driver, lambda: histogram.get_attribute("data-total") == str(COUNT))
    width = histogram.size["width"]
    # Drag across the middle of the plot (44 px of axis on the left, 8 on the right).
    ActionChains(driver).move_to_element_with_offset(
        histogram, int(-width / 2 + 44 + (width - 52) * 0.6), 0
    ).click_and_hold().move_by_offset(int((width - 52) * 0.3), 0).release().perform()
    wait(driver, lambda: "from" in parse_qs(urlsplit(driver.current_url).query))
    query = parse_qs(urlsplit(driver.current_url).query)
    start = datetime.fromisoformat(query["from"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(query["to"][0].replace("Z", "+00:00"))
    assert "range" not in query
    inside = [i for i in ALL if start <= mock.store.base - i * STEP < end]
    assert inside
    wait_rows(driver, ids(inside[:100]))
    assert all(
        b.get_attribute("aria-pressed") == "false" for b in driver.find_elements(By.CSS_SELECTOR, ".range-preset")
    )
    assert by_testid(driver, "from-input").get_attribute("value")


def test_api_errors_show_in_the_banner_and_401_signs_out(mock, browser):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore?level=ERROR&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z")
    # An absolute range the wrong way round is refused before any request.
    banner = by_testid(driver, "error-banner")
    wait(driver, lambda: banner.is_displayed() and "invalid_range" in banner.text)
    driver.execute_script("sessionStorage.setItem('logpipe.explorer.key', 'revoked-key')")
    by_testid(driver, "range-1h").click()
    wait(driver, lambda: by_testid(driver, "signin-key").is_displayed())
    assert "401" in by_testid(driver, "signin-error").text


def test_first_render_and_screenshot(mock, browser, tmp_path):
    driver = browser()
    sign_in(driver, f"{mock.url}/explore")
    wait_rows(driver, ids(ALL[:100]))
    # Reload with the key already in the tab: navigation to the first rows painted.
    driver.get(f"{mock.url}/explore?range=1h&event={event_id(15)}")
    first_rows = first_rows_ms(driver)
    navigation = driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return {responseEnd: n.responseEnd, domContentLoaded: n.domContentLoadedEventEnd, load: n.loadEventEnd}"
    )
    print(
        f"\nexplorer first rows painted {first_rows:.0f} ms after navigation start (HTML response end "
        f"{navigation['responseEnd']:.0f} ms, DOMContentLoaded {navigation['domContentLoaded']:.0f} ms)"
    )
    assert first_rows < 3000
    panel = by_testid(driver, "detail-panel")
    wait(driver, lambda: panel.is_displayed() and len(context_ids(driver)) == 16)
    wait(driver, lambda: by_testid(driver, "histogram").get_attribute("data-total") == str(COUNT))
    check_layout_and_screenshot(driver, tmp_path)
